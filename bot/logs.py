"""Logging for the bot: library loggers that would print payloads are held above DEBUG."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

#: Libraries whose DEBUG (and for some INFO) lines carry request bodies, query strings or
#: message payloads: customer data. Their level is set on the logger itself, so a root logger
#: at DEBUG (BOT_LOG_LEVEL=DEBUG, or a test's caplog) does not let those lines through.
QUIET_LIBRARIES = {
    "slack_sdk": logging.WARNING,
    "slack_bolt": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "aiocache": logging.INFO,
}


class PayloadRedactor(logging.Filter):
    """Cuts a log line at the first JSON or dict brace: Slack libraries print whole payloads
    (request bodies, acks, unhandled requests) after their message, and those hold customer
    data. What comes before the brace says what happened; that is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_BOLT_CLIENT_AND_TOKEN):
            # Bolt reads SLACK_BOT_TOKEN itself and warns that the client we give wins; the
            # client carries that same token, so the warning only alarms operators.
            return False
        cut = min((i for i in (message.find("{"), message.find("[{")) if i >= 0), default=-1)
        if cut >= 0:
            record.msg = message[:cut] + "{…payload withheld…}"
            record.args = None
        return True


_BOLT_CLIENT_AND_TOKEN = "As you gave `client` as well, `token` will be unused"  # noqa: S105
_REDACTOR = PayloadRedactor()


def quiet_libraries() -> None:
    """Hold the payload-logging libraries at their safe level, and cut payloads off their lines."""
    for name, level in QUIET_LIBRARIES.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if name.startswith("slack") and _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def bolt_logger() -> logging.Logger:
    """The base logger for Bolt. Bolt copies its level and filters to every logger it makes
    (otherwise it copies the root level, and at DEBUG it prints every ack body)."""
    quiet_libraries()
    return logging.getLogger("slack_bolt")


def configure_logging(level: str = "INFO", *, stream: TextIO | None = None) -> None:
    """Plain log lines on stderr: ids, statuses and durations, never customer data."""
    logging.basicConfig(
        level=level,
        stream=stream or sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_libraries()
