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


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # A day with no time, however the source wrote it: the day, never "12:00 AM".
        ("2025-11-28", "Nov 28, 2025"),
        ("2025-11-28T00:00:00Z", "Nov 28, 2025"),
        (1764288000000, "Nov 28, 2025"),
    ],
)
def test_a_datetime_field_holding_a_day_shows_the_day(value: Any, shown: str) -> None:
    assert _shown(value, "datetime") == shown
    assert "AM" not in _shown(value, "datetime")


def _name(first: str, last: str) -> str | None:
    layout = CardLayout(title=("person.name.firstName", "person.name.lastName"))
    customer = build_customer(
        profile=ProfileEntity(
            entity_id="X1", entity={"person": {"name": {"firstName": first, "lastName": last}}}
        ),
        query=IdentityRef("email", "j@example.com"),
        layout=layout,
        events=None,
        audiences={},
        fetched_at=datetime(2026, 3, 14, tzinfo=UTC),
        demo=False,
    )
    return customer.name


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("Jane", "Doe", "Jane Doe"),
        ("Sanne", "de Vries", "Sanne de Vries"),
        # Japanese, Chinese and Korean script: family name first, no space.
        ("花子", "山田", "山田花子"),
        ("はなこ", "やまだ", "やまだはなこ"),
        ("ハナコ", "ヤマダ", "ヤマダハナコ"),
        ("伟", "王", "王伟"),
        ("민준", "김", "김민준"),
        # Latin letters keep the layout's order, whoever writes them.
        ("Hanako", "Yamada", "Hanako Yamada"),
        # Scripts mixed: the parts are not both CJK, so the layout's order.
        ("Hanako", "山田", "Hanako 山田"),
        ("Γιώργος", "Παπαδόπουλος", "Γιώργος Παπαδόπουλος"),
        ("", "山田", "山田"),
    ],
)
def test_a_name_is_written_in_the_order_its_script_writes_it(
    first: str, last: str, name: str
) -> None:
    assert _name(first, last) == name


def test_layout_values_give_a_coded_value_its_words() -> None:
    layout = CardLayout(
        title=("person.name.firstName",),
        fields=(
            LayoutField.model_validate(
                {
                    "label": "Tier",
                    "path": "loyalty.tier",
                    "class": "basic",
                    "values": {"gold": {"en": "Gold", "nl": "Goud"}},
                }
            ),
        ),
    )
    customer = build_customer(
        profile=ProfileEntity(entity_id="X1", entity={"loyalty": {"tier": "GOLD"}}),
        query=IdentityRef("email", "j@example.com"),
        layout=layout,
        events=None,
        audiences={},
        fetched_at=datetime(2026, 3, 14, tzinfo=UTC),
        demo=False,
    )
    (field,) = customer.fields
    assert format_value(field, EN) == "Gold"
    assert format_value(field, reader_for("nl-NL")) == "Goud"


def test_layout_values_with_an_empty_word_stop_the_bot_at_start() -> None:
    with pytest.raises(ValueError, match="gold"):
        LayoutField.model_validate(
            {"label": "Tier", "path": "loyalty.tier", "class": "basic", "values": {"gold": ""}}
        )
