"""Pure text helpers for cards: mrkdwn escaping, truncation, field values and relative times."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bot.customer import CustomerField

ELLIPSIS = "…"

# Only these three drive Slack's special parsing; `&` goes first so the other two's
# entities are not escaped again.
_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

# English month abbreviations, fixed: `%b` would follow the process locale.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def mrkdwn_escape(text: str) -> str:
    """Escape `&`, `<` and `>` so Slack shows them literally instead of parsing mentions, links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when anything was cut."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def mrkdwn_clip(text: str, limit: int) -> str:
    """Escape `text` for mrkdwn and cut it to `limit` characters without splitting an entity."""
    escaped = mrkdwn_escape(text)
    if len(escaped) <= limit:
        return escaped
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pieces: list[str] = []
    size = 0
    for char in text:
        piece = _MRKDWN_ESCAPES.get(char, char)
        if size + len(piece) > limit - 1:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces).rstrip() + ELLIPSIS


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) folded into one space."""
    return " ".join(text.split())


def format_date(value: date) -> str:
    """A date as "14 Mar 2026"."""
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def format_datetime(value: datetime) -> str:
    """A moment as "14 Mar 2026, 09:26 UTC" (naive datetimes are read as UTC)."""
    moment = _as_utc(value)
    return f"{format_date(moment)}, {moment:%H:%M} UTC"


def format_value(field: CustomerField) -> str:
    """A field's value shown by its format; values of an unexpected type fall back to their text."""
    try:
        shown = _FORMATTERS[field.format](field.value, field.currency)
    except (ValueError, TypeError, OverflowError, ArithmeticError):
        shown = None
    return shown if shown is not None else _text(field.value)


def relative_time(when: datetime, now: datetime) -> str:
    """How long ago (or from now) `when` is, in coarse words: "5 min ago", "in 3 days"."""
    seconds = (_as_utc(now) - _as_utc(when)).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "just now"
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if minutes < 60:
        amount = f"{minutes} min"
    elif hours < 24:
        amount = f"{hours} h"
    elif days < 2:
        return "tomorrow" if future else "yesterday"
    elif days < 7:
        amount = f"{days} days"
    elif days < 30:
        amount = _count(days // 7, "week")
    elif days < 365:
        amount = _count(max(days // 30, 1), "month")
    else:
        amount = _count(days // 365, "year")
    return f"in {amount}" if future else f"{amount} ago"


def _count(amount: int, unit: str) -> str:
    return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value if v is not None)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def _number(value: Any, decimals: int = 2) -> str | None:
    if not _is_number(value) or not Decimal(value).is_finite():
        return None
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.{decimals}f}".rstrip("0").rstrip(".")


def _format_text(value: Any, currency: str) -> str | None:
    return _text(value)


def _format_number(value: Any, currency: str) -> str | None:
    return _number(value)


def _format_percent(value: Any, currency: str) -> str | None:
    if not _is_number(value):
        return None
    # Models score as a 0-1 fraction; anything above 1 was already scaled to percent upstream.
    percent = value * 100 if -1 <= value <= 1 else value
    shown = _number(round(float(percent), 1), decimals=1)
    return None if shown is None else f"{shown}%"


def _format_currency(value: Any, currency: str) -> str | None:
    if not _is_number(value) or not Decimal(value).is_finite():
        return None
    amount = f"{abs(value):,.2f}"
    sign = "-" if value < 0 else ""
    symbol = _CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def _format_date(value: Any, currency: str) -> str | None:
    if isinstance(value, datetime):
        return format_date(_as_utc(value))
    if isinstance(value, date):
        return format_date(value)
    # Anything else is no moment: the profile's value was read when the Customer was built.
    return None


def _format_datetime(value: Any, currency: str) -> str | None:
    return format_datetime(value) if isinstance(value, datetime) else None


def _format_boolean(value: Any, currency: str) -> str | None:
    return ("Yes" if value else "No") if isinstance(value, bool) else None


_FORMATTERS = {
    "text": _format_text,
    "number": _format_number,
    "percent": _format_percent,
    "currency": _format_currency,
    "date": _format_date,
    "datetime": _format_datetime,
    "boolean": _format_boolean,
}
