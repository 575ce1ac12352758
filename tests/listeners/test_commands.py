"""/customer (bot/listeners/commands.py): signed slash commands to the running bot; the ack, the
private answers on the response_url, refusals, and what reaches AEP."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.identity import USAGE, Refusal
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
        assert (looking.payload["response_type"], looking.payload["replace_original"]) == (
            "ephemeral",
            False,
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


# --- what the ack says, exactly, and what is said after it ----------------------------------

TOO_LONG = "a" * 65 + "@example.com"  # a local part longer than email allows (64)
HOW = "Ask to be added to @support-team (support), @sales (sales), or @cs-managers (manager)."
NO_DOMAIN = (
    "`jane.doe@example` has no complete domain after the @. Did you mean example.com? "
    "Type `/customer jane.doe@example.com`.\nType `/customer help` for every form the bot reads."
)
NO_NAMESPACE = (
    "`foo` is not an identity namespace; known ones are acmeMember, CORE, crmid, ECID, Email, "
    "loyaltyId, Phone, and TNTID. Write one of them before the colon, for example "
    "`/customer Email:jane.doe@example.com`.\nType `/customer help` for every form the bot reads."
)


def said_in_ack(response: httpx.Response) -> tuple[str, str]:
    answer = response.json()
    return answer["text"], answer["response_type"]


def said_after(call: RecordedCall) -> tuple[str, str, bool]:
    return call.payload["text"], call.payload["response_type"], call.payload["replace_original"]


def refusals(bot: RunningBot) -> list[tuple[str, str, str, str, str]]:
    return [
        (r["team"], r["actor"], r["channel"], r["surface"], r["outcome"])
        for r in bot.audit()
        if r["action"] == "refusal"
    ]


@pytest.mark.parametrize("text", ["", "help", "HELP", "?", "-h", "--help", "  help  "])
async def test_the_help_words_give_the_usage_in_the_ack(bot: RunningBot, text: str) -> None:
    response = await bot.send(command(bot, text))
    assert said_in_ack(response) == (notice_text(bot, "usage", usage=USAGE), "ephemeral")
    await settle()
    assert bot.slack.calls_to("response_url") == []
    assert sum(bot.sim.stats.values()) == 0


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("hello there", None),  # nothing like an identity: the usage
        ("jane.doe@example", NO_DOMAIN),  # a common slip: what was wrong and the fix
        ("foo:bar", NO_NAMESPACE),  # a namespace the sandbox does not have
    ],
)
async def test_text_without_identity_says_in_the_ack_what_was_wrong(
    bot: RunningBot, text: str, said: str | None
) -> None:
    response = await bot.send(command(bot, text))
    expected = said or notice_text(bot, "usage", usage=USAGE)
    assert said_in_ack(response) == (expected, "ephemeral")
    await settle()
    assert bot.slack.calls_to("response_url") == []
    assert sum(bot.sim.stats.values()) == 0


@pytest.mark.parametrize("missing", ["user_id", "response_url"])
async def test_a_command_slack_sent_without_user_or_response_url_is_refused_in_the_ack(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.commands")
    fields = {k: v[0] for k, v in parse_qs(command(bot, JANE)).items()}
    del fields[missing]
    response = await bot.send(urlencode(fields))
    assert said_in_ack(response) == (notice_text(bot, "incomplete_request"), "ephemeral")
    assert f"/customer request without {missing} refused" in caplog.messages
    await settle()
    assert bot.sim.stats["profile"] == 0
    assert bot.audit() == []


async def test_only_refused_identities_are_refused_in_the_ack_and_audited(
    bot: RunningBot,
) -> None:
    response = await bot.send(command(bot, TOO_LONG))
    reasons = Refusal("email address", "too_long").words(bot.services.default_reader)
    assert said_in_ack(response) == (
        notice_text(bot, "refused_identity", reasons=reasons),
        "ephemeral",
    )
    await settle()  # audited after the ack
    assert refusals(bot) == [
        ("T0DEMO", "U0MANAGER", "C0PRIVATE", "private", "identity_refused:too_long")
    ]
    assert bot.slack.calls_to("response_url") == []
    assert bot.sim.stats["profile"] == 0


async def test_someone_without_grants_is_refused_in_the_ack_once(bot: RunningBot) -> None:
    response = await bot.send(command(bot, f"{JANE} CRM-000123", user="U0NOBODY"))
    assert said_in_ack(response) == (
        notice_text(bot, "refused_no_grants", how=HOW),
        "ephemeral",
    )
    assert refusals(bot) == [("T0DEMO", "U0NOBODY", "C0PRIVATE", "private", "no_grants:command")]
    await settle()
    assert bot.slack.calls_to("response_url") == []
    assert bot.sim.stats["profile"] == 0


async def test_the_ack_waits_for_the_grants_for_whatever_is_left_of_its_window(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With less than a second of the window left, the ack still waits for Slack to say who
    asks, so someone without grants is refused in the ack, not after a silent one."""
    monkeypatch.setattr("bot.listeners.commands.DECISION_BEFORE_ACK", 0.9)
    response = await bot.send(command(bot, f"{JANE} CRM-000123", user="U0NOBODY"))
    assert said_in_ack(response) == (notice_text(bot, "refused_no_grants", how=HOW), "ephemeral")
    await settle()
    assert bot.slack.calls_to("response_url") == []


async def test_someone_without_grants_decided_after_the_ack_is_refused_privately_once(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When Slack is too slow to say who asks before the ack is due, the refusal comes after
    the (empty) ack on the response_url: once for the command, ephemeral, audited."""
    monkeypatch.setattr("bot.listeners.commands.DECISION_BEFORE_ACK", 0.0)
    response = await bot.send(command(bot, f"{JANE} CRM-000123", user="U0NOBODY"))
    assert response.text == ""
    [refusal] = await bot.slack.wait_for("response_url")
    assert refusal.payload["text"] == notice_text(bot, "refused_no_grants", how=HOW)
    assert refusal.payload["response_type"] == "ephemeral"
    assert refusals(bot) == [("T0DEMO", "U0NOBODY", "C0PRIVATE", "private", "no_grants:command")]
    await settle()
    assert bot.slack.calls_to("response_url") == [refusal]
    assert bot.sim.stats["profile"] == 0


async def test_beside_the_cards_an_unknown_namespace_a_refusal_and_the_note_are_said_privately(
    bot: RunningBot,
) -> None:
    """After the (empty) ack: what was wrong with `foo:bar`, why the long address was refused,
    the three cards, then how many were left out, each its own private message under the
    command."""
    text = f"foo:bar {TOO_LONG} {JANE} sanne.de.vries@example.nl hanako.yamada@example.jp x@y.com"
    response = await bot.send(command(bot, text))
    assert response.text == ""
    calls = await bot.slack.wait_for("response_url", count=6)
    await settle(0.2)
    assert len(bot.slack.calls_to("response_url")) == 6
    reasons = Refusal("email address", "too_long").words(bot.services.default_reader)
    assert said_after(calls[0]) == (NO_NAMESPACE, "ephemeral", False)
    assert said_after(calls[1]) == (
        notice_text(bot, "refused_identity", reasons=reasons),
        "ephemeral",
        False,
    )
    assert said_after(calls[5]) == (
        notice_text(bot, "more_identities", shown=3, total=4, capped=False),
        "ephemeral",
        False,
    )
    assert "Jane Doe" in " ".join(all_text(c) for c in calls[2:5])
    assert refusals(bot) == [
        ("T0DEMO", "U0MANAGER", "C0PRIVATE", "private", "identity_refused:too_long")
    ]


async def five_posts_of_a_slow_answer(
    sandbox: tuple[AepSimulator, str],
    slack: SlackRecorder,
    tmp_path: Path,
    text: str,
    **settings: Any,
) -> tuple[list[RecordedCall], str]:
    """The response_url posts of `/customer text` answered slowly (BOT_SLOW_ANSWER_SECONDS=0),
    asserted to be five, all a response_url takes, and how a "Looking up…" begins."""
    sim, aep_url = sandbox
    async with running_bot(
        sim, aep_url, slack, tmp_path, bot_slow_answer_seconds=0, **settings
    ) as bot:
        await bot.send(command(bot, text))
        calls = await bot.slack.wait_for("response_url", count=5)
        await settle(0.2)
        assert len(bot.slack.calls_to("response_url")) == 5
        return calls, notice_text(bot, "looking_up", query="x")[:10]


async def test_a_slow_answer_that_needs_all_five_posts_of_the_response_url_says_no_looking_up(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    """Three cards, a refusal and the "3 of 4" note are five posts, all a response_url takes:
    no "Looking up…" takes the place of one of them."""
    text = f"{TOO_LONG} {JANE} sanne.de.vries@example.nl hanako.yamada@example.jp x@y.com"
    calls, looking = await five_posts_of_a_slow_answer(sandbox, slack, tmp_path, text)
    assert not any(c.payload["text"].startswith(looking) for c in calls)


async def test_a_slow_answer_whose_posts_fill_the_response_url_says_no_looking_up(
    sandbox: tuple[AepSimulator, str],
    slack: SlackRecorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three cards, why `foo:bar` is not read and why the long address is refused are five
    posts, all a response_url takes: no "Looking up…", also while Slack has not yet said who
    asks (the answer has posted nothing when the slow-answer clock runs out)."""
    monkeypatch.setattr("bot.listeners.commands.DECISION_BEFORE_ACK", 0.0)
    text = f"foo:bar {TOO_LONG} {JANE} sanne.de.vries@example.nl hanako.yamada@example.jp"
    calls, looking = await five_posts_of_a_slow_answer(sandbox, slack, tmp_path, text)
    assert not any(c.payload["text"].startswith(looking) for c in calls)


async def test_a_slow_answer_of_four_cards_has_room_for_looking_up(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    """Four cards (BOT_MAX_CARDS=4), every identity shown so no note: four posts, and the fifth
    is the "Looking up…" said first."""
    text = f"{JANE} sanne.de.vries@example.nl hanako.yamada@example.jp x@y.com"
    calls, looking = await five_posts_of_a_slow_answer(
        sandbox, slack, tmp_path, text, bot_max_cards=4
    )
    assert calls[0].payload["text"].startswith(looking)


async def test_looking_up_names_each_identity_as_the_sandbox_names_its_namespace(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_slow_answer_seconds=0) as bot:
        assert await bot.services.namespaces.load()
        await bot.send(command(bot, f"acmeMember:M-000001 {JANE}"))
        calls = await bot.slack.wait_for("response_url", count=3)
        assert calls[0].payload["text"] == notice_text(
            bot, "looking_up", query="Acme member number M-000001, Email jane.doe@example.com"
        )
