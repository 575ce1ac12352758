"""End to end: signed Slack requests over loopback HTTP to the app in HTTP mode, AEP answered by
the demo sandbox, the Web API and response_url by the recording server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bot import ids
from bot.demo import payloads as slack_payloads
from bot.demo.slack import RecordedCall
from tests.conftest import RunningBot, settle, start_bot

JANE = "jane.doe@example.com"


def all_text(call: RecordedCall) -> str:
    return json.dumps(call.payload, ensure_ascii=False)


def command(bot: RunningBot, text: str, user: str = "U0MANAGER", channel: str = "C0PRIVATE") -> str:
    return slack_payloads.slash_command(
        text=text,
        user_id=user,
        channel_id=channel,
        response_url=bot.slack.response_url(),
        trigger_id="trigger-1",
    )


async def test_command_acks_at_once_then_answers_privately_with_the_card(bot: RunningBot) -> None:
    response = await bot.send(command(bot, JANE))
    assert response.status_code == 200
    ack = response.json()
    assert ack["response_type"] == "ephemeral"
    assert "Looking up" in ack["text"] or "looking up" in ack["text"].lower()

    [card] = await bot.slack.wait_for("response_url")
    assert card.payload["response_type"] == "ephemeral"
    assert "Jane Doe" in all_text(card)
    assert card.payload["text"]  # a plain-text fallback is always present
    assert bot.sim.stats["profile"] == 1
    assert bot.sim.stats["events"] == 1
    [record] = [r for r in bot.audit() if r["action"] == "lookup"]
    assert record["actor"] == "U0MANAGER"
    assert record["outcome"] == "shown"
    assert JANE not in json.dumps(record)


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


async def test_unknown_customer_is_said_in_words(bot: RunningBot) -> None:
    await bot.send(command(bot, "nobody.at.all@example.com"))
    [answer] = await bot.slack.wait_for("response_url")
    assert (
        "no customer" in answer.payload["text"].lower()
        or "not find" in answer.payload["text"].lower()
    )


async def test_graph_too_large_is_explained(bot: RunningBot) -> None:
    await bot.send(command(bot, "big.graph@example.com"))
    [answer] = await bot.slack.wait_for("response_url")
    assert "50" in all_text(answer) or "too many" in answer.payload["text"].lower()


async def test_aep_down_is_explained_not_silent(bot: RunningBot) -> None:
    bot.sim.faults.add("500", endpoint="profile", count=50)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url", timeout=15)
    text = answer.payload["text"].lower()
    assert "adobe experience platform" in text or "try again" in text


async def test_rate_limit_longer_than_the_deadline_is_explained(bot: RunningBot) -> None:
    bot.sim.faults.add("429", endpoint="profile", count=50, retry_after_ms=60_000)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url", timeout=15)
    assert (
        "busy" in answer.payload["text"].lower()
        or "rate" in answer.payload["text"].lower()
        or "60" in answer.payload["text"]
    )


async def test_hostile_profile_renders_literally_and_pings_nobody(bot: RunningBot) -> None:
    await bot.send(command(bot, "hostile@example.com"))
    [card] = await bot.slack.wait_for("response_url")
    raw = all_text(card)
    assert "&lt;!channel&gt;" in raw
    for dangerous in ("<!channel>", "<!here>", "<https://evil.example|click>", "<@U0ADMIN>"):
        assert dangerous not in raw


async def test_bad_signature_is_rejected_with_no_aep_call(bot: RunningBot) -> None:
    response = await bot.send(command(bot, JANE), secret="not-the-secret")
    assert response.status_code == 401
    await settle()
    assert sum(bot.sim.stats.values()) == 0
    assert bot.slack.calls_to("response_url") == []


async def test_stale_timestamp_is_rejected_with_no_aep_call(bot: RunningBot) -> None:
    response = await bot.send(command(bot, JANE), timestamp=int(time.time()) - 600)
    assert response.status_code == 401
    await settle()
    assert sum(bot.sim.stats.values()) == 0


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


async def test_mention_replies_in_the_thread_of_the_mention(bot: RunningBot) -> None:
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> who is {JANE}?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        ts="1700000000.000100",
        thread_ts="1700000000.000001",
        event_id="Ev0001",
    )
    response = await bot.send(body)
    assert response.status_code == 200
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert post.payload["channel"] == "C0PRIVATE"
    assert post.payload["thread_ts"] == "1700000000.000001"
    assert "Jane Doe" in all_text(post)


async def test_mention_outside_a_thread_starts_one_on_the_mention(bot: RunningBot) -> None:
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> {JANE}",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        ts="1700000001.000200",
        event_id="Ev0002",
    )
    await bot.send(body)
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert post.payload["thread_ts"] == "1700000001.000200"


async def test_a_retried_event_is_answered_once(bot: RunningBot) -> None:
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE", event_id="Ev0003"
    )
    first = await bot.send(body)
    # A retry is a new delivery, signed with the time Slack sent it.
    retry = await bot.send(
        body,
        timestamp=int(time.time()) + 1,
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert first.status_code == retry.status_code == 200
    await bot.slack.wait_for("chat.postMessage")
    await settle(0.3)
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert bot.sim.stats["profile"] == 1


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


def button(call: RecordedCall, action_id: str) -> dict[str, Any]:
    for block in call.payload.get("blocks", []):
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action_id:
                return element
    raise AssertionError(f"no {action_id} button in {call.payload}")


async def test_aep_hanging_is_cut_off_by_the_deadline_and_explained(
    sandbox: Any, slack: Any, tmp_path: Any
) -> None:
    sim, aep_url = sandbox
    running, runner = await start_bot(sim, aep_url, slack, tmp_path, bot_lookup_deadline=1.0)
    try:
        sim.faults.add("hang", endpoint="profile", count=5)
        await running.send(command(running, JANE))
        [answer] = await slack.wait_for("response_url", timeout=10)
        assert (
            "did not answer" in answer.payload["text"]
            or "try again" in answer.payload["text"].lower()
        )
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def test_refused_adobe_credentials_are_explained_without_blaming_the_customer(
    sandbox: Any, slack: Any, tmp_path: Any
) -> None:
    sim, aep_url = sandbox
    running, runner = await start_bot(
        sim, aep_url, slack, tmp_path, aep_client_secret="not-the-demo-secret"
    )
    try:
        await running.send(command(running, JANE))
        [answer] = await slack.wait_for("response_url")
        text = answer.payload["text"].lower()
        assert "credentials" in text
        assert "admin" in text or "whoever runs" in text
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def test_a_malformed_aep_answer_is_explained(bot: RunningBot) -> None:
    bot.sim.faults.add("malformed", endpoint="profile", count=5)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url")
    assert "adobe" in answer.payload["text"].lower()


async def test_an_unexpected_failure_still_ends_in_a_message(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.services.lookup, "lookup", broken)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url")
    assert "reference" in answer.payload["text"].lower()


async def test_slack_rate_limits_are_retried_after_retry_after(bot: RunningBot) -> None:
    bot.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    await bot.send(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE", event_id="Ev0429"
        )
    )
    posts = await bot.slack.wait_for("chat.postMessage", count=2, timeout=10)
    assert posts[0].status == 429
    assert posts[1].status == 200
    assert posts[1].at - posts[0].at >= 0.9


async def test_slack_not_describing_the_asker_is_a_refusal_that_says_try_again(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("users.info", error="fatal_error", count=10)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url")
    assert "try again" in answer.payload["text"].lower()
    assert bot.sim.stats["profile"] == 0


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
