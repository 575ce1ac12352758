"""The permission matrix, end to end: roles x surfaces over signed Slack requests, asserting
exactly which field classes reach each payload, and that withheld values reach no payload, log
line or audit record. Policy: the shipped default (bot/layouts/policy.default.yml)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import pytest

from bot import ids
from bot.aep.errors import ProfileNotFound
from bot.demo import payloads as slack_payloads
from bot.demo.slack import RecordedCall
from bot.formatting import format_value, mrkdwn_escape
from bot.i18n import reader_for
from bot.identity import IdentityRef
from bot.layout import FIELD_CLASSES, label_text
from tests.support import (
    RunningBot,
    all_text,
    button,
    click,
    click_on,
    notice_text,
    private_card,
    settle,
    share,
    submit_share,
)

#: English in UTC: what these tests read.
EN = reader_for("en-US")

JANE = "jane.doe@example.com"

SUPPORT = {"basic", "contact", "identifiers", "activity", "audiences"}
SALES = {"basic", "contact", "audiences", "scores", "financial"}
MANAGER = {"basic", "contact", "identifiers", "activity", "audiences", "scores", "financial"}


async def class_values(bot: RunningBot) -> dict[str, set[str]]:
    """Distinctive values of Jane's profile per class, as a card would show them."""
    customer = await bot.services.lookup.lookup(IdentityRef("Email", JANE))
    values: dict[str, set[str]] = {c: set() for c in FIELD_CLASSES}
    assert customer.name
    values["basic"].add(customer.name)
    for field in customer.fields:
        shown = mrkdwn_escape(format_value(field, EN))
        values[field.field_class].add(shown)
        # A short value (a score of "82%") says something beside its label, as the card puts
        # them (label, newline, value), in the JSON text the payload checks search.
        label = label_text(field.label, "en")
        values[field.field_class].add(json.dumps(f"*{label}*\n{shown}")[1:-1])
    for identity in customer.identities:
        values[identity.field_class].add(identity.value)
    for event in customer.events:
        if event.detail:
            values["activity"].add(mrkdwn_escape(event.detail))
    for audience in customer.audiences:
        values["audiences"].add(mrkdwn_escape(audience.name))
    # Keep values that say something: long enough, and owned by one class only.
    owners: dict[str, set[str]] = {}
    for cls, vals in values.items():
        for v in vals:
            owners.setdefault(v, set()).add(cls)
    distinctive = {
        cls: {v for v in vals if len(v) >= 5 and len(owners[v]) == 1}
        for cls, vals in values.items()
    }
    empty = [cls for cls, vals in distinctive.items() if not vals]
    assert not empty, f"no distinctive value of {empty}: their checks would pass trivially"
    bot.sim.reset()
    await bot.services.cache.delete(bot.services.keys.profile(IdentityRef("Email", JANE)))
    return distinctive


def text_of(calls: Iterable[RecordedCall]) -> str:
    return "\n".join(json.dumps(c.payload, ensure_ascii=False) for c in calls)


def assert_shows_exactly(
    payload_text: str, values: dict[str, set[str]], shown: set[str], *, where: str
) -> None:
    for cls, vals in values.items():
        for value in vals:
            if cls in shown:
                continue
            assert value not in payload_text, f"{where}: withheld {cls} value {value!r} leaked"
    for cls in shown:
        # Identities and fields of a shown class appear; at least one value of each class does.
        if values[cls]:
            assert any(v in payload_text for v in values[cls]), f"{where}: no {cls} value shown"


def outgoing(bot: RunningBot) -> list[RecordedCall]:
    answers = {
        "response_url",
        "chat.postMessage",
        "chat.postEphemeral",
        "views.open",
        "views.update",
    }
    return [c for c in bot.slack.calls if c.method in answers]


def assert_nowhere_else(
    bot: RunningBot,
    caplog: pytest.LogCaptureFixture,
    values: dict[str, set[str]],
    allowed: set[str],
) -> None:
    audit = bot.audit_path.read_text() if bot.audit_path.exists() else ""
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for cls, vals in values.items():
        for value in vals:
            assert value not in audit, f"{cls} value {value!r} in the audit trail"
            assert value not in logs, f"{cls} value {value!r} in a log line"
    assert JANE not in audit and JANE not in logs


@pytest.mark.parametrize(
    ("user", "grants"),
    [
        ("U0AGENT", SUPPORT),
        ("U0SALES", SALES),
        ("U0MANAGER", MANAGER),
        ("U0BOTH", SUPPORT | SALES),  # a person in two roles gets the union
    ],
)
async def test_private_answer_shows_exactly_the_requesters_grants(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, user: str, grants: set[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    answer = await private_card(bot, user)
    assert_shows_exactly(text_of([answer]), values, grants, where=f"private card for {user}")
    assert_nowhere_else(bot, caplog, values, grants)
    [record] = [r for r in bot.audit() if r["action"] == "lookup"]
    assert set(record["shown"]) <= grants
    assert "sensitive" in record["withheld"]


@pytest.mark.parametrize("user", ["U0NOBODY", "U0GUEST"])
async def test_people_without_grants_are_refused_with_no_aep_call(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, user: str
) -> None:
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    body = slack_payloads.slash_command(
        text=JANE, user_id=user, channel_id="C0PRIVATE", response_url=bot.slack.response_url()
    )
    response = await bot.send(body)
    # The refusal is the first and only answer: the acknowledgement itself, no "Looking up…".
    ack = response.json()
    text = ack["text"]
    assert "You don't have access to customer profiles" in text and "Looking up" not in text
    if user == "U0NOBODY":
        assert "@support-team" in text  # says which groups give access
    else:
        assert "@support-team" not in text  # a guest: groups give no access
    assert bot.slack.calls_to("response_url") == []
    assert bot.sim.stats["profile"] == 0
    assert_shows_exactly(text + text_of(outgoing(bot)), values, set(), where=f"refusal for {user}")
    [record] = bot.audit()
    assert record["action"] == "refusal"


@pytest.mark.parametrize(
    ("channel", "shown"),
    [
        ("C0PRIVATE", SUPPORT & MANAGER),  # private channel: agent and manager
        ("G0MPIM", SUPPORT & MANAGER),  # group DM: agent and manager
        ("D0MANAGER", MANAGER),  # DM with the manager alone
        ("C0SUPPORT", SUPPORT & (SUPPORT | SALES) & MANAGER),
        ("C0PUBLIC", {"basic"}),  # public channel: capped at public_channels
    ],
)
async def test_shared_card_shows_what_every_reader_may_see(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, channel: str, shown: set[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    await share(bot, "U0MANAGER", channel, reason="renewal <!channel> review")
    [post] = await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)  # "Shared in": the share is audited
    assert post.payload["channel"] == channel
    assert post.payload["thread_ts"] == "1700000000.000001"
    posted = text_of([post])
    assert_shows_exactly(posted, values, shown, where=f"card shared in {channel}")
    assert "<!channel>" not in posted  # the sharer's reason is escaped too
    if shown != MANAGER:
        assert "hidden in this channel" in posted
    assert button(post, ids.VIEW_DETAILS)
    assert_nowhere_else(bot, caplog, values, shown)
    [record] = [r for r in bot.audit() if r["action"] == "share"]
    assert set(record["shown"]) <= shown
    assert record["actor"] == "U0MANAGER"


def action_ids(card: RecordedCall) -> list[str]:
    return [
        e["action_id"]
        for b in card.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


@pytest.mark.parametrize(
    ("channel", "why"),
    [
        ("C0CONNECT", "other organizations"),  # Slack Connect: the policy never posts there
        ("C0SECRET", "The bot is not in this conversation"),  # the bot is not in the channel
    ],
)
async def test_share_is_not_offered_where_it_cannot_work_and_a_forged_click_opens_no_modal(
    bot: RunningBot, channel: str, why: str
) -> None:
    """The manager may share, but not into this channel: the card has no Share button, and a
    forged Share click is refused at once, in words, before any modal opens."""
    card = await private_card(bot, "U0MANAGER", channel)
    assert ids.SHARE not in action_ids(card)
    assert ids.REFRESH in action_ids(card)
    await click(bot, ids.SHARE, button(card, ids.REFRESH)["value"], channel=channel)
    calls = await bot.slack.wait_for("response_url", count=2)
    assert why in calls[1].payload["text"]
    assert "cannot be shared here" in calls[1].payload["text"]
    await settle(0.2)
    assert bot.slack.calls_to("views.open") == []
    assert bot.slack.calls_to("chat.postMessage") == []
    assert [r["outcome"] for r in bot.audit() if r["action"] == "refusal"] == ["channel_refused"]


async def test_an_expired_card_is_refused_on_the_share_click_without_a_modal(
    bot: RunningBot,
) -> None:
    card = await private_card(bot, "U0MANAGER")
    assert ids.SHARE in action_ids(card)
    await click(bot, ids.SHARE, "expired-or-unknown-token")
    calls = await bot.slack.wait_for("response_url", count=2)
    assert calls[1].payload["text"] == notice_text(bot, "expired")
    await settle(0.2)
    assert bot.slack.calls_to("views.open") == []
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_the_share_modal_names_the_channel_and_what_the_posted_card_hides(
    bot: RunningBot,
) -> None:
    """The manager sees scores and financial details; the support channel's agents do not."""
    card = await private_card(bot, "U0MANAGER", "C0SUPPORT")
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"], channel="C0SUPPORT")
    [opened] = await bot.slack.wait_for("views.open")
    view = opened.payload["view"]
    assert view["blocks"][0]["text"]["text"] == "Post to #support?"
    assert "Scores and financial details will be hidden" in all_text(opened)


async def test_share_is_offered_only_to_roles_that_may_share(bot: RunningBot) -> None:
    card = await private_card(bot, "U0AGENT")
    actions = [
        e["action_id"]
        for b in card.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert ids.SHARE not in actions
    # A forged click is refused all the same: the button is not trusted.
    await click(bot, ids.SHARE, button(card, ids.REFRESH)["value"], user="U0AGENT")
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "share" in calls[1].payload["text"].lower()
    assert bot.slack.calls_to("views.open") == []


async def view_details_after_share(bot: RunningBot, clicker: str) -> RecordedCall:
    """Share a card into the public channel, let `clicker` click View details, and return the
    private answer the click produced."""
    await share(bot, "U0MANAGER", "C0PUBLIC")
    [post] = await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)  # the private card, then "Shared in"
    # The click carries the shared card as Slack keeps it (the sharer named in it, its
    # classes): the answer must come from the clicker's own grants, not from that message.
    await click_on(bot, post, ids.VIEW_DETAILS, user=clicker)
    return (await bot.slack.wait_for("response_url", count=3))[-1]


async def test_view_details_answers_the_clicker_privately_with_their_own_grants(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    details = await view_details_after_share(bot, "U0SALES")
    assert details.payload["response_type"] == "ephemeral"
    assert details.payload.get("replace_original") is False
    assert_shows_exactly(text_of([details]), values, SALES, where="View details for U0SALES")
    assert [r["action"] for r in bot.audit()][-1] == "detail_view"


async def test_view_details_for_someone_without_grants_is_a_refusal(bot: RunningBot) -> None:
    values = await class_values(bot)
    refusal = await view_details_after_share(bot, "U0NOBODY")
    assert "access" in refusal.payload["text"].lower()
    assert_shows_exactly(text_of([refusal]), values, set(), where="refusal")


@pytest.mark.parametrize(
    ("user", "channel", "shown"),
    [
        ("U0AGENT", "C0PRIVATE", SUPPORT & MANAGER),
        ("U0SALES", "C0PUBLIC", {"basic"}),
        ("U0MANAGER", "D0MANAGER", MANAGER),
    ],
)
async def test_mention_posts_a_channel_safe_card(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, user: str, channel: str, shown: set[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    values = await class_values(bot)
    await bot.send(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id=user, channel_id=channel, event_id=f"Ev-{user}"
        )
    )
    [post] = await bot.slack.wait_for("chat.postMessage")
    assert_shows_exactly(text_of([post]), values, shown, where=f"mention in {channel}")
    assert_nowhere_else(bot, caplog, values, shown)


@pytest.mark.parametrize("user", ["U0NOBODY", "U0GUEST"])
async def test_mention_by_someone_without_grants_posts_nothing(bot: RunningBot, user: str) -> None:
    await bot.send(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id=user, channel_id="C0PUBLIC", event_id=f"Ev-{user}"
        )
    )
    [ephemeral] = await bot.slack.wait_for("chat.postEphemeral")
    assert ephemeral.payload["user"] == user
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert bot.sim.stats["profile"] == 0


async def test_mention_in_a_slack_connect_channel_is_refused_privately(bot: RunningBot) -> None:
    await bot.send(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0CONNECT", event_id="Ev-x"
        )
    )
    [ephemeral] = await bot.slack.wait_for("chat.postEphemeral")
    assert "other organizations" in ephemeral.payload["text"]
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_failed_lookup_behind_a_button_does_not_name_a_withheld_identity(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card was shared by CRM id; by the time a sales rep (no identifiers) clicks View
    details the profile is gone: the message must not name the CRM id."""
    body = slack_payloads.slash_command(
        text="CRM-000123",
        user_id="U0MANAGER",
        channel_id="C0PUBLIC",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [card] = await bot.slack.wait_for("response_url")

    async def gone(*args: Any, **kwargs: Any) -> Any:
        raise ProfileNotFound("No customer profile holds this crmid identity.", status=404)

    monkeypatch.setattr(bot.services.lookup, "lookup", gone)
    await click(
        bot, ids.REFRESH, button(card, ids.REFRESH)["value"], user="U0SALES", channel="C0PUBLIC"
    )
    answer = (await bot.slack.wait_for("response_url", count=2))[-1]
    # The namespace is named as a person would write it; the withheld value is not.
    assert "No customer profile found for CRM ID." in answer.payload["text"]
    assert "CRM-000123" not in text_of([answer])


async def test_a_share_whose_post_slack_refused_is_audited_as_not_posted(bot: RunningBot) -> None:
    bot.slack.fail_next("chat.postMessage", error="not_in_channel")
    await share(bot, "U0MANAGER", "C0PRIVATE")
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "invite" in calls[-1].payload["text"].lower()
    [record] = [r for r in bot.audit() if r["action"] == "share"]
    assert record["outcome"] == "post_failed:not_in_channel"


async def test_more_events_for_a_role_without_activity_is_a_clear_audited_refusal(
    bot: RunningBot,
) -> None:
    card = await private_card(bot, "U0SALES")
    assert all(
        e["action_id"] != ids.MORE_EVENTS
        for b in card.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    )
    token = button(card, ids.REFRESH)["value"]
    await click(bot, ids.MORE_EVENTS, token, user="U0SALES")
    [update] = await bot.slack.wait_for("views.update")
    assert "Recent events are not part of what your role may see" in text_of([update])
    assert [r["outcome"] for r in bot.audit() if r["action"] == "refusal"] == ["events_not_granted"]


async def test_a_role_without_activity_sees_no_events_section_at_all(bot: RunningBot) -> None:
    body = slack_payloads.slash_command(
        text="sparse@example.com",
        user_id="U0SALES",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    await bot.send(body)
    [card] = await bot.slack.wait_for("response_url")
    assert "Recent events" not in text_of([card])
    assert "could not be loaded" not in text_of([card])


async def test_a_bug_during_a_share_submission_is_still_said_to_the_sharer(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    card = await private_card(bot, "U0MANAGER")
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"])
    [opened] = await bot.slack.wait_for("views.open")
    monkeypatch.setattr(bot.services.directory, "channel", broken)
    view = opened.payload["view"]
    await submit_share(bot, view)
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "reference" in calls[-1].payload["text"].lower()
