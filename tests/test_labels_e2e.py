"""End to end (signed requests, demo sandbox, recording Slack): what a person reads on the card,
the acknowledgement and the picker is written as they would write it: namespaces by name, coded
values as words, days without a made-up time, and events whose ages tell them apart."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot import answers, ids
from bot.demo import payloads as slack_payloads
from bot.demo.dataset import REFERENCE_TIME
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from tests.support import JANE, RunningBot, button, click, command, running_bot

#: The card's clock: two and a half days after the demo dataset's reference time.
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NOW > REFERENCE_TIME
    monkeypatch.setattr(answers, "now", lambda: NOW)


def texts(call: RecordedCall) -> list[str]:
    """Every text a person reads in a message: section texts and fields, context elements."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(call.payload.get("blocks") or call.payload.get("view", {}).get("blocks", []))
    return found


def field_value(call: RecordedCall, label: str) -> str:
    """The value shown under the card field `label`, or beside it in the summary line."""
    for text in texts(call):
        if text.startswith(f"*{label}*\n"):
            return text.split("\n")[1]
        for part in text.split("\n")[0].split(" · "):
            if part.startswith(f"{label}: *") and part.endswith("*"):
                return part[len(label) + 3 : -1]
    raise AssertionError(f"no field {label!r} on the card")


@pytest.fixture
async def slow_bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """A bot that says "Looking up…" before every card (as it does when an answer is slow)."""
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_slow_answer_seconds=0) as running:
        yield running


async def looking_up(bot: RunningBot, text: str) -> tuple[str, RecordedCall]:
    """The "Looking up…" said for /customer `text`, and the answer after it."""
    count = len(bot.slack.calls_to("response_url"))
    await bot.send(command(bot, text))
    calls = await bot.slack.wait_for("response_url", count=count + 2)
    return calls[count].payload["text"], calls[count + 1]


async def test_the_acknowledgement_and_the_card_name_namespaces_not_their_codes(
    slow_bot: RunningBot,
) -> None:
    said, card = await looking_up(slow_bot, "CRM-000123")
    assert "Looking up CRM ID CRM-000123" in said
    assert "crmid" not in said
    # The matched and primary identities on the card's face, the others in one line at its end.
    identities = "\n".join(
        t for t in texts(card) if t.startswith(("*Identities*", "Other identities"))
    )
    assert "*CRM ID*: CRM-000123" in identities
    assert "*Loyalty ID*: LY" in identities
    assert "*ECID*" in identities
    assert "loyaltyid" not in identities
    assert "crmid" not in identities


async def test_coded_values_read_as_words_and_free_text_stays_as_written(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    assert field_value(card, "Loyalty tier") == "Gold"
    assert field_value(card, "Payment status") == "Current"
    assert field_value(card, "Company") == "Doe Outdoor Supplies"
    assert field_value(card, "Account owner") == "Priya Raman"


async def test_a_day_without_a_time_shows_no_made_up_midnight_and_says_its_age(
    bot: RunningBot,
) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    # The profile holds 2025-11-28T00:00:00Z: a day, shown as the day with how long ago.
    assert field_value(card, "Last contact") == "Nov 28, 2025 (11 months ago)"
    assert field_value(card, "Customer since") == "Oct 4, 2025 (1 year ago)"
    # A real moment keeps its time, in the reader's zone, and its age.
    last_purchase = field_value(card, "Last purchase")
    assert re.fullmatch(r"Oct 29, 2026, \d{1,2}:\d{2}\W(AM|PM) \S+ \(5 days ago\)", last_purchase)


async def test_recent_events_have_ages_that_tell_them_apart(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.MORE_EVENTS, button(card, ids.MORE_EVENTS)["value"], user="U0MANAGER")
    [modal] = await bot.slack.wait_for("views.update")
    listed = "\n".join(texts(modal))
    ages = re.findall(r" · ([^·\n]*ago|yesterday|today)$", listed, flags=re.MULTILINE)
    # Three days of October apart, not every one "1 month ago".
    assert ages[:3] == ["3 days ago", "3 days ago", "3 days ago"]
    assert {"3 days ago", "4 days ago", "5 days ago"} <= set(ages)
    assert not any("month" in age for age in ages[:10])


async def test_the_picker_names_each_identity_by_its_namespace(bot: RunningBot) -> None:
    body = slack_payloads.message_shortcut(
        message_text="Is CRM-000123 the same as +31 6 12345678 or loyaltyid:LY65040849?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [picker] = await bot.slack.wait_for("response_url")
    labels = [
        e["text"]["text"]
        for b in picker.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert labels == ["CRM ID: CRM-000123", "Phone: +31612345678", "Loyalty ID: LY65040849"]


async def test_a_failed_lookup_names_the_namespace_in_words(bot: RunningBot) -> None:
    await bot.send(command(bot, "loyaltyid:LY00000000"))
    [answer] = await bot.slack.wait_for("response_url")
    assert "No customer profile found for Loyalty ID LY00000000." in answer.payload["text"]


async def test_the_exited_audiences_heading_says_what_it_lists(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    [audiences] = [t for t in texts(card) if t.startswith("*Audiences*")]
    assert "\n*Left these audiences*\n• Cart abandoners (30 days)" in audiences


async def test_a_japanese_name_is_written_family_name_first(bot: RunningBot) -> None:
    await bot.send(command(bot, "hanako.yamada@example.jp"))
    [card] = await bot.slack.wait_for("response_url")
    header = card.payload["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "山田花子"


async def test_a_custom_namespace_is_named_as_the_sandbox_names_it(slow_bot: RunningBot) -> None:
    bot = slow_bot
    assert await bot.services.namespaces.load()
    assert bot.services.namespaces.names["acmemember"] == "Acme member number"
    said, answer = await looking_up(bot, "acmeMember:M-000001")
    assert "Looking up Acme member number M-000001" in said
    assert "No customer profile found for Acme member number M-000001." in answer.payload["text"]


async def test_without_the_sandboxs_names_the_bot_names_the_standard_ones_and_codes_the_rest(
    slow_bot: RunningBot,
) -> None:
    bot = slow_bot
    bot.sim.faults.add("500", endpoint="namespaces", count=10)
    assert not await bot.services.namespaces.load()
    said, _ = await looking_up(bot, "acmeMember:M-000001")
    assert "Looking up acmeMember M-000001" in said
    said, _ = await looking_up(bot, "loyaltyid:LY00000000")
    assert "Looking up Loyalty ID LY00000000" in said
