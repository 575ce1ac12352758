"""Pure text helpers for cards: mrkdwn escaping, truncation, and every number, amount, date and
relative time in the reader's locale and time zone (Babel's CLDR formats, never by hand)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from babel import dates, numbers

from bot.customer import CustomerField
from bot.i18n import Reader
from bot.layout import Label, label_text

ELLIPSIS = "…"

# Only these three drive Slack's special parsing; `&` goes first so the other two's
# entities are not escaped again.
_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

_CURRENCY = re.compile(r"^[A-Z]{3}$")
# A coded value: lower-case ASCII words joined by `_` or `-`, at most 40 characters.
_CODE_WORD = re.compile(r"^(?=.{1,40}$)[a-z]+(?:[_-][a-z]+)*$")


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


def format_date(value: date, reader: Reader) -> str:
    """A calendar date in the reader's medium format: "Mar 14, 2026", "14 mrt 2026". A date
    carries no time zone, so it is shown as it is (a datetime as its UTC day)."""
    if isinstance(value, datetime):
        value = _as_utc(value).date()
    return dates.format_date(value, "medium", locale=reader.locale)


def format_datetime(value: datetime, reader: Reader) -> str:
    """A moment in the reader's time zone and format, with the zone: "Mar 14, 2026, 5:26 AM EDT",
    "14 mrt 2026, 10:26 CET" (naive datetimes are read as UTC)."""
    moment = _as_utc(value)
    day = dates.format_date(moment.astimezone(reader.zone), "medium", locale=reader.locale)
    time = dates.format_time(moment, "short", tzinfo=reader.zone, locale=reader.locale)
    zone = dates.format_datetime(moment, "zzz", tzinfo=reader.zone, locale=reader.locale)
    pattern = reader.locale.datetime_formats["medium"]
    return f"{pattern.format(time, day)} {zone}"


def slack_date(value: datetime, reader: Reader) -> str:
    """A moment as Slack's date token, which every reader's Slack shows in their own time zone
    and language; the fallback (for clients that cannot) is in UTC, in the reader's words.
    The result is mrkdwn: only the fallback is escaped."""
    moment = _as_utc(value)
    fallback = format_datetime(moment, Reader(locale=reader.locale, zone=UTC))
    # `|` ends the fallback and `>` the token: neither may appear inside it.
    fallback = mrkdwn_escape(fallback).replace("|", "/")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def format_value(field: CustomerField, reader: Reader) -> str:
    """A field's value shown by its format; values of an unexpected type fall back to their text.
    A text field's coded value reads as a word (see `value_words`)."""
    if field.format == "text":
        words = value_words(field.value, field.values, reader)
        if words is not None:
            return words
    try:
        shown = _FORMATTERS[field.format](field.value, field.currency, reader)
    except (ValueError, TypeError, OverflowError, ArithmeticError):
        shown = None
    return shown if shown is not None else _text(field.value, reader)


def value_words(value: Any, values: Mapping[str, Label] | None, reader: Reader) -> str | None:
    """A coded value as a person would write it: the layout's words for it in the reader's
    language (`values`, matched without regard to case), else a value that is a lower-case
    code of ASCII letters (`gold`, `not_specified`, `non-binary`) capitalised with spaces for
    underscores ("Gold", "Not specified"); None for anything else. A value with a capital, a
    digit, a space or any other character is free text (a name, a company) and never changed."""
    if not isinstance(value, str):
        return None
    for code, words in (values or {}).items():
        if code.casefold() == value.strip().casefold():
            return label_text(words, reader.tag)
    if not _CODE_WORD.match(value):
        return None
    words = value.replace("_", " ")
    return words[:1].upper() + words[1:]


def format_number(value: Any, reader: Reader) -> str | None:
    """A number in the reader's format ("1,234.5", "1.234,5"); None when it is no number."""
    if not _is_number(value) or not Decimal(value).is_finite():
        return None
    return numbers.format_decimal(value, format="#,##0.##", locale=reader.locale)


def format_money(value: Any, currency: str, reader: Reader) -> str | None:
    """An amount of any ISO currency in the reader's format ("€48,213.75", "€ 48.213,75")."""
    if not _is_number(value) or not Decimal(value).is_finite():
        return None
    code = currency.upper() if _CURRENCY.match(currency.upper()) else None
    if code is None:
        return format_number(value, reader)
    return numbers.format_currency(value, code, locale=reader.locale)


def relative_time(when: date, now: datetime, reader: Reader) -> str:
    """How long ago (or from now) `when` is, precise enough to tell recent moments apart:
    "just now", "5 minutes ago", "3 hours ago", "yesterday", "32 days ago", "2 months ago",
    "1 year ago" (and "in 3 days", "tomorrow" ahead), in the reader's language.

    Minutes below an hour, hours below a day (both rounded); then whole calendar days in the
    reader's time zone up to 45 days (so two events a day apart never read alike), months (of
    30.44 days, rounded) below a year, then whole years. A `date` (a day without a time) is
    counted in days from the reader's today: "today", "yesterday", "3 days ago"."""
    if isinstance(when, datetime):
        seconds = (_as_utc(when) - _as_utc(now)).total_seconds()
        if abs(seconds) < 60:
            return reader.gettext("just now")
        minutes, hours = round(abs(seconds) / 60), round(abs(seconds) / 3600)
        if minutes < 60:
            return _ago(reader, "minute", minutes, future=seconds > 0)
        if hours < 24:
            return _ago(reader, "hour", hours, future=seconds > 0)
        day = _as_utc(when).astimezone(reader.zone).date()
    else:
        day = when
    today = _as_utc(now).astimezone(reader.zone).date()
    days = (day - today).days
    future = days > 0
    days = abs(days)
    if days == 0:
        return reader.gettext("today")
    if days == 1:
        return reader.gettext("tomorrow") if future else reader.gettext("yesterday")
    if days <= DAYS_SHOWN_AS_DAYS:
        return _ago(reader, "day", days, future=future)
    if days < 365:
        return _ago(reader, "month", max(2, round(days / _MONTH_DAYS)), future=future)
    return _ago(reader, "year", max(1, int(days // _YEAR_DAYS)), future=future)


#: Up to this many days a relative time counts days ("45 days ago"), then months.
DAYS_SHOWN_AS_DAYS = 45
_MONTH_DAYS = 365.25 / 12
_YEAR_DAYS = 365.25

_Unit = Literal["minute", "hour", "day", "month", "year"]


def _ago(reader: Reader, unit: _Unit, n: int, *, future: bool) -> str:
    num = numbers.format_decimal(n, locale=reader.locale)
    # Each phrase whole, so every language orders and inflects it its own way.
    if future:
        match unit:
            case "minute":
                return reader.ngettext("in %(num)s minute", "in %(num)s minutes", n, num=num)
            case "hour":
                return reader.ngettext("in %(num)s hour", "in %(num)s hours", n, num=num)
            case "day":
                return reader.ngettext("in %(num)s day", "in %(num)s days", n, num=num)
            case "month":
                return reader.ngettext("in %(num)s month", "in %(num)s months", n, num=num)
            case "year":
                return reader.ngettext("in %(num)s year", "in %(num)s years", n, num=num)
    match unit:
        case "minute":
            return reader.ngettext("%(num)s minute ago", "%(num)s minutes ago", n, num=num)
        case "hour":
            return reader.ngettext("%(num)s hour ago", "%(num)s hours ago", n, num=num)
        case "day":
            return reader.ngettext("%(num)s day ago", "%(num)s days ago", n, num=num)
        case "month":
            return reader.ngettext("%(num)s month ago", "%(num)s months ago", n, num=num)
        case "year":
            return reader.ngettext("%(num)s year ago", "%(num)s years ago", n, num=num)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _yes_no(value: bool, reader: Reader) -> str:
    return reader.gettext("Yes") if value else reader.gettext("No")


def _text(value: Any, reader: Reader) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _yes_no(value, reader)
    if isinstance(value, list | tuple):
        return ", ".join(_text(v, reader) for v in value if v is not None)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_text(v, reader)}" for k, v in value.items())
    return str(value)


def _format_text(value: Any, currency: str, reader: Reader) -> str | None:
    return _text(value, reader)


def _format_number(value: Any, currency: str, reader: Reader) -> str | None:
    return format_number(value, reader)


def _format_percent(value: Any, currency: str, reader: Reader) -> str | None:
    if not _is_number(value) or not Decimal(value).is_finite():
        return None
    # Models score as a 0-1 fraction; anything above 1 was already scaled to percent upstream.
    fraction = value if -1 <= value <= 1 else value / 100
    return numbers.format_percent(fraction, format="#,##0.#%", locale=reader.locale)


def _format_currency(value: Any, currency: str, reader: Reader) -> str | None:
    return format_money(value, currency, reader)


def _format_date(value: Any, currency: str, reader: Reader) -> str | None:
    if isinstance(value, date):
        return format_date(value, reader)
    # Anything else is no moment: the profile's value was read when the Customer was built.
    return None


def _format_datetime(value: Any, currency: str, reader: Reader) -> str | None:
    if isinstance(value, datetime):
        return format_datetime(value, reader)
    # A day without a time (see bot.aep.xdm.parse_day): shown as the day, no made-up midnight.
    return format_date(value, reader) if isinstance(value, date) else None


def _format_boolean(value: Any, currency: str, reader: Reader) -> str | None:
    return _yes_no(value, reader) if isinstance(value, bool) else None


_FORMATTERS = {
    "text": _format_text,
    "number": _format_number,
    "percent": _format_percent,
    "currency": _format_currency,
    "date": _format_date,
    "datetime": _format_datetime,
    "boolean": _format_boolean,
}
