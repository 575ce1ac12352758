"""bot.listeners.common at unit level (issue 15, mutation testing): who an interactivity payload
says is asking, what a person is told when Slack's request lacks what its answer needs, and the
words for a card Slack did not take. The end-to-end tests reach these through signed requests;
these pin the cases they leave open (a user without a channel, a busy Slack's seconds, a card
posted before its events, the log lines that say which Slack call failed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.aep.errors import MalformedResponse
from bot.answers import Asker, Card, CardRequest, Viewer
from bot.customer import Customer
from bot.directory import Person
from bot.identity import IdentityRef
from bot.listeners.common import (
    _update_posted,
    answer_privately,
    answerable_asker,
    first_delivery,
    interactive_asker,
    post_card,
    post_failure_notice,
    private_teller,
    publish_home,
    refresh_home,
    refuse_incomplete,
    send_direct_message,
)
from bot.lookup import Looked
from bot.policy import Access, access_for
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


# --- said privately: on the response_url, else ephemerally in the thread -----------------------


async def test_a_private_answer_on_the_response_url_is_ephemeral_and_leaves_the_card_alone(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeSlack()
    replies = wire(services, monkeypatch, reply_ok=True, slack=slack)
    tell = private_teller(
        services,
        slack,  # type: ignore[arg-type]
        user_id="U0AGENT",
        channel_id="C0CH",
        thread_ts="1700000000.000100",
        response_url="https://hooks.example/r",
    )
    await tell({"text": "only for you"})
    assert replies == [
        (
            "https://hooks.example/r",
            {"text": "only for you", "response_type": "ephemeral", "replace_original": False},
        )
    ]
    assert slack.posted == []


async def test_without_a_response_url_the_answer_is_ephemeral_in_the_askers_thread(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeSlack()
    replies = wire(services, monkeypatch, reply_ok=True, slack=slack)
    tell = private_teller(
        services,
        slack,  # type: ignore[arg-type]
        user_id="U0AGENT",
        channel_id="C0CH",
        thread_ts="1700000000.000100",
    )
    await tell({"text": "only for you"})
    assert slack.posted == [
        {
            "channel": "C0CH",
            "user": "U0AGENT",
            "thread_ts": "1700000000.000100",
            "text": "only for you",
        }
    ]
    assert replies == []


async def test_a_private_answer_slack_refused_is_logged_with_its_code_and_never_raised(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slack = FakeSlack(fail=True)
    wire(services, monkeypatch, reply_ok=True, slack=slack)
    tell = private_teller(services, slack, user_id="U0AGENT", channel_id="C0CH")  # type: ignore[arg-type]
    await tell({"text": "only for you"})
    assert len(slack.posted) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["could not answer privately: no_answer"]


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


# --- a card posted into a conversation ----------------------------------------------------------

ASKER = Asker(team_id="T0TEAM", user_id="U0AGENT", channel_id="C0CH")
LOADING = "Loading recent activity"


def slack_error(code: str) -> SlackApiError:
    failed = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/test",
        req_args={},
        data={"ok": False, "error": code},
        headers={},
        status_code=200,
    )
    return SlackApiError(f"The request failed: {code}", failed)


class FakePosts:
    """Records chat.postMessage and chat.update; chat.postMessage raises `fail` when given."""

    def __init__(self, fail: SlackClientError | None = None) -> None:
        self.posted: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.fail = fail

    async def chat_postMessage(self, **kwargs: Any) -> dict[str, Any]:
        self.posted.append(kwargs)
        if self.fail is not None:
            raise self.fail
        return {"ok": True, "channel": kwargs["channel"], "ts": "1700000000.000300"}

    async def chat_update(self, **kwargs: Any) -> dict[str, Any]:
        self.updates.append(kwargs)
        return {"ok": True}


def events_late(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile is ready at once and its events come later (lookup_soon); a lookup that
    waits for everything answers with the events already in."""
    loading = Customer(
        profile_id="p-1",
        name=None,
        query=JANE,
        events_status="loading",
        fetched_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    complete = loading.model_copy(update={"events_status": "shown"})

    async def arrived() -> Customer:
        return complete

    async def lookup_soon(ref: IdentityRef, **kwargs: Any) -> Looked:
        return Looked(loading, later=arrived)

    async def lookup(ref: IdentityRef, **kwargs: Any) -> Customer:
        return complete

    monkeypatch.setattr(services.lookup, "lookup_soon", lookup_soon)
    monkeypatch.setattr(services.lookup, "lookup", lookup)


async def share(services: Services, client: FakePosts, told: list[dict[str, Any]]) -> bool:
    async def tell(message: dict[str, Any]) -> None:
        told.append(message)

    request = CardRequest(
        ref=JANE,
        classes=frozenset({"basic", "contact", "activity"}),
        reader=services.default_reader,
        surface="shared",
    )
    return await post_card(
        services,
        client,  # type: ignore[arg-type]
        ASKER,
        request,
        channel_id="C0CH",
        thread_ts=None,
        action="share",
        surface="share",
        tell=tell,
    )


def audit_records(services: Services) -> list[dict[str, Any]]:
    path = Path(services.settings.bot_audit_file)
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


async def test_a_posted_card_goes_before_its_late_events_which_then_replace_it_in_place(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_late(services, monkeypatch)
    client = FakePosts()
    told: list[dict[str, Any]] = []
    assert await share(services, client, told) is True
    [post] = client.posted
    [update] = client.updates
    assert LOADING in all_text(post)
    assert (update["channel"], update["ts"]) == ("C0CH", "1700000000.000300")
    assert LOADING not in all_text(update)
    assert told == []
    [record] = audit_records(services)
    assert (record["action"], record["surface"], record["outcome"]) == ("share", "share", "posted")


async def test_a_post_slack_refused_is_logged_with_the_surface_and_slacks_code(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    events_late(services, monkeypatch)
    client = FakePosts(fail=slack_error("not_in_channel"))
    told: list[dict[str, Any]] = []
    assert await share(services, client, told) is False
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["could not post a card into a conversation (share): not_in_channel"]
    assert told == [
        post_failure_notice(services, slack_error("not_in_channel"), services.default_reader)
    ]


# --- the App Home and direct messages -----------------------------------------------------------


class FakeTeamSlack:
    """Records which workspace each call was made for, and the calls; fails what it is told."""

    def __init__(
        self,
        *,
        publish_fails: SlackClientError | None = None,
        opened: dict[str, Any] | None = None,
        post_fails: SlackClientError | None = None,
    ) -> None:
        self.teams: list[str | None] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.publish_fails = publish_fails
        self.opened = opened if opened is not None else {"ok": True, "channel": {"id": "D0DM"}}
        self.post_fails = post_fails

    def for_team(self, team_id: str | None) -> FakeTeamSlack:
        self.teams.append(team_id)
        return self

    async def views_publish(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("views.publish", kwargs))
        if self.publish_fails is not None:
            raise self.publish_fails
        return {"ok": True}

    async def conversations_open(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("conversations.open", kwargs))
        return self.opened

    async def chat_postMessage(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("chat.postMessage", kwargs))
        if self.post_fails is not None:
            raise self.post_fails
        return {"ok": True}


def viewer(services: Services) -> Viewer:
    person = Person(user_id=ASKER.user_id, usergroups=frozenset())
    return Viewer(
        asker=ASKER,
        person=person,
        access=access_for(services.policy, person),
        reader=services.default_reader,
    )


async def test_the_home_is_published_to_the_viewer_in_their_own_workspace(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeTeamSlack()
    monkeypatch.setattr(services, "slack", slack)
    await publish_home(services, viewer(services))
    assert slack.teams == ["T0TEAM"]
    [(method, call)] = slack.calls
    assert (method, call["user_id"]) == ("views.publish", "U0AGENT")


async def test_a_home_slack_would_not_publish_is_logged_with_slacks_code_and_never_raised(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slack = FakeTeamSlack(publish_fails=slack_error("not_enabled"))
    monkeypatch.setattr(services, "slack", slack)
    await publish_home(services, viewer(services))
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["could not publish the App Home: not_enabled"]


@pytest.mark.parametrize(("action", "published"), [("lookup", True), ("share", False)])
async def test_a_posted_lookup_refreshes_the_home_its_asker_has_open_and_a_share_does_not(
    services: Services, monkeypatch: pytest.MonkeyPatch, action: str, published: bool
) -> None:
    events_late(services, monkeypatch)
    slack = FakeTeamSlack()
    monkeypatch.setattr(services, "slack", slack)

    async def person(team_id: str, user_id: str) -> Person:
        return Person(user_id=user_id, usergroups=frozenset())

    monkeypatch.setattr(services.directory, "person", person)
    await services.history.home_opened("T0TEAM", "U0AGENT")
    request = CardRequest(
        ref=JANE,
        classes=frozenset({"basic", "contact"}),
        reader=services.default_reader,
        surface="shared",
    )

    async def tell(message: dict[str, Any]) -> None:
        raise AssertionError(message)

    assert await post_card(
        services,
        FakePosts(),  # type: ignore[arg-type]
        ASKER,
        request,
        channel_id="C0CH",
        thread_ts=None,
        action=action,  # type: ignore[arg-type]
        surface="mention" if action == "lookup" else "share",
        tell=tell,
    )
    publishes = [call for method, call in slack.calls if method == "views.publish"]
    assert [call["user_id"] for call in publishes] == (["U0AGENT"] if published else [])


async def test_a_direct_message_goes_to_the_dm_slack_opens_in_the_askers_workspace(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeTeamSlack()
    monkeypatch.setattr(services, "slack", slack)
    assert await send_direct_message(services, ASKER, {"text": "your card"}) is None
    assert slack.teams == ["T0TEAM"]
    assert slack.calls == [
        ("conversations.open", {"users": "U0AGENT"}),
        ("chat.postMessage", {"channel": "D0DM", "text": "your card"}),
    ]


@pytest.mark.parametrize("channel", [{}, {"id": ""}, {"id": None}, {"id": 7}])
async def test_a_dm_slack_opened_without_naming_it_posts_nothing_and_is_logged(
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    channel: dict[str, Any],
) -> None:
    slack = FakeTeamSlack(opened={"ok": True, "channel": channel})
    monkeypatch.setattr(services, "slack", slack)
    failed = await send_direct_message(services, ASKER, {"text": "your card"})
    assert isinstance(failed, SlackNoAnswer)
    assert [method for method, _ in slack.calls] == ["conversations.open"]
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["conversations.open named no conversation"]


async def test_a_direct_message_slack_refused_is_logged_with_slacks_code_and_returned(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refused = slack_error("messages_tab_disabled")
    slack = FakeTeamSlack(post_fails=refused)
    monkeypatch.setattr(services, "slack", slack)
    assert await send_direct_message(services, ASKER, {"text": "your card"}) is refused
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["could not send a direct message: messages_tab_disabled"]


# --- a click that cannot be answered says which part Slack left out -----------------------------


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"response_url": "https://hooks.example/r", "channel": {"id": "C0CH"}}, "user"),
        ({"user": {"id": "U0AGENT"}, "channel": {"id": "C0CH"}}, "response_url"),
    ],
)
async def test_an_unanswerable_click_is_logged_with_what_slack_left_out(
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    body: dict[str, Any],
    missing: str,
) -> None:
    wire(services, monkeypatch, reply_ok=True, slack=FakeSlack())
    assert await answerable_asker(services, body, surface="button") is None
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == [f"button request without {missing} refused"]


# --- Slack's repeated deliveries of an event are answered once ----------------------------------


async def test_an_event_is_answered_once_by_its_event_id_whatever_it_is_about(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    assert await first_delivery(services, {"event_id": "Ev01"}, names="message 1.1") is True
    assert await first_delivery(services, {"event_id": "Ev01"}, names="message 2.2") is False
    assert await first_delivery(services, {"event_id": "Ev02"}, names="message 1.1") is True
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["repeated delivery of event Ev01 ignored"]


async def test_events_without_an_event_id_are_told_apart_by_what_they_are_about(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    assert await first_delivery(services, {}, names="message 1.1") is True
    assert await first_delivery(services, {}, names="message 2.2") is True
    assert await first_delivery(services, {"event_id": None}, names="message 1.1") is False
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.listeners.common"]
    assert messages == ["repeated delivery of event (without event_id) ignored"]


# --- a card answered privately ------------------------------------------------------------------


class Responses:
    """Records what was answered on the response_url (Bolt's `respond`)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def granted(services: Services, *classes: str) -> Viewer:
    person = Person(user_id=ASKER.user_id, usergroups=frozenset())
    return Viewer(
        asker=ASKER,
        person=person,
        access=Access(classes=frozenset(classes), roles=(), can_share=False, why="test"),  # type: ignore[arg-type]
        reader=services.default_reader,
    )


async def test_someone_granted_nothing_is_refused_ephemerally_beside_what_they_clicked(
    services: Services,
) -> None:
    respond = Responses()
    await answer_privately(services, granted(services), JANE, respond, action="lookup")
    [refusal] = respond.sent
    assert (refusal["response_type"], refusal["replace_original"]) == ("ephemeral", False)
    assert refusal["text"]
    [record] = audit_records(services)
    assert record["outcome"] == "no_grants:lookup"


async def test_a_private_card_comes_before_its_late_events_which_then_replace_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_late(services, monkeypatch)
    respond = Responses()
    viewer = granted(services, "basic", "contact", "activity")
    await answer_privately(services, viewer, JANE, respond, action="lookup")
    first, update = respond.sent
    assert (first["response_type"], first["replace_original"]) == ("ephemeral", False)
    assert LOADING in all_text(first)
    assert (update["response_type"], update["replace_original"]) == ("ephemeral", True)
    assert LOADING not in all_text(update)
    # The update is the whole card again, now with its events: not an empty replacement.
    assert update["blocks"] and first["blocks"][0] == update["blocks"][0]


@pytest.mark.parametrize(
    ("action", "found", "published"),
    [("lookup", True, True), ("refresh", True, False), ("lookup", False, False)],
)
async def test_a_private_lookup_that_found_someone_refreshes_the_home_its_viewer_has_open(
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    found: bool,
    published: bool,
) -> None:
    events_late(services, monkeypatch)
    if not found:

        async def malformed(*args: Any, **kwargs: Any) -> Any:
            raise MalformedResponse("Platform answered with an unreadable body")

        monkeypatch.setattr(services.lookup, "lookup_soon", malformed)
        monkeypatch.setattr(services.lookup, "lookup", malformed)
    slack = FakeTeamSlack()
    monkeypatch.setattr(services, "slack", slack)
    await services.history.home_opened("T0TEAM", "U0AGENT")
    viewer = granted(services, "basic", "contact")
    await answer_privately(services, viewer, JANE, Responses(), action=action)  # type: ignore[arg-type]
    publishes = [call for method, call in slack.calls if method == "views.publish"]
    assert [call["user_id"] for call in publishes] == (["U0AGENT"] if published else [])


async def test_the_home_of_someone_slack_named_no_team_for_is_refreshed_too(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeTeamSlack()
    monkeypatch.setattr(services, "slack", slack)

    async def person(team_id: str, user_id: str) -> Person:
        return Person(user_id=user_id, usergroups=frozenset())

    monkeypatch.setattr(services.directory, "person", person)
    await services.history.home_opened("", "U0AGENT")
    await refresh_home(
        services, None, asker=Asker(team_id=None, user_id="U0AGENT", channel_id=None)
    )
    assert [method for method, _ in slack.calls] == ["views.publish"]


async def test_with_history_off_or_nobody_named_no_home_is_published(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeTeamSlack()
    monkeypatch.setattr(services, "slack", slack)
    await services.history.home_opened("T0TEAM", "U0AGENT")
    await refresh_home(services, None)
    monkeypatch.setattr(services.history, "ttl", 0)  # BOT_HISTORY_TTL=0: the Home lists nothing
    await refresh_home(services, None, asker=ASKER)
    assert slack.calls == []
