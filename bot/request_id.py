"""One id per Slack request, from the edge to every log line, audit record and AEP x-request-id.

The id is made where a request enters the bot (the HTTP gate in bot.verify, the app's middleware
in Socket Mode) and held in a context variable: Bolt runs a listener as a task of its own, and a
task starts with a copy of its creator's context, so the listener and everything it awaits see
the request's scope. Background work (the audience listing) opens a scope of its own.

Slack's own ids do not serve: `X-Slack-Request-Timestamp` and an event id are the same on every
retry of a delivery, and a slash command has no id at all.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

#: What a log record or a metric may say about where a request came from (a small fixed set).
SURFACES = ("command", "shortcut", "mention", "action", "view", "event", "background", "other")


@dataclass
class RequestScope:
    """One request's id, when it arrived, where from, and (once audited) its outcome."""

    id: str
    surface: str | None = None
    outcome: str | None = None
    started: float = field(default_factory=time.monotonic)
    _calls: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_call_id(self) -> str:
        """`<request id>-<n>`: the x-request-id of this request's n-th outbound AEP call."""
        return f"{self.id}-{next(self._calls)}"


_SCOPE: ContextVar[RequestScope | None] = ContextVar("bot_request_scope", default=None)


def new_id() -> str:
    """A fresh request id: 16 hex digits (64 random bits), short enough to read out loud."""
    return uuid.uuid4().hex[:16]


def begin(surface: str | None = None, *, request_id: str | None = None) -> RequestScope:
    """Open a new scope in the current context (the caller's task and tasks it creates later)."""
    scope = RequestScope(id=request_id or new_id(), surface=surface)
    _SCOPE.set(scope)
    return scope


def current() -> RequestScope | None:
    """The scope of the request being served here, if any."""
    return _SCOPE.get()


def current_id() -> str | None:
    """The id of the request being served here, if any."""
    scope = _SCOPE.get()
    return scope.id if scope is not None else None


def outbound_id() -> str:
    """The x-request-id of one outbound call: `<request id>-<n>` within a request (Adobe reads
    the header as the id of one HTTP request, and a lookup makes several, retries included, so
    each gets its own while the prefix finds them all), a fresh UUID outside any request."""
    scope = _SCOPE.get()
    return scope.next_call_id() if scope is not None else str(uuid.uuid4())


class RequestContextFilter(logging.Filter):
    """Puts `request_id`, `surface` and `outcome` on every record (None when unknown), so both
    log formats can show them; a value given with `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _SCOPE.get()
        for name in ("request_id", "surface", "outcome"):
            if not hasattr(record, name):
                value = getattr(scope, "id" if name == "request_id" else name, None)
                setattr(record, name, value)
        return True


def surface_of(body: object) -> str:
    """Which kind of Slack request `body` is, as one of SURFACES (for logs and metrics)."""
    if not isinstance(body, dict):
        return "other"
    if body.get("command"):
        return "command"
    kind = body.get("type")
    if kind in ("shortcut", "message_action"):
        return "shortcut"
    if kind == "block_actions":
        return "action"
    if kind in ("view_submission", "view_closed"):
        return "view"
    if kind == "event_callback":
        event = body.get("event")
        mention = isinstance(event, dict) and event.get("type") == "app_mention"
        return "mention" if mention else "event"
    return "other"
