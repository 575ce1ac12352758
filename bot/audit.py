"""The audit trail: one JSON line per lookup, refusal or share; identities only as keyed HMACs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot import request_id
from bot.identity import IdentityRef
from bot.vocabulary import AuditAction, AuditOutcome, AuditSurface

if TYPE_CHECKING:
    from bot.metrics import Metrics

__all__ = ["AuditAction", "AuditError", "AuditLog"]

_REDACTED = "[identity]"


class AuditError(Exception):
    """The audit sink cannot be opened; the message names the file and the reason."""


class AuditLog:
    """Append-only audit records, written and fsync'ed before `record` returns.

    `sink` is a file path (JSON lines, created with mode 0600, opened for append) or "-" for
    stdout. `key` is the secret for `identity_hmac`: the same key gives the same hash, so an
    auditor holding it can find every lookup of one identity without the log storing it.
    """

    def __init__(self, *, sink: str, key: bytes, metrics: Metrics | None = None) -> None:
        if not key:
            raise AuditError("the audit key is empty: set BOT_AUDIT_KEY to a long random secret")
        self._key = key
        self._sink = sink
        self._lock = asyncio.Lock()
        self._closed = False
        self._fd: int | None = None
        self._metrics = metrics
        #: Why the last record could not be written (None once one was): for /readyz.
        self.last_failure: str | None = None
        if sink != "-":
            try:
                self._fd = os.open(sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as exc:
                raise AuditError(
                    f"BOT_AUDIT_FILE: cannot open {sink} for appending: {exc.strerror}"
                ) from None

    def identity_hmac(self, value: str) -> str:
        """Hex HMAC-SHA256 of `value` keyed by the audit secret."""
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    async def record(
        self,
        *,
        action: AuditAction,
        team_id: str | None,
        actor: str,
        channel_id: str | None,
        ref: IdentityRef | None,
        profile_id: str | None,
        shown: Iterable[str],
        withheld: Iterable[str],
        outcome: AuditOutcome,
        surface: AuditSurface,
    ) -> None:
        """Append one record and make it durable before returning.

        Only ids, class names and the identity's HMAC are written; should the identity's raw value
        appear in `outcome` or `profile_id`, it is replaced there too.
        """
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "team": team_id,
            "actor": actor,
            "channel": channel_id,
            "action": action,
            "surface": surface,
            "namespace": ref.namespace if ref is not None else None,
            "identity_hmac": self.identity_hmac(_canonical(ref)) if ref is not None else None,
            "profile_id": _scrub(profile_id, ref),
            "shown": sorted(set(shown)),
            "withheld": sorted(set(withheld)),
            "outcome": _scrub(str(outcome), ref),
            # The Slack request's id: the same one its log lines, its error message and its
            # AEP calls' x-request-id carry (bot.request_id).
            "request_id": request_id.current_id(),
        }
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        async with self._lock:
            try:
                if self._closed:
                    raise RuntimeError("the audit log is closed")
                await asyncio.to_thread(self._write, line)
            except (OSError, RuntimeError) as exc:
                self.last_failure = (
                    exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)
                )
                if self._metrics is not None:
                    self._metrics.audit_failed.inc()
                raise
            self.last_failure = None
        scope = request_id.current()
        if scope is not None:
            scope.outcome = str(outcome).split(":", 1)[0]
        if self._metrics is not None:
            self._metrics.audited(action=action, surface=surface, outcome=outcome)

    def problem(self) -> str | None:
        """Why the sink cannot take a record now, or None: closed, the last write failed, or
        the file is gone or no longer writable."""
        if self._closed:
            return "the audit log is closed"
        if self.last_failure is not None:
            return f"the last audit record could not be written ({self.last_failure})"
        if self._fd is None:
            return None
        try:
            on_disk = os.stat(self._sink)
            held = os.fstat(self._fd)
        except OSError as exc:
            return f"BOT_AUDIT_FILE cannot be read ({exc.strerror})"
        if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            return "BOT_AUDIT_FILE was moved or replaced; restart the bot to write the new file"
        if not os.access(self._sink, os.W_OK):
            return "BOT_AUDIT_FILE is not writable"
        return None

    def _write(self, line: bytes) -> None:
        if self._fd is None:
            # Looked up at write time, so a redirected stdout (tests, supervisors) is honoured.
            sys.stdout.write(line.decode())
            sys.stdout.flush()
            return
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    async def aclose(self) -> None:
        """Close the sink; later records raise. Safe to call twice."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _scrub(text: str | None, ref: IdentityRef | None) -> str | None:
    if text is None or ref is None or not ref.value:
        return text
    return re.sub(re.escape(ref.value), _REDACTED, text, flags=re.IGNORECASE)


def _canonical(ref: IdentityRef) -> str:
    """The identity value as AEP matches it: emails in any case are one person, so an auditor
    searching for an email finds lookups typed with capitals too."""
    return ref.value.strip().lower() if ref.namespace.lower() == "email" else ref.value
