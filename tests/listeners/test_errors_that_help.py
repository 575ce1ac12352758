"""Errors that help (issue 16, item 6): /customer says what was wrong with *this* input, in the
ack and before any AEP call; refusals say where and how to ask instead, in words, never a Slack
error code; a person without grants is refused at once, with no "Looking up…" first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.demo import payloads as slack_payloads
from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from bot.identity import USAGE
from tests.support import JANE, RunningBot, all_text, command, running_bot, settle

#: Each typo, and what its answer must say about it.
TYPOS = {
    "06 12345678": [
        "`06 12345678` looks like a phone number without its country code",
        "BOT_DEFAULT_REGION is US (United States)",
        "`/customer +31 6 12345678`",
    ],
    "crm-000123": ["Did you mean CRM-000123?", "`/customer CRM-000123`"],
    "CRM-123": ["Did you mean CRM-000123?", "`/customer CRM-000123`"],
    "jane.doe@example": ["Did you mean example.com?", "`/customer jane.doe@example.com`"],
    "jane doe": [
        "`jane doe` looks like a name",
        "The bot finds customers by email, phone, CRM id or ECID, not by name",
    ],
    "foo:bar": [
        "`foo` is not an identity namespace; known ones are "
        "acmeMember, CORE, crmid, ECID, Email, loyaltyId, Phone, and TNTID.",
    ],
}

#: A Slack error code (snake_case), a doubled colon, or an emoji code right after a colon.
RAW_CODE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
DOUBLED_COLON = re.compile(r"::|: :[a-z_]+:")


async def ack_text(bot: RunningBot, text: str, user: str = "U0AGENT") -> str:
    response = await bot.send(command(bot, text, user=user))
    assert response.status_code == 200
    # An ack with nothing to say is empty: the answer that follows is the only message.
    return str(response.json()["text"]) if response.content else ""


@pytest.mark.parametrize("typed", sorted(TYPOS))
async def test_each_typo_is_told_what_was_wrong_with_it_before_any_lookup(
    bot: RunningBot, typed: str
) -> None:
    text = await ack_text(bot, typed)
    for words in TYPOS[typed]:
        assert words in text, text
    assert "Tell me which customer to look up" not in text  # not the generic usage
    await settle()
    assert sum(bot.sim.stats.values()) == 0  # never asked AEP, not even for a suggestion
    assert bot.slack.calls_to("response_url") == []  # the ack is the whole answer


async def test_the_five_typos_get_five_different_messages(bot: RunningBot) -> None:
    texts = [await ack_text(bot, typed) for typed in sorted(TYPOS)]
    # crm-000123 and CRM-123 suggest the same id but each names what was typed.
    assert len(set(texts)) == len(TYPOS)


async def test_text_that_is_no_slip_gets_the_usage_as_a_bulleted_list(bot: RunningBot) -> None:
    text = await ack_text(bot, "what about that one from yesterday?")
    assert text.startswith("Tell me which customer to look up")
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("\u2022 ")] == lines[1:-1]
    # Slack's proportional font does not keep columns aligned with spaces.
    assert "  " not in text
    assert text == bot.services.default_reader.gettext(USAGE)


async def test_an_unknown_namespace_beside_an_identity_looks_up_the_identity_and_says_so(
    bot: RunningBot,
) -> None:
    assert await ack_text(bot, f"foo:bar {JANE}") == ""  # looked up: the answer follows
    answers = await bot.slack.wait_for("response_url", count=2)
    texts = [all_text(answer) for answer in answers]
    assert any("`foo` is not an identity namespace" in t for t in texts), texts
    assert any("Jane Doe" in t for t in texts), texts
    assert bot.sim.stats["profile"] == 1  # only Jane's


async def test_a_person_without_grants_is_refused_in_the_ack_not_after_a_looking_up(
    bot: RunningBot,
) -> None:
    # U0NOBODY under the default policy: no role, so nothing.
    text = await ack_text(bot, JANE, user="U0NOBODY")
    assert text.startswith("You don't have access to customer profiles.")
    assert "Ask to be added to @support-team (support)" in text
    await settle()
    assert bot.slack.calls_to("response_url") == []  # the refusal was the first and only answer
    assert bot.sim.stats["profile"] == 0
    [record] = bot.audit()
    assert (record["action"], record["outcome"]) == ("refusal", "no_grants:command")


async def test_a_guest_under_the_demo_policy_is_refused_in_the_ack(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_policy_file=None) as bot:
        text = await ack_text(bot, JANE, user="U0GUEST")
        assert text.startswith("You don't have access to customer profiles.")
        assert "Looking up" not in text
        await settle()
        assert bot.slack.calls_to("response_url") == []
        # Under the demo policy a newcomer without a group has grants: looked up as before.
        assert await ack_text(bot, JANE, user="U0NOBODY") == ""
        [card] = await bot.slack.wait_for("response_url")
        assert "Jane Doe" in all_text(card)


async def test_when_slack_is_slow_to_say_who_asks_the_ack_goes_first_and_the_answer_after(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    # users.info does not answer within the ack's wait for the decision: the old order.
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path, bot_lookup_deadline=3) as bot:
        bot.slack.hang_next("users.info")
        assert await ack_text(bot, JANE, user="U0NOBODY") == ""
        [answer] = await bot.slack.wait_for("response_url", timeout=6)
        assert "Slack did not tell the bot who you are" in answer.payload["text"]
        assert bot.sim.stats["profile"] == 0


@pytest.mark.parametrize(
    ("channel", "words"),
    [
        ("C0SECRET", "The bot is not in this conversation"),
        ("C0CONNECT", "This is a Slack Connect public channel"),
    ],
)
async def test_a_channel_refusal_says_where_to_ask_without_codes_or_doubled_colons(
    bot: RunningBot, channel: str, words: str
) -> None:
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> who is {JANE}?",
        user_id="U0MANAGER",
        channel_id=channel,
        event_id=f"EvRefuse{channel}",
    )
    await bot.send(body)
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    text = told.payload["text"]
    assert text.startswith("Customer profiles can't be shown here. ")
    assert words in text
    assert "/customer with the identity" in text  # how to ask instead
    assert not RAW_CODE.search(text), text
    assert not DOUBLED_COLON.search(text) and text.count(": ") <= 1, text
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_well_formed_address_with_a_misspelt_domain_is_looked_up_then_corrected(
    bot: RunningBot,
) -> None:
    # It may be a real domain: AEP decides (the ack is empty, the answer follows).
    assert await ack_text(bot, "jane.doe@gmial.com") == ""
    [answer] = await bot.slack.wait_for("response_url")
    text = answer.payload["text"]
    assert text.startswith("No customer profile found for Email jane.doe@gmial.com.")
    assert "Did you mean gmail.com? Type `/customer jane.doe@gmail.com`." in text
