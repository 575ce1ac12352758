"""Tests for bot.aep.xdm and the models built with it: every AEP timestamp, identity, audience
membership and event fact is read once, at the edge, by one rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.aep import sansio
from bot.aep.models import EventPage, ExperienceEvent, ProfileEntity
from bot.aep.xdm import parse_day, parse_timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # ISO 8601 in the spellings Adobe's docs show.
        ("2020-05-25T21:24:39Z", datetime(2020, 5, 25, 21, 24, 39, tzinfo=UTC)),
        ("2022-01-13T11:33:28.211895Z", datetime(2022, 1, 13, 11, 33, 28, 211895, tzinfo=UTC)),
        ("2019-04-15T02:41:50.000+0000", datetime(2019, 4, 15, 2, 41, 50, tzinfo=UTC)),
        ("2026-03-14T10:26:00+01:00", datetime(2026, 3, 14, 9, 26, tzinfo=UTC)),
        ("2021-03-10 10:03:08", datetime(2021, 3, 10, 10, 3, 8, tzinfo=UTC)),
        ("1984-03-07", datetime(1984, 3, 7, tzinfo=UTC)),
        # Epoch numbers are milliseconds ("epoch ms" in the Profile API), as number or text.
        (1700000000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (" 1700000000000 ", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1768899600000.0, datetime(2026, 1, 20, 9, 0, tzinfo=UTC)),
        # Ten digits are still milliseconds: the spec says so even where an example of a
        # request's startTime shows seconds. Read as seconds, these would be 2023-11-14.
        (1700000000, datetime(1970, 1, 20, 16, 13, 20, tzinfo=UTC)),
        ("1700000000", datetime(1970, 1, 20, 16, 13, 20, tzinfo=UTC)),
        (0, EPOCH),
        # Nothing a datetime can hold, or no moment at all.
        (1768899600000000, None),
        (10**400, None),
        ("yesterday", None),
        ("14/03/2026", None),
        ("nan", None),
        (float("inf"), None),
        (True, None),
        (None, None),
        ({"t": 1}, None),
    ],
)
def test_timestamps_are_read_by_the_documented_rule(value: Any, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected


_MILLIS = st.integers(min_value=-(10**13), max_value=253_402_300_799_000)


@given(_MILLIS)
def test_epoch_milliseconds_read_the_same_as_number_and_as_text(millis: int) -> None:
    expected = EPOCH + timedelta(milliseconds=millis)
    assert parse_timestamp(millis) == expected
    assert parse_timestamp(str(millis)) == expected


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_iso_text_reads_back_the_moment_it_names(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    assert parse_timestamp(aware.isoformat()) == aware
    assert parse_timestamp(moment.isoformat()) == aware  # no zone: UTC
    assert parse_timestamp(aware.isoformat().replace("+00:00", "Z")) == aware


@given(st.one_of(st.text(max_size=40), st.floats(), st.integers(), st.booleans(), st.none()))
def test_any_value_gives_an_aware_moment_or_none(value: Any) -> None:
    parsed = parse_timestamp(value)
    assert parsed is None or parsed.tzinfo is not None


def _entry(entity: dict[str, Any]) -> dict[str, Any]:
    return {"X1": {"entityId": "X1", "entity": entity, "lastModifiedAt": "2026-03-14T09:26:53Z"}}


def test_memberships_are_read_once_with_their_times() -> None:
    profile = sansio.parse_profile(
        _entry(
            {
                "segmentMembership": {
                    "ups": {
                        "a1": {"status": "realized", "lastQualificationTime": 1700000000000},
                        "a2": {"xdm:status": "EXITED", "xdm:lastQualificationTime": "2026-04-28"},
                        "a3": "not an object",
                    },
                    "junk": [],
                }
            }
        )
    )
    assert profile is not None
    assert [(m.audience_id, m.status, m.last_qualification_time) for m in profile.memberships] == [
        ("a1", "realized", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("a2", "exited", datetime(2026, 4, 28, tzinfo=UTC)),
    ]
    assert profile.audience_ids == ("a1", "a2")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert [m.current(now) for m in profile.memberships] == [True, False]


def test_a_membership_past_valid_until_is_not_current() -> None:
    # The segmentMembership example of Adobe's Segment Membership Details field group, as the
    # entities API returns it (keys without the xdm: prefix), with one membership still
    # "existing" but past its validUntil.
    profile = sansio.parse_profile(
        _entry(
            {
                "segmentMembership": {
                    "ups": {
                        "3f1c9b2e-5a7d-4e11-9a0b-2c3d4e5f6a7b": {
                            "status": "realized",
                            "lastQualificationTime": "2026-05-02T08:15:30Z",
                        },
                        "8a2d4c6e-1b3f-4d5a-8c7e-9f0a1b2c3d4e": {
                            "status": "existing",
                            "lastQualificationTime": "2026-04-28T22:01:12Z",
                            "version": "3",
                            "validUntil": "2026-06-01T00:00:00Z",
                        },
                    }
                }
            }
        )
    )
    assert profile is not None
    before, after = datetime(2026, 5, 31, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    assert [m.current(before) for m in profile.memberships] == [True, True]
    assert [m.current(after) for m in profile.memberships] == [True, False]
    assert [m.lapsed(after) for m in profile.memberships] == [False, True]
    assert profile.memberships[1].valid_until == after


def test_a_profile_read_back_from_the_cache_keeps_what_was_read() -> None:
    profile = sansio.parse_profile(
        _entry(
            {
                "identities": [{"id": "j@example.com", "namespace": {"code": "email"}}],
                "segmentMembership": {"ups": {"a1": {"status": "existing"}}},
            }
        )
    )
    assert profile is not None
    again = ProfileEntity.model_validate_json(profile.model_dump_json())
    assert again == profile
    assert again.memberships[0].status == "existing"
    assert again.identities[0].namespace == "email"


def test_event_facts_are_read_from_the_xdm_and_the_raw_event_is_not_kept() -> None:
    page = sansio.parse_event_page(
        {
            "children": [
                {
                    "entityId": "e1",
                    "timestamp": "1768899600000",
                    "entity": {
                        "eventType": "commerce.purchases",
                        "productListItems": [{"name": "Boots"}, {"SKU": "SKU-2"}, {}, "x"],
                        "commerce": {"order": {"priceTotal": 89.5, "currencyCode": "EUR"}},
                    },
                },
                {
                    "entityId": "e2",
                    "timestamp": 1768899600000,
                    "entity": {
                        "eventType": "directMarketing.emailOpened",
                        "_experience": {
                            "customerJourneyManagement": {
                                "messageExecution": {"campaignName": "Spring"}
                            }
                        },
                    },
                },
            ]
        }
    )
    purchase, email = page.events
    assert purchase.timestamp == email.timestamp == datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
    assert purchase.products == ("Boots", "SKU-2", "item")
    assert (purchase.price_total, purchase.currency) == (89.5, "EUR")
    assert email.campaign == "Spring"
    assert "entity" not in purchase.model_dump()
    cached = EventPage.model_validate_json(EventPage(events=page.events).model_dump_json())
    assert cached.events == page.events


def test_an_event_total_that_is_no_finite_number_is_left_out() -> None:
    event = ExperienceEvent.model_validate(
        {
            "event_id": "e1",
            "timestamp": EPOCH,
            "entity": {"commerce": {"order": {"priceTotal": True}}, "eventType": 5},
        }
    )
    assert event.price_total is None
    assert event.event_type == "5"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-28", date(2025, 11, 28)),
        # How a source that knows only the day fills a date-time field.
        ("2025-11-28T00:00:00Z", date(2025, 11, 28)),
        ("2025-11-28T00:00:00.000+00:00", date(2025, 11, 28)),
        (1764288000000, date(2025, 11, 28)),
        # Moments someone meant: a time, or midnight in another zone.
        ("2025-11-28T00:00:01Z", None),
        ("2025-11-28T09:30:00Z", None),
        ("2025-11-28T00:00:00+01:00", None),
        ("2025-02-30", None),
        ("soon", None),
        (None, None),
    ],
)
def test_a_day_without_a_time_is_read_as_a_day(value: Any, expected: date | None) -> None:
    assert parse_day(value) == expected
