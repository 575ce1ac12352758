"""The wiring between the rules, end to end: who is re-checked when a share is submitted, what a
click on a real card message may show, and what a stale member list may not widen. Each test
here failed against a planted bug that every other test let through (issue 15)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import ids
from bot.button_tokens import Place
from bot.demo import payloads as slack_payloads
from bot.demo.server import start_server
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.identity import IdentityRef, read_identities
from tests.support import (
    DEFAULT_POLICY,
    JANE,
    RunningBot,
    button,
    click_on,
    command,
    notice_text,
    private_card,
    running_bot,
    settle,
    share,
    submit_share,
)
from tests.test_permissions_e2e import (
    MANAGER,
    SALES,
    SUPPORT,
    assert_nowhere_else,
    assert_shows_exactly,
    class_values,
    text_of,
)

# --- the share modal's submission re-checks the submitter ------------------------------------


async def managers_share_modal(bot: RunningBot, channel: str) -> dict[str, object]:
    """The share modal the bot opened for the manager in `channel`."""
    card = await private_card(bot, "U0MANAGER", channel)
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.SHARE,
            value=button(card, ids.SHARE)["value"],
            user_id="U0MANAGER",
            channel_id=channel,
            response_url=bot.slack.response_url(),
        )
    )
    [opened] = await bot.slack.wait_for("views.open")
    view: dict[str, object] = opened.payload["view"]
    return view


@pytest.mark.parametrize("submitter", ["U0AGENT", "U0SALES", "U0NOBODY", "U0GUEST"])
async def test_a_share_submitted_by_someone_who_may_not_share_posts_nothing(
    bot: RunningBot, submitter: str
) -> None:
    """The manager's modal, submitted by someone else (a forged submission, or a modal left
    open by a person whose role has gone): the submitter is checked, not the modal's opener
    and not what the channel's readers could see."""
    view = await managers_share_modal(bot, "C0PRIVATE")
    await submit_share(bot, view, user=submitter, reason="forged")
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert "share" in told.payload["text"].lower()
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    [refusal] = [r for r in bot.audit() if r["action"] == "refusal"]
    assert (refusal["actor"], refusal["surface"], refusal["outcome"]) == (
        submitter,
        "share",
        "channel_refused",
    )
    assert [r for r in bot.audit() if r["action"] == "share"] == []


@pytest.fixture
async def support_may_share(tmp_path: Path, slack: SlackRecorder) -> AsyncIterator[RunningBot]:
    """The bot with the default policy, except that the support role may share too."""
    policy = tmp_path / "policy.yml"
    text = DEFAULT_POLICY.read_text()
    text = text.replace(
        "see: [basic, contact, identifiers, activity, audiences]\n",
        "see: [basic, contact, identifiers, activity, audiences]\n    share: true\n",
        1,
    )
    policy.write_text(text)
    sim = AepSimulator()
    server = await start_server(sim, port=0)
    async with running_bot(sim, server.url, slack, tmp_path, bot_policy_file=policy) as running:
        yield running
        await server.close()


async def test_a_sharer_allowed_less_than_the_readers_shares_only_what_they_may_see(
    support_may_share: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent (support, may share here) shares into the manager's DM, whose reader may see
    scores and financial data the agent may not: the card shows the agent's classes only."""
    bot = support_may_share
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    await share(bot, "U0AGENT", "D0MANAGER")
    [post] = await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)  # "Shared in": the share is audited
    assert_shows_exactly(text_of([post]), values, SUPPORT, where="agent's card in D0MANAGER")
    assert_nowhere_else(bot, caplog, values, SUPPORT)
    [record] = [r for r in bot.audit() if r["action"] == "share"]
    assert record["actor"] == "U0AGENT"
    assert set(record["shown"]) <= SUPPORT
    assert {"scores", "financial"} <= set(record["withheld"])


# --- clicks on real card messages ------------------------------------------------------------


async def shared_card(bot: RunningBot, channel: str = "C0PRIVATE") -> RecordedCall:
    """The manager's card shared into `channel`, as Slack keeps it (in a thread)."""
    await share(bot, "U0MANAGER", channel)
    [post] = await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)  # the private card, then "Shared in"
    return post


@pytest.mark.parametrize(("clicker", "grants"), [("U0SALES", SALES), ("U0AGENT", SUPPORT)])
async def test_view_details_on_a_shared_card_shows_the_clicker_only_their_grants(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, clicker: str, grants: set[str]
) -> None:
    """The click carries the shared card (the manager named as sharer, the channel's classes):
    what the clicker sees comes from their own roles, not from that message."""
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    post = await shared_card(bot)
    assert post.response["message"]["blocks"]  # the click below carries the card whole
    await click_on(bot, post, ids.VIEW_DETAILS, user=clicker)
    details = (await bot.slack.wait_for("response_url", count=3))[-1]
    assert details.payload["response_type"] == "ephemeral"
    assert details.payload.get("replace_original") is False
    assert_shows_exactly(text_of([details]), values, grants, where=f"View details for {clicker}")
    assert_nowhere_else(bot, caplog, values, grants)
    record = bot.audit()[-1]
    assert (record["action"], record["actor"]) == ("detail_view", clicker)
    assert set(record["shown"]) <= grants


async def test_more_events_on_a_shared_card_follows_the_clickers_grants(bot: RunningBot) -> None:
    values = await class_values(bot)
    post = await shared_card(bot)
    jane_hmac = bot.services.audit.identity_hmac(JANE)
    await click_on(bot, post, ids.MORE_EVENTS, user="U0SALES")  # sales: no activity
    [refused] = await bot.slack.wait_for("views.update")
    assert_shows_exactly(text_of([refused]), values, set(), where="More events for sales")
    cards, reader = bot.services.cards, bot.services.default_reader
    assert refused.payload["view"] == cards.modal_from_notice(
        cards.notice("events_not_granted", reader=reader), reader=reader
    )
    record = bot.audit()[-1]
    assert (record["action"], record["actor"], record["surface"], record["outcome"]) == (
        "refusal",
        "U0SALES",
        "modal",
        "events_not_granted",
    )
    assert (record["namespace"], record["identity_hmac"]) == ("Email", jane_hmac)

    await click_on(bot, post, ids.MORE_EVENTS, user="U0AGENT")  # support: activity
    shown = (await bot.slack.wait_for("views.update", count=2))[-1]
    assert any(v in text_of([shown]) for v in values["activity"])
    for cls in MANAGER - SUPPORT:
        assert not any(v in text_of([shown]) for v in values[cls]), cls
    record = bot.audit()[-1]
    assert {k: record[k] for k in ("action", "actor", "surface", "outcome", "namespace")} == {
        "action": "more_events",
        "actor": "U0AGENT",
        "surface": "modal",
        "outcome": "shown",
        "namespace": "Email",
    }
    assert record["identity_hmac"] == jane_hmac
    assert record["profile_id"]
    assert "activity" in record["shown"] and set(record["shown"]) <= SUPPORT
    assert {"scores", "financial"} <= set(record["withheld"])


async def test_more_events_clicked_by_someone_without_grants_is_refused_and_audited(
    bot: RunningBot,
) -> None:
    values = await class_values(bot)
    post = await shared_card(bot)
    asked = dict(bot.sim.stats)
    await click_on(bot, post, ids.MORE_EVENTS, user="U0NOBODY")
    [refused] = await bot.slack.wait_for("views.update")
    assert_shows_exactly(text_of([refused]), values, set(), where="More events for nobody")
    assert "@support-team" in text_of([refused])  # says which groups give access
    assert dict(bot.sim.stats) == asked  # nothing was fetched for them
    records = [r for r in bot.audit() if r["actor"] == "U0NOBODY"]
    assert [(r["action"], r["surface"], r["outcome"]) for r in records] == [
        ("refusal", "modal", "events_not_granted"),
        ("refusal", "modal", "no_grants:more_events"),
    ]


async def test_refresh_carrying_a_card_of_someone_allowed_more_shows_the_clickers_grants(
    bot: RunningBot,
) -> None:
    """Slack keeps ephemeral cards to itself, but a click is only as honest as its sender: a
    Refresh that carries the manager's card shows a sales rep what sales may see."""
    values = await class_values(bot)
    card = await private_card(bot, "U0MANAGER")
    message = {"ts": "1714000000.000200", "text": card.payload.get("text", "")}
    message["blocks"] = card.payload["blocks"]
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.REFRESH,
            value=button(card, ids.REFRESH)["value"],
            user_id="U0SALES",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
            is_ephemeral=False,
            message=message,
        )
    )
    refreshed = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert_shows_exactly(text_of([refreshed]), values, SALES, where="Refresh by sales")
    assert (bot.audit()[-1]["action"], bot.audit()[-1]["actor"]) == ("refresh", "U0SALES")


async def test_a_pick_carrying_the_managers_picker_shows_the_clickers_grants(
    bot: RunningBot,
) -> None:
    values = await class_values(bot)
    body = slack_payloads.message_shortcut(
        message_text=f"Customer {JANE}, CRM id CRM-000123",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [picker] = await bot.slack.wait_for("response_url")
    picks = [
        element
        for block in picker.payload["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if ids.PICK_IDENTITY_ACTION.match(element["action_id"])
    ]
    assert picks, "a message holding two identities offers a picker"
    # The picker's tokens keep the message's place: the card picked shares into its thread.
    place = Place("C0PRIVATE", slack_payloads.DEFAULT_MESSAGE_TS)
    jane = await bot.services.buttons.remember(IdentityRef("email", JANE), place=place)
    [pick] = [p for p in picks if p["value"] == jane]
    await bot.send(
        slack_payloads.block_action(
            action_id=pick["action_id"],
            value=jane,
            user_id="U0SALES",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
            is_ephemeral=False,
            message={"ts": "1714000000.000300", "blocks": picker.payload["blocks"]},
            block_id=ids.PICKER_ACTIONS_BLOCK,
        )
    )
    card = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert card.payload.get("replace_original") is True
    assert_shows_exactly(text_of([card]), values, SALES, where="pick by sales")


# --- a mention where the member list is stale ------------------------------------------------


async def test_a_mention_by_someone_not_in_the_member_list_shows_no_more_than_they_may_see(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """The sales rep is not among #escalations' members as Slack listed them (joined since, or
    the list is stale): the card is capped by the channel's readers and by the asker."""
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    await bot.send(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id="U0SALES", channel_id="C0PRIVATE", event_id="Ev-s"
        )
    )
    [post] = await bot.slack.wait_for("chat.postMessage")
    await settle(0.2)  # the post is audited after Slack took it
    expected = SALES & SUPPORT & MANAGER
    assert_shows_exactly(text_of([post]), values, expected, where="mention by a non-member")
    assert_nowhere_else(bot, caplog, values, expected)


# --- the audit, the cache, the buttons -------------------------------------------------------


async def test_an_email_typed_with_capitals_is_audited_under_the_same_hmac(
    bot: RunningBot,
) -> None:
    """An auditor searching by the HMAC of an email finds the lookups typed with capitals."""
    for count, typed in enumerate(("Jane.Doe@Example.COM", JANE, " JANE.DOE@EXAMPLE.COM"), 1):
        body = slack_payloads.slash_command(
            text=typed,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        )
        await bot.send(body)
        await bot.slack.wait_for("response_url", count=count)
    lookups = [r for r in bot.audit() if r["action"] == "lookup"]
    assert [r["outcome"] for r in lookups] == ["shown"] * 3
    assert {r["identity_hmac"] for r in lookups} == {bot.services.audit.identity_hmac(JANE)}


async def test_button_tokens_of_one_value_in_two_namespaces_lead_back_to_each(
    bot: RunningBot,
) -> None:
    email = IdentityRef("email", "x123456@example.com")
    crmid = IdentityRef("crmid", "x123456@example.com")
    email_token = await bot.services.buttons.remember(email)
    crmid_token = await bot.services.buttons.remember(crmid)
    assert email_token != crmid_token
    assert await bot.services.buttons.recall(email_token) == email
    assert await bot.services.buttons.recall(crmid_token) == crmid


async def test_a_refresh_is_not_answered_by_a_plain_lookup_already_in_flight(
    bot: RunningBot,
) -> None:
    """A Refresh asks Platform again even while a plain lookup of the same customer is on its
    way: joining it would answer with the data the person asked to refresh."""
    ref = IdentityRef("Email", JANE)
    bot.sim.faults.latency_ms = 300
    plain = asyncio.create_task(bot.services.lookup.lookup(ref))
    await asyncio.sleep(0.1)
    await bot.services.lookup.lookup(ref, refresh=True)
    await plain
    assert bot.sim.stats["profile"] == 2


# --- refusals said in words, and audited -----------------------------------------------------


async def test_a_look_alike_identity_is_refused_in_words_audited_and_never_looked_up(
    bot: RunningBot,
) -> None:
    """A Cyrillic letter (U+0430) in an email: not looked up, the person told why, the refusal
    audited by its reason (never by the text typed)."""
    look_alike = "j\u0430ne.doe@example.com"
    response = await bot.send(command(bot, look_alike, user="U0AGENT"))
    await settle(0.2)
    answers = [response.json(), *(c.payload for c in bot.slack.calls_to("response_url"))]
    found = read_identities(look_alike, bot.services.rules)
    assert found.refused and not found.refs
    refusal = notice_text(bot, "refused_identity", reasons=" ".join(str(r) for r in found.refused))
    assert [a["text"] for a in answers if a.get("text") == refusal], answers
    assert bot.sim.stats["profile"] == 0
    [record] = bot.audit()
    assert {k: record[k] for k in ("action", "actor", "channel", "surface", "outcome")} == {
        "action": "refusal",
        "actor": "U0AGENT",
        "channel": "C0PRIVATE",
        "surface": "private",
        "outcome": "identity_refused:mixed_script",
    }
    assert look_alike not in bot.audit_path.read_text()


async def test_a_click_slack_sent_without_a_response_url_is_refused_in_words_where_it_happened(
    bot: RunningBot,
) -> None:
    token = await bot.services.buttons.remember(IdentityRef("email", JANE))
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.REFRESH,
            value=token,
            user_id="U0AGENT",
            channel_id="C0PRIVATE",
            response_url=None,
        )
    )
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    assert (told.payload["channel"], told.payload["user"]) == ("C0PRIVATE", "U0AGENT")
    assert told.payload["text"] == notice_text(bot, "incomplete_request")
    await settle(0.1)
    assert bot.sim.stats["profile"] == 0


async def test_a_look_alike_beside_a_real_identity_is_refused_and_the_real_one_answered(
    bot: RunningBot,
) -> None:
    look_alike = "j\u0430ne.doe@example.com"
    await bot.send(command(bot, f"{look_alike} {JANE}", user="U0AGENT"))
    calls = await bot.slack.wait_for("response_url", count=2)
    refused = read_identities(look_alike, bot.services.rules).refused
    refusal = notice_text(bot, "refused_identity", reasons=" ".join(str(r) for r in refused))
    assert [c.payload["text"] for c in calls].count(refusal) == 1
    [record] = [r for r in bot.audit() if r["action"] == "refusal"]
    assert (record["actor"], record["surface"], record["outcome"]) == (
        "U0AGENT",
        "private",
        "identity_refused:mixed_script",
    )
    assert [r["outcome"] for r in bot.audit() if r["action"] == "lookup"] == ["shown"]
    assert look_alike not in bot.audit_path.read_text()
