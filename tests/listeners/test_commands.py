"""/customer (bot/listeners/commands.py): signed slash commands to the running bot; the ack, the
private answers on the response_url, refusals, and what reaches AEP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from tests.support import (
    JANE,
    RunningBot,
    all_text,
    command,
    notice_text,
    running_bot,
    settle,
)


async def test_command_acks_at_once_then_answers_privately_with_the_card(bot: RunningBot) -> None:
    """One message per answer: the ack shows nothing, the card is the only message (a slash
    command's response_url cannot replace a "Looking up…" said first)."""
    response = await bot.send(command(bot, JANE))
    assert response.status_code == 200
    assert response.text == ""  # an empty ack: Slack shows nothing

    [card] = await bot.slack.wait_for("response_url")
    await settle(0.2)
    assert bot.slack.calls_to("response_url") == [card]
    assert card.payload["response_type"] == "ephemeral"
    assert "Jane Doe" in all_text(card)
    assert card.payload["text"]  # a plain-text fallback is always present
    assert bot.sim.stats["profile"] == 1
    assert bot.sim.stats["events"] == 1
    [record] = [r for r in bot.audit() if r["action"] == "lookup"]
    assert record["actor"] == "U0MANAGER"
    assert record["outcome"] == "shown"
    assert JANE not in json.dumps(record)


async def test_a_slow_answer_says_looking_up_first_so_nobody_waits_in_silence(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_slow_answer_seconds=0) as bot:
        response = await bot.send(command(bot, JANE))
        assert response.text == ""
        looking, card = await bot.slack.wait_for("response_url", count=2)
        assert looking.payload["text"] == notice_text(
            bot, "looking_up", query="Email jane.doe@example.com"
        )
        assert "Jane Doe" in all_text(card)


async def test_several_identities_give_one_card_each_up_to_the_cap(bot: RunningBot) -> None:
    text = f"{JANE} sanne.de.vries@example.nl hanako.yamada@example.jp sparse@example.com"
    response = await bot.send(command(bot, text))
    assert response.status_code == 200
    calls = await bot.slack.wait_for("response_url", count=4)
    names = " ".join(all_text(c) for c in calls)
    assert "Jane Doe" in names
    assert "山田" in names or "Yamada" in names
    assert any("more" in c.payload["text"].lower() for c in calls)


@pytest.mark.parametrize("text", ["", "help"])
async def test_no_text_or_help_gives_usage_in_the_ack(bot: RunningBot, text: str) -> None:
    response = await bot.send(command(bot, text))
    assert response.status_code == 200
    assert "customer" in response.json()["text"].lower()
    await settle()
    assert bot.sim.stats["profile"] == 0
    assert bot.slack.calls_to("response_url") == []


async def test_text_without_identity_gives_usage_and_makes_no_aep_call(bot: RunningBot) -> None:
    response = await bot.send(command(bot, "hello there"))
    assert response.status_code == 200
    assert "email" in response.json()["text"].lower()
    await settle()
    assert sum(bot.sim.stats.values()) == 0


async def test_slack_not_describing_the_asker_is_a_refusal_that_says_try_again(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("users.info", error="fatal_error", count=10)
    response = await bot.send(command(bot, JANE))
    # Known before the ack: the refusal is the acknowledgement itself.
    assert "try again" in response.json()["text"].lower()
    await settle()
    assert bot.slack.calls_to("response_url") == []
    assert bot.sim.stats["profile"] == 0
