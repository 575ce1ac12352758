"""End to end: the card answers the question each person has. Under the name, one line of the
customer's standing and the key facts of the viewer's role (never an identifier); the activity
says what the customer is likely writing about; and nobody sees a fact, or an amount, their
classes (or the channel's) do not cover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.demo.dataset import load_dataset
from bot.demo.slack import RecordedCall
from bot.formatting import format_money
from tests.support import JANE, REPO, RunningBot, all_text, private_card, running_bot, share

#: Jane's identities in the demo dataset, by namespace code (lower-case).
JANE_IDS = {ns.lower(): value for ns, value in load_dataset().find("email", JANE).identities}  # type: ignore[union-attr]
STANDING = "Loyalty tier: *Gold* · Customer since: "


def first_section(card: RecordedCall) -> dict[str, Any]:
    """The first section block under the card's header (context lines, such as the demo
    marker, are not sections)."""
    blocks = card.payload["blocks"]
    assert blocks[0]["type"] == "header"
    return next(b for b in blocks[1:] if b["type"] == "section")


def fact_labels(section: dict[str, Any]) -> list[str]:
    return [f["text"].split("*")[1] for f in section.get("fields", [])]


def money(bot: RunningBot, amount: float) -> str:
    return format_money(amount, "USD", bot.services.default_reader) or ""


@pytest.mark.parametrize(
    ("user", "facts"),
    [
        ("U0AGENT", ["Open tickets", "Last contact", "Last order"]),
        ("U0SALES", ["Lifetime value", "Churn risk", "Upsell propensity"]),
        ("U0MANAGER", ["Lifetime value", "Churn risk", "Open tickets", "Last order"]),
    ],
)
async def test_first_section_holds_the_summary_and_the_roles_key_facts_and_no_identifier(
    bot: RunningBot, user: str, facts: list[str]
) -> None:
    card = await private_card(bot, user)
    section = first_section(card)
    summary = section["text"]["text"]
    assert summary.startswith(STANDING)
    assert "Account owner: *" in summary and summary.endswith("· *VIP*")
    assert fact_labels(section) == facts
    shown = str(section)
    assert "ECID" not in shown
    for value in JANE_IDS.values():
        assert value not in shown
    # The identities come later: the matched one (and the primary one, to those who may see
    # identifiers); the rest at the card's end.
    identities = next(
        b["text"]["text"]
        for b in card.payload["blocks"]
        if b["type"] == "section" and b["text"]["text"].startswith("*Identities*")
    )
    assert "*Email*: jane.doe@example.com _(matched)_" in identities
    assert JANE_IDS["phone"] not in identities and "ECID" not in identities


async def test_an_agent_sees_why_the_customer_is_likely_writing(bot: RunningBot) -> None:
    card = await private_card(bot, "U0AGENT")
    events = next(
        b["text"]["text"]
        for b in card.payload["blocks"]
        if b["type"] == "section"
        and b.get("text", {}).get("text", "").startswith("*Recent events*")
    )
    lines = events.split("\n")
    # The topic line comes first, then the order, then the views counted rather than listed.
    assert lines[1].startswith(
        ":speech_balloon: Likely about: *returns* — “Returns and refunds” viewed 6 times since "
    )
    assert lines[1].endswith(f", {money(bot, 233.95)}")
    assert "; last order " in lines[1]
    assert lines[2].startswith(
        "• *Purchase* — Waterproof jacket, Insulated bottle, Wool socks (3 pack) "
        f"({money(bot, 233.95)}) · "
    )
    assert lines[3] == "Also: 7 page views and 2 product views"
    assert not any(line.startswith("• *Page view*") for line in lines)


@pytest.mark.parametrize(
    ("user", "hidden"),
    [
        # sales may not see activity: no order, no topic, no order total anywhere on the card
        ("U0SALES", ("Likely about", "Last order", "233.95", "Open tickets")),
        # support may not see financial or scores: no lifetime value or churn risk anywhere
        ("U0AGENT", ("Lifetime value", "22,937", "Churn risk", "82%")),
    ],
)
async def test_a_viewer_without_the_class_never_sees_the_fact_or_the_amount(
    bot: RunningBot, user: str, hidden: tuple[str, ...]
) -> None:
    text = all_text(await private_card(bot, user))
    for value in hidden:
        assert value not in text


def support_layout(tmp_path: Path) -> Path:
    """The default layout without topics, whose support key facts are mostly financial."""
    default = REPO / "bot" / "layouts" / "default.yml"
    layout = default.read_text("utf-8").split("key_facts:")[0] + (
        "key_facts:\n"
        "  support: [_acme.scores.lifetimeValue, _acme.billing.annualSpend, last_order]\n"
    )
    path = tmp_path / "card.yml"
    path.write_text(layout, "utf-8")
    return path


async def test_a_key_fact_the_role_lists_but_may_not_see_is_left_out(
    sandbox: Any, slack: Any, tmp_path: Path
) -> None:
    path = support_layout(tmp_path)
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_card_file=path) as bot:
        card = await private_card(bot, "U0AGENT")
        assert fact_labels(first_section(card)) == ["Last order"]
        text = all_text(card)
        for hidden in ("Lifetime value", "Annual spend", "22,937"):
            assert hidden not in text
        # Without topics in the layout, no "Likely about" line.
        assert "Likely about" not in text


@pytest.mark.parametrize(
    ("channel", "facts"),
    [
        # agent and manager read #escalations: activity yes, scores and financial no
        ("C0PRIVATE", ["Open tickets", "Last order"]),
        # a public channel shows basic details only: the summary, no key facts
        ("C0PUBLIC", []),
    ],
)
async def test_a_shared_cards_key_facts_follow_the_channels_classes(
    bot: RunningBot, channel: str, facts: list[str]
) -> None:
    await share(bot, "U0MANAGER", channel)
    [post] = await bot.slack.wait_for("chat.postMessage")
    section = first_section(post)
    assert section["text"]["text"].startswith(STANDING)
    assert fact_labels(section) == facts
    posted = all_text(post)
    # The sharer's own key facts (a manager's lifetime value and churn risk) do not travel.
    for hidden in ("Lifetime value", "Churn risk", "82%", "22,937"):
        assert hidden not in posted
    if channel == "C0PUBLIC":
        assert "Likely about" not in posted and "233.95" not in posted
