"""The "Look up customer" message shortcut (bot/listeners/shortcuts.py): one identity answered
privately, several offered in a picker, none said in words."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from bot import ids
from bot.demo import payloads as slack_payloads
from bot.identity import Refusal
from tests.support import (
    JANE,
    RunningBot,
    all_text,
    button,
    click,
    notice_text,
    settle,
    submit_share,
)

MESSAGE_TS = "1714000500.000200"


def shortcut_body(
    bot: RunningBot, text: str, edit: Callable[[dict[str, Any]], object] = lambda p: None
) -> str:
    """The manager's shortcut on a message `text` in C0PRIVATE, its payload changed by `edit`
    (to send what Slack might leave out)."""
    body = slack_payloads.message_shortcut(
        message_text=text,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
        message_ts=MESSAGE_TS,
    )
    payload = json.loads(parse_qs(body)["payload"][0])
    edit(payload)
    return urlencode({"payload": json.dumps(payload)})


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
    await bot.send(
        shortcut_body(bot, f"Is {JANE} the same person as +31 6 12345678 or CRM-000123?")
    )
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
    await bot.send(shortcut_body(bot, "Can someone call the customer back?"))
    [answer] = await bot.slack.wait_for("response_url")
    assert "no" in answer.payload["text"].lower()
    assert sum(bot.sim.stats.values()) == 0


async def test_a_shortcut_slack_sent_without_a_user_is_refused_and_logged_as_a_shortcut(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.common")
    await bot.send(shortcut_body(bot, f"Customer {JANE}", lambda p: p.pop("user")))
    [told] = await bot.slack.wait_for("response_url")
    assert told.payload["text"] == notice_text(bot, "incomplete_request")
    assert "shortcut request without user refused" in caplog.messages
    assert bot.sim.stats["profile"] == 0


@pytest.mark.parametrize(
    ("edit", "thread_ts"),
    [
        (lambda p: p.pop("message_ts"), MESSAGE_TS),  # the message's own ts is enough
        (lambda p: p["message"].pop("ts"), MESSAGE_TS),  # and so is the payload's message_ts
        (lambda p: (p.pop("message_ts"), p["message"].pop("ts")), None),  # neither: no thread
    ],
    ids=["message-ts-only", "message_ts-only", "no-ts"],
)
async def test_share_from_a_shortcut_card_posts_into_the_thread_of_whichever_ts_slack_sent(
    bot: RunningBot, edit: Callable[[dict[str, Any]], object], thread_ts: str | None
) -> None:
    await bot.send(shortcut_body(bot, f"My refund has not arrived! {JANE}", edit))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"], channel="C0PRIVATE")
    [opened] = await bot.slack.wait_for("views.open")
    await submit_share(bot, opened.payload["view"], "U0MANAGER", "refund question")
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert post.payload["channel"] == "C0PRIVATE"
    assert post.payload.get("thread_ts") == thread_ts


async def test_an_identity_too_long_to_look_up_is_refused_privately_under_the_message(
    bot: RunningBot,
) -> None:
    address = "a" * 65 + "@example.com"  # a local part longer than email allows (64)
    await bot.send(shortcut_body(bot, f"Customer {address} asked about her order"))
    [told] = await bot.slack.wait_for("response_url")
    reasons = Refusal("email address", "too_long").words(bot.services.default_reader)
    assert told.payload["text"] == notice_text(bot, "refused_identity", reasons=reasons)
    assert (told.payload["response_type"], told.payload["replace_original"]) == (
        "ephemeral",
        False,
    )
    await settle(0.1)
    assert bot.slack.calls_to("response_url") == [told]
    assert bot.sim.stats["profile"] == 0


async def test_a_message_without_identity_is_said_privately_in_words(bot: RunningBot) -> None:
    await bot.send(shortcut_body(bot, "Can someone call the customer back?", lambda p: None))
    [answer] = await bot.slack.wait_for("response_url")
    assert answer.payload["text"] == notice_text(bot, "no_identity")
    assert answer.payload["response_type"] == "ephemeral"


async def test_several_identities_for_someone_without_grants_is_a_private_refusal_not_a_picker(
    bot: RunningBot,
) -> None:
    body = slack_payloads.message_shortcut(
        message_text=f"Is {JANE} the same person as CRM-000123?",
        user_id="U0NOBODY",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [told] = await bot.slack.wait_for("response_url")
    how = "Ask to be added to @support-team (support), @sales (sales), or @cs-managers (manager)."
    assert told.payload["text"] == notice_text(bot, "refused_no_grants", how=how)
    assert told.payload["response_type"] == "ephemeral"
    assert "blocks" not in told.payload or not any(
        b["type"] == "actions" for b in told.payload["blocks"]
    )
    [record] = bot.audit()
    assert (record["action"], record["outcome"]) == ("refusal", "no_grants:shortcut")


async def test_the_picker_names_a_custom_namespace_as_the_sandbox_names_it(
    bot: RunningBot,
) -> None:
    assert await bot.services.namespaces.load()
    await bot.send(shortcut_body(bot, f"Is {JANE} acmeMember:M-000001?", lambda p: None))
    [picker] = await bot.slack.wait_for("response_url")
    labels = [
        e["text"]["text"]
        for b in picker.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert labels == [f"Email: {JANE}", "Acme member number: M-000001"]


@pytest.mark.parametrize(
    ("found", "note"),
    [
        (14, "Showing 10 of 14 identities found (+4 more)."),
        # The parser stops at 20: the message may hold more than it counted.
        (25, "Showing 10 of the first 20 identities found (the message may hold more)."),
    ],
)
async def test_the_picker_of_a_message_with_many_identities_says_how_many_it_found(
    bot: RunningBot, found: int, note: str
) -> None:
    text = " ".join(f"customer{n}@example.com" for n in range(found))
    await bot.send(shortcut_body(bot, text, lambda p: None))
    [picker] = await bot.slack.wait_for("response_url")
    assert picker.payload["response_type"] == "ephemeral"
    [buttons] = [b["elements"] for b in picker.payload["blocks"] if b["type"] == "actions"]
    assert len(buttons) == 10
    [context] = [b for b in picker.payload["blocks"] if b["type"] == "context"]
    assert context["elements"][0]["text"] == (
        f"_{note} To look up another one, run `/customer` with it._"
    )
