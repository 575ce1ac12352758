"""Issue 16, items 4 and 5, end to end through signed requests: a share lands in the thread of
the message the card answers; every surface leaves one message per answer; Send to my DMs posts
the same redacted card into the person's DM with the bot, audited."""

from __future__ import annotations

import pytest

from bot import ids
from bot.demo import payloads as slack_payloads
from bot.demo.slack import RecordedCall
from tests.support import (
    JANE,
    RunningBot,
    all_text,
    button,
    click,
    click_on,
    command,
    private_card,
    settle,
    submit_share,
)
from tests.test_permissions_e2e import (
    MANAGER,
    SUPPORT,
    action_ids,
    assert_shows_exactly,
    class_values,
    text_of,
)

MESSAGE_TS = "1714000500.000200"
THREAD_TS = "1714000400.000100"


async def shortcut_card(
    bot: RunningBot, *, thread_ts: str | None = None, channel: str = "C0PRIVATE"
) -> RecordedCall:
    """The manager runs the message shortcut on a customer's message (in a thread or not)."""
    body = slack_payloads.message_shortcut(
        message_text=f"My refund still has not arrived! {JANE}",
        user_id="U0MANAGER",
        channel_id=channel,
        response_url=bot.slack.response_url(),
        message_ts=MESSAGE_TS,
        thread_ts=thread_ts,
    )
    response = await bot.send(body)
    assert response.status_code == 200
    assert response.text == ""  # a shortcut's ack shows nothing
    [card] = await bot.slack.wait_for("response_url")
    return card


async def share_from(bot: RunningBot, card: RecordedCall, *, channel: str = "C0PRIVATE") -> None:
    """Click Share on `card` (as Slack sends a click on an ephemeral message, which carries no
    thread) and submit the modal."""
    opened_before = len(bot.slack.calls_to("views.open"))
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"], channel=channel)
    opened = await bot.slack.wait_for("views.open", count=opened_before + 1)
    await submit_share(bot, opened[-1].payload["view"], "U0MANAGER", "refund question")


@pytest.mark.parametrize(
    ("thread_ts", "expected"),
    [
        (None, MESSAGE_TS),  # a message at the top of the channel: its own thread
        (THREAD_TS, THREAD_TS),  # a reply: the thread it is in
    ],
)
async def test_share_from_a_shortcut_card_posts_into_the_source_messages_thread(
    bot: RunningBot, thread_ts: str | None, expected: str
) -> None:
    card = await shortcut_card(bot, thread_ts=thread_ts)
    await share_from(bot, card)
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert post.payload["channel"] == "C0PRIVATE"
    assert post.payload["thread_ts"] == expected
    await bot.slack.wait_for("response_url", count=2)  # "Shared in": the share is audited
    [record] = [r for r in bot.audit() if r["action"] == "share"]
    assert record["outcome"] == "posted"


async def test_a_card_from_a_mention_in_a_thread_shares_into_that_thread(
    bot: RunningBot,
) -> None:
    """A mention answers in its thread; View details there gives the manager a private card
    whose Share posts into the same thread."""
    await bot.send(
        slack_payloads.app_mention(
            text=f"who is {JANE}?",
            user_id="U0AGENT",
            channel_id="C0PRIVATE",
            ts=MESSAGE_TS,
            thread_ts=THREAD_TS,
            event_id="Ev-thread",
        )
    )
    [answer] = await bot.slack.wait_for("chat.postMessage")
    assert answer.payload["thread_ts"] == THREAD_TS
    await click_on(bot, answer, ids.VIEW_DETAILS, user="U0MANAGER")
    [details] = await bot.slack.wait_for("response_url")
    assert ids.SHARE in action_ids(details)
    await share_from(bot, details)
    posts = await bot.slack.wait_for("chat.postMessage", count=2)
    assert posts[1].payload["thread_ts"] == THREAD_TS


async def test_a_share_click_from_another_conversation_than_the_cards_is_refused(
    bot: RunningBot,
) -> None:
    """The token keeps where the card was answered: the same value clicked in another channel
    does not move the share there, and no modal opens."""
    card = await shortcut_card(bot)
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"], channel="C0SUPPORT")
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "cannot be shared here" in calls[1].payload["text"]
    await settle(0.2)
    assert bot.slack.calls_to("views.open") == []
    assert bot.slack.calls_to("chat.postMessage") == []


# --- one message per answer ------------------------------------------------------------------


async def test_a_shortcut_answer_is_one_message(bot: RunningBot) -> None:
    card = await shortcut_card(bot)
    assert "Jane Doe" in all_text(card)
    await settle(0.2)
    later = bot.slack.calls_to("response_url")[1:]
    # Events that came late replace the card in place; nothing else is said.
    assert all(call.payload.get("replace_original") is True for call in later)


async def test_refresh_replaces_the_card_in_place(bot: RunningBot) -> None:
    card = await private_card(bot, "U0MANAGER")
    await click(bot, ids.REFRESH, button(card, ids.REFRESH)["value"])
    calls = await bot.slack.wait_for("response_url", count=2)
    assert calls[1].payload["replace_original"] is True
    assert "Jane Doe" in all_text(calls[1])
    await settle(0.2)
    assert all(
        c.payload.get("replace_original") is True for c in bot.slack.calls_to("response_url")[1:]
    )


async def test_a_pick_replaces_the_picker(bot: RunningBot) -> None:
    body = slack_payloads.message_shortcut(
        message_text=f"{JANE} or CRM-000311?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [picker] = await bot.slack.wait_for("response_url")
    [first, *_] = [
        e
        for b in picker.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if ids.PICK_IDENTITY_ACTION.match(e["action_id"])
    ]
    await click(bot, first["action_id"], first["value"])
    calls = await bot.slack.wait_for("response_url", count=2)
    assert calls[1].payload["replace_original"] is True


async def test_a_mention_answer_is_one_message_updated_in_place(bot: RunningBot) -> None:
    await bot.send(
        slack_payloads.app_mention(
            text=f"who is {JANE}?", user_id="U0MANAGER", channel_id="C0PRIVATE", event_id="Ev-1"
        )
    )
    [post] = await bot.slack.wait_for("chat.postMessage")
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == [post]
    assert bot.slack.calls_to("chat.postEphemeral") == []
    for update in bot.slack.calls_to("chat.update"):
        assert update.payload["ts"] == post.response["ts"]


async def test_the_command_leaves_only_the_card(bot: RunningBot) -> None:
    response = await bot.send(command(bot, JANE))
    assert response.text == ""
    [card] = await bot.slack.wait_for("response_url")
    await settle(0.2)
    assert bot.slack.calls_to("response_url") == [card]
    assert "Looking up" not in all_text(card)


# --- Send to my DMs --------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "classes"), [("U0MANAGER", MANAGER), ("U0AGENT", SUPPORT)])
async def test_send_to_my_dms_posts_the_same_redacted_card_and_is_audited(
    bot: RunningBot, user: str, classes: set[str]
) -> None:
    values = await class_values(bot)
    card = await private_card(bot, user, "C0SUPPORT")
    await click(
        bot, ids.SEND_TO_DM, button(card, ids.SEND_TO_DM)["value"], user=user, channel="C0SUPPORT"
    )
    [opened] = await bot.slack.wait_for("conversations.open")
    assert opened.payload["users"] == user
    [dm] = await bot.slack.wait_for("chat.postMessage")
    assert dm.payload["channel"] == opened.response["channel"]["id"]
    assert_shows_exactly(text_of([dm]), values, classes, where=f"DM of {user}")
    assert_shows_exactly(text_of([card]), values, classes, where=f"private card of {user}")
    # The DM keeps the card: nothing there to share from or send again.
    assert ids.SHARE not in action_ids(dm) and ids.SEND_TO_DM not in action_ids(dm)
    told = await bot.slack.wait_for("response_url", count=2)
    assert "direct messages" in told[1].payload["text"]
    [lookup] = [r for r in bot.audit() if r["action"] == "lookup"]
    [sent] = [r for r in bot.audit() if r["action"] == "send_to_dm"]
    assert sent["outcome"] == "posted"
    assert sent["actor"] == user
    assert sent["shown"] == lookup["shown"] and sent["withheld"] == lookup["withheld"]
    assert JANE not in str(sent)


async def test_send_to_my_dms_with_an_expired_token_sends_nothing(bot: RunningBot) -> None:
    await click(bot, ids.SEND_TO_DM, "no-such-token")
    [told] = await bot.slack.wait_for("response_url")
    assert "expired" in told.payload["text"]
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert [r for r in bot.audit() if r["action"] == "send_to_dm"] == []


async def test_refresh_of_the_card_in_the_dms_offers_no_share_and_no_second_send(
    bot: RunningBot,
) -> None:
    """The DM card was answered outside any conversation: refreshed there, it stays a card to
    keep, with nothing to share from."""
    card = await private_card(bot, "U0MANAGER")
    await click(bot, ids.SEND_TO_DM, button(card, ids.SEND_TO_DM)["value"])
    [dm] = await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)
    await click_on(bot, dm, ids.REFRESH, user="U0MANAGER")
    refreshed = (await bot.slack.wait_for("response_url", count=3))[-1]
    assert refreshed.payload["replace_original"] is True
    assert "Jane Doe" in all_text(refreshed)
    assert ids.SHARE not in action_ids(refreshed)
    assert ids.SEND_TO_DM not in action_ids(refreshed)
