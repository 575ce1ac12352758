"""Logging for the bot: library loggers that would print payloads are held above DEBUG."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

from bot.request_id import RequestContextFilter

#: BOT_LOG_FORMAT: plain lines, or one JSON object per line.
LogFormat = Literal["text", "json"]

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


#: The fields of a JSON log line: nothing else a record carries (a library's `extra=` could
#: hold a payload) is written.
JSON_FIELDS = (
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "surface",
    "outcome",
    "exc_info",
    "stack_info",
)


class TextFormatter(logging.Formatter):
    """`time level logger [request id]: message`; `-` outside a request."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
            try:
                return super().format(record)
            finally:
                record.request_id = None
        return super().format(record)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line with JSON_FIELDS only (python-json-logger does the encoding,
    timestamps and exception text)."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(surface)s %(outcome)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: log_data[key] for key in JSON_FIELDS if key in log_data}


def log_formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of BOT_LOG_FORMAT."""
    if log_format == "json":
        return JsonLineFormatter()
    return TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")


def configure_logging(
    level: str = "INFO", *, log_format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Log lines on stderr, as text or one JSON object each (BOT_LOG_FORMAT), each with the
    request id it belongs to: ids, statuses and durations, never customer data."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    # On the handler, so records of every logger (libraries included) get the request's id.
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level)
    quiet_libraries()
