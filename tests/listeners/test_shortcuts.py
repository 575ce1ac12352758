"""The "Look up customer" message shortcut (bot/listeners/shortcuts.py): one identity answered
privately, several offered in a picker, none said in words."""

from __future__ import annotations

from bot.demo import payloads as slack_payloads
from tests.support import JANE, RunningBot, all_text


async def test_message_shortcut_with_one_identity_answers_privately(bot: RunningBot) -> None:
    body = slack_payloads.message_shortcut(
        message_text=f"Customer {JANE} asked about her order",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    response = await bot.send(body)
    assert response.status_code == 200
    [card] = await bot.slack.wait_for("response_url")
    assert "Jane Doe" in all_text(card)


async def test_message_shortcut_with_several_identities_offers_a_picker(bot: RunningBot) -> None:
    body = slack_payloads.message_shortcut(
        message_text=f"Is {JANE} the same person as +31 6 12345678 or CRM-000123?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [picker] = await bot.slack.wait_for("response_url")
    assert bot.sim.stats["profile"] == 0
    buttons = [e for b in picker.payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert len(buttons) >= 3
    assert all(JANE not in (b.get("value") or "") for b in buttons)  # opaque tokens only

    pick = slack_payloads.block_action(
        action_id=buttons[0]["action_id"],
        value=buttons[0]["value"],
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(pick)
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "Jane Doe" in all_text(calls[1])
    assert calls[1].payload.get("replace_original") is True


async def test_message_shortcut_without_identity_says_so(bot: RunningBot) -> None:
    body = slack_payloads.message_shortcut(
        message_text="Can someone call the customer back?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [answer] = await bot.slack.wait_for("response_url")
    assert "no" in answer.payload["text"].lower()
    assert sum(bot.sim.stats.values()) == 0
