"""Card buttons and the share modal (bot/listeners/actions.py): Refresh, pick, View details,
More events and Share, clicked through signed interactivity payloads."""

from __future__ import annotations

from bot import ids
from bot.demo import payloads as slack_payloads
from tests.support import JANE, RunningBot, button, command


async def test_refresh_bypasses_the_cache_and_replaces_the_card(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await bot.send(command(bot, JANE))
    await bot.slack.wait_for("response_url", count=2)
    assert bot.sim.stats["profile"] == 1  # the second lookup was a cache hit
    refresh = button(card, ids.REFRESH)
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.REFRESH,
            value=refresh["value"],
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        )
    )
    calls = await bot.slack.wait_for("response_url", count=3)
    assert calls[2].payload.get("replace_original") is True
    assert bot.sim.stats["profile"] == 2


async def test_more_events_opens_a_modal_with_the_events(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    more = button(card, ids.MORE_EVENTS)
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.MORE_EVENTS,
            value=more["value"],
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        )
    )
    [opened] = await bot.slack.wait_for("views.open")
    assert opened.payload["view"]["type"] == "modal"  # a loading modal, opened at once
    [updated] = await bot.slack.wait_for("views.update")
    assert updated.payload["view"]["type"] == "modal"
    assert len(updated.payload["view"]["blocks"]) > 5


async def test_an_expired_button_says_so(bot: RunningBot) -> None:
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.REFRESH,
            value="no-such-token",
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        )
    )
    [answer] = await bot.slack.wait_for("response_url")
    assert "expired" in answer.payload["text"].lower() or "again" in answer.payload["text"].lower()


async def test_a_modal_slack_would_not_open_is_said_privately(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    bot.slack.fail_next("views.open", error="expired_trigger_id")
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.MORE_EVENTS,
            value=button(card, ids.MORE_EVENTS)["value"],
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        )
    )
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "click the button again" in calls[-1].payload["text"].lower()
