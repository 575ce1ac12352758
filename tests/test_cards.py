"""Tests for bot.cards: every payload is valid Block Kit, within limits, escaped and in words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import jinja2
import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import ids
from bot.blockkit import CardLimitError, check_message, check_view
from bot.cards import (
    CARD_SIZE_BUDGET,
    NOTICE_VALUES,
    CardContext,
    CardRenderer,
    templates_dir,
)
from bot.customer import (
    AudienceMembership,
    Customer,
    CustomerEvent,
    CustomerField,
    CustomerIdentity,
)
from bot.i18n import reader_for
from bot.identity import IdentityRef
from bot.layout import FieldClass, FieldFormat, Topic
from bot.share_metadata import ShareMetadata
from bot.vocabulary import NoticeKind

#: English in UTC: what these tests read.
EN = reader_for("en-US")

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
TOKEN = "tok_3f9a2c"
HOSTILE = "<!channel> *bold* <https://evil.example|click>"
BROADCASTS = ("<!channel>", "<!here>", "<!everyone>", "<@U", "<https://evil", "<!subteam")


# --- building customers ----------------------------------------------------------------------


def field(
    label: str,
    value: Any,
    *,
    cls: FieldClass = "basic",
    fmt: FieldFormat = "text",
    section: str = "Profile",
    currency: str = "USD",
) -> CustomerField:
    return CustomerField(
        label=label,
        path="x." + re.sub(r"\W", "", label or "x"),
        field_class=cls,
        format=fmt,
        section=section,
        currency=currency,
        value=value,
    )


def event(hours_ago: float, title: str, detail: str | None = None, n: int = 0) -> CustomerEvent:
    return CustomerEvent(
        event_id=f"e{n}-{hours_ago}",
        timestamp=NOW - timedelta(hours=hours_ago),
        event_type="commerce.purchases",
        title=title,
        detail=detail,
    )


def audience(name: str, status: str, days_ago: int | None = None) -> AudienceMembership:
    when = NOW - timedelta(days=days_ago) if days_ago is not None else None
    return AudienceMembership(
        audience_id=f"aud-{name}", name=name, status=status, last_qualification_time=when
    )


def rich_customer() -> Customer:
    return Customer(
        profile_id="p-1",
        name="Jane Doe",
        query=IdentityRef("email", "jane.doe@example.com"),
        identities=(
            CustomerIdentity(namespace="ecid", value="41234567890123456789012345678901234567"),
            CustomerIdentity(namespace="email", value="jane.doe@example.com", matched=True),
            CustomerIdentity(namespace="email", value="jd@work.example"),
            CustomerIdentity(namespace="crmid", value="CRM-000123", primary=True),
        ),
        fields=(
            field("Company", "Acme & Sons"),
            field("City", "Amsterdam"),
            field("Customer since", date(2019, 11, 2), fmt="date"),
            field("VIP", True, fmt="boolean"),
            field("Email", "jane.doe@example.com", cls="contact", section="Contact"),
            field("Open tickets", 2, cls="activity", fmt="number", section="Activity"),
            field("Churn risk", 0.82, cls="scores", fmt="percent", section="Scores"),
            field("Upsell propensity", 0.4, cls="scores", fmt="percent", section="Scores"),
            field("Lifetime value", 1234.5, cls="financial", fmt="currency", section="Value"),
        ),
        # Out of order on purpose: the card must show newest first.
        events=(
            event(50, "Page view", "Pricing"),
            event(3, "Purchase", "Running shoes (129.00 USD)"),
            event(0.1, "Email opened", "Spring sale"),
        ),
        audiences=(
            audience("Gold tier", "realized", 3),
            audience("Cart abandoners", "existing"),
            audience("Newsletter", "exited", 40),
        ),
        last_modified_at=NOW - timedelta(days=2),
        fetched_at=NOW - timedelta(minutes=5),
        demo=True,
    )


def hostile_customer() -> Customer:
    return Customer(
        profile_id="p-evil",
        name=HOSTILE,
        query=IdentityRef("email", HOSTILE),
        identities=(
            CustomerIdentity(namespace="email", value=HOSTILE, matched=True),
            CustomerIdentity(namespace=HOSTILE, value="<@U0ADMIN>", primary=True),
        ),
        fields=(
            field(HOSTILE, HOSTILE, section=HOSTILE),
            field("Note", "<!here> & <!everyone> <!subteam^S123>", section="Profile"),
            field("Score", HOSTILE, cls="scores", fmt="percent", section="Scores"),
        ),
        events=(event(1, HOSTILE, HOSTILE),),
        audiences=(audience(HOSTILE, "realized", 1), audience(HOSTILE, HOSTILE)),
        last_modified_at=NOW,
        fetched_at=NOW,
    )


def huge_customer() -> Customer:
    long_value = "x" * 2990 + " & <end>"
    return Customer(
        profile_id="p-huge",
        name="N" * 400,
        query=IdentityRef("email", "a0@example.com"),
        identities=tuple(
            CustomerIdentity(
                namespace=("email", "phone", "ecid", "loyaltyId")[i % 4],
                value=f"identity-{i}-" + "v" * 250,
                matched=i == 37,
                primary=i == 41,
            )
            for i in range(60)
        ),
        fields=tuple(field(f"Field {i}", long_value, section=f"Section {i % 3}") for i in range(40))
        + tuple(field(f"Score {i}", long_value, cls="scores", section="Scores") for i in range(25)),
        events=tuple(event(i, "T" * 500, "D" * 3000, n=i) for i in range(300)),
        more_events=True,
        audiences=tuple(audience(f"Audience {i} " + "a" * 300, "realized", i) for i in range(80))
        + tuple(audience(f"Left {i}", "exited", i) for i in range(12)),
        last_modified_at=NOW - timedelta(days=400),
        fetched_at=NOW,
    )


def sparse_customer() -> Customer:
    return Customer(
        profile_id="p-sparse",
        name=None,
        query=IdentityRef("email", "someone@example.com"),
        fetched_at=NOW,
    )


def redacted_customer() -> Customer:
    """What policy.redact leaves when contact, scores, activity and audiences are withheld."""
    return Customer(
        profile_id="p-2",
        name="Jane Doe",
        query=IdentityRef("crmid", "CRM-000123"),
        identities=(CustomerIdentity(namespace="crmid", value="CRM-000123", matched=True),),
        fields=(field("Company", "Acme"),),
        events_available=False,
        fetched_at=NOW,
    )


def non_latin_customer() -> Customer:
    return Customer(
        profile_id="p-3",
        name="李小龍 Ђорђе محمد " + "名" * 200,
        query=IdentityRef("email", "李@例え.jp"),
        identities=(CustomerIdentity(namespace="email", value="李@例え.jp", matched=True),),
        fields=(field("Город", "Санкт-Петербург"), field("都市", "東京 🗼")),
        events=(event(2, "Покупка", "Кроссовки"),),
        audiences=(audience("ゴールド会員", "realized", 1),),
        fetched_at=NOW,
    )


def ctx(**overrides: Any) -> CardContext:
    values: dict[str, Any] = {"surface": "private", "now": NOW, "token": TOKEN, "reader": EN}
    values.update(overrides)
    return CardContext(**values)


@pytest.fixture(scope="module")
def renderer() -> CardRenderer:
    return CardRenderer()


# --- checking payloads independently of cards.py's own checker -------------------------------


def text_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every text object anywhere in a payload."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def buttons(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in payload["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def all_text(payload: dict[str, Any]) -> str:
    return "\n".join(t["text"] for t in text_objects(payload))


def assert_blocks_valid(blocks: list[dict[str, Any]], most: int) -> None:
    assert 1 <= len(blocks) <= most
    parsed = Block.parse_all(blocks)
    assert None not in parsed, "a block type slack_sdk does not know"
    # to_dict() runs slack_sdk's validation; equality shows nothing we send was unknown to it.
    assert [b.to_dict() for b in parsed] == blocks
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            for item in block.get("fields", []):
                assert 1 <= len(item["text"]) <= 2000
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
            action_ids = [e["action_id"] for e in block["elements"]]
            assert len(action_ids) == len(set(action_ids))
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert len(element["action_id"]) <= 255
                assert len(element.get("value", "")) <= 2000
                assert len(element.get("url", "")) <= 3000
    for text in text_objects(blocks):
        assert 1 <= len(text["text"]) <= 3000


def assert_message_valid(payload: dict[str, Any]) -> None:
    assert set(payload) == {"text", "blocks"}
    assert 1 <= len(payload["text"]) <= 3000
    assert_blocks_valid(payload["blocks"], 50)


def assert_view_valid(view: dict[str, Any]) -> None:
    assert View(**view).to_dict()["type"] == "modal"
    assert len(view["title"]["text"]) <= 24
    for key in ("submit", "close"):
        if key in view:
            assert len(view[key]["text"]) <= 24
    assert len(view.get("private_metadata", "")) <= 3000
    assert_blocks_valid(view["blocks"], 100)


def assert_no_broadcast(payload: dict[str, Any]) -> None:
    dumped = json.dumps(payload, ensure_ascii=False)
    for syntax in BROADCASTS:
        assert syntax not in dumped, f"raw {syntax} in {dumped[:300]}"


# --- the customer card -----------------------------------------------------------------------


def test_rich_private_card_shows_the_whole_picture(renderer: CardRenderer) -> None:
    card = renderer.customer_card(
        rich_customer(), ctx(can_share=True, aep_url="https://experience.adobe.com/#/p-1")
    )
    assert_message_valid(card)
    blocks = card["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Jane Doe"}}
    assert "Demo data" in blocks[1]["elements"][0]["text"]
    assert card["text"] == "Customer profile: Jane Doe (demo data)"

    text = all_text(card)
    # The matched and primary identities are on the card's face, the others at its end.
    identities = section_text(card, "*Identities*")
    assert identities == (
        "*Identities*\n*Email*: jane.doe@example.com _(matched)_\n*CRM ID*: CRM-000123 _(primary)_"
    )
    assert (
        "Other identities: *ECID*: 41234567890123456789012345678901234567 · "
        "*Email*: jd@work.example" in text
    )
    for heading in ("*Profile*", "*Contact*", "*Activity*", "*Value*", "*Scores*"):
        assert heading in text
    assert "*Company*\nAcme &amp; Sons" in text
    assert "*Customer since*\nNov 2, 2019" in text
    assert "*VIP*\nYes" in text
    assert "*Lifetime value*\n$1,234.50" in text
    assert "*Churn risk*\n82%" in text
    assert "*Upsell propensity*\n40%" in text


def test_card_lists_events_newest_first_with_absolute_and_relative_times(
    renderer: CardRenderer,
) -> None:
    card = renderer.customer_card(rich_customer(), ctx())
    events = next(t["text"] for t in text_objects(card) if t["text"].startswith("*Recent events*"))
    lines = [line for line in events.split("\n") if line.startswith("• ")]
    assert [line.split("*")[1] for line in lines] == ["Email opened", "Purchase", "Page view"]
    assert (
        "• *Purchase* — Running shoes (129.00 USD) · Mar 14, 2026, 9:00\u202fAM UTC (3 hours ago)"
        in lines
    )
    assert lines[0].endswith("(6 minutes ago)")
    assert lines[2].endswith("(2 days ago)")


def test_card_shows_members_and_lists_exited_audiences_under_left(renderer: CardRenderer) -> None:
    card = renderer.customer_card(rich_customer(), ctx())
    section = next(t for t in text_objects(card) if t["text"].startswith("*Audiences*"))
    assert section["text"] == (
        "*Audiences*\n"
        "• Gold tier — member (since Mar 11, 2026)\n"
        "• Cart abandoners — member\n"
        "*Left these audiences*\n"
        "• Newsletter (Feb 2, 2026)"
    )


def test_card_says_how_fresh_the_profile_is(renderer: CardRenderer) -> None:
    card = renderer.customer_card(rich_customer(), ctx())
    assert (
        ":clock3: Profile updated Mar 12, 2026, 12:00\u202fPM UTC (2 days ago)"
        " · fetched 5 minutes ago" in all_text(card)
    )


def test_private_card_buttons_all_carry_the_token(renderer: CardRenderer) -> None:
    url = "https://experience.adobe.com/#/p-1"
    card = renderer.customer_card(rich_customer(), ctx(can_share=True, aep_url=url))
    found = buttons(card)
    assert [b["action_id"] for b in found] == [
        ids.REFRESH,
        ids.MORE_EVENTS,
        ids.SHARE,
        ids.OPEN_IN_AEP,
    ]
    assert {b["value"] for b in found} == {TOKEN}
    assert found[-1]["url"] == url
    actions = next(b for b in card["blocks"] if b["type"] == "actions")
    assert actions["block_id"] == ids.CARD_ACTIONS_BLOCK


def test_private_card_hides_share_without_the_right_and_aep_without_a_url(
    renderer: CardRenderer,
) -> None:
    card = renderer.customer_card(rich_customer(), ctx(can_share=False, aep_url=None))
    assert [b["action_id"] for b in buttons(card)] == [ids.REFRESH, ids.MORE_EVENTS]


@pytest.mark.parametrize(
    "url", ["http://insecure.example/p", "javascript:alert(1)", "https://x.example/" + "a" * 3000]
)
def test_card_drops_an_aep_link_it_cannot_send_whole_and_safe(
    renderer: CardRenderer, url: str
) -> None:
    card = renderer.customer_card(rich_customer(), ctx(aep_url=url))
    assert ids.OPEN_IN_AEP not in [b["action_id"] for b in buttons(card)]


def test_shared_card_names_the_sharer_and_reason_and_offers_view_details(
    renderer: CardRenderer,
) -> None:
    card = renderer.customer_card(
        rich_customer(),
        ctx(
            surface="shared",
            can_share=True,
            shared_by="U012ABCDEF",
            share_reason="Ticket 4821 & refund",
            aep_url="https://experience.adobe.com/#/p-1",
        ),
    )
    assert_message_valid(card)
    assert ":busts_in_silhouette: Shared by <@U012ABCDEF>: “Ticket 4821 &amp; refund”" in all_text(
        card
    )
    assert [b["action_id"] for b in buttons(card)] == [
        ids.MORE_EVENTS,
        ids.VIEW_DETAILS,
        ids.OPEN_IN_AEP,
    ]
    assert card["text"] == "Customer profile shared in this channel: Jane Doe (demo data)"


def test_shared_card_without_sharer_or_reason(renderer: CardRenderer) -> None:
    card = renderer.customer_card(rich_customer(), ctx(surface="shared"))
    assert ":busts_in_silhouette: Shared in this channel" in all_text(card)


def test_hostile_values_never_mention_link_or_bold(renderer: CardRenderer) -> None:
    customer = hostile_customer()
    payloads = [
        renderer.customer_card(customer, ctx(can_share=True)),
        renderer.customer_card(
            customer, ctx(surface="shared", shared_by="<!channel>", share_reason=HOSTILE)
        ),
    ]
    for card in payloads:
        assert_message_valid(card)
        assert_no_broadcast(card)
        assert "&lt;!channel&gt;" in card["text"]
        assert "&lt;!channel&gt; *bold* &lt;https://evil.example|click&gt;" in all_text(card)
        # The name sits only in plain text (the header), so its *bold* cannot render bold.
        header = card["blocks"][0]["text"]
        assert header["type"] == "plain_text"
        assert header["text"] == "&lt;!channel&gt; *bold* &lt;https://evil.example|click&gt;"
        assert "&lt;!here&gt; &amp; &lt;!everyone&gt; &lt;!subteam^S123&gt;" in all_text(card)
    # A sharer id that is not a Slack user id is shown as text, not turned into a mention.
    assert "Shared by &lt;!channel&gt;" in all_text(payloads[1])


def test_hostile_values_in_the_events_modal_are_escaped(renderer: CardRenderer) -> None:
    view = renderer.events_modal(hostile_customer(), ctx(max_events=50))
    assert_view_valid(view)
    assert_no_broadcast(view)
    assert "&lt;!channel&gt;" in all_text(view)


def test_escaping_happens_exactly_once(renderer: CardRenderer) -> None:
    card = renderer.customer_card(rich_customer(), ctx())
    dumped = json.dumps(card)
    assert "Acme &amp; Sons" in dumped
    assert "&amp;amp;" not in dumped


def section_text(payload: dict[str, Any], heading: str) -> str:
    return next(t["text"] for t in text_objects(payload) if t["text"].startswith(heading))


def test_huge_customer_stays_within_every_limit(renderer: CardRenderer) -> None:
    card = renderer.customer_card(huge_customer(), ctx(max_events=50, can_share=True))
    assert_message_valid(card)
    assert len(card["blocks"]) <= 50
    # Every cut list says how much it left out: "+N more" where N is what is not shown.
    events = section_text(card, "*Recent events*")
    shown = events.count("\n• ")
    assert 1 <= shown <= 10
    assert f"_+{300 - shown} more, and older ones in Adobe Experience Platform_" in events
    audiences = section_text(card, "*Audiences*")
    members, left = audiences.split("*Left these audiences*")
    assert f"_+{80 - members.count('• ')} more_" in members
    assert f"_+{12 - left.count('• ')} more_" in left
    # Identities the query matched and the primary one are on the card's face; the others are
    # at its end, cut like every list.
    identities = section_text(card, "*Identities*")
    assert identities.count("identity-") == 2
    assert "identity-37-" in identities and "identity-41-" in identities
    others = section_text(card, "Other identities: ")
    assert f"_+{58 - others.count('identity-')} more_" in others
    # Long values end in an ellipsis; the header is cut to 150.
    assert card["blocks"][0]["text"]["text"] == "N" * 149 + "…"
    assert any(t["text"].endswith("x…") for t in text_objects(card))
    # Fields beyond the card's budget are counted, not dropped silently.
    assert re.search(r"\+\d+ more fields not shown here\.", all_text(card))


def test_every_card_stays_under_slacks_total_size_cap(renderer: CardRenderer) -> None:
    # Slack refuses messages with ~13k characters of blocks (msg_blocks_too_long, bolt-js #2509)
    # even under 50 blocks: a worst-case card must still be deliverable.
    for customer in (huge_customer(), rich_customer(), hostile_customer(), non_latin_customer()):
        card = renderer.customer_card(customer, ctx(max_events=50, can_share=True))
        assert len(json.dumps(card["blocks"], ensure_ascii=False)) <= CARD_SIZE_BUDGET


def test_a_card_that_fits_keeps_the_generous_budget(renderer: CardRenderer) -> None:
    # Only oversized cards are shrunk: an ordinary long note keeps 300 characters.
    customer = rich_customer().model_copy(update={"fields": (field("Note", "y" * 1000),)})
    card = renderer.customer_card(customer, ctx())
    note = next(t["text"] for t in text_objects(card) if t["text"].startswith("*Note*"))
    assert note == "*Note*\n" + "y" * 299 + "…"


def test_sparse_customer_gets_a_short_honest_card(renderer: CardRenderer) -> None:
    card = renderer.customer_card(sparse_customer(), ctx(can_share=True))
    assert_message_valid(card)
    assert card["blocks"][0]["text"]["text"] == "Customer"
    text = all_text(card)
    assert "*Recent events*\nNone recorded." in text
    assert "Profile update time unknown · fetched just now" in text
    assert "*Audiences*" not in text and "*Identities*" not in text
    assert [b["action_id"] for b in buttons(card)] == [ids.REFRESH, ids.SHARE]


def test_redacted_customer_says_what_was_withheld_in_words(renderer: CardRenderer) -> None:
    withheld = frozenset({"contact", "scores", "activity", "audiences"})
    shared = renderer.customer_card(redacted_customer(), ctx(surface="shared", withheld=withheld))
    assert_message_valid(shared)
    text = all_text(shared)
    assert (
        ":lock: Contact details, recent events, audience memberships, and scores"
        " are hidden in this channel." in text
    )
    # Withheld events are not reported as missing or unavailable.
    assert "*Recent events*" not in text
    assert ids.MORE_EVENTS not in [b["action_id"] for b in buttons(shared)]

    private = renderer.customer_card(redacted_customer(), ctx(withheld=frozenset({"scores"})))
    assert ":lock: Scores are not shown to you." in all_text(private)


def test_unavailable_events_are_reported(renderer: CardRenderer) -> None:
    card = renderer.customer_card(redacted_customer(), ctx())
    text = all_text(card)
    assert "Recent activity could not be read from Adobe Experience Platform just now." in text
    assert "None recorded" not in text


def test_events_on_their_way_are_said_to_be_loading(renderer: CardRenderer) -> None:
    loading = rich_customer().model_copy(
        update={"events": (), "events_available": False, "events_status": "loading"}
    )
    text = all_text(renderer.customer_card(loading, ctx()))
    assert "Loading recent activity…" in text and "None recorded" not in text


def test_an_organisation_without_events_is_told_and_pointed_to_computed_attributes(
    renderer: CardRenderer,
) -> None:
    computed = CustomerField(
        label="Orders (30 days)",
        path="_acme.SystemComputedAttributes.ordersLast30Days",
        field_class="activity",
        format="number",
        section="Activity",
        value=3,
        computed=True,
        as_of=datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
    )
    off = rich_customer().model_copy(
        update={
            "events": (),
            "events_available": False,
            "events_status": "off",
            "fields": (computed,),
        }
    )
    text = all_text(renderer.customer_card(off, ctx()))
    assert "Recent activity is not available for this organisation" in text
    assert "computed attributes" in text
    assert "*Orders (30 days)*\n3\n_as of Dec 2, 2026, 6:00\u202fAM UTC_" in text
    modal = renderer.events_modal(off, ctx())
    assert "not available for this organisation" in json.dumps(modal)


def test_card_respects_max_events(renderer: CardRenderer) -> None:
    card = renderer.customer_card(rich_customer(), ctx(max_events=1))
    text = all_text(card)
    assert "• *Email opened*" in text and "Purchase" not in text
    assert "_+2 more_" in text


def test_card_with_no_room_for_events_still_counts_them_and_offers_more(
    renderer: CardRenderer,
) -> None:
    card = renderer.customer_card(rich_customer(), ctx(max_events=0))
    assert section_text(card, "*Recent events*") == "*Recent events*\n_+3 more_"
    assert ids.MORE_EVENTS in [b["action_id"] for b in buttons(card)]


def test_non_latin_names_and_values_render_intact(renderer: CardRenderer) -> None:
    card = renderer.customer_card(non_latin_customer(), ctx())
    assert_message_valid(card)
    header = card["blocks"][0]["text"]["text"]
    assert header.startswith("李小龍 Ђорђе محمد 名")
    assert len(header) == 150 and header.endswith("…")
    text = all_text(card)
    assert "*{}*\n{}".format("Город", "Санкт-Петербург") in text
    assert "*都市*\n東京 🗼" in text
    assert "李@例え.jp _(matched)_" in text
    assert "• ゴールド会員 — member" in text


def test_card_context_rejects_a_missing_or_oversized_token() -> None:
    with pytest.raises(ValueError):
        ctx(token="")
    with pytest.raises(ValueError):
        ctx(token="t" * 2001)
    with pytest.raises(ValueError):
        ctx(surface="public")


# --- the events modal ------------------------------------------------------------------------


def test_events_modal_lists_events_newest_first(renderer: CardRenderer) -> None:
    view = renderer.events_modal(rich_customer(), ctx(max_events=50))
    assert_view_valid(view)
    assert view["callback_id"] == ids.EVENTS_MODAL
    assert view["private_metadata"] == TOKEN
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert [s.split("*")[1] for s in sections] == ["Email opened", "Purchase", "Page view"]
    assert (
        sections[1]
        == "*Purchase*\nRunning shoes (129.00 USD)\nMar 14, 2026, 9:00\u202fAM UTC · 3 hours ago"
    )
    assert "3 events, newest first · fetched 5 minutes ago" in all_text(view)


def test_events_modal_with_300_events_stays_within_100_blocks(renderer: CardRenderer) -> None:
    view = renderer.events_modal(huge_customer(), ctx(max_events=500))
    assert_view_valid(view)
    assert len(view["blocks"]) <= 100
    assert "+250 more, and older ones" in all_text(view)
    long_detail = next(b for b in view["blocks"] if b["type"] == "section")["text"]["text"]
    assert "D" * 100 in long_detail and "…" in long_detail


@pytest.mark.parametrize(
    ("customer", "context", "words"),
    [
        (sparse_customer(), ctx(), "No recent events recorded for this customer."),
        (redacted_customer(), ctx(), "Recent activity could not be read"),
        (
            redacted_customer(),
            ctx(withheld=frozenset({"activity"})),
            ":lock: Recent events are hidden from you.",
        ),
    ],
)
def test_events_modal_explains_an_empty_list(
    renderer: CardRenderer, customer: Customer, context: CardContext, words: str
) -> None:
    view = renderer.events_modal(customer, context)
    assert_view_valid(view)
    assert words in all_text(view)


def test_loading_and_failure_modals(renderer: CardRenderer) -> None:
    loading = renderer.loading_modal(reader=EN)
    assert_view_valid(loading)
    assert "Loading" in all_text(loading)
    failed = renderer.modal_from_notice(
        renderer.notice("rate_limited", reader=EN, seconds=30), reader=EN
    )
    assert_view_valid(failed)
    assert "Try again in 30 seconds." in all_text(failed)


# --- the share modal -------------------------------------------------------------------------


def test_share_modal_asks_for_a_reason_and_carries_its_context(renderer: CardRenderer) -> None:
    view = renderer.share_modal(
        reader=EN,
        token=TOKEN,
        channel_id="C0123",
        thread_ts="1710400000.000100",
        response_url="https://hooks.slack.com/actions/T1/1/abc",
        channel_name="support",
        hidden={"financial", "sensitive"},
    )
    assert_view_valid(view)
    assert view["callback_id"] == ids.SHARE_MODAL
    assert view["submit"]["text"] == "Share"
    assert view["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "Post to a thread in #support?",
    }
    assert "Financial details and sensitive details will be hidden" in all_text(view)
    reason = next(b for b in view["blocks"] if b["type"] == "input")
    assert reason["block_id"] == ids.SHARE_REASON_BLOCK
    assert reason["element"]["action_id"] == ids.SHARE_REASON_INPUT
    assert reason["element"]["type"] == "plain_text_input"
    assert reason["element"]["max_length"] == 200
    meta = json.loads(view["private_metadata"])
    assert meta == {
        "token": TOKEN,
        "channel": "C0123",
        "thread_ts": "1710400000.000100",
        "response_url": "https://hooks.slack.com/actions/T1/1/abc",
    }
    assert ShareMetadata.parse(view["private_metadata"]) == ShareMetadata(
        token=TOKEN,
        channel_id="C0123",
        thread_ts="1710400000.000100",
        response_url="https://hooks.slack.com/actions/T1/1/abc",
    )


def test_share_modal_without_thread_and_with_hostile_text(renderer: CardRenderer) -> None:
    view = renderer.share_modal(
        reader=EN,
        token=TOKEN,
        channel_id="C0123",
        thread_ts=None,
        response_url=None,
        channel_name=HOSTILE,
    )
    assert_view_valid(view)
    assert_no_broadcast(view)
    assert view["blocks"][0]["text"]["text"].startswith("Post to #")
    assert "will be hidden" not in all_text(view)


@pytest.mark.parametrize(
    ("kind", "words"), [("im", "this direct message"), ("mpim", "this group direct message")]
)
def test_share_modal_names_a_conversation_without_a_name_by_its_kind(
    renderer: CardRenderer, kind: str, words: str
) -> None:
    view = renderer.share_modal(
        reader=EN,
        token=TOKEN,
        channel_id="D0123",
        thread_ts=None,
        response_url=None,
        channel_kind=kind,
    )
    assert view["blocks"][0]["text"]["text"] == f"Post to {words}?"


def test_share_modal_refuses_metadata_over_3000_characters(renderer: CardRenderer) -> None:
    with pytest.raises(CardLimitError, match="private_metadata"):
        renderer.share_modal(
            reader=EN,
            token=TOKEN,
            channel_id="C0123",
            thread_ts=None,
            response_url="https://hooks.slack.com/" + "a" * 3000,
        )


@pytest.mark.parametrize("text", ["not json", "[]", '{"token": "t"}', '{"channel": "C1"}'])
def test_share_metadata_rejects_what_the_modal_did_not_write(text: str) -> None:
    with pytest.raises(ValueError):
        ShareMetadata.parse(text)


# --- the identity picker ---------------------------------------------------------------------


def test_picker_offers_one_button_per_identity(renderer: CardRenderer) -> None:
    choices = [("email jane@example.com", "t0"), ("phone +31 6 1234 5678", "t1")]
    message = renderer.picker(choices, reader=EN)
    assert_message_valid(message)
    found = buttons(message)
    assert [(b["text"]["text"], b["value"]) for b in found] == choices
    assert [b["action_id"] for b in found] == [
        ids.pick_identity_action(0),
        ids.pick_identity_action(1),
    ]
    assert all(ids.PICK_IDENTITY_ACTION.match(b["action_id"]) for b in found)


def test_picker_escapes_and_cuts_labels_and_long_lists(renderer: CardRenderer) -> None:
    choices = [(HOSTILE + " " + "x" * 100, f"t{i}") for i in range(14)]
    message = renderer.picker(choices, reader=EN)
    assert_message_valid(message)
    assert_no_broadcast(message)
    found = buttons(message)
    assert len(found) == 10
    assert found[0]["text"]["text"].startswith("&lt;!channel&gt;")
    assert found[0]["text"]["text"].endswith("…")
    assert "_Showing 10 of 14 identities found (+4 more)." in all_text(message)


def test_picker_and_note_give_one_count_of_the_identities_found(renderer: CardRenderer) -> None:
    choices = [(f"email p{i}@example.com", f"t{i}") for i in range(20)]
    picker = all_text(renderer.picker(choices[:10], reader=EN, found=20, capped=True))
    note = renderer.notice("more_identities", reader=EN, shown=3, total=20, capped=True)["text"]
    assert "of the first 20 identities found (the message may hold more)" in picker
    assert "of the first 20 identities found (the message may hold more)" in note
    assert "+17" not in note and "+10" not in picker


def test_picker_needs_a_choice(renderer: CardRenderer) -> None:
    with pytest.raises(ValueError):
        renderer.picker([], reader=EN)


# --- notices ---------------------------------------------------------------------------------

SAMPLE_VALUES: dict[str, dict[str, Any]] = {
    "looking_up": {"query": "email jane@example.com"},
    "share_refused": {"reason": "Slack Connect channel: people from other organizations"},
    "dm_sent": {},
    "dm_failed": {"reason": "Slack did not answer in time."},
    "usage": {"usage": "Tell me which customer to look up: `/customer jane@example.com`"},
    "no_identity": {},
    "not_an_identity": {"problem": "crm_id_format", "typed": "crm-1", "suggestion": "CRM-000001"},
    "not_found": {"query": "email jane@example.com"},
    "too_many_identities": {"query": "ecid 4123"},
    "rate_limited": {"seconds": 30},
    "unavailable": {"seconds": 8},
    "server_error": {"status": 503},
    "unreachable": {},
    "sign_in_failed": {},
    "too_large": {},
    "credentials": {},
    "rejected": {"message": "The identity namespace is not valid."},
    "malformed": {},
    "internal_error": {"reference": "req-7f3a"},
    "refused_no_grants": {"how": "Ask to join the #support-agents user group."},
    "refused_channel": {"reason": "This channel is shared with another organisation."},
    "refused_identity": {"reasons": "The email address you typed mixes letters of two alphabets."},
    "expired": {},
    "more_identities": {"shown": 3, "total": 7},
    "share_done": {"channel": "C0123ABC"},
    "share_not_allowed": {},
    "events_not_granted": {},
    "window_failed": {},
    "incomplete_request": {},
    "demo_mode": {},
    "misconfigured": {},
    "slack_busy": {"seconds": 20},
    "post_failed": {"reason": "I am not a member of this channel."},
    "history_gone": {},
}


def test_notice_kinds_are_exactly_the_agreed_set() -> None:
    # The agreed set is bot.vocabulary.NoticeKind, which mypy checks at every call.
    assert set(NOTICE_VALUES) == set(get_args(NoticeKind))
    assert set(SAMPLE_VALUES) == set(NOTICE_VALUES)


@pytest.mark.parametrize("kind", sorted(NOTICE_VALUES))
def test_every_notice_is_a_valid_message_with_and_without_values(
    renderer: CardRenderer, kind: str
) -> None:
    for values in (SAMPLE_VALUES[kind], {}):
        message = renderer.notice(kind, reader=EN, **values)
        assert_message_valid(message)
        assert len(message["blocks"]) == 1
        # The fallback says the same as the block, minus the icon.
        assert message["blocks"][0]["text"]["text"].endswith(message["text"])


@pytest.mark.parametrize("kind", sorted(k for k, v in NOTICE_VALUES.items() if v))
def test_every_notice_escapes_its_values(renderer: CardRenderer, kind: str) -> None:
    message = renderer.notice(kind, reader=EN, **dict.fromkeys(NOTICE_VALUES[kind], HOSTILE))
    assert_message_valid(message)
    assert_no_broadcast(message)
    assert "&lt;!channel&gt;" in message["text"]


@pytest.mark.parametrize(
    ("kind", "values", "words"),
    [
        ("looking_up", {"query": "email a&b@example.com"}, "Looking up email a&amp;b@example.com"),
        ("not_found", {"query": "crmid X"}, "Check the spelling, or try another identity"),
        ("no_identity", {}, "an email address, a phone number"),
        ("too_many_identities", {}, "more than 50 identities"),
        ("too_many_identities", {}, "Ask your data team"),
        ("rate_limited", {"seconds": 1}, "Try again in 1 second."),
        ("rate_limited", {}, "Try again in a few minutes."),
        ("unavailable", {"seconds": 8}, "did not answer within 8 seconds. Try again in a minute"),
        ("server_error", {"status": 503}, "answered with a server error (HTTP 503)"),
        ("unreachable", {}, "could not connect to Adobe Experience Platform"),
        ("sign_in_failed", {}, "Adobe's sign-in service (IMS) did not let the bot in"),
        ("too_large", {}, "answer was too large for the bot to read"),
        ("unavailable", {}, "<https://status.adobe.com|Adobe's status page>"),
        ("credentials", {}, "Nothing is wrong with the customer: please tell your Slack admin"),
        ("rejected", {"message": "Bad namespace"}, "rejected the lookup: Bad namespace."),
        ("rejected", {"message": "Bad namespace."}, "rejected the lookup: Bad namespace. Check"),
        ("internal_error", {"reference": "req-1"}, "give them the reference `req-1`"),
        ("refused_no_grants", {"how": "Join #cs."}, "You don't have access to customer profiles."),
        ("refused_channel", {"reason": "External."}, "can't be shown here. External."),
        ("refused_identity", {"reasons": "It is odd."}, "Not looked up, so that no other"),
        ("refused_identity", {}, "Type it again in plain characters, with a space before"),
        ("expired", {}, "Run `/customer` again for a fresh card."),
        ("more_identities", {"shown": 3, "total": 7}, "Showing 3 of 7 identities found (+4 more)."),
        ("share_done", {"channel": "C0123ABC"}, "Shared in <#C0123ABC>."),
        ("share_not_allowed", {}, "Your role may not share customer cards"),
        ("events_not_granted", {}, "Recent events are not part of what your role may see."),
        ("window_failed", {}, "Click the button again."),
        ("slack_busy", {"seconds": 20}, "Slack is busy right now"),
        ("slack_busy", {"seconds": 20}, "Try again in 20 seconds."),
        ("post_failed", {}, "could not be posted here. Try again in a minute."),
        ("demo_mode", {}, "Demo data"),
    ],
)
def test_notice_wording(
    renderer: CardRenderer, kind: str, values: dict[str, Any], words: str
) -> None:
    assert words in renderer.notice(kind, reader=EN, **values)["blocks"][0]["text"]["text"]


def test_notice_refuses_unknown_kinds_and_values(renderer: CardRenderer) -> None:
    with pytest.raises(ValueError, match="unknown notice kind"):
        renderer.notice("oops", reader=EN)
    with pytest.raises(ValueError, match="takes seconds"):
        renderer.notice("rate_limited", reader=EN, secs=3)


# --- the guards themselves -------------------------------------------------------------------


def test_templates_are_found_next_to_the_package() -> None:
    found = templates_dir()
    assert (found / "customer_card.json.j2").is_file()
    assert (found / "_macros.j2").is_file()


def test_a_template_that_skips_tojson_is_refused(tmp_path: Path) -> None:
    for template in templates_dir().glob("*.j2"):
        (tmp_path / template.name).write_text(template.read_text("utf-8"), "utf-8")
    (tmp_path / "notice.json.j2").write_text(
        '{"text": "{{ values.query }}", "blocks": []}', "utf-8"
    )
    with pytest.raises(jinja2.TemplateError, match="tojson"):
        CardRenderer(templates=tmp_path).notice("looking_up", reader=EN, query="x")


def test_a_template_using_an_undefined_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notice.json.j2").write_text('{"text": {{ nothing | tojson }}}', "utf-8")
    with pytest.raises(jinja2.UndefinedError):
        CardRenderer(templates=tmp_path).notice("expired", reader=EN)


def _message(blocks: list[dict[str, Any]], text: str = "fallback") -> dict[str, Any]:
    return {"text": text, "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_message([_section("x")] * 51), "51 blocks > 50"),
        (_message([_section("x" * 3001)]), "3001 > 3000"),
        (_message([_section("x")], text=""), "text fallback is missing"),
        (_message([_section("x")], text="x" * 3001), "text fallback is 3001"),
        (
            _message([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}]),
            "2001 > 2000",
        ),
        (
            _message([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11}]),
            "1 to 10 fields",
        ),
        (
            _message([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]),
            "plain_text",
        ),
        (_message([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]), "151"),
        (
            _message([{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}]),
            "1 to 10 elements",
        ),
        (
            _message(
                [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "x" * 76},
                                "action_id": "a" * 256,
                                "value": "v" * 2001,
                            }
                        ],
                    }
                ]
            ),
            "76 > 75",
        ),
        (
            _message([{**_section("x"), "block_id": "b"}, {**_section("y"), "block_id": "b"}]),
            "repeated",
        ),
        (_message([{"type": "image"}]), "unexpected block type"),
    ],
)
def test_check_message_catches_each_broken_limit(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(CardLimitError) as caught:
        check_message(payload)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_check_message_reports_every_problem_of_an_oversized_button() -> None:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "ok"},
        "action_id": "a" * 256,
        "value": "v" * 2001,
        "url": "https://x/" + "u" * 3000,
    }
    with pytest.raises(CardLimitError) as caught:
        check_message(_message([{"type": "actions", "elements": [button]}]))
    assert len(caught.value.problems) == 3


def test_check_view_catches_a_long_title_and_too_many_blocks() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "A title well over the limit"},
        "blocks": [_section("x")] * 101,
    }
    with pytest.raises(CardLimitError) as caught:
        check_view(view)
    assert len(caught.value.problems) == 2


# --- why the customer is writing: topics and counted marketing events ------------------------


def view(hours_ago: float, page: str, n: int = 0) -> CustomerEvent:
    return CustomerEvent(
        event_id=f"v{n}-{hours_ago}",
        timestamp=NOW - timedelta(hours=hours_ago),
        event_type="web.webpagedetails.pageViews",
        title="Page view",
        detail=page,
        page=page,
    )


RETURNS = Topic(name={"en": "returns", "nl": "retouren"}, pages=("refund",))
BILLING = Topic(name="billing", pages=("invoice",), event_types=("acme.invoiceDisputed",))


def events_text(card: dict[str, Any]) -> str:
    return section_text(card, "*Recent events*")


def test_views_alone_are_counted_and_a_topic_without_an_order_says_so(
    renderer: CardRenderer,
) -> None:
    customer = rich_customer().model_copy(
        update={"events": tuple(view(h, "Refunds & <returns>", n) for n, h in enumerate((1, 30)))}
    )
    text = events_text(renderer.customer_card(customer, ctx(topics=(RETURNS, BILLING))))
    assert text == (
        "*Recent events*\n"
        ":speech_balloon: Likely about: *returns* — “Refunds &amp; &lt;returns&gt;” viewed 2 times"
        " since Mar 13, 2026\n"
        "2 page views"
    )


def test_a_topic_of_mixed_events_counts_them_and_names_the_last_order(
    renderer: CardRenderer,
) -> None:
    disputed = CustomerEvent(
        event_id="d1",
        timestamp=NOW - timedelta(hours=2),
        event_type="acme.invoiceDisputed",
        title="acme.invoiceDisputed",
    )
    order = CustomerEvent(
        event_id="o1",
        timestamp=NOW - timedelta(days=3),
        event_type="commerce.purchases",
        title="Purchase",
        detail="Boots",
        amount=233.95,
        currency="USD",
        products=("Boots",),
    )
    customer = rich_customer().model_copy(
        update={"events": (disputed, view(5, "Invoice help"), view(6, "Home"), order)}
    )
    text = events_text(renderer.customer_card(customer, ctx(topics=(RETURNS, BILLING))))
    lines = text.split("\n")
    assert lines[1] == (
        ":speech_balloon: Likely about: *billing* — 2 related events since Mar 14, 2026;"
        " last order Mar 11, 2026, $233.95"
    )
    # Service events listed newest first; views counted after them.
    assert [line.split("*")[1] for line in lines if line.startswith("• ")] == [
        "acme.invoiceDisputed",
        "Purchase",
    ]
    assert lines[-1] == "Also: 2 page views"


def test_too_few_matching_events_make_no_topic_line(renderer: CardRenderer) -> None:
    customer = rich_customer().model_copy(update={"events": (view(1, "Refund policy"),)})
    assert "Likely about" not in all_text(renderer.customer_card(customer, ctx(topics=(RETURNS,))))


def test_identities_are_named_by_the_bot_then_by_the_sandbox_then_by_their_code() -> None:
    names = {"crmid": "Customer number", "acmemember": "Acme member number"}
    customer = Customer(
        profile_id="p-4",
        name="Jane Doe",
        query=IdentityRef("crmid", "CRM-000123"),
        identities=(
            CustomerIdentity(namespace="crmid", value="CRM-000123", matched=True),
            CustomerIdentity(namespace="loyaltyid", value="LY1"),
            CustomerIdentity(namespace="acmeMember", value="M-1"),
            CustomerIdentity(namespace="zzz", value="Z-1"),
        ),
        fetched_at=NOW,
    )
    card = CardRenderer(namespace_names=names).customer_card(customer, ctx())
    [identities] = [
        t["text"] for t in text_objects(card["blocks"]) if t["text"].startswith("*Identities*")
    ]
    # The matched one is on the card's face; the others in the "Other identities" line.
    [others] = [
        t["text"] for t in text_objects(card["blocks"]) if t["text"].startswith("Other identities")
    ]
    assert "*CRM ID*: CRM-000123" in identities  # the bot's own (translated) name wins
    assert "*Loyalty ID*: LY1" in others
    assert "*Acme member number*: M-1" in others  # the sandbox's name for its own
    assert "*zzz*: Z-1" in others  # nobody's: the code
    dutch = CardRenderer(namespace_names=names).customer_card(
        customer, ctx(reader=reader_for("nl-NL"))
    )
    assert "*Loyaliteits-ID*: LY1" in all_text(dutch)
