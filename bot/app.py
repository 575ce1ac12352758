"""create_app(settings, services) -> AsyncApp: the listeners of every surface and one error path."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.cards import ShareMetadata
from bot.listeners import actions, commands, mentions, shortcuts
from bot.logs import bolt_logger
from bot.services import Services
from bot.settings import Settings
from bot.slack_urls import response_url_allowed
from bot.verify import INVALID, is_verified, security_log

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    services: Services,
    *,
    process_before_response: bool = False,
) -> AsyncApp:
    """Build the Bolt app on the services' Web API client (which carries the bot token).

    HTTP requests reach it through `bot.verify.RequestGate`, which checks Slack's signature,
    its age and replays before Bolt parses anything; the app itself refuses every HTTP request
    the gate did not mark (Bolt's own check, which raises on a malformed timestamp, is off).

    `process_before_response` holds the HTTP answer until the listener is done: the console
    uses it to print a command's whole outcome; a server keeps the default and acks at once.
    """

    async def only_verified(
        request: AsyncBoltRequest, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Nothing that did not pass the gate reaches authorization (auth.test) or a listener;
        Socket Mode has no signing and passes."""
        if not is_verified(request):
            security_log.warning("refused a Slack request that did not pass verification")
            return BoltResponse(status=401, body=INVALID)
        await next()
        return None

    app = AsyncApp(
        logger=bolt_logger(),
        client=services.slack,
        process_before_response=process_before_response,
        ignoring_self_events_enabled=True,
        request_verification_enabled=False,
        # Bolt runs this where its own verification would run: before authorization and any
        # listener (only its answer to Slack's ssl_check ping comes first, and calls nothing).
        before_authorize=only_verified,
    )

    for surface in (commands, shortcuts, mentions, actions):
        surface.register(app, services)

    @app.error
    async def on_error(
        error: Exception,
        body: dict[str, Any],
        request: AsyncBoltRequest,
        client: AsyncWebClient,
    ) -> None:
        """Whatever failed, the person is told in words, with a reference for the admin; but only
        on a verified request, and only through Slack's own response hosts."""
        if not is_verified(request):
            # Unreachable behind the gate; if it ever happens, the body names nobody to answer.
            security_log.warning("error %s on an unverified request ignored", type(error).__name__)
            return
        reference = uuid.uuid4().hex[:12]
        log.error(
            "unhandled error %s (reference %s)", type(error).__name__, reference, exc_info=error
        )
        message = services.cards.notice("internal_error", reference=reference)
        try:
            response_url = body.get("response_url")
            if body.get("type") == "view_submission":
                # The modal has closed; its answer goes where the card it came from was.
                meta = ShareMetadata.parse(body.get("view", {}).get("private_metadata") or "")
                response_url = meta.response_url
            if response_url:
                if not isinstance(response_url, str) or not response_url_allowed(
                    response_url, settings
                ):
                    security_log.warning(
                        "not answering error %s: its response_url is not on a Slack host",
                        reference,
                    )
                    return
                await AsyncWebhookClient(response_url).send(
                    **message, response_type="ephemeral", replace_original=False
                )
                return
            if body.get("type") == "view_submission":
                return
            event = body.get("event") or {}
            if event.get("channel") and event.get("user"):
                await client.chat_postEphemeral(
                    channel=event["channel"],
                    user=event["user"],
                    thread_ts=event.get("thread_ts") or event.get("ts"),
                    **message,
                )
        except (SlackApiError, ValueError, aiohttp.ClientError, TimeoutError) as exc:
            log.error("could not tell the person about error %s: %s", reference, type(exc).__name__)

    return app
