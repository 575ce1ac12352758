"""Card buttons and the share modal (bot/listeners/actions.py): Refresh, pick, View details,
More events and Share, clicked through signed interactivity payloads."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from bot import ids
from bot.aep.errors import MalformedResponse
from bot.answers import reader_of
from bot.button_tokens import Place
from bot.cards import MODAL_EVENTS
from bot.demo import payloads as slack_payloads
from bot.demo.slack import RecordedCall
from bot.demo.workspace import with_reader
from bot.identity import IdentityRef
from bot.policy import share_access
from bot.share_metadata import ShareMetadata
from tests.support import (
    JANE,
    RunningBot,
    button,
    click,
    click_on,
    command,
    notice_text,
    settle,
    submit_share,
)


async def test_refresh_bypasses_the_cache_and_replaces_the_card(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await bot.send(command(bot, JANE))
    await bot.slack.wait_for("response_url", count=2)
    assert bot.sim.stats["profile"] == 1  # the second lookup was a cache hit
    refresh = button(card, ids.REFRESH)
    await click(bot, ids.REFRESH, refresh["value"])
    calls = await bot.slack.wait_for("response_url", count=3)
    assert calls[2].payload.get("replace_original") is True
    assert bot.sim.stats["profile"] == 2


async def test_more_events_opens_a_modal_with_the_events(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    more = button(card, ids.MORE_EVENTS)
    await click(bot, ids.MORE_EVENTS, more["value"])
    [opened] = await bot.slack.wait_for("views.open")
    assert opened.payload["view"]["type"] == "modal"  # a loading modal, opened at once
    [updated] = await bot.slack.wait_for("views.update")
    assert updated.payload["view_id"] == opened.response["view"]["id"]  # the modal it opened
    assert updated.payload["view"]["type"] == "modal"
    assert len(updated.payload["view"]["blocks"]) > 5


def lookups_read_nothing(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every lookup finds Platform's answer unreadable (MalformedResponse)."""

    async def malformed(*args: Any, **kwargs: Any) -> Any:
        raise MalformedResponse("Platform answered with an unreadable body")

    monkeypatch.setattr(bot.services.lookup, "lookup", malformed)
    monkeypatch.setattr(bot.services.lookup, "lookup_soon", malformed)


async def test_more_events_whose_lookup_fails_is_said_in_the_modal_and_audited(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")

    lookups_read_nothing(bot, monkeypatch)
    await click(bot, ids.MORE_EVENTS, button(card, ids.MORE_EVENTS)["value"])
    [updated] = await bot.slack.wait_for("views.update")
    assert "could not read" in json.dumps(updated.payload["view"]).lower()
    [record] = [r for r in bot.audit() if r["action"] == "more_events"]
    assert (record["surface"], record["outcome"]) == ("modal", "malformed")
    assert (record["namespace"], record["identity_hmac"]) == (
        "Email",
        bot.services.audit.identity_hmac(JANE),
    )


async def test_an_expired_button_says_so(bot: RunningBot) -> None:
    await click(bot, ids.REFRESH, "no-such-token")
    [answer] = await bot.slack.wait_for("response_url")
    assert answer.payload["text"] == notice_text(bot, "expired")
    assert (answer.payload["response_type"], answer.payload["replace_original"]) == (
        "ephemeral",
        False,
    )


async def test_a_modal_slack_would_not_open_is_said_privately(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    bot.slack.fail_next("views.open", error="expired_trigger_id")
    await click(bot, ids.MORE_EVENTS, button(card, ids.MORE_EVENTS)["value"])
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "click the button again" in calls[-1].payload["text"].lower()


async def test_a_click_only_resembling_a_pick_is_not_answered(bot: RunningBot) -> None:
    # The picker's action ids are PICK_IDENTITY_<n> (ids.PICK_IDENTITY_ACTION); nothing else
    # that merely starts alike is answered as a pick.
    token = await bot.services.buttons.remember(IdentityRef(namespace="email", value=JANE))
    await click(bot, f"{ids.PICK_IDENTITY}_0_evil", token)
    await settle(0.3)
    assert bot.slack.calls_to("response_url") == []
    assert bot.sim.stats["profile"] == 0


async def test_a_share_whose_lookup_fails_is_said_privately_and_audited_as_a_share(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"])
    [opened] = await bot.slack.wait_for("views.open")
    view = opened.payload["view"]

    lookups_read_nothing(bot, monkeypatch)
    await submit_share(bot, view)
    calls = await bot.slack.wait_for("response_url", count=2)
    assert "adobe" in calls[-1].payload["text"].lower()
    assert bot.slack.calls_to("chat.postMessage") == []
    [record] = [r for r in bot.audit() if r["action"] == "share"]
    assert (record["surface"], record["outcome"]) == ("share", "malformed")


async def test_a_click_slack_sent_without_a_user_is_refused_in_words_on_its_response_url(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.common")
    body = slack_payloads.block_action(
        action_id=ids.REFRESH,
        value=await bot.services.buttons.remember(IdentityRef(namespace="email", value=JANE)),
        user_id="U0AGENT",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    payload = json.loads(parse_qs(body)["payload"][0])
    del payload["user"]
    await bot.send(urlencode({"payload": json.dumps(payload)}))
    [told] = await bot.slack.wait_for("response_url")
    assert told.payload["text"] == notice_text(bot, "incomplete_request")
    assert (told.payload["response_type"], told.payload["replace_original"]) == (
        "ephemeral",
        False,
    )
    assert bot.sim.stats["profile"] == 0
    assert "button request without user refused" in caplog.messages


async def test_more_events_lists_more_events_than_the_card_holds(bot: RunningBot) -> None:
    """Jane has over a thousand events; the card shows the first BOT_EVENTS_LIMIT (10), the
    More events modal MODAL_EVENTS (50), each its own section (issue 15: a modal asking AEP for
    the card's number of events survived mutation testing)."""
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.MORE_EVENTS, button(card, ids.MORE_EVENTS)["value"])
    [updated] = await bot.slack.wait_for("views.update")
    sections = [b for b in updated.payload["view"]["blocks"] if b["type"] == "section"]
    assert len(sections) == MODAL_EVENTS


# --- Send to my DMs: what the clicker is told, privately, under the card they clicked ----------


def assert_told_privately(call: RecordedCall, text: str) -> None:
    """`call` says `text` to the clicker alone, as a new message under their card (the card
    stays where it was)."""
    assert call.payload["text"] == text
    assert (call.payload["response_type"], call.payload["replace_original"]) == (
        "ephemeral",
        False,
    )


async def test_send_to_my_dms_tells_the_clicker_privately_that_it_went(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.SEND_TO_DM, button(card, ids.SEND_TO_DM)["value"])
    await bot.slack.wait_for("chat.postMessage")
    told = await bot.slack.wait_for("response_url", count=2)
    assert_told_privately(told[1], notice_text(bot, "dm_sent"))


async def test_send_to_my_dms_slack_refused_says_why_privately_and_audits_slacks_code(
    bot: RunningBot,
) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    bot.slack.fail_next("chat.postMessage", error="channel_not_found")
    await click(bot, ids.SEND_TO_DM, button(card, ids.SEND_TO_DM)["value"])
    told = await bot.slack.wait_for("response_url", count=2)
    reason = "Slack refused it (channel not found). Try again in a minute."
    assert_told_privately(told[1], notice_text(bot, "dm_failed", reason=reason))
    [record] = [r for r in bot.audit() if r["action"] == "send_to_dm"]
    assert (record["surface"], record["outcome"]) == ("private", "post_failed:channel_not_found")


async def test_send_to_my_dms_whose_lookup_fails_says_so_privately_and_sends_nothing(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")

    lookups_read_nothing(bot, monkeypatch)
    await click(bot, ids.SEND_TO_DM, button(card, ids.SEND_TO_DM)["value"])
    told = await bot.slack.wait_for("response_url", count=2)
    assert_told_privately(told[1], notice_text(bot, "malformed"))
    assert bot.slack.calls_to("chat.postMessage") == []
    [record] = [r for r in bot.audit() if r["action"] == "send_to_dm"]
    assert (record["surface"], record["outcome"]) == ("private", "malformed")


async def test_send_to_my_dms_by_someone_without_grants_is_refused_privately(
    bot: RunningBot,
) -> None:
    """A card's token clicked by someone who may see nothing (say, their group was left since):
    nothing goes to their DMs; they are told privately how to get access."""
    token = await bot.services.buttons.remember(IdentityRef(namespace="email", value=JANE))
    await click(bot, ids.SEND_TO_DM, token, user="U0NOBODY")
    [told] = await bot.slack.wait_for("response_url")
    how = "Ask to be added to @support-team (support), @sales (sales), or @cs-managers (manager)."
    assert_told_privately(told, notice_text(bot, "refused_no_grants", how=how))
    await settle(0.1)
    assert bot.slack.calls_to("conversations.open") == []
    assert bot.slack.calls_to("chat.postMessage") == []


# --- the share modal's submission ------------------------------------------------------------


async def managers_share_modal(bot: RunningBot) -> dict[str, Any]:
    """The manager's Share modal for Jane's card in C0PRIVATE, as the bot opened it."""
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"])
    [opened] = await bot.slack.wait_for("views.open")
    view: dict[str, Any] = opened.payload["view"]
    return view


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ("", "private_metadata is not JSON"),
        ("[]", "private_metadata is not an object"),
        ('{"token": "t"}', "private_metadata lacks token or channel"),
    ],
)
async def test_a_share_submission_with_unreadable_metadata_posts_nothing_and_logs_why(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, metadata: str, why: str
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.actions")
    view = {"callback_id": ids.SHARE_MODAL, "private_metadata": metadata}
    response = await submit_share(bot, view, "U0MANAGER", "escalation")
    assert response.status_code == 200
    await settle(0.2)
    assert f"share submission with unreadable metadata: {why}" in caplog.messages
    for method in ("chat.postMessage", "chat.postEphemeral", "response_url"):
        assert bot.slack.calls_to(method) == []
    assert bot.audit() == []


async def test_a_share_submission_slack_sent_without_a_user_is_refused_on_the_cards_url(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.common")
    view = await managers_share_modal(bot)
    body = slack_payloads.view_submission(
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        values={},
        user_id="U0MANAGER",
    )
    payload = json.loads(parse_qs(body)["payload"][0])
    del payload["user"]
    await bot.send(urlencode({"payload": json.dumps(payload)}))
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert told.payload["text"] == notice_text(bot, "incomplete_request")
    assert "share request without user refused" in caplog.messages
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert [r for r in bot.audit() if r["action"] == "share"] == []


async def test_a_share_is_audited_with_its_workspace_sharer_and_channel(bot: RunningBot) -> None:
    view = await managers_share_modal(bot)
    await submit_share(bot, view, "U0MANAGER", "escalation")
    await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)
    [record] = [r for r in bot.audit() if r["action"] == "share"]
    assert (
        record["team"],
        record["actor"],
        record["channel"],
        record["surface"],
        record["outcome"],
    ) == ("T0DEMO", "U0MANAGER", "C0PRIVATE", "share", "posted")


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("  refund question  ", "Shared by <@U0MANAGER>: “refund question”"),  # trimmed
        ("   ", "Shared by <@U0MANAGER>"),  # blank: no reason
        (None, "Shared by <@U0MANAGER>"),  # the optional field left empty
    ],
)
async def test_the_shared_card_carries_the_sharers_words(
    bot: RunningBot, reason: str | None, said: str
) -> None:
    view = await managers_share_modal(bot)
    await submit_share(bot, view, "U0MANAGER", reason)
    [post] = await bot.slack.wait_for("chat.postMessage")
    contexts = [
        e["text"]
        for b in post.payload["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
        if ":busts_in_silhouette:" in e["text"]
    ]
    assert contexts == [f":busts_in_silhouette: {said}"]


def told_after_share(call: RecordedCall) -> tuple[str, str, bool]:
    return call.payload["text"], call.payload["response_type"], call.payload["replace_original"]


async def test_a_share_says_privately_where_it_went(bot: RunningBot) -> None:
    view = await managers_share_modal(bot)
    await submit_share(bot, view, "U0MANAGER", "escalation")
    await bot.slack.wait_for("chat.postMessage")
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert told_after_share(told) == (
        notice_text(bot, "share_done", channel="C0PRIVATE"),
        "ephemeral",
        False,
    )


async def test_a_share_of_a_card_whose_token_expired_says_so_and_posts_nothing(
    bot: RunningBot,
) -> None:
    metadata = ShareMetadata(
        token="no-such-token",
        channel_id="C0PRIVATE",
        thread_ts=None,
        response_url=bot.slack.response_url(),
    ).to_json()
    await submit_share(bot, {"callback_id": ids.SHARE_MODAL, "private_metadata": metadata})
    [told] = await bot.slack.wait_for("response_url")
    assert told_after_share(told) == (notice_text(bot, "expired"), "ephemeral", False)
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    assert bot.audit() == []


@pytest.mark.parametrize(
    "change",
    [{"channel": "C0SUPPORT"}, {"thread_ts": "1714000999.000100"}],
    ids=["another-channel", "another-thread"],
)
async def test_a_share_whose_metadata_names_another_place_than_the_cards_is_refused(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, change: dict[str, str]
) -> None:
    """The place comes from the card's token: a submission naming another conversation (or
    another thread than the card's) posts nothing, is audited as refused and logged."""
    caplog.set_level(logging.WARNING, logger="bot.listeners.actions")
    card_place = {"channel": "C0PRIVATE", "thread_ts": "1714000500.000200"}
    token = await bot.services.buttons.remember(
        IdentityRef(namespace="Email", value=JANE),
        place=Place(card_place["channel"], card_place["thread_ts"]),
    )
    metadata = json.dumps(
        {"token": token, **card_place, "response_url": bot.slack.response_url(), **change}
    )
    await submit_share(bot, {"callback_id": ids.SHARE_MODAL, "private_metadata": metadata})
    [told] = await bot.slack.wait_for("response_url")
    assert told_after_share(told) == (notice_text(bot, "expired"), "ephemeral", False)
    assert "share submission for another place than its card's refused" in caplog.messages
    await settle(0.2)
    assert bot.slack.calls_to("chat.postMessage") == []
    [record] = bot.audit()
    assert (record["action"], record["surface"], record["outcome"], record["namespace"]) == (
        "refusal",
        "share",
        "channel_refused",
        "Email",
    )


async def test_a_share_by_someone_who_may_not_share_there_says_why_exactly(
    bot: RunningBot,
) -> None:
    view = await managers_share_modal(bot)
    await submit_share(bot, view, "U0AGENT", "forged")
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    agent = await bot.services.directory.person("T0DEMO", "U0AGENT")
    channel = await bot.services.directory.channel("T0DEMO", "C0PRIVATE")
    reader = bot.services.default_reader
    reason = share_access(bot.services.policy, agent, channel, reader).reason
    assert reason
    assert told_after_share(told) == (
        notice_text(bot, "refused_channel", reason=reason),
        "ephemeral",
        False,
    )
    [record] = [r for r in bot.audit() if r["action"] == "refusal"]
    assert (record["actor"], record["surface"], record["outcome"], record["namespace"]) == (
        "U0AGENT",
        "share",
        "channel_refused",
        "Email",
    )
    assert record["identity_hmac"] == bot.services.audit.identity_hmac(JANE)


async def test_a_share_without_a_response_url_is_told_as_an_ephemeral_in_the_channel(
    bot: RunningBot,
) -> None:
    view = await managers_share_modal(bot)
    metadata = json.loads(view["private_metadata"])
    metadata["response_url"] = None
    view = {**view, "private_metadata": json.dumps(metadata)}
    await submit_share(bot, view, "U0MANAGER", "escalation")
    await bot.slack.wait_for("chat.postMessage")
    [told] = await bot.slack.wait_for("chat.postEphemeral")
    assert (told.payload["channel"], told.payload["user"], told.payload["text"]) == (
        "C0PRIVATE",
        "U0MANAGER",
        notice_text(bot, "share_done", channel="C0PRIVATE"),
    )
    assert told.payload.get("thread_ts") is None


async def test_a_share_whose_private_answer_slack_refuses_logs_slacks_code(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.common")
    view = await managers_share_modal(bot)
    metadata = json.loads(view["private_metadata"])
    metadata["response_url"] = None
    view = {**view, "private_metadata": json.dumps(metadata)}
    bot.slack.fail_next("chat.postEphemeral", error="user_not_in_channel")
    await submit_share(bot, view, "U0MANAGER", "escalation")
    await bot.slack.wait_for("chat.postEphemeral")
    await settle(0.2)
    assert "could not answer privately: user_not_in_channel" in caplog.messages


# --- the Share click: checked before any modal opens ------------------------------------------


@pytest.mark.parametrize(
    ("channel", "name", "kind", "hidden"),
    [
        ("C0PRIVATE", "escalations", "private", {"scores", "financial"}),
        # A public channel: capped at basic by the policy.
        (
            "C0PUBLIC",
            "deals",
            "public",
            {"contact", "identifiers", "activity", "audiences", "scores", "financial"},
        ),
        ("D0MANAGER", "", "im", set()),  # a DM has no name: named by its kind
    ],
)
async def test_the_share_modal_names_the_conversation_and_what_the_posted_card_hides(
    bot: RunningBot, channel: str, name: str, kind: str, hidden: set[str]
) -> None:
    """The manager sees scores and financial data; #escalations' readers (an agent too) may
    not: the modal says so, and keeps the card's token, place and the click's response_url."""
    await bot.send(command(bot, JANE, channel=channel))
    [card] = await bot.slack.wait_for("response_url")
    token = button(card, ids.SHARE)["value"]
    url = bot.slack.response_url()
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.SHARE,
            value=token,
            user_id="U0MANAGER",
            channel_id=channel,
            response_url=url,
        )
    )
    [opened] = await bot.slack.wait_for("views.open")
    expected = bot.services.cards.share_modal(
        token=token,
        channel_id=channel,
        thread_ts=None,
        response_url=url,
        channel_name=name,
        channel_kind=kind,
        hidden=hidden,
        reader=bot.services.default_reader,
    )
    assert opened.payload["view"] == expected


async def test_a_share_click_by_someone_who_may_not_share_is_refused_privately_and_audited(
    bot: RunningBot,
) -> None:
    # The agent's card offers no Share: a forged click with a token of Jane's card.
    token = await bot.services.buttons.remember(
        IdentityRef(namespace="Email", value=JANE), place=Place("C0PRIVATE", None)
    )
    await click(bot, ids.SHARE, token, user="U0AGENT")
    [told] = await bot.slack.wait_for("response_url")
    assert told_after_share(told) == (notice_text(bot, "share_not_allowed"), "ephemeral", False)
    await settle(0.2)
    assert bot.slack.calls_to("views.open") == []
    [record] = [r for r in bot.audit() if r["action"] == "refusal"]
    assert (record["actor"], record["surface"], record["outcome"]) == (
        "U0AGENT",
        "share",
        "share_not_allowed",
    )


async def test_a_share_click_where_the_card_may_not_go_says_why_exactly_and_is_audited(
    bot: RunningBot,
) -> None:
    await bot.send(command(bot, JANE, channel="C0CONNECT"))
    [card] = await bot.slack.wait_for("response_url")
    await click(bot, ids.SHARE, button(card, ids.REFRESH)["value"], channel="C0CONNECT")
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    manager = await bot.services.directory.person("T0DEMO", "U0MANAGER")
    channel = await bot.services.directory.channel("T0DEMO", "C0CONNECT")
    reason = share_access(bot.services.policy, manager, channel, bot.services.default_reader)
    assert reason.reason
    assert told_after_share(told) == (
        notice_text(bot, "share_refused", reason=reason.reason),
        "ephemeral",
        False,
    )
    await settle(0.2)
    assert bot.slack.calls_to("views.open") == []
    [record] = [r for r in bot.audit() if r["action"] == "refusal"]
    assert (record["surface"], record["outcome"], record["namespace"]) == (
        "share",
        "channel_refused",
        "Email",
    )


async def test_a_share_refused_to_a_dutch_sharer_says_why_in_dutch(bot: RunningBot) -> None:
    bot.slack.workspace = with_reader(
        bot.slack.workspace, "U0AGENT", locale="nl-NL", tz="Europe/Amsterdam"
    )
    view = await managers_share_modal(bot)
    await submit_share(bot, view, "U0AGENT", "forged")
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    agent = await bot.services.directory.person("T0DEMO", "U0AGENT")
    channel = await bot.services.directory.channel("T0DEMO", "C0PRIVATE")
    dutch = reader_of(bot.services, agent)
    reason = share_access(bot.services.policy, agent, channel, dutch).reason
    assert reason != share_access(bot.services.policy, agent, channel).reason  # not English
    expected = bot.services.cards.notice("refused_channel", reader=dutch, reason=reason)
    assert told.payload["text"] == expected["text"]


async def test_a_modal_slack_would_not_open_is_said_exactly_and_logged_with_slacks_code(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.listeners.actions")
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    bot.slack.fail_next("views.open", error="expired_trigger_id")
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"])
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert told_after_share(told) == (notice_text(bot, "window_failed"), "ephemeral", False)
    assert "could not open a modal: expired_trigger_id" in caplog.messages


async def test_open_in_aep_is_acknowledged_and_nothing_else(bot: RunningBot) -> None:
    """A link button: Slack opens the URL; the bot only acknowledges the click."""
    token = await bot.services.buttons.remember(IdentityRef(namespace="Email", value=JANE))
    response = await click(bot, ids.OPEN_IN_AEP, token)
    assert (response.status_code, response.text) == (200, "")
    await settle(0.2)
    assert bot.slack.calls_to("response_url") == []
    assert bot.sim.stats["profile"] == 0


async def test_view_details_on_a_shared_card_offers_share_and_send_to_my_dms_there(
    bot: RunningBot,
) -> None:
    """The posted card keeps where it was shared: a sharer's View details on it answers with a
    card that may be shared there again, or sent to their DMs."""
    view = await managers_share_modal(bot)
    await submit_share(bot, view, "U0MANAGER", "escalation")
    [post] = await bot.slack.wait_for("chat.postMessage")
    await bot.slack.wait_for("response_url", count=2)
    await click_on(bot, post, ids.VIEW_DETAILS, user="U0MANAGER")
    details = (await bot.slack.wait_for("response_url", count=3))[-1]
    offered = [
        e["action_id"]
        for b in details.payload["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert ids.SHARE in offered and ids.SEND_TO_DM in offered


async def test_a_modal_slack_is_too_busy_to_open_says_when_to_try_again(bot: RunningBot) -> None:
    await bot.send(command(bot, JANE))
    [card] = await bot.slack.wait_for("response_url")
    bot.slack.fail_next("views.open", status=429, retry_after=30)
    await click(bot, ids.SHARE, button(card, ids.SHARE)["value"])
    told = (await bot.slack.wait_for("response_url", count=2))[-1]
    assert told_after_share(told) == (
        notice_text(bot, "slack_busy", seconds=30),
        "ephemeral",
        False,
    )
