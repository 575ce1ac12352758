"""Slack rate limits and failing replies never mean silence (issue 8, items 2 and 6).

End to end: signed requests to the app in HTTP mode, the Web API and response_url answered by the
recording server made to answer 429 with a Retry-After, to fail, or to hang. The lookup deadline
is short (DEADLINE), and every answer is awaited for at most that long: a bot that slept Slack's
Retry-After, or waited on a hanging Slack, would blow it.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.demo import payloads as slack_payloads
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RESPONSE_URL_METHOD, RecordedCall, SlackRecorder
from bot.slack_web import MAX_RETRY_AFTER, REPLY_FLOOR, RateLimits, retry_after
from tests.support import RunningBot, running_bot, settle

DEADLINE = 2.0
JANE = "jane.doe@example.com"
BUSY = "slack is busy"


@pytest.fixture
async def bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The whole bot with a short lookup deadline."""
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_lookup_deadline=DEADLINE) as running:
        yield running


def command(bot: RunningBot, text: str = JANE, user: str = "U0MANAGER", url: str = "") -> str:
    return slack_payloads.slash_command(
        text=text,
        user_id=user,
        channel_id="C0PRIVATE",
        response_url=url or bot.slack.response_url(),
    )


def mention(text: str, event_id: str, user: str = "U0MANAGER") -> str:
    return slack_payloads.app_mention(
        text=f"<@U0BOT> {text}", user_id=user, channel_id="C0PRIVATE", event_id=event_id
    )


def text_of(call: RecordedCall) -> str:
    return str(call.payload.get("text") or "")


def answered(calls: list[RecordedCall]) -> list[RecordedCall]:
    return [c for c in calls if c.status == 200]


# --- Web API rate limits ------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [20, 1_000_000])
async def test_a_rate_limited_users_info_is_told_as_slack_is_busy_inside_the_deadline(
    bot: RunningBot, retry_after: int
) -> None:
    bot.slack.fail_next("users.info", status=429, retry_after=retry_after, count=10)
    await bot.send(command(bot))
    [answer] = await bot.slack.wait_for(RESPONSE_URL_METHOD, timeout=DEADLINE)
    text = text_of(answer).lower()
    assert BUSY in text and "try again" in text
    assert answer.payload["response_type"] == "ephemeral"
    # Asked once, and not again for the same person's refusal text.
    assert len(bot.slack.calls_to("users.info")) == 1
    assert bot.sim.stats["profile"] == 0


async def test_when_the_response_url_fails_too_slack_is_busy_is_said_ephemerally(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("users.info", status=429, retry_after=20)
    bot.slack.fail_next(RESPONSE_URL_METHOD, status=500, error="server_error", count=2)
    await bot.send(command(bot))
    [told] = await bot.slack.wait_for("chat.postEphemeral", timeout=DEADLINE)
    assert (told.payload["channel"], told.payload["user"]) == ("C0PRIVATE", "U0MANAGER")
    assert BUSY in text_of(told).lower()


async def test_a_new_user_after_a_rate_limit_is_answered_at_once_without_calling_slack_again(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("users.info", status=429, retry_after=1_000_000, count=10)
    await bot.send(command(bot, user="U0MANAGER"))
    await bot.slack.wait_for(RESPONSE_URL_METHOD, timeout=DEADLINE)
    for n, user in enumerate(("U0AGENT", "U0SALES", "U0BOTH"), start=2):
        await bot.send(command(bot, user=user))
        calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=n, timeout=DEADLINE)
        assert BUSY in text_of(calls[-1]).lower()
    # Nobody called users.info again before its Retry-After: Slack saw exactly one call.
    assert len(bot.slack.calls_to("users.info")) == 1


async def test_a_retry_after_that_fits_the_deadline_is_waited_for_and_answered(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("users.info", status=429, retry_after=1)
    await bot.send(command(bot))
    [card] = await bot.slack.wait_for(RESPONSE_URL_METHOD, timeout=DEADLINE + 1)
    assert "Jane Doe" in json.dumps(card.payload)
    first, second = bot.slack.calls_to("users.info")[:2]
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.9  # not called again before its Retry-After


async def test_a_method_is_called_again_once_its_retry_after_has_passed(bot: RunningBot) -> None:
    # Three seconds do not fit the two-second deadline: refused at once, not slept.
    bot.slack.fail_next("users.info", status=429, retry_after=3)
    await bot.send(command(bot))
    [busy] = await bot.slack.wait_for(RESPONSE_URL_METHOD, timeout=DEADLINE)
    assert BUSY in text_of(busy).lower()
    assert "3 seconds" in text_of(busy)
    await settle(3.1)
    await bot.send(command(bot))
    calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=2, timeout=DEADLINE)
    assert "Jane Doe" in json.dumps(calls[-1].payload)
    # The asker asked again once (the channel's members are looked up too, for Share).
    asked = [c for c in bot.slack.calls_to("users.info") if c.payload.get("user") == "U0MANAGER"]
    assert [c.status for c in asked] == [429, 200]


@pytest.mark.parametrize("retry_after", [20, 1_000_000])
async def test_a_rate_limited_post_of_a_mention_is_told_privately_and_not_repeated(
    bot: RunningBot, retry_after: int
) -> None:
    bot.slack.fail_next("chat.postMessage", status=429, retry_after=retry_after, count=10)
    await bot.send(mention(JANE, "EvBusy1"))
    [told] = await bot.slack.wait_for("chat.postEphemeral", timeout=DEADLINE)
    assert told.payload["user"] == "U0MANAGER"
    assert BUSY in text_of(told).lower() and "try again" in text_of(told).lower()
    [record] = [r for r in bot.audit() if r["surface"] == "mention"]
    assert record["outcome"] == "post_failed:ratelimited"

    await bot.send(mention(JANE, "EvBusy2", user="U0AGENT"))
    calls = await bot.slack.wait_for("chat.postEphemeral", count=2, timeout=DEADLINE)
    assert BUSY in text_of(calls[-1]).lower()
    assert len(bot.slack.calls_to("chat.postMessage")) == 1


async def test_a_rate_limited_conversation_check_of_a_mention_is_told_privately(
    bot: RunningBot,
) -> None:
    bot.slack.fail_next("conversations.info", status=429, retry_after=60, count=10)
    await bot.send(mention(JANE, "EvBusy3"))
    [told] = await bot.slack.wait_for("chat.postEphemeral", timeout=DEADLINE)
    assert BUSY in text_of(told).lower()
    assert bot.slack.calls_to("chat.postMessage") == []


# --- one deadline per person, counted from the request's arrival -------------------------------

#: Long enough that Slack's whole-second Retry-After can use most of it and still leave a margin.
LONG_DEADLINE = 3.0


@pytest.fixture
async def patient_bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The whole bot with a three-second lookup deadline."""
    sim, aep_url = sandbox
    async with running_bot(
        sim, aep_url, slack, tmp_path, bot_lookup_deadline=LONG_DEADLINE
    ) as running:
        yield running


async def test_a_retry_after_that_fits_a_fresh_budget_but_not_what_is_left_is_not_slept(
    patient_bot: RunningBot,
) -> None:
    # users.info's 2 s wait fits the 3 s deadline and is slept; usergroups.list then asks for
    # 2 s more: that fits a call's own budget, not the second left of the person's deadline.
    bot = patient_bot
    bot.slack.fail_next("users.info", status=429, retry_after=2)
    bot.slack.fail_next("usergroups.list", status=429, retry_after=2)
    await bot.send(command(bot))
    [busy] = await bot.slack.wait_for(RESPONSE_URL_METHOD, timeout=LONG_DEADLINE + REPLY_FLOOR)
    assert BUSY in text_of(busy).lower() and "try again" in text_of(busy).lower()
    assert [c.status for c in bot.slack.calls_to("users.info")] == [429, 200]
    # Refused, not slept and asked again; and no lookup started that nobody would wait for.
    assert [c.status for c in bot.slack.calls_to("usergroups.list")] == [429]
    assert bot.sim.stats["profile"] == 0


async def test_a_lookup_that_uses_the_whole_deadline_still_says_so_through_the_response_url(
    patient_bot: RunningBot,
) -> None:
    # Slack's Retry-After takes two of the three seconds, then AEP never answers: by the time
    # the lookup gives up the person's deadline is spent, and the reply must still go out.
    bot = patient_bot
    bot.slack.fail_next("users.info", status=429, retry_after=2)
    bot.sim.faults.add("hang", endpoint="profile", count=5)
    await bot.send(command(bot))
    [answer] = await bot.slack.wait_for(
        RESPONSE_URL_METHOD, timeout=2 * LONG_DEADLINE + REPLY_FLOOR + 2
    )
    assert answer.status == 200
    assert "did not answer" in text_of(answer)
    # The asker asked again once (the channel's members are looked up too, for Share).
    asked = [c for c in bot.slack.calls_to("users.info") if c.payload.get("user") == "U0MANAGER"]
    assert [c.status for c in asked] == [429, 200]
    assert bot.sim.stats["profile"] >= 1


# --- post failures in words (item 6) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"status": 500, "error": "internal_error", "count": 2}, "Slack did not answer"),
        ({"error": "channel_is_frozen"}, "Slack refused the post. Try again, or ask for the card"),
        ({"error": "not_in_channel"}, "Invite me with /invite"),
    ],
)
async def test_a_post_failure_is_said_in_words_never_none(
    bot: RunningBot, fault: dict[str, Any], words: str
) -> None:
    bot.slack.fail_next("chat.postMessage", **fault)
    await bot.send(mention(JANE, f"EvPost{fault['error']}"))
    [told] = await bot.slack.wait_for("chat.postEphemeral", timeout=DEADLINE)
    assert words in text_of(told)
    assert "None" not in text_of(told)
    assert fault["error"] not in text_of(told) and "::" not in text_of(told)


async def test_a_hanging_post_is_cut_off_and_said_in_words(bot: RunningBot) -> None:
    bot.slack.hang_next("chat.postMessage")
    await bot.send(mention(JANE, "EvHang"))
    [told] = await bot.slack.wait_for("chat.postEphemeral", timeout=DEADLINE + 1)
    assert "Slack did not answer" in text_of(told)


# --- response_url: one retry within the budget, then a log line with a reference ---------------


@pytest.mark.parametrize("status", [500, 503, 404])
async def test_a_failed_response_url_is_retried_once(bot: RunningBot, status: int) -> None:
    bot.slack.fail_next(RESPONSE_URL_METHOD, status=status, error="server_error")
    await bot.send(command(bot))
    calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=2, timeout=DEADLINE)
    assert calls[0].status == status
    assert "Jane Doe" in json.dumps(calls[1].payload)


async def test_a_hanging_response_url_is_retried_within_the_budget(bot: RunningBot) -> None:
    bot.slack.hang_next(RESPONSE_URL_METHOD)
    await bot.send(command(bot))
    calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=2, timeout=DEADLINE + 1)
    assert calls[0].status == 0  # the hang
    assert calls[1].status == 200 and "Jane Doe" in json.dumps(calls[1].payload)


async def test_a_response_url_failing_twice_is_logged_with_a_reference(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.slack.fail_next(RESPONSE_URL_METHOD, status=500, error="server_error", count=2)
    with caplog.at_level(logging.INFO):
        await bot.send(command(bot))
        await bot.slack.wait_for(RESPONSE_URL_METHOD, count=2, timeout=DEADLINE)
        await settle(0.2)
    assert len(bot.slack.calls_to(RESPONSE_URL_METHOD)) == 2  # once, then once more, no more
    [line] = [r.getMessage() for r in caplog.records if "response_url" in r.getMessage()]
    assert "HTTP 500" in line and "reference " in line
    assert JANE not in caplog.text


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/response/refused"


async def test_a_refused_response_url_is_logged_not_left_as_a_task_exception(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = await bot.send(command(bot, url=_closed_port_url()))
        assert response.status_code == 200
        await settle(DEADLINE / 2)
    lines = [r.getMessage() for r in caplog.records if "response_url" in r.getMessage()]
    assert any("connection failed" in line and "reference " in line for line in lines)
    # A failed reply is not a bug: nothing reaches the error handler, nothing is left unretrieved.
    assert "unhandled error" not in caplog.text
    assert "never retrieved" not in caplog.text


# --- identities counted once (item 6) -----------------------------------------------------------


async def test_note_and_picker_count_the_identities_found_once(bot: RunningBot) -> None:
    text = " ".join(f"person{i}@example.com" for i in range(500))
    await bot.send(command(bot, text))
    calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=4, timeout=DEADLINE + 1)
    [note] = [c for c in calls if "identities found" in text_of(c)]
    await bot.send(
        slack_payloads.message_shortcut(
            message_text=text,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        )
    )
    calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=5, timeout=DEADLINE)
    picker = json.dumps(calls[-1].payload)
    found = "of the first 20 identities found (the message may hold more)"
    assert f"Showing 3 {found}" in text_of(note)
    assert f"Showing 10 {found}" in picker
    assert "+17" not in text_of(note) and "+10" not in picker
    assert answered(calls) == calls


# --- Retry-After is untrusted -------------------------------------------------------------------


@given(st.one_of(st.text(max_size=30), st.floats(allow_nan=True), st.integers()))
def test_any_retry_after_header_gives_a_bounded_wait(value: object) -> None:
    seconds = retry_after({"Retry-After": str(value)})
    assert 0 <= seconds <= MAX_RETRY_AFTER


@given(st.lists(st.floats(min_value=-1e9, max_value=1e9), min_size=1, max_size=5))
def test_a_method_is_held_for_the_longest_wait_slack_asked_for(waits: list[float]) -> None:
    limits = RateLimits(clock=lambda: 100.0)
    for seconds in waits:
        limits.hold("users.info", seconds)
    expected = min(max(max(waits), 0.0), MAX_RETRY_AFTER)
    assert limits.wait("users.info") == pytest.approx(expected, abs=1e-9)
    assert limits.wait("chat.postMessage") == 0


async def test_every_command_is_acked_while_a_rate_limit_fails_its_lookups_at_once(
    bot: RunningBot,
) -> None:
    # The first command meets the 429; the others fail at once on the held method, right after
    # their ack, which Bolt used to drop (HTTP 404 after 3 s, no answer at all).
    bot.slack.fail_next("users.info", status=429, retry_after=20, count=10)
    for n, user in enumerate(("U0MANAGER", "U0AGENT", "U0SALES", "U0BOTH"), start=1):
        response = await bot.send(command(bot, user=user))
        assert response.status_code == 200
        assert response.text == ""  # acknowledged at once; the answer comes on the response_url
        calls = await bot.slack.wait_for(RESPONSE_URL_METHOD, count=n, timeout=DEADLINE)
        assert BUSY in text_of(calls[-1]).lower()
