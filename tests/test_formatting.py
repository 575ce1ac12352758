"""Tests for bot.formatting: escaping, truncation, field values by format, relative times."""

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
    format_value,
    mrkdwn_clip,
    mrkdwn_escape,
    one_line,
    relative_time,
    truncate,
)
from bot.layout import FIELD_FORMATS, FieldFormat

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
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


def test_one_line_folds_newlines_and_runs_of_space() -> None:
    assert one_line("  Jane\n\n• fake line\tDoe ") == "Jane • fake line Doe"


# --- format_value by format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [("Acme Corp", "Acme Corp"), (["golf", "tennis"], "golf, tennis"), (42, "42"), (True, "Yes")],
)
def test_text_format(value: Any, shown: str) -> None:
    assert format_value(field(value, "text")) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234, "1,234"),
        (1234.5, "1,234.5"),
        (1234.0, "1,234"),
        (3.14159, "3.14"),
        (-9876543, "-9,876,543"),
        (Decimal("1234.50"), "1,234.5"),
    ],
)
def test_number_format(value: Any, shown: str) -> None:
    assert format_value(field(value, "number")) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.82, "82%"), (0.825, "82.5%"), (1, "100%"), (0, "0%"), (82, "82%"), (37.26, "37.3%")],
)
def test_percent_format_reads_fractions_and_already_scaled_values(value: Any, shown: str) -> None:
    assert format_value(field(value, "percent")) == shown


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (1234.5, "USD", "$1,234.50"),
        (1234.5, "EUR", "€1,234.50"),
        (99, "GBP", "£99.00"),
        (1234.5, "CHF", "1,234.50 CHF"),
        (-20, "USD", "-$20.00"),
    ],
)
def test_currency_format(value: Any, currency: str, shown: str) -> None:
    assert format_value(field(value, "currency", currency)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (date(2020, 1, 5), "5 Jan 2020"),
        (datetime(2026, 3, 14, 23, 30, tzinfo=UTC), "14 Mar 2026"),
    ],
)
def test_date_format(value: Any, shown: str) -> None:
    assert format_value(field(value, "date")) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (datetime(2026, 3, 14, 9, 26, tzinfo=UTC), "14 Mar 2026, 09:26 UTC"),
        (datetime(2026, 3, 14, 10, 26, tzinfo=CET), "14 Mar 2026, 09:26 UTC"),
    ],
)
def test_datetime_format(value: Any, shown: str) -> None:
    assert format_value(field(value, "datetime")) == shown


@pytest.mark.parametrize(("value", "shown"), [(True, "Yes"), (False, "No")])
def test_boolean_format(value: bool, shown: str) -> None:
    assert format_value(field(value, "boolean")) == shown


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
    assert format_value(field(value, fmt)) == shown


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


@given(_ANY_VALUE, st.sampled_from(FIELD_FORMATS))
@settings(max_examples=300, deadline=None)
def test_format_value_never_raises(value: Any, fmt: FieldFormat) -> None:
    assert isinstance(format_value(field(value, fmt)), str)


def test_format_date_and_datetime_use_english_months_and_utc() -> None:
    assert format_date(date(2026, 12, 1)) == "1 Dec 2026"
    moment = datetime(2026, 3, 14, 23, 30, tzinfo=UTC) + timedelta(hours=1)
    assert format_datetime(moment) == "15 Mar 2026, 00:30 UTC"
    assert format_datetime(datetime(2026, 3, 14, 9, 5)) == "14 Mar 2026, 09:05 UTC"


# --- relative_time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "words"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 min ago"),
        (timedelta(minutes=5, seconds=30), "5 min ago"),
        (timedelta(minutes=59), "59 min ago"),
        (timedelta(hours=1), "1 h ago"),
        (timedelta(hours=3, minutes=50), "3 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
        (timedelta(hours=24), "yesterday"),
        (timedelta(hours=47), "yesterday"),
        (timedelta(days=2), "2 days ago"),
        (timedelta(days=4), "4 days ago"),
        (timedelta(days=7), "1 week ago"),
        (timedelta(days=21), "3 weeks ago"),
        (timedelta(days=29), "4 weeks ago"),
        (timedelta(days=30), "1 month ago"),
        (timedelta(days=150), "5 months ago"),
        (timedelta(days=364), "12 months ago"),
        (timedelta(days=365), "1 year ago"),
        (timedelta(days=800), "2 years ago"),
    ],
)
def test_relative_time_buckets(ago: timedelta, words: str) -> None:
    assert relative_time(NOW - ago, NOW) == words


@pytest.mark.parametrize(
    ("ahead", "words"),
    [
        (timedelta(seconds=30), "just now"),
        (timedelta(minutes=5), "in 5 min"),
        (timedelta(hours=3), "in 3 h"),
        (timedelta(hours=30), "tomorrow"),
        (timedelta(days=3), "in 3 days"),
        (timedelta(days=14), "in 2 weeks"),
        (timedelta(days=400), "in 1 year"),
    ],
)
def test_relative_time_in_the_future(ahead: timedelta, words: str) -> None:
    assert relative_time(NOW + ahead, NOW) == words


def test_relative_time_compares_across_time_zones_and_reads_naive_times_as_utc() -> None:
    from datetime import timezone

    amsterdam = timezone(timedelta(hours=1))
    assert relative_time(datetime(2026, 3, 14, 12, 0, tzinfo=amsterdam), NOW) == "1 h ago"
    assert relative_time(datetime(2026, 3, 14, 11, 0), NOW) == "1 h ago"
