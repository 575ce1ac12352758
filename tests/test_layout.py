"""The card layout file: summary fields, key facts per role and topics are checked at start, and
a mistake names the file's field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.layout import KEY_FACTS_MOST, LayoutError, load_layout

FIELDS = """\
title: [person.name.firstName]
fields:
  - {label: Tier, path: loyalty.tier, class: basic, summary: true}
  - {label: Open tickets, path: _acme.support.openTickets, class: activity, format: number}
  - {label: Lifetime value, path: _acme.scores.lifetimeValue, class: financial, format: currency}
"""


def layout_file(tmp_path: Path, more: str) -> Path:
    path = tmp_path / "card.yml"
    path.write_text(FIELDS + more, "utf-8")
    return path


def problems(tmp_path: Path, more: str) -> str:
    with pytest.raises(LayoutError) as caught:
        load_layout(layout_file(tmp_path, more))
    return str(caught.value)


def test_the_default_layout_names_summary_fields_key_facts_and_topics() -> None:
    layout = load_layout()
    assert [f.path for f in layout.fields if f.summary] == [
        "loyalty.tier",
        "_acme.crm.customerSince",
        "_acme.crm.accountOwner",
        "_acme.crm.vip",
    ]
    assert layout.key_facts_for(["support"]) == (
        "_acme.support.openTickets",
        "_acme.support.lastContact",
        "last_order",
    )
    assert layout.key_facts_for(["sales"])[0] == "_acme.scores.lifetimeValue"
    assert "returns" in [t.name["en"] for t in layout.topics if isinstance(t.name, dict)]


def test_a_viewer_with_several_roles_reads_their_key_facts_joined_once(tmp_path: Path) -> None:
    layout = load_layout(
        layout_file(
            tmp_path,
            "key_facts:\n"
            "  support: [_acme.support.openTickets, last_order]\n"
            "  sales: [_acme.scores.lifetimeValue, _acme.support.openTickets]\n"
            "  default: [last_order]\n",
        )
    )
    assert layout.key_facts_for(["support", "sales"]) == (
        "_acme.support.openTickets",
        "last_order",
        "_acme.scores.lifetimeValue",
    )
    # No role of the viewer has a list (or a shared card, which passes none): the default one.
    assert layout.key_facts_for(["auditor"]) == ("last_order",)
    assert layout.key_facts_for([]) == ("last_order",)


def test_a_key_fact_that_is_no_field_is_named_with_its_role_and_place(tmp_path: Path) -> None:
    message = problems(tmp_path, "key_facts:\n  support: [last_order, _acme.support.tickets]\n")
    assert "key_facts.support.1" in message
    assert "'_acme.support.tickets' is not a path in `fields`" in message
    assert "last_order" in message  # says what else may be named


def test_too_many_or_repeated_key_facts_are_refused(tmp_path: Path) -> None:
    many = ", ".join(["last_order"] * (KEY_FACTS_MOST + 1))
    message = problems(tmp_path, f"key_facts:\n  sales: [{many}]\n")
    assert f"key_facts.sales: at most {KEY_FACTS_MOST} facts" in message
    assert "key_facts.sales: names a fact twice" in message


def test_a_summary_flag_that_is_no_yes_or_no_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "card.yml"
    path.write_text(
        "title: [person.name.firstName]\n"
        "fields:\n  - {label: Tier, path: loyalty.tier, class: basic, summary: perhaps}\n",
        "utf-8",
    )
    with pytest.raises(LayoutError) as caught:
        load_layout(path)
    assert "fields.0.summary" in str(caught.value)


def test_topic_entries_are_checked_and_named(tmp_path: Path) -> None:
    message = problems(tmp_path, "topics:\n  - {name: returns, pages: ['']}\n")
    assert "topics.0.pages" in message
    message = problems(tmp_path, "topics:\n  - {name: returns, page: [refund]}\n")
    assert "topics.0.page" in message
    message = problems(tmp_path, "topics:\n  - {name: returns, pages: [refund], min_events: 0}\n")
    assert "topics.0.min_events" in message
    message = problems(tmp_path, "topics:\n  - {pages: [refund]}\n")
    assert "topics.0.name" in message
    message = problems(tmp_path, "topics:\n  - {name: returns}\n")
    assert "topics.0: a topic needs event_types, pages or products" in message


def test_a_topic_matches_event_types_exactly_and_names_in_any_case(tmp_path: Path) -> None:
    layout = load_layout(
        layout_file(
            tmp_path,
            "topics:\n  - {name: returns, event_types: [acme.returnRequested], "
            "pages: [refund], products: [Gift card]}\n",
        )
    )
    [topic] = layout.topics
    assert topic.matches("acme.returnRequested", None, ())
    assert topic.matches("web.webpagedetails.pageViews", "Returns and REFUNDS", ())
    assert topic.matches("commerce.productViews", None, ("Acme gift card 50",))
    assert not topic.matches("web.webpagedetails.pageViews", "Store locator", ("Headlamp",))
    assert not topic.matches("acme.returnRequested.other", None, ())
