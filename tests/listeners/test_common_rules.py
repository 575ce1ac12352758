"""bot.listeners.common at unit level (issue 15, mutation testing): who an interactivity payload
says is asking, what a person is told when Slack's request lacks what its answer needs, and the
words for a card Slack did not take. The end-to-end tests reach these through signed requests;
these pin the cases they leave open (a user without a channel, a busy Slack's seconds)."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackClientError

from bot.answers import Card
from bot.identity import IdentityRef
from bot.listeners.common import (
    _update_posted,
    interactive_asker,
    post_failure_notice,
    refuse_incomplete,
)
from bot.services import Services
from bot.slack_web import SlackBusy, SlackNoAnswer


class FakeSlack:
    """Records chat.postEphemeral; fails it when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.posted: list[dict[str, Any]] = []
        self.fail = fail

    async def chat_postEphemeral(self, **kwargs: Any) -> dict[str, Any]:
        self.posted.append(kwargs)
        if self.fail:
            raise SlackNoAnswer(method="chat.postEphemeral", cause="test")
        return {"ok": True}


def wire(services: Services, monkeypatch: pytest.MonkeyPatch, *, reply_ok: bool, slack: FakeSlack):
    replies: list[tuple[str, dict[str, Any]]] = []

    async def send_reply(url: str, payload: dict[str, Any]) -> bool:
        replies.append((url, payload))
        return reply_ok

    monkeypatch.setattr(services, "send_reply", send_reply)
    monkeypatch.setattr(services, "slack", slack)
    return replies


# --- who is asking ------------------------------------------------------------------------------


def test_the_asker_of_a_click_is_the_user_slack_names_in_its_team_and_channel() -> None:
    body = {
        "user": {"id": "U0AGENT", "team_id": "T0USER"},
        "channel": {"id": "C0CH"},
        "team": {"id": "T0TEAM"},
    }
    asker = interactive_asker(body)
    assert asker is not None
    assert (asker.user_id, asker.channel_id, asker.team_id) == ("U0AGENT", "C0CH", "T0TEAM")


def test_without_channel_or_team_the_container_and_the_users_team_say_where() -> None:
    body = {"user": {"id": "U0AGENT", "team_id": "T0USER"}, "container": {"channel_id": "C0BOX"}}
    asker = interactive_asker(body)
    assert asker is not None
    assert (asker.user_id, asker.channel_id, asker.team_id) == ("U0AGENT", "C0BOX", "T0USER")


@pytest.mark.parametrize(
    "body", [{}, {"user": None}, {"user": "U0AGENT"}, {"user": {}}, {"user": {"id": ""}}]
)
def test_a_payload_that_names_nobody_has_no_asker(body: dict[str, Any]) -> None:
    assert interactive_asker(body) is None


# --- an incomplete request is refused in words --------------------------------------------------


async def test_an_incomplete_request_is_told_on_the_response_url_when_it_works(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeSlack()
    replies = wire(services, monkeypatch, reply_ok=True, slack=slack)
    await refuse_incomplete(
        services,
        surface="button",
        missing="user",
        response_url="https://hooks.example/r",
        user_id="U0AGENT",
        channel_id="C0CH",
    )
    [(url, payload)] = replies
    assert url == "https://hooks.example/r"
    assert payload["response_type"] == "ephemeral" and payload["replace_original"] is False
    assert (
        payload["text"]
        == services.cards.notice("incomplete_request", reader=services.default_reader)["text"]
    )
    assert slack.posted == []


async def test_when_the_response_url_fails_the_person_is_told_ephemerally_in_their_channel(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeSlack()
    wire(services, monkeypatch, reply_ok=False, slack=slack)
    await refuse_incomplete(
        services,
        surface="button",
        missing="x",
        response_url="https://hooks.example/r",
        user_id="U0AGENT",
        channel_id="C0CH",
    )
    [posted] = slack.posted
    assert posted["channel"] == "C0CH" and posted["user"] == "U0AGENT"
    assert (
        posted["text"]
        == services.cards.notice("incomplete_request", reader=services.default_reader)["text"]
    )


@pytest.mark.parametrize(
    ("user_id", "channel_id"), [("U0AGENT", None), (None, "C0CH"), (None, None)]
)
async def test_without_both_a_user_and_a_channel_nothing_is_posted(
    services: Services, monkeypatch: pytest.MonkeyPatch, user_id: str | None, channel_id: str | None
) -> None:
    slack = FakeSlack()
    replies = wire(services, monkeypatch, reply_ok=False, slack=slack)
    await refuse_incomplete(
        services,
        surface="button",
        missing="x",
        response_url=None,
        user_id=user_id,
        channel_id=channel_id,
    )
    assert slack.posted == [] and replies == []


async def test_a_failed_ephemeral_refusal_is_logged_with_the_surface_and_never_raised(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slack = FakeSlack(fail=True)
    wire(services, monkeypatch, reply_ok=False, slack=slack)
    await refuse_incomplete(
        services,
        surface="shortcut",
        missing="response_url",
        response_url=None,
        user_id="U0AGENT",
        channel_id="C0CH",
    )
    messages = [r.getMessage() for r in caplog.records]
    assert "shortcut request without response_url refused" in messages
    assert "could not say that the shortcut request was refused: SlackNoAnswer" in messages


# --- a card Slack did not take ------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "seconds"), [(0.2, 1), (7, 7), (41.5, 42)])
def test_a_rate_limited_post_tells_the_person_slack_is_busy_and_for_how_long(
    services: Services, retry_after: float, seconds: int
) -> None:
    exc = SlackBusy(method="chat.postMessage", retry_after=retry_after)
    message = post_failure_notice(services, exc, services.default_reader)
    assert message == services.cards.notice(
        "slack_busy", reader=services.default_reader, seconds=seconds
    )
    assert str(seconds) in message["text"]


def test_any_other_refused_post_says_it_was_not_posted_and_why(services: Services) -> None:
    exc: SlackClientError = SlackNoAnswer(method="chat.postMessage", cause="hang")
    message = post_failure_notice(services, exc, services.default_reader)
    busy = services.cards.notice("slack_busy", reader=services.default_reader, seconds=1)
    assert message["text"] != busy["text"]
    assert message["text"]


# --- a posted card whose events came late is updated in place -----------------------------------


class FakeUpdates:
    """Records chat.update; fails it when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.updates: list[dict[str, Any]] = []
        self.fail = fail

    async def chat_update(self, **kwargs: Any) -> dict[str, Any]:
        self.updates.append(kwargs)
        if self.fail:
            raise SlackNoAnswer(method="chat.update", cause="test")
        return {"ok": True}


JANE = IdentityRef(namespace="email", value="jane.doe@example.com")
WITH_EVENTS = Card(message={"text": "card with events", "blocks": []}, ref=JANE)


async def _later() -> Card:
    return WITH_EVENTS


async def test_a_posted_card_is_replaced_by_its_version_with_events_in_the_same_message() -> None:
    client = FakeUpdates()
    card = Card(message={"text": "events loading"}, ref=JANE, later=_later)
    await _update_posted(client, card, channel="C0CH", ts="1700000000.000100")  # type: ignore[arg-type]
    assert client.updates == [
        {"channel": "C0CH", "ts": "1700000000.000100", "text": "card with events", "blocks": []}
    ]


@pytest.mark.parametrize("ts", [None, "", 1700000000])
async def test_without_the_posted_messages_ts_nothing_is_updated(ts: object) -> None:
    client = FakeUpdates()
    card = Card(message={"text": "events loading"}, ref=JANE, later=_later)
    await _update_posted(client, card, channel="C0CH", ts=ts)  # type: ignore[arg-type]
    assert client.updates == []


async def test_a_card_without_late_events_is_not_updated() -> None:
    client = FakeUpdates()
    await _update_posted(client, WITH_EVENTS, channel="C0CH", ts="1.2")  # type: ignore[arg-type]
    assert client.updates == []


async def test_a_failed_update_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeUpdates(fail=True)
    card = Card(message={"text": "events loading"}, ref=JANE, later=_later)
    await _update_posted(client, card, channel="C0CH", ts="1.2")  # type: ignore[arg-type]
    assert len(client.updates) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "could not update a posted card with its events: no_answer" in messages
