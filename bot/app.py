"""create_app(settings, services) -> AsyncApp: the listeners of every surface and one error path."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.cards import ShareMetadata
from bot.listeners import actions, commands, mentions, shortcuts
from bot.logs import bolt_logger
from bot.services import Services
from bot.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    services: Services,
    *,
    process_before_response: bool = False,
) -> AsyncApp:
    """Build the Bolt app on the services' Web API client (which carries the bot token).

    `process_before_response` holds the HTTP answer until the listener is done: the console
    uses it to print a command's whole outcome; a server keeps the default and acks at once.
    """
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = AsyncApp(
        logger=bolt_logger(),
        client=services.slack,
        signing_secret=signing_secret,
        process_before_response=process_before_response,
        ignoring_self_events_enabled=True,
        request_verification_enabled=True,
    )
    for surface in (commands, shortcuts, mentions, actions):
        surface.register(app, services)

    @app.error
    async def on_error(
        error: Exception, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Whatever failed, the person is told in words, with a reference for the admin."""
        reference = uuid.uuid4().hex[:12]
        log.error(
            "unhandled error %s (reference %s)", type(error).__name__, reference, exc_info=error
        )
        message = services.cards.notice("internal_error", reference=reference)
        try:
            if body.get("response_url"):
                await respond(**message, response_type="ephemeral", replace_original=False)
                return
            if body.get("type") == "view_submission":
                # The modal has closed; its answer goes where the card it came from was.
                meta = ShareMetadata.parse(body.get("view", {}).get("private_metadata") or "")
                if meta.response_url:
                    await AsyncWebhookClient(meta.response_url).send(
                        **message, response_type="ephemeral", replace_original=False
                    )
                return
            event = body.get("event") or {}
            if event.get("channel") and event.get("user"):
                await client.chat_postEphemeral(
                    channel=event["channel"],
                    user=event["user"],
                    thread_ts=event.get("thread_ts") or event.get("ts"),
                    **message,
                )
        except (SlackApiError, ValueError) as exc:
            log.error("could not tell the person about error %s: %s", reference, exc)

    return app
