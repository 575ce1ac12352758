"""Tests for bot.customer: the layout mapping from parsed AEP data to the Customer a card shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.aep.models import ProfileEntity
from bot.customer import build_customer
from bot.formatting import format_value
from bot.i18n import reader_for
from bot.identity import IdentityRef
from bot.layout import CardLayout, FieldFormat, LayoutField

#: English in UTC: what these tests read.
EN = reader_for("en-US")


def _shown(value: Any, fmt: FieldFormat) -> str:
    layout = CardLayout(
        title=("person.name.firstName",),
        fields=(LayoutField(label="When", path="_acme.when", field_class="activity", format=fmt),),
    )
    customer = build_customer(
        profile=ProfileEntity(entity_id="X1", entity={"_acme": {"when": value}}),
        query=IdentityRef("email", "j@example.com"),
        layout=layout,
        events=None,
        audiences={},
        fetched_at=datetime(2026, 3, 14, tzinfo=UTC),
        demo=False,
    )
    (field,) = customer.fields
    return format_value(field, EN)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-14", "Mar 14, 2026"),
        ("2019-11-02T00:00:00Z", "Nov 2, 2019"),
        ("1773480360000", "Mar 14, 2026"),
        ("soon", "soon"),
        ("14/03/2026", "14/03/2026"),
    ],
)
def test_date_fields_are_read_like_every_aep_timestamp(value: Any, shown: str) -> None:
    assert _shown(value, "date") == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-14T09:26:00Z", "Mar 14, 2026, 9:26\u202fAM UTC"),
        ("2026-03-14T10:26:00+0100", "Mar 14, 2026, 9:26\u202fAM UTC"),
        ("2026-03-14 09:26:00", "Mar 14, 2026, 9:26\u202fAM UTC"),
        # Epoch milliseconds, as a number or as text: both read the same (they used not to).
        (1773480360000, "Mar 14, 2026, 9:26\u202fAM UTC"),
        ("1773480360000", "Mar 14, 2026, 9:26\u202fAM UTC"),
        ("not a time", "not a time"),
    ],
)
def test_datetime_fields_are_read_like_every_aep_timestamp(value: Any, shown: str) -> None:
    assert _shown(value, "datetime") == shown
