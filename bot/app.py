"""create_app(settings, services) -> AsyncApp: the listeners of every surface and one error path."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackClientError

from bot import request_id
from bot.listeners import actions, commands, home, links, mentions, shortcuts
from bot.logs import bolt_logger
from bot.services import Services
from bot.settings import Settings
from bot.share_metadata import ShareMetadata
from bot.slack_web import BudgetedRespond, SlackBusy, busy_seconds, failure_code, new_reference
from bot.verify import INVALID, REQUEST_ID, is_verified, security_log

log = logging.getLogger(__name__)


class KeptAck(AsyncAck):
    """An ack whose answer, once given, stays given.

    When a listener raises after acking, Bolt's runner sets `ack.response` back to None (it
    means "the error handler's response, if any"); if that happens before its 10 ms poll saw the
    ack, the request is answered 404 after 3 s and the person's "Looking up…" is lost (a listener
    that fails at once, e.g. on a method Slack rate-limited, always loses that race).
    """

    def __init__(self, on_ack: Callable[[], None] | None = None) -> None:
        self._response: BoltResponse | None = None
        self._on_ack = on_ack

    @property
    def response(self) -> BoltResponse | None:
        return self._response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        if value is not None and self._response is None and self._on_ack is not None:
            self._on_ack()
        if value is not None or self._response is None:
            self._response = value


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

    @app.use
    async def within_budget(
        context: AsyncBoltContext, body: dict[str, Any], next_: Callable[[], Awaitable[None]]
    ) -> None:
        """Every listener talks to Slack within the lookup deadline: Bolt gives each request a
        plain client and a plain `respond`; these are the budgeted ones (bot.slack_web), and the
        request's id (bot.request_id: made by the gate in HTTP mode, here in Socket Mode) is
        the reference its log lines, audit records, AEP calls and error message share."""
        given = context.get(REQUEST_ID)
        scope = request_id.current()
        if not isinstance(given, str) or scope is None or scope.id != given:
            # Socket Mode (or a dispatch that did not pass the gate's handler): a new scope.
            scope = request_id.begin()
        scope.surface = request_id.surface_of(body)
        reference = scope.id
        started = scope.started

        def acked() -> None:
            services.metrics.acked(time.monotonic() - started)

        context["reference"] = reference
        context["ack"] = KeptAck(on_ack=acked)
        context["client"] = services.slack.for_team(context.team_id)
        context["respond"] = BudgetedRespond(
            response_url=context.response_url,
            budget=settings.bot_lookup_deadline,
            reference=reference,
            allowed=services.response_url_allowed,
        )
        await next_()

    for surface in (commands, shortcuts, mentions, actions, links, home):
        surface.register(app, services)

    @app.error
    async def on_error(
        error: Exception,
        body: dict[str, Any],
        request: AsyncBoltRequest,
        context: AsyncBoltContext,
    ) -> None:
        """Whatever failed, the person is told in words, with a reference for the admin; but only
        on a verified request, and only through Slack's own response hosts."""
        if not is_verified(request):
            # Unreachable behind the gate; if it ever happens, the body names nobody to answer.
            security_log.warning("error %s on an unverified request ignored", type(error).__name__)
            return
        reference = str(context.get("reference") or new_reference())
        if isinstance(error, SlackBusy):
            # Not a bug: Slack asked for quiet longer than the person can wait.
            log.warning("Slack is busy: %s (reference %s)", error, reference)
            message = services.cards.notice(
                "slack_busy", reader=services.default_reader, seconds=busy_seconds(error)
            )
        else:
            log.error(
                "unhandled error %s (reference %s)",
                type(error).__name__,
                reference,
                exc_info=error,
            )
            message = services.cards.notice(
                "internal_error", reader=services.default_reader, reference=reference
            )
        reply = {**message, "response_type": "ephemeral", "replace_original": False}
        response_url = body.get("response_url")
        if not response_url and body.get("type") == "view_submission":
            # The modal has closed; its answer goes where the card it came from was.
            try:
                meta = ShareMetadata.parse(body.get("view", {}).get("private_metadata") or "")
            except ValueError:
                return
            response_url = meta.response_url
        if (
            isinstance(response_url, str)
            and response_url
            # send_reply refuses (and logs) a response_url that is not on a Slack host
            and await services.send_reply(response_url, reply, reference=reference)
        ):
            return
        # No response_url, or it failed: try the other private path Slack offers.
        event = body.get("event") or {}
        channel = event.get("channel") or body.get("channel_id") or (body.get("channel") or {})
        user = event.get("user") or body.get("user_id") or (body.get("user") or {})
        channel = channel.get("id") if isinstance(channel, dict) else channel
        user = user.get("id") if isinstance(user, dict) else user
        if isinstance(channel, str) and channel and isinstance(user, str) and user:
            try:
                await services.slack.chat_postEphemeral(
                    channel=channel,
                    user=user,
                    thread_ts=event.get("thread_ts") or event.get("ts"),
                    **message,
                )
            except SlackClientError as exc:
                log.error(
                    "could not tell the person about error %s: %s", reference, failure_code(exc)
                )

    return app
