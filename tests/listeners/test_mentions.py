"""@bot mentions (bot/listeners/mentions.py): a channel-safe card posted in the thread, answered
once however often Slack delivers the event, and every failure told privately and audited."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.answers import audience_access
from bot.demo import payloads as slack_payloads
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.identity import USAGE, Refusal
from tests.support import (
    DEFAULT_POLICY,
    JANE,
    RunningBot,
    all_text,
    notice_text,
    running_bot,
    settle,
)


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


async def test_a_mention_whose_lookup_fails_posts_nothing_and_is_audited(bot: RunningBot) -> None:
    await bot.send(
        slack_payloads.app_mention(
            text="<@U0BOT> nobody.at.all@example.com",
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            event_id="Ev0404",
        )
    )
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    assert "no customer" in told.payload["text"].lower()
    assert bot.slack.calls_to("chat.postMessage") == []
    [record] = [r for r in bot.audit() if r["action"] == "lookup"]
    assert (record["surface"], record["outcome"]) == ("mention", "not_found")


async def test_a_mention_posted_by_an_app_is_not_answered(bot: RunningBot) -> None:
    """Another app's or a workflow's message (Slack marks it with `bot_id`) that mentions the
    bot sets off no lookup, even when it carries a user with grants: bots do not talk bots
    into posting customer cards."""
    envelope = json.loads(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE", event_id="Ev-app"
        )
    )
    envelope["event"]["bot_id"] = "B0WORKFLOW"
    response = await bot.send(json.dumps(envelope))
    assert response.status_code == 200
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert bot.slack.calls_to("chat.postEphemeral") == []
    assert bot.sim.stats["profile"] == 0
    assert bot.audit() == []


@pytest.mark.parametrize("missing", ["channel", "ts", "user"])
async def test_a_mention_slack_sent_without_channel_ts_or_user_is_ignored_and_logged(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    """Nowhere to answer, or no one to check the policy for: nothing is said, and the operator
    reads why in the log."""
    caplog.set_level(logging.WARNING, logger="bot.listeners.mentions")
    envelope = json.loads(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}",
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            event_id=f"Ev-no-{missing}",
        )
    )
    del envelope["event"][missing]
    await bot.send(json.dumps(envelope))
    await settle(0.2)
    assert "app_mention event without channel, ts or user ignored" in caplog.messages
    assert bot.slack.calls_to("chat.postMessage") == []
    assert bot.slack.calls_to("chat.postEphemeral") == []
    assert bot.sim.stats["profile"] == 0


@pytest.mark.parametrize(
    "drop",
    [
        lambda envelope: envelope["event"].pop("team"),  # the envelope's team_id is enough
        lambda envelope: envelope.pop("team_id"),  # and so is the event's team
    ],
    ids=["event-without-team", "envelope-without-team_id"],
)
async def test_a_mentions_lookup_is_audited_with_its_workspace_person_and_channel(
    bot: RunningBot, drop: Callable[[dict[str, Any]], object]
) -> None:
    envelope = json.loads(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE", event_id="Ev-t"
        )
    )
    drop(envelope)
    await bot.send(json.dumps(envelope))
    await bot.slack.wait_for("chat.postMessage")
    [record] = [r for r in bot.audit() if r["action"] == "lookup"]
    assert (record["team"], record["actor"], record["channel"], record["surface"]) == (
        slack_payloads.TEAM_ID,
        "U0MANAGER",
        "C0PRIVATE",
        "mention",
    )


# --- what a mention says privately: to the person who wrote it, in the mention's thread -------

THREAD_TS = "1700000000.000001"
TOO_LONG = "a" * 65 + "@example.com"  # a local part longer than email allows (64)
HOW = "Ask to be added to @support-team (support), @sales (sales), or @cs-managers (manager)."


async def mention(
    bot: RunningBot, text: str, user: str = "U0MANAGER", channel: str = "C0PRIVATE"
) -> None:
    await bot.send(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {text}",
            user_id=user,
            channel_id=channel,
            ts="1700000000.000100",
            thread_ts=THREAD_TS,
        )
    )


def assert_told(
    call: RecordedCall, text: str, user: str = "U0MANAGER", channel: str = "C0PRIVATE"
) -> None:
    assert (call.payload["channel"], call.payload["user"], call.payload["thread_ts"]) == (
        channel,
        user,
        THREAD_TS,
    )
    assert call.payload["text"] == text


def refusals(bot: RunningBot) -> list[tuple[str, str, str]]:
    return [
        (r["actor"], r["surface"], r["outcome"]) for r in bot.audit() if r["action"] == "refusal"
    ]


async def test_a_mention_without_identity_is_told_how_to_ask(bot: RunningBot) -> None:
    await mention(bot, "hello there")
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    assert_told(told, notice_text(bot, "usage", usage=USAGE))
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_mention_of_only_refused_identities_says_why_and_audits_each(
    bot: RunningBot,
) -> None:
    await mention(bot, TOO_LONG)
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    reasons = Refusal("email address", "too_long").words(bot.services.default_reader)
    assert_told(told, notice_text(bot, "refused_identity", reasons=reasons))
    await settle(0.2)
    assert bot.slack.calls_to("chat.postEphemeral") == [told]
    assert bot.slack.calls_to("chat.postMessage") == []
    assert refusals(bot) == [("U0MANAGER", "mention", "identity_refused:too_long")]


async def test_a_mention_of_a_refused_and_a_good_identity_says_why_and_posts_the_card(
    bot: RunningBot,
) -> None:
    await mention(bot, f"{TOO_LONG} or {JANE}")
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    reasons = Refusal("email address", "too_long").words(bot.services.default_reader)
    assert_told(told, notice_text(bot, "refused_identity", reasons=reasons))
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert "Jane Doe" in all_text(post)
    assert refusals(bot) == [("U0MANAGER", "mention", "identity_refused:too_long")]


async def test_a_mention_by_someone_without_grants_is_refused_privately(bot: RunningBot) -> None:
    await mention(bot, JANE, user="U0NOBODY")
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    assert_told(told, notice_text(bot, "refused_no_grants", how=HOW), user="U0NOBODY")
    assert refusals(bot) == [("U0NOBODY", "mention", "no_grants:mention")]


async def test_a_mention_in_a_channel_that_may_see_nothing_is_refused_privately(
    bot: RunningBot,
) -> None:
    await mention(bot, JANE, channel="C0CONNECT")
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    channel = await bot.services.directory.channel(slack_payloads.TEAM_ID, "C0CONNECT")
    reason = audience_access(bot.services.policy, channel, bot.services.default_reader).reason
    assert reason and "other organizations" in reason
    assert_told(told, notice_text(bot, "refused_channel", reason=reason), channel="C0CONNECT")
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert bot.sim.stats["profile"] == 0
    assert refusals(bot) == [("U0MANAGER", "mention", "channel_refused")]
    [record] = bot.audit()
    assert record["namespace"] == "Email"


async def test_a_mention_naming_more_identities_than_cards_says_how_many_privately(
    bot: RunningBot,
) -> None:
    await mention(bot, f"{JANE} sanne.de.vries@example.nl hanako.yamada@example.jp x@y.com")
    posts = await bot.slack.wait_for("chat.postMessage", count=3)
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    assert_told(told, notice_text(bot, "more_identities", shown=3, total=4, capped=False))
    assert "Jane Doe" in " ".join(all_text(post) for post in posts)


async def test_a_mention_by_someone_the_channels_readers_share_no_class_with_posts_nothing(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    """Never more than the person who asked may see: a sales person who sees only scores and
    financial data, in a channel whose known readers (support, manager) share none of those
    with them, is refused (the channel's own decision, without them, is not)."""
    policy = tmp_path / "policy.yml"
    policy.write_text(
        DEFAULT_POLICY.read_text().replace(
            "see: [basic, contact, audiences, scores, financial]", "see: [scores, financial]", 1
        )
    )
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_policy_file=policy) as bot:
        await mention(bot, JANE, user="U0SALES", channel="C0PRIVATE")
        [told] = await bot.slack.wait_for("chat.postEphemeral")
        channel = await bot.services.directory.channel(slack_payloads.TEAM_ID, "C0PRIVATE")
        decision = audience_access(bot.services.policy, channel, bot.services.default_reader)
        assert not decision.refused  # the channel alone could see a card
        assert_told(
            told, notice_text(bot, "refused_channel", reason=decision.reason), user="U0SALES"
        )
        await settle(0.2)
        assert bot.slack.calls_to("chat.postMessage") == []
        assert bot.sim.stats["profile"] == 0
        assert refusals(bot) == [("U0SALES", "mention", "channel_refused")]
