"""The Slack directory: people and conversations from the Web API, cached, failing closed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from unittest.mock import AsyncMock

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.directory import MemoryJsonStore, SlackDirectory
from bot.policy import Person, audience_access
from bot.policy_file import load_policy

TEAM = "T0DEMO"

USERS: dict[str, dict[str, Any]] = {
    "U0AGENT": {"id": "U0AGENT", "team_id": TEAM},
    "U0SALES": {"id": "U0SALES", "team_id": TEAM},
    "U0MANAGER": {"id": "U0MANAGER", "team_id": TEAM},
    "U0GUEST": {"id": "U0GUEST", "team_id": TEAM, "is_restricted": True},
    "U0SINGLE": {"id": "U0SINGLE", "team_id": TEAM, "is_ultra_restricted": True},
    "U0GONE": {"id": "U0GONE", "team_id": TEAM, "deleted": True},
    "U0BOT": {"id": "U0BOT", "team_id": TEAM, "is_bot": True},
    "U0OTHERBOT": {"id": "U0OTHERBOT", "team_id": TEAM, "is_bot": True},
    "U0VISITOR": {"id": "U0VISITOR", "team_id": "T0OTHER"},
    "U0GRID": {"id": "U0GRID", "team_id": "T0HOME", "enterprise_user": {"teams": ["T0HOME", TEAM]}},
}

GROUPS = [
    {"id": "S0SUPPORT", "handle": "support-team", "users": ["U0AGENT", "U0GUEST"]},
    {"id": "S0SALES", "handle": "sales", "users": ["U0SALES"]},
    {"id": "S0MANAGERS", "handle": "CS-Managers", "users": ["U0MANAGER", "U0GRID"]},
    {"id": "S0OLD", "handle": "old-team", "users": ["U0AGENT"], "date_delete": 1700000000},
]


def response(data: Mapping[str, Any]) -> AsyncSlackResponse:
    return AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/test",
        req_args={},
        data={"ok": True, **data},
        headers={},
        status_code=200,
    )


def slack_error(code: str, status: int = 200) -> SlackApiError:
    failed = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/test",
        req_args={},
        data={"ok": False, "error": code},
        headers={},
        status_code=status,
    )
    return SlackApiError(f"The request failed: {code}", failed)


class FakeSlack:
    """Answers the four methods the directory uses from in-memory users, groups and channels."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[str]] = {}
        self.page_size_seen: list[int | None] = []
        self.client = AsyncMock(spec=AsyncWebClient)
        self.client.users_info.side_effect = self.users_info
        self.client.usergroups_list.side_effect = self.usergroups_list
        self.client.conversations_info.side_effect = self.conversations_info
        self.client.conversations_members.side_effect = self.conversations_members

    async def users_info(
        self, *, user: str, include_locale: bool = False, **_: Any
    ) -> AsyncSlackResponse:
        await asyncio.sleep(0)  # a real call yields to the event loop while it waits
        if user == "U0HIDDEN":
            raise slack_error("user_not_visible")
        if user not in USERS:
            raise slack_error("user_not_found")
        # As Slack: `tz` always, `locale` only when asked for.
        extra = {"tz": "Europe/Amsterdam", **({"locale": "nl-NL"} if include_locale else {})}
        return response({"user": {**USERS[user], **extra}})

    async def usergroups_list(self, **kwargs: Any) -> AsyncSlackResponse:
        await asyncio.sleep(0)
        assert kwargs.get("include_users") is True
        return response({"usergroups": GROUPS})

    async def conversations_info(self, *, channel: str, **_: Any) -> AsyncSlackResponse:
        if channel not in self.channels:
            raise slack_error("channel_not_found")
        return response({"channel": {"id": channel, **self.channels[channel]}})

    async def conversations_members(
        self, *, channel: str, limit: int | None = None, cursor: str | None = None, **_: Any
    ) -> AsyncSlackResponse:
        self.page_size_seen.append(limit)
        ids = self.members[channel]
        start = int(cursor or 0)
        size = 2  # small pages, so a three-person channel needs two calls
        page = ids[start : start + size]
        following = str(start + size) if start + size < len(ids) else ""
        return response({"members": page, "response_metadata": {"next_cursor": following}})

    def add_channel(self, channel_id: str, members: list[str], **info: Any) -> None:
        self.channels[channel_id] = info
        self.members[channel_id] = members


@pytest.fixture
def slack() -> FakeSlack:
    return FakeSlack()


@pytest.fixture
def directory(slack: FakeSlack) -> SlackDirectory:
    return SlackDirectory(
        client=slack.client, store=MemoryJsonStore(), ttl=300, bot_user_id="U0BOT"
    )


# --- people ---------------------------------------------------------------------------------


async def test_person_has_group_handles_and_flags(directory: SlackDirectory) -> None:
    agent = await directory.person(TEAM, "U0AGENT")
    assert agent == Person(
        user_id="U0AGENT",
        usergroups=frozenset({"support-team"}),
        locale="nl-NL",
        tz="Europe/Amsterdam",
    )
    manager = await directory.person(TEAM, "U0MANAGER")
    assert manager.usergroups == {"cs-managers"}  # handles compared lower-case
    guest = await directory.person(TEAM, "U0GUEST")
    assert guest.is_restricted and guest.usergroups == {"support-team"}
    assert (await directory.person(TEAM, "U0SINGLE")).is_ultra_restricted


async def test_disabled_groups_are_ignored(directory: SlackDirectory) -> None:
    assert "old-team" not in (await directory.person(TEAM, "U0AGENT")).usergroups


async def test_second_lookup_makes_no_calls(directory: SlackDirectory, slack: FakeSlack) -> None:
    first = await directory.person(TEAM, "U0AGENT")
    calls = dict(directory.api_calls)
    assert calls == {"users.info": 1, "usergroups.list": 1}
    assert await directory.person(TEAM, "U0AGENT") == first
    assert directory.api_calls == calls
    assert slack.client.users_info.await_count == 1


async def test_one_usergroups_call_serves_a_burst(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    people = await asyncio.gather(
        *(directory.person(TEAM, u) for u in ["U0AGENT", "U0SALES", "U0MANAGER", "U0GUEST"] * 3)
    )
    assert people[1].usergroups == {"sales"}
    assert slack.client.usergroups_list.await_count == 1
    assert directory.api_calls["usergroups.list"] == 1


async def test_cache_is_shared_through_the_store(slack: FakeSlack) -> None:
    store = MemoryJsonStore()
    await SlackDirectory(client=slack.client, store=store).person(TEAM, "U0AGENT")
    again = SlackDirectory(client=slack.client, store=store)
    assert (await again.person(TEAM, "U0AGENT")).usergroups == {"support-team"}
    assert sum(again.api_calls.values()) == 0


async def test_a_person_comes_with_their_slack_locale_and_zone_cached_with_the_rest(
    slack: FakeSlack,
) -> None:
    store = MemoryJsonStore()
    person = await SlackDirectory(client=slack.client, store=store).person(TEAM, "U0AGENT")
    assert (person.locale, person.tz) == ("nl-NL", "Europe/Amsterdam")
    again = SlackDirectory(client=slack.client, store=store)
    assert (await again.person(TEAM, "U0AGENT")).locale == "nl-NL"
    assert sum(again.api_calls.values()) == 0


async def test_an_entry_of_the_shape_before_locales_is_a_miss(slack: FakeSlack) -> None:
    store = MemoryJsonStore()
    flags = {"known": True, "is_bot": False, "deleted": False, "is_restricted": False}
    old = {**flags, "is_ultra_restricted": False, "external": False}
    await store.set_json(f"slack:v3:user:{TEAM}:U0AGENT", old, 300)
    directory = SlackDirectory(client=slack.client, store=store)
    assert (await directory.person(TEAM, "U0AGENT")).locale == "nl-NL"
    assert directory.api_calls["users.info"] == 1


async def test_cache_expires_after_ttl(slack: FakeSlack) -> None:
    now = [1000.0]
    store = MemoryJsonStore(clock=lambda: now[0])
    directory = SlackDirectory(client=slack.client, store=store, ttl=60)
    await directory.person(TEAM, "U0AGENT")
    now[0] += 59
    await directory.person(TEAM, "U0AGENT")
    assert directory.api_calls["users.info"] == 1
    now[0] += 2
    await directory.person(TEAM, "U0AGENT")
    assert directory.api_calls["users.info"] == 2


@pytest.mark.parametrize("user_id", ["U0NOSUCH", "U0HIDDEN"])
async def test_users_slack_will_not_describe_are_unknown_and_cached(
    directory: SlackDirectory, user_id: str
) -> None:
    stranger = await directory.person(TEAM, user_id)
    assert stranger.known is False and stranger.usergroups == frozenset()
    await directory.person(TEAM, user_id)
    assert directory.api_calls["users.info"] == 1


async def test_transient_failures_are_unknown_but_not_cached(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    slack.client.users_info.side_effect = slack_error("ratelimited", status=429)
    assert (await directory.person(TEAM, "U0AGENT")).known is False
    slack.client.users_info.side_effect = slack.users_info
    assert (await directory.person(TEAM, "U0AGENT")).known is True
    assert directory.api_calls["users.info"] == 2


async def test_accounts_of_other_teams_are_external(directory: SlackDirectory) -> None:
    assert (await directory.person(TEAM, "U0VISITOR")).external is True
    grid = await directory.person(TEAM, "U0GRID")
    assert grid.external is False and grid.usergroups == {"cs-managers"}


async def test_usergroups_failure_gives_no_groups_and_is_not_retried_at_once(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    slack.client.usergroups_list.side_effect = slack_error("missing_scope")
    assert (await directory.person(TEAM, "U0AGENT")).usergroups == frozenset()
    assert (await directory.person(TEAM, "U0SALES")).usergroups == frozenset()
    assert directory.api_calls["usergroups.list"] == 1


async def test_the_bots_own_user_needs_no_call(directory: SlackDirectory) -> None:
    assert (await directory.person(TEAM, "U0BOT")).is_bot
    assert directory.api_calls["users.info"] == 0


# --- conversations --------------------------------------------------------------------------


async def test_channel_members_are_paginated_and_bots_left_out(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    slack.add_channel(
        "C0PRIVATE",
        ["U0AGENT", "U0BOT", "U0MANAGER", "U0OTHERBOT", "U0GONE"],
        is_private=True,
    )
    channel = await directory.channel(TEAM, "C0PRIVATE")
    assert channel.inspectable and channel.kind == "private" and not channel.external
    assert [m.user_id for m in channel.members] == ["U0AGENT", "U0MANAGER"]
    assert directory.api_calls["conversations.members"] == 3
    assert slack.page_size_seen == [200, 200, 200]
    cursors = [c.kwargs.get("cursor") for c in slack.client.conversations_members.await_args_list]
    assert cursors == [None, "2", "4"]
    # The app's own bot user is known without users.info; other bots are found through it.
    users_asked = {c.kwargs["user"] for c in slack.client.users_info.await_args_list}
    assert users_asked == {"U0AGENT", "U0MANAGER", "U0OTHERBOT", "U0GONE"}


async def test_warm_channel_makes_no_calls(directory: SlackDirectory, slack: FakeSlack) -> None:
    slack.add_channel("C0PUBLIC", ["U0AGENT", "U0SALES", "U0MANAGER", "U0BOT"])
    cold = await directory.channel(TEAM, "C0PUBLIC")
    assert dict(directory.api_calls) == {
        "conversations.info": 1,
        "conversations.members": 2,
        "users.info": 3,
        "usergroups.list": 1,
    }
    before = dict(directory.api_calls)
    warm = await directory.channel(TEAM, "C0PUBLIC")
    assert warm == cold
    assert directory.api_calls == before


@pytest.mark.parametrize(
    ("info", "kind"),
    [
        ({}, "public"),
        ({"is_channel": True, "is_private": True}, "private"),
        ({"is_group": True}, "private"),
        ({"is_im": True}, "im"),
        ({"is_mpim": True, "is_private": True}, "mpim"),
    ],
)
async def test_channel_kinds(
    directory: SlackDirectory, slack: FakeSlack, info: dict[str, Any], kind: str
) -> None:
    slack.add_channel("C1", ["U0MANAGER"], **info)
    assert (await directory.channel(TEAM, "C1")).kind == kind


@pytest.mark.parametrize(
    ("info", "external"),
    [
        ({"is_ext_shared": True}, True),
        ({"is_pending_ext_shared": True}, True),
        ({"is_shared": True, "shared_team_ids": [TEAM, "T0OTHER"]}, True),
        ({"context_team_id": "T0OTHER"}, True),
        ({"is_shared": True, "shared_team_ids": [TEAM]}, False),
        ({"context_team_id": TEAM, "shared_team_ids": [TEAM]}, False),
    ],
)
async def test_slack_connect_is_detected(
    directory: SlackDirectory, slack: FakeSlack, info: dict[str, Any], external: bool
) -> None:
    slack.add_channel("C1", ["U0MANAGER"], **info)
    assert (await directory.channel(TEAM, "C1")).external is external


async def test_external_members_who_cannot_be_looked_up_stay_in_the_audience(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    slack.add_channel("C0CONNECT", ["U0MANAGER", "U0NOSUCH", "U0BOT"], is_ext_shared=True)
    channel = await directory.channel(TEAM, "C0CONNECT")
    assert [(m.user_id, m.known) for m in channel.members] == [
        ("U0MANAGER", True),
        ("U0NOSUCH", False),
    ]


async def test_channel_slack_will_not_describe_is_uninspectable(
    directory: SlackDirectory,
) -> None:
    channel = await directory.channel(TEAM, "C0SECRET")
    assert channel.inspectable is False and channel.error == "channel_not_found"
    assert channel.members == ()
    decision = audience_access(load_policy(None, demo=True), channel)
    assert decision.refused and "The bot is not in this conversation" in decision.reason
    assert "channel_not_found" not in decision.reason


async def test_members_error_is_uninspectable_and_not_cached(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    slack.add_channel("C1", ["U0MANAGER"], is_private=True)
    slack.client.conversations_members.side_effect = slack_error("not_in_channel")
    assert (await directory.channel(TEAM, "C1")).error == "not_in_channel"
    slack.client.conversations_members.side_effect = slack.conversations_members
    assert (await directory.channel(TEAM, "C1")).inspectable is True


async def test_cache_entry_of_another_shape_is_a_miss(slack: FakeSlack) -> None:
    store = MemoryJsonStore()
    directory = SlackDirectory(client=slack.client, store=store)
    slack.add_channel("C1", ["U0MANAGER"], is_private=True)
    await store.set_json(f"slack:v1:channel:{TEAM}:C1", {"kind": "private"}, 60)
    await store.set_json(f"slack:v1:user:{TEAM}:U0MANAGER", {"known": True}, 60)
    channel = await directory.channel(TEAM, "C1")
    assert [m.usergroups for m in channel.members] == [{"cs-managers"}]
    assert directory.api_calls["conversations.info"] == 1
    assert directory.api_calls["users.info"] == 1


async def test_network_failure_is_uninspectable(
    directory: SlackDirectory, slack: FakeSlack
) -> None:
    slack.client.conversations_info.side_effect = TimeoutError()
    channel = await directory.channel(TEAM, "C1")
    assert channel.inspectable is False and channel.error == "TimeoutError"


async def test_too_many_members_is_uninspectable(slack: FakeSlack) -> None:
    directory = SlackDirectory(client=slack.client, store=MemoryJsonStore(), max_members=3)
    slack.add_channel("C0BIG", ["U0AGENT", "U0SALES", "U0MANAGER", "U0GUEST", "U0SINGLE"])
    channel = await directory.channel(TEAM, "C0BIG")
    assert channel.inspectable is False and channel.error == "too_many_members"
    assert directory.api_calls["users.info"] == 0


async def test_directory_and_policy_together(directory: SlackDirectory, slack: FakeSlack) -> None:
    policy = load_policy(None, demo=False)
    slack.add_channel("C0PRIVATE", ["U0AGENT", "U0MANAGER", "U0BOT"], is_private=True)
    slack.add_channel("C0GUESTS", ["U0MANAGER", "U0GUEST", "U0BOT"], is_private=True)
    slack.add_channel("C0CONNECT", ["U0MANAGER", "U0BOT"], is_ext_shared=True)
    private = audience_access(policy, await directory.channel(TEAM, "C0PRIVATE"))
    assert private.classes == {"basic", "contact", "identifiers", "activity", "audiences"}
    guests = audience_access(policy, await directory.channel(TEAM, "C0GUESTS"))
    assert guests.refused and "U0GUEST" in guests.reason
    assert audience_access(policy, await directory.channel(TEAM, "C0CONNECT")).refused


# --- the in-memory store --------------------------------------------------------------------


async def test_memory_store_copies_values_and_evicts_oldest() -> None:
    store = MemoryJsonStore(max_entries=2, clock=lambda: 0.0)
    value = {"a": [1]}
    await store.set_json("k1", value, 10)
    value["a"].append(2)
    assert await store.get_json("k1") == {"a": [1]}
    await store.set_json("k2", 2, 10)
    await store.set_json("k3", 3, 10)
    assert await store.get_json("k1") is None
    assert await store.get_json("k3") == 3
