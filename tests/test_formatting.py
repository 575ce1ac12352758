"""Tests for bot.formatting: escaping, truncation, and field values, dates and relative times in
the reader's locale and time zone (Babel)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.customer import CustomerField
from bot.formatting import (
    format_date,
    format_datetime,
    format_money,
    format_value,
    mrkdwn_clip,
    mrkdwn_escape,
    one_line,
    relative_time,
    slack_date,
    truncate,
    value_words,
)
from bot.i18n import reader_for
from bot.layout import FIELD_FORMATS, FieldFormat

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
#: English in UTC, Dutch in Amsterdam, English in New York.
EN = reader_for("en-US")
NL = reader_for("nl-NL", "Europe/Amsterdam")
NY = reader_for("en-US", "America/New_York")
NBSP = "\u202f"  # CLDR puts a narrow no-break space before AM/PM
CET = timezone(timedelta(hours=1))


def field(value: Any, fmt: FieldFormat = "text", currency: str = "USD") -> CustomerField:
    return CustomerField(
        label="Label",
        path="a.b",
        field_class="basic",
        format=fmt,
        section="Profile",
        currency=currency,
        value=value,
    )


# --- escaping and truncation -------------------------------------------------------------


def test_escape_turns_mentions_and_links_into_literal_text() -> None:
    hostile = "<!channel> <@U123> <https://evil.example|click>"
    assert mrkdwn_escape(hostile) == (
        "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt;"
    )


def test_escape_handles_ampersand_first_so_entities_are_not_double_escaped() -> None:
    assert mrkdwn_escape("AT&T <b>") == "AT&amp;T &lt;b&gt;"
    # Text that already looks like an entity is shown literally, so its & is escaped once.
    assert mrkdwn_escape("&lt;") == "&amp;lt;"


def test_escape_leaves_other_characters_alone() -> None:
    assert mrkdwn_escape('O\'Brien "quoted" *bold* 李') == 'O\'Brien "quoted" *bold* 李'


def test_truncate_keeps_short_text_and_cuts_long_text_with_an_ellipsis() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("exactly10!", 10) == "exactly10!"
    cut = truncate("a" * 50, 10)
    assert cut == "a" * 9 + "…"
    assert len(cut) == 10


def test_truncate_does_not_leave_a_space_before_the_ellipsis() -> None:
    assert truncate("word word word", 6) == "word…"


def test_truncate_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError):
        truncate("x", 0)


def test_mrkdwn_clip_never_cuts_through_an_entity() -> None:
    clipped = mrkdwn_clip("&&&&&&", 8)
    assert clipped == "&amp;…"
    assert len(clipped) <= 8


@given(st.text(max_size=200), st.integers(min_value=1, max_value=120))
@settings(max_examples=200, deadline=None)
def test_mrkdwn_clip_stays_within_its_limit_and_never_leaks_control_characters(
    text: str, limit: int
) -> None:
    clipped = mrkdwn_clip(text, limit)
    assert len(clipped) <= limit
    assert "<" not in clipped and ">" not in clipped
    if len(mrkdwn_escape(text)) <= limit:
        assert clipped == mrkdwn_escape(text)
    else:
        assert clipped.endswith("…")


def test_mrkdwn_clip_cuts_at_the_last_whole_character_that_fits() -> None:
    """What a card shows of a long AEP value: escaped, cut before the piece that would not fit,
    no space left before the ellipsis, and never more than the limit."""
    assert mrkdwn_clip("a<b", 6) == "a&lt;b"
    assert mrkdwn_clip("a<b", 5) == "a…"
    assert mrkdwn_clip("ab<cd", 7) == "ab&lt;…"
    assert mrkdwn_clip("word word word", 6) == "word…"
    assert mrkdwn_clip("abcdef", 4) == "abc…"
    assert mrkdwn_clip("abc", 1) == "…"
    assert mrkdwn_clip("", 0) == ""
    with pytest.raises(ValueError, match=r"^limit must be at least 1$"):
        mrkdwn_clip("abc", 0)


def test_truncate_cuts_to_exactly_its_limit() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abcde", 5) == "abcde"
    assert truncate("abc", 1) == "…"
    with pytest.raises(ValueError, match=r"^limit must be at least 1$"):
        truncate("", 0)


def test_one_line_folds_newlines_and_runs_of_space() -> None:
    assert one_line("  Jane\n\n• fake line\tDoe ") == "Jane • fake line Doe"


# --- format_value by format, in English (en-US) and Dutch (nl-NL) ----------------------------


@pytest.mark.parametrize(
    ("value", "shown", "dutch"),
    [
        ("Acme Corp", "Acme Corp", "Acme Corp"),
        (["golf", "tennis"], "golf, tennis", "golf, tennis"),
        (42, "42", "42"),
        (True, "Yes", "Ja"),
    ],
)
def test_text_format(value: Any, shown: str, dutch: str) -> None:
    assert format_value(field(value, "text"), EN) == shown
    assert format_value(field(value, "text"), NL) == dutch


@pytest.mark.parametrize(
    ("value", "shown", "dutch"),
    [
        (1234, "1,234", "1.234"),
        (1234.5, "1,234.5", "1.234,5"),
        (1234.0, "1,234", "1.234"),
        (3.14159, "3.14", "3,14"),
        (-9876543, "-9,876,543", "-9.876.543"),
        (Decimal("1234.50"), "1,234.5", "1.234,5"),
    ],
)
def test_number_format(value: Any, shown: str, dutch: str) -> None:
    assert format_value(field(value, "number"), EN) == shown
    assert format_value(field(value, "number"), NL) == dutch


@pytest.mark.parametrize(
    ("value", "shown", "dutch"),
    [
        (0.82, "82%", "82%"),
        (0.825, "82.5%", "82,5%"),
        (1, "100%", "100%"),
        (0, "0%", "0%"),
        (82, "82%", "82%"),
        (37.26, "37.3%", "37,3%"),
    ],
)
def test_percent_format_reads_fractions_and_already_scaled_values(
    value: Any, shown: str, dutch: str
) -> None:
    assert format_value(field(value, "percent"), EN) == shown
    assert format_value(field(value, "percent"), NL) == dutch


@pytest.mark.parametrize(
    ("value", "currency", "shown", "dutch"),
    [
        (48213.75, "EUR", "€48,213.75", "€\xa048.213,75"),
        (1234.5, "USD", "$1,234.50", "US$\xa01.234,50"),
        (99, "GBP", "£99.00", "£\xa099,00"),
        (1234.5, "CHF", "CHF1,234.50", "CHF\xa01.234,50"),
        (1234, "JPY", "¥1,234", "JP¥\xa01.234"),
        (-20, "USD", "-$20.00", "US$\xa0-20,00"),
    ],
)
def test_currency_format_follows_the_locale_for_any_iso_code(
    value: Any, currency: str, shown: str, dutch: str
) -> None:
    assert format_value(field(value, "currency", currency), EN) == shown
    assert format_value(field(value, "currency", currency), NL) == dutch


@pytest.mark.parametrize(
    ("value", "shown", "dutch"),
    [
        (date(2020, 1, 5), "Jan 5, 2020", "5 jan 2020"),
        # A date has no time zone: a date-time's day is its UTC day, for every reader.
        (datetime(2026, 3, 14, 23, 30, tzinfo=UTC), "Mar 14, 2026", "14 mrt 2026"),
    ],
)
def test_date_format(value: Any, shown: str, dutch: str) -> None:
    assert format_value(field(value, "date"), EN) == shown
    assert format_value(field(value, "date"), NL) == dutch


@pytest.mark.parametrize(
    ("value", "reader", "shown"),
    [
        (datetime(2026, 3, 14, 9, 26, tzinfo=UTC), EN, f"Mar 14, 2026, 9:26{NBSP}AM UTC"),
        (datetime(2026, 3, 14, 10, 26, tzinfo=CET), EN, f"Mar 14, 2026, 9:26{NBSP}AM UTC"),
        (datetime(2026, 3, 14, 9, 26, tzinfo=UTC), NL, "14 mrt 2026, 10:26 CET"),
        (datetime(2026, 7, 14, 9, 26, tzinfo=UTC), NL, "14 jul 2026, 11:26 CEST"),
        (datetime(2026, 3, 14, 9, 26, tzinfo=UTC), NY, f"Mar 14, 2026, 5:26{NBSP}AM EDT"),
        # The day is the reader's day: 01:30 UTC is still the 13th in New York.
        (datetime(2026, 3, 14, 1, 30, tzinfo=UTC), NY, f"Mar 13, 2026, 9:30{NBSP}PM EDT"),
    ],
)
def test_datetime_format_is_in_the_readers_zone(value: Any, reader: Any, shown: str) -> None:
    assert format_value(field(value, "datetime"), reader) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("gold", "Gold"),
        ("overdue", "Overdue"),
        ("female", "Female"),
        ("not_specified", "Not specified"),
        ("non-specific", "Non-specific"),
        # Free text is never changed: names, companies, anything with a capital, digit or space.
        ("Priya Raman", "Priya Raman"),
        ("Doe Outdoor Supplies", "Doe Outdoor Supplies"),
        ("de Vries", "de Vries"),
        ("iPhone", "iPhone"),
        ("en-US", "en-US"),
        ("a1", "a1"),
        ("jane@example.com", "jane@example.com"),
        ("山田", "山田"),
    ],
)
def test_a_lower_case_code_reads_as_a_word_and_free_text_as_written(value: str, shown: str) -> None:
    assert format_value(field(value), EN) == shown
    assert format_value(field(value), NL) == shown


def test_the_layouts_words_for_a_value_win_in_the_readers_language() -> None:
    values: dict[str, Any] = {"current": {"en": "Current", "nl": "Op tijd"}, "failed": "Failed!"}
    assert value_words("current", values, EN) == "Current"
    assert value_words("Current", values, NL) == "Op tijd"
    assert value_words("failed", values, NL) == "Failed!"
    assert value_words("overdue", values, NL) == "Overdue"
    assert value_words(3, values, EN) is None


def test_money_is_one_format_with_its_currency_on_fields_and_events() -> None:
    # The card's currency fields and a purchase's total both come from format_money.
    assert format_value(field(233.95, "currency", "USD"), EN) == "$233.95"
    assert format_money(233.95, "USD", EN) == "$233.95"
    assert format_value(field(233.95, "currency", "EUR"), NL) == "€\xa0233,95"
    assert format_money(233.95, "EUR", NL) == "€\xa0233,95"
    assert format_money(233.95, "JPY", EN) == "¥234"


def test_a_date_time_field_holding_a_day_shows_the_day_without_a_made_up_time() -> None:
    # The profile gave "2025-11-28" (or midnight UTC) for a date-time field: no 00:00, and no
    # shift into New York's evening of the 27th.
    assert format_value(field(date(2025, 11, 28), "datetime"), NY) == "Nov 28, 2025"
    assert format_value(field(date(2025, 11, 28), "datetime"), NL) == "28 nov 2025"


@pytest.mark.parametrize(("value", "shown", "dutch"), [(True, "Yes", "Ja"), (False, "No", "Nee")])
def test_boolean_format(value: bool, shown: str, dutch: str) -> None:
    assert format_value(field(value, "boolean"), EN) == shown
    assert format_value(field(value, "boolean"), NL) == dutch


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        ("about 1200", "number", "about 1200"),
        ("high", "percent", "high"),
        (True, "currency", "Yes"),
        ("soon", "date", "soon"),
        ("14/03/2026", "date", "14/03/2026"),
        ("not a time", "datetime", "not a time"),
        ("yes", "boolean", "yes"),
        (float("nan"), "number", "nan"),
        (float("inf"), "currency", "inf"),
        ({"tier": "gold"}, "number", "tier: gold"),
    ],
)
def test_values_of_the_wrong_type_fall_back_to_their_text(
    value: Any, fmt: FieldFormat, shown: str
) -> None:
    assert format_value(field(value, fmt), EN) == shown


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.datetimes(),
    st.dates(),
)


@given(_ANY_VALUE, st.sampled_from(FIELD_FORMATS), st.sampled_from([EN, NL, NY]))
@settings(max_examples=300, deadline=None)
def test_format_value_never_raises(value: Any, fmt: FieldFormat, reader: Any) -> None:
    assert isinstance(format_value(field(value, fmt), reader), str)


def test_format_date_and_datetime_read_naive_times_as_utc() -> None:
    assert format_date(date(2026, 12, 1), EN) == "Dec 1, 2026"
    assert format_date(date(2026, 12, 1), NL) == "1 dec 2026"
    assert format_datetime(datetime(2026, 3, 14, 9, 5), EN) == f"Mar 14, 2026, 9:05{NBSP}AM UTC"


def test_a_slack_date_token_carries_the_moment_and_a_utc_fallback_in_the_readers_words() -> None:
    moment = datetime(2026, 3, 14, 10, 26, tzinfo=CET)
    assert slack_date(moment, NL) == (
        "<!date^1773480360^{date_short_pretty} {time}|14 mrt 2026, 09:26 UTC>"
    )
    assert slack_date(moment, NY).startswith("<!date^1773480360^{date_short_pretty} {time}|Mar 14")
    assert slack_date(moment, NY).endswith("AM UTC>")


# --- relative_time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "words", "dutch"),
    [
        (timedelta(seconds=0), "just now", "zojuist"),
        (timedelta(seconds=59), "just now", "zojuist"),
        (timedelta(minutes=1), "1 minute ago", "1 minuut geleden"),
        (timedelta(minutes=59), "59 minutes ago", "59 minuten geleden"),
        (timedelta(minutes=59, seconds=40), "1 hour ago", "1 uur geleden"),
        (timedelta(hours=1), "1 hour ago", "1 uur geleden"),
        (timedelta(hours=3, minutes=50), "4 hours ago", "4 uur geleden"),
        (timedelta(hours=23), "23 hours ago", "23 uur geleden"),
        # Past a day: calendar days in the reader's zone (NOW is noon in both zones' day).
        (timedelta(hours=24), "yesterday", "gisteren"),
        (timedelta(hours=36), "yesterday", "gisteren"),
        (timedelta(days=2), "2 days ago", "2 dagen geleden"),
        (timedelta(days=21), "21 days ago", "21 dagen geleden"),
        (timedelta(days=32), "32 days ago", "32 dagen geleden"),
        # Days up to 45, so a month of events never all read "1 month ago".
        (timedelta(days=45), "45 days ago", "45 dagen geleden"),
        (timedelta(days=46), "2 months ago", "2 maanden geleden"),
        (timedelta(days=150), "5 months ago", "5 maanden geleden"),
        (timedelta(days=364), "12 months ago", "12 maanden geleden"),
        (timedelta(days=365), "1 year ago", "1 jaar geleden"),
        (timedelta(days=730), "1 year ago", "1 jaar geleden"),
        (timedelta(days=731), "2 years ago", "2 jaar geleden"),
    ],
)
def test_relative_time_buckets(ago: timedelta, words: str, dutch: str) -> None:
    assert relative_time(NOW - ago, NOW, EN) == words
    assert relative_time(NOW - ago, NOW, NL) == dutch


def test_relative_times_tell_apart_events_a_day_apart_a_month_ago() -> None:
    said = {relative_time(NOW - timedelta(days=d), NOW, EN) for d in range(11, 32)}
    assert len(said) == 21


def test_yesterday_is_the_readers_calendar_day_not_24_hours() -> None:
    tokyo = reader_for("en-US", "Asia/Tokyo")
    now = datetime(2026, 3, 14, 16, 0, tzinfo=UTC)  # 01:00 on the 15th in Tokyo
    assert relative_time(datetime(2026, 3, 14, 14, 0, tzinfo=UTC), now, tokyo) == "2 hours ago"
    # 23:00 on the 13th in Tokyo: two calendar days back there, one in UTC.
    before = datetime(2026, 3, 13, 14, 0, tzinfo=UTC)
    assert relative_time(before, now, tokyo) == "2 days ago"
    assert relative_time(before, now, EN) == "yesterday"


@pytest.mark.parametrize(
    ("day", "words", "dutch"),
    [
        (date(2026, 3, 14), "today", "vandaag"),
        (date(2026, 3, 13), "yesterday", "gisteren"),
        (date(2026, 3, 15), "tomorrow", "morgen"),
        (date(2026, 2, 10), "32 days ago", "32 dagen geleden"),
        (date(2025, 3, 14), "1 year ago", "1 jaar geleden"),
    ],
)
def test_a_day_without_a_time_counts_whole_days(day: date, words: str, dutch: str) -> None:
    assert relative_time(day, NOW, EN) == words
    assert relative_time(day, NOW, NL) == dutch


@pytest.mark.parametrize(
    ("ahead", "words"),
    [
        (timedelta(seconds=30), "just now"),
        (timedelta(minutes=5), "in 5 minutes"),
        (timedelta(hours=3), "in 3 hours"),
        (timedelta(days=3), "in 3 days"),
        (timedelta(days=14), "in 14 days"),
        (timedelta(days=90), "in 3 months"),
        (timedelta(days=400), "in 1 year"),
    ],
)
def test_relative_time_in_the_future(ahead: timedelta, words: str) -> None:
    assert relative_time(NOW + ahead, NOW, EN) == words


def test_relative_time_compares_across_time_zones_and_reads_naive_times_as_utc() -> None:
    amsterdam = timezone(timedelta(hours=1))
    assert relative_time(datetime(2026, 3, 14, 12, 0, tzinfo=amsterdam), NOW, EN) == "1 hour ago"
    assert relative_time(datetime(2026, 3, 14, 11, 0), NOW, EN) == "1 hour ago"
