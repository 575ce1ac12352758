"""The HTTP front door: Slack's signature, age and uniqueness checked before Bolt runs.

A request that fails any check is answered 401 and nothing else happens: no listener, no error
handler, no outbound call, and one short line on the `bot.security` logger that never holds the
body, the signature or the timestamp. Only admitted requests carry the `VERIFIED` context marker,
and the app refuses (and its error handler ignores) any HTTP request without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import ops, request_id
from bot.cache import CacheKeys, DataCache
from bot.services import Services
from bot.settings import Settings

security_log = logging.getLogger("bot.security")

#: The context key that marks a request as verified by the gate (set nowhere else).
VERIFIED = "bot_request_verified"
#: The context key of the id the gate gave the request (bot.request_id).
REQUEST_ID = "bot_request_id"
#: Slack's replay window: a timestamp further than this from now, either way, is refused.
MAX_AGE_SECONDS = 300
#: A signature is valid from its timestamp's -5 to +5 minutes: remember it that long, and a bit.
REPLAY_MEMORY_SECONDS = 2 * MAX_AGE_SECONDS + 60
#: The largest body read; Slack's own payloads (a modal of 100 blocks) stay far below it.
MAX_BODY_BYTES = 1024 * 1024
LINGER_SECONDS = 1.0
CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/json"})
INVALID = {"error": "invalid request"}

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def signature_problem(
    secret: str, body: bytes, timestamp: str | None, signature: str | None, *, now: float
) -> str | None:
    """Why `body` with these headers is not a request Slack signed just now, or None if it is.

    Strict on shapes Slack never sends (a timestamp that is not plain ASCII digits, a signature
    that is not `v0=` and 64 lower-case hex digits), so nothing here can raise.
    """
    if not timestamp:
        return "no timestamp"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed timestamp"
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale timestamp"
    if not signature:
        return "no signature"
    if not _SIGNATURE.fullmatch(signature):
        return "malformed signature"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature mismatch"
    return None


@dataclass(frozen=True)
class Refusal:
    """A request the gate did not admit: the HTTP status to answer and why (for the log)."""

    status: int
    reason: str


class RequestGate:
    """Admits a request only when Slack signed it within the window and it was not seen before.

    The replay memory lives in the bot's cache, so with Redis a copy sent to another instance is
    refused too.
    """

    def __init__(
        self,
        *,
        signing_secret: str,
        cache: DataCache,
        keys: CacheKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signing_secret.strip():
            raise ValueError("the signing secret must not be empty")
        self._secret = signing_secret
        self._cache = cache
        self._keys = keys
        self._clock = clock

    async def admit(
        self, body: bytes, headers: Mapping[str, str], query: str = ""
    ) -> AsyncBoltRequest | Refusal:
        """The Bolt request to dispatch, marked verified, or the refusal (already logged)."""
        lowered: dict[str, list[str]] = {}
        for name, value in headers.items():
            lowered.setdefault(name.lower(), []).append(value)
        timestamp = _single(lowered, "x-slack-request-timestamp")
        signature = _single(lowered, "x-slack-signature")
        problem = signature_problem(self._secret, body, timestamp, signature, now=self._clock())
        if problem is not None:
            return refuse(401, problem)
        assert signature is not None  # signature_problem said so
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return refuse(401, "body not UTF-8")
        content_type = (_single(lowered, "content-type") or "").split(";")[0].strip().lower()
        if content_type not in CONTENT_TYPES:
            return refuse(401, "unexpected content type")
        key = self._keys.request(signature)
        if not await self._cache.first_time(key, ttl=REPLAY_MEMORY_SECONDS):
            if "x-slack-retry-num" in lowered:
                # Slack retrying a delivery the bot already took: a 401 would count as a failure
                # and bring more retries; a plain 200 ends it, with nothing done.
                return refuse(200, "repeated delivery of a request already admitted")
            return refuse(401, "replayed request")
        return AsyncBoltRequest(
            body=text,
            query=query,
            headers={name: values for name, values in lowered.items()},
            context={VERIFIED: True},
        )


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    """The one value of a header; a header sent twice counts as malformed (empty)."""
    values = headers.get(name)
    if not values:
        return None
    return values[0] if len(values) == 1 else ""


def refuse(status: int, reason: str) -> Refusal:
    """One short security log line, never with the body, then the refusal."""
    security_log.warning("refused a Slack request: %s (answered %d)", reason, status)
    return Refusal(status=status, reason=reason)


def is_verified(request: AsyncBoltRequest) -> bool:
    """True for a request the gate admitted, or one from Socket Mode (Slack's own connection,
    opened with the app token, has no signatures to check)."""
    return request.mode == "socket_mode" or request.context.get(VERIFIED) is True


def gate_for(settings: Settings, services: Services) -> RequestGate:
    """The gate of HTTP mode (and the console), on the bot's cache."""
    if settings.slack_signing_secret is None:
        raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET")
    return RequestGate(
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        cache=services.cache,
        keys=services.keys,
    )


def create_web_app(
    app: AsyncApp,
    settings: Settings,
    services: Services,
    *,
    path: str = "/slack/events",
) -> web.Application:
    """The aiohttp application of HTTP mode: `POST path` through the gate into Bolt."""
    gate = gate_for(settings, services)
    read_timeout = settings.bot_request_read_timeout
    # A refused request's unread body is drained for at most a second before the connection
    # closes (aiohttp's default of 10 s would let a slow client hold it that long).
    web_app = web.Application(
        client_max_size=MAX_BODY_BYTES, handler_args={"lingering_time": LINGER_SECONDS}
    )

    async def slack_events(request: web.Request) -> web.StreamResponse:
        # The request's id, made here at the edge: its refusal line, its listener's log lines,
        # audit records and AEP calls all carry it (bot.request_id).
        scope = request_id.begin()
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return _closing(refuse(401, "body too large"))
        try:
            async with asyncio.timeout(read_timeout):
                body = await request.read()
        except TimeoutError:
            security_log.warning(
                "closed a connection whose request body did not arrive within %g s", read_timeout
            )
            response = web.json_response({"error": "request timeout"}, status=408)
            response.force_close()
            return response
        except web.HTTPRequestEntityTooLarge:
            return _closing(refuse(401, "body too large"))
        outcome = await gate.admit(body, request.headers, request.query_string)
        if isinstance(outcome, Refusal):
            return _closing(outcome) if outcome.status >= 400 else web.Response(status=200)
        outcome.context[REQUEST_ID] = scope.id
        return await to_aiohttp_response(await app.async_dispatch(outcome))

    web_app.router.add_post(path, slack_events)
    ops.add_routes(web_app, services)
    return web_app


def _closing(refusal: Refusal) -> web.Response:
    body: dict[str, Any] = INVALID
    response = web.json_response(body, status=refusal.status)
    response.force_close()
    return response
