"""The whole Slack flow against both Real-Time CDP editions of the demo sandbox: Ultimate looks
experience events up, Prime is refused them (Adobe's entities guide) and the cards say so and show
the computed attributes instead; late events update the card in place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import ids
from bot.demo import payloads as slack_payloads
from bot.demo.server import start_server
from bot.demo.simulator import EDITIONS, AepSimulator, Edition
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.identity import IdentityRef
from bot.services import build_services
from bot.settings import Settings
from tests.support import (
    JANE,
    RunningBot,
    all_text,
    button,
    click,
    command,
    settle,
    start_bot,
)

LOADING = "Loading recent activity"
NOT_AVAILABLE = "Recent activity is not available for this organisation"


@pytest.fixture(params=EDITIONS)
async def edition_bot(
    request: pytest.FixtureRequest, slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[tuple[RunningBot, Edition]]:
    """The bot against the sandbox over HTTP, playing each edition in turn."""
    edition: Edition = request.param
    sim = AepSimulator(edition=edition)
    server = await start_server(sim, port=0)
    running, runner = await start_bot(sim, server.url, slack, tmp_path)
    try:
        yield running, edition
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()
        await server.close()


async def final_answer(bot: RunningBot, method: str = "response_url") -> list[RecordedCall]:
    """The calls that carried a card: the first, and its update when it said events were late."""
    [first] = await bot.slack.wait_for(method)
    if LOADING not in all_text(first):
        return [first]
    update = "chat.update" if method == "chat.postMessage" else method
    calls = await bot.slack.wait_for(update, count=2 if update == method else 1)
    return [first, calls[-1]]


async def test_a_command_shows_events_on_ultimate_and_says_why_not_on_prime(
    edition_bot: tuple[RunningBot, Edition],
) -> None:
    bot, edition = edition_bot
    await bot.send(command(bot, JANE))
    calls = await final_answer(bot)
    card = all_text(calls[-1])
    assert "Jane Doe" in card and "Orders (30 days)" in card and "as of " in card
    if edition == "ultimate":
        # Jane's newest events hold an order: listed (views are counted, not listed).
        assert "*Recent events*\\n" in card and "\\n• *Purchase* — " in card
        assert NOT_AVAILABLE not in card
    else:
        assert NOT_AVAILABLE in card and "computed attributes" in card
        assert "More events" not in card
    if len(calls) == 2:
        assert calls[1].payload["replace_original"] is True
    [record] = [r for r in bot.audit() if r["action"] == "lookup"]
    assert record["outcome"] == "shown"


async def test_a_mention_posts_a_card_that_says_what_each_edition_allows(
    edition_bot: tuple[RunningBot, Edition],
) -> None:
    bot, edition = edition_bot
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> who is {JANE}?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        ts="1700000000.000100",
        event_id="EvEdition",
    )
    await bot.send(body)
    calls = await final_answer(bot, "chat.postMessage")
    card = all_text(calls[-1])
    assert "Jane Doe" in card
    assert (NOT_AVAILABLE in card) == (edition == "prime")


async def test_more_events_on_each_edition(edition_bot: tuple[RunningBot, Edition]) -> None:
    bot, edition = edition_bot
    await bot.send(command(bot, JANE))
    calls = await final_answer(bot)
    if edition == "prime":
        # Nothing to list: the card offers no More events button at all.
        assert ids.MORE_EVENTS not in all_text(calls[-1])
        return
    await click(bot, ids.MORE_EVENTS, button(calls[-1], ids.MORE_EVENTS)["value"])
    [opened] = await bot.slack.wait_for("views.open")
    [updated] = await bot.slack.wait_for("views.update")
    assert "Recent events" in all_text(opened)
    assert "newest first" in all_text(updated)


async def test_late_events_come_as_an_update_of_the_private_card(
    edition_bot: tuple[RunningBot, Edition],
) -> None:
    """On a message shortcut's response_url, which Slack lets replace what it posted."""
    bot, edition = edition_bot
    bot.sim.faults.set_latency("events", 400)
    await bot.send(shortcut_on(bot, JANE))
    first, update = await bot.slack.wait_for("response_url", count=2)
    assert LOADING in all_text(first) and "Jane Doe" in all_text(first)
    assert update.payload["replace_original"] is True
    assert LOADING not in all_text(update)
    if edition == "ultimate":
        assert "\\n• *Purchase* — " in all_text(update)
    else:
        assert NOT_AVAILABLE in all_text(update)


async def test_late_events_of_a_posted_card_come_by_chat_update(
    edition_bot: tuple[RunningBot, Edition],
) -> None:
    bot, edition = edition_bot
    bot.sim.faults.set_latency("events", 400)
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> who is {JANE}?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        ts="1700000000.000200",
        event_id="EvLate",
    )
    await bot.send(body)
    [post] = await bot.slack.wait_for("chat.postMessage")
    [update] = await bot.slack.wait_for("chat.update")
    assert LOADING in all_text(post)
    assert update.payload["channel"] == "C0PRIVATE" and update.payload["ts"]
    assert LOADING not in all_text(update)
    assert (NOT_AVAILABLE in all_text(update)) == (edition == "prime")


async def test_events_failing_after_the_card_say_so_in_the_update(
    edition_bot: tuple[RunningBot, Edition],
) -> None:
    bot, edition = edition_bot
    if edition == "prime":
        pytest.skip("Prime refuses events before any server error could happen")
    bot.sim.faults.set_latency("events", 300)
    bot.sim.faults.add("500", endpoint="events", count=2)
    await bot.send(shortcut_on(bot, JANE))
    first, update = await bot.slack.wait_for("response_url", count=2)
    assert LOADING in all_text(first)
    assert "Recent activity could not be read" in all_text(update)
    assert bot.sim.stats["events"] == 2  # one retry, no more


async def test_a_commands_card_waits_for_late_events_and_stays_one_message(
    edition_bot: tuple[RunningBot, Edition],
) -> None:
    """A slash command's response_url cannot replace what it posted: its card waits."""
    bot, edition = edition_bot
    bot.sim.faults.set_latency("events", 400)
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    assert LOADING not in all_text(card) and "Jane Doe" in all_text(card)
    assert (NOT_AVAILABLE in all_text(card)) == (edition == "prime")
    await settle(0.6)
    assert bot.slack.calls_to("response_url") == [card]


def shortcut_on(bot: RunningBot, text: str) -> str:
    """The message shortcut on a message holding `text`, answered on the recording server."""
    return slack_payloads.message_shortcut(
        message_text=text,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )


async def test_the_in_process_sandbox_follows_bot_demo_edition(tmp_path: Path) -> None:
    settings = Settings(bot_demo_edition="prime", bot_audit_file=str(tmp_path / "audit.jsonl"))
    services = build_services(settings)
    try:
        assert services.simulator is not None and services.simulator.edition == "prime"
        customer = await services.lookup.lookup(IdentityRef("email", JANE))
        assert customer.events_status == "off"
        assert any(f.computed and f.as_of for f in customer.fields)
    finally:
        await services.aclose()
