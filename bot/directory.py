"""Who people and conversations are, from Slack's Web API, cached: the inputs of the policy."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import Channel, ChannelKind, Person
from bot.slack_web import SlackBusy

log = logging.getLogger(__name__)

#: Slack errors that say for certain the account cannot be described: cache them like an answer.
_UNKNOWN_USER_ERRORS = frozenset({"user_not_found", "user_not_visible"})

#: Failures of one Web API call. All of them make the directory answer "unknown": deny, not guess.
_CALL_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)

#: How long a failed `usergroups.list` is remembered, so a missing scope does not turn every
#: lookup into another Tier-2 call.
_GROUP_FAILURE_TTL = 30.0

_PAGE_SIZE = 200

#: Bump when the shape of a cached entry changes, so a shared Redis never serves an old shape.
#: v2: values on Redis are sealed (bot/cache.py), which v1 code could not read.
#: v3: a user entry holds the person's Slack `locale` and `tz` (issue 11).
_PREFIX = "slack:v3"

_USER_FLAGS = frozenset(
    {"known", "is_bot", "deleted", "is_restricted", "is_ultra_restricted", "external"}
)
#: What a user entry holds besides its flags: Slack's locale and time zone, strings or null.
_USER_TEXTS = frozenset({"locale", "tz"})
#: Longest locale or time zone name kept (Slack's are under 40 characters).
_TEXT_CHARS = 64


class JsonStore(Protocol):
    """A key/value store of JSON values with a lifetime (the bot's cache implements it)."""

    async def get_json(self, key: str) -> Any | None:
        """The value stored under `key`, or None when absent or expired."""
        ...

    async def set_json(self, key: str, value: Any, ttl: float) -> None:
        """Store `value` (JSON-serialisable) under `key` for `ttl` seconds."""
        ...


class MemoryJsonStore:
    """A small in-process JsonStore with lifetimes; values are copied through JSON like Redis."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries
        self._clock = clock

    async def get_json(self, key: str) -> Any | None:
        """The value stored under `key`, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, text = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return json.loads(text)

    async def set_json(self, key: str, value: Any, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds, dropping the oldest entries when full."""
        now = self._clock()
        self._entries.pop(key, None)
        self._entries[key] = (now + ttl, json.dumps(value))
        if len(self._entries) > self._max_entries:
            for stale in [k for k, (expires, _) in self._entries.items() if now >= expires]:
                del self._entries[stale]
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]


def _groups_of(cached: Any) -> dict[str, list[str]] | None:
    """The member ids by handle of a cached `usergroups` entry, or None for any other value."""
    groups = cached.get("groups") if isinstance(cached, dict) else None
    if not isinstance(groups, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in groups.values()
    ):
        return None
    return groups


def _text_or_none(value: Any) -> str | None:
    """A short string from Slack kept as it is; anything else (absent, too long) is None."""
    return value if isinstance(value, str) and 0 < len(value) <= _TEXT_CHARS else None


def _channel_name(value: Any) -> str | None:
    """A conversation's name from Slack (at most 80 characters), else None (a DM has none)."""
    return value if isinstance(value, str) and 0 < len(value) <= 80 else None


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "slack_error")
    return type(exc).__name__


def _person_to_json(person: Person) -> dict[str, Any]:
    return {
        "user_id": person.user_id,
        "usergroups": sorted(person.usergroups),
        "is_restricted": person.is_restricted,
        "is_ultra_restricted": person.is_ultra_restricted,
        "is_bot": person.is_bot,
        "deleted": person.deleted,
        "known": person.known,
        "external": person.external,
        "locale": person.locale,
        "tz": person.tz,
    }


def _person_from_json(data: Mapping[str, Any]) -> Person:
    return Person(
        user_id=str(data["user_id"]),
        usergroups=frozenset(str(g) for g in data["usergroups"]),
        is_restricted=bool(data["is_restricted"]),
        is_ultra_restricted=bool(data["is_ultra_restricted"]),
        is_bot=bool(data["is_bot"]),
        deleted=bool(data["deleted"]),
        known=bool(data["known"]),
        external=bool(data["external"]),
        locale=_text_or_none(data.get("locale")),
        tz=_text_or_none(data.get("tz")),
    )


_KINDS: dict[str, ChannelKind] = {
    "public": "public",
    "private": "private",
    "im": "im",
    "mpim": "mpim",
}


def _guess_kind(channel_id: str) -> ChannelKind:
    return "im" if channel_id.startswith("D") else "private"


class SlackDirectory:
    """People and conversations as the policy sees them, through Slack's Web API.

    Every answer is cached in `store` for `ttl` seconds under keys starting with ``slack:``; the
    user groups of a team are fetched with one `usergroups.list` call per `ttl`, shared by all
    lookups. Other failures never raise: an account Slack will not describe is `known=False`, a
    conversation it will not describe is `inspectable=False`, and the policy denies both.
    `team_id` must be the workspace the bot is installed in: accounts of other teams count as
    external. A conversation with more than `max_members` members is not inspected (a cold
    lookup costs one `users.info` call per member): it comes back `inspectable=False` with the
    error `too_many_members`.
    """

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        store: JsonStore,
        ttl: float = 300.0,
        bot_user_id: str | None = None,
        max_members: int = 500,
    ) -> None:
        self._client = client
        self._store = store
        self._ttl = ttl
        self._bot_user_id = bot_user_id
        self._max_members = max_members
        self._group_locks: dict[str, asyncio.Lock] = {}
        self.api_calls: Counter[str] = Counter()

    # --- people ---------------------------------------------------------------------------

    async def person(self, team_id: str, user_id: str) -> Person:
        """The account `user_id` with its user group handles (both cached)."""
        if self._bot_user_id is not None and user_id == self._bot_user_id:
            return Person(user_id=user_id, usergroups=frozenset(), is_bot=True)
        user = await self._user(team_id, user_id)
        if user is None:
            return Person(user_id=user_id, usergroups=frozenset(), known=False)
        groups: frozenset[str] = frozenset()
        if not (user["is_bot"] or user["deleted"]):
            members = await self._usergroups(team_id)
            groups = frozenset(h for h, ids in members.items() if user_id in ids)
        return Person(
            user_id=user_id,
            usergroups=groups,
            is_restricted=user["is_restricted"],
            is_ultra_restricted=user["is_ultra_restricted"],
            is_bot=user["is_bot"],
            deleted=user["deleted"],
            external=user["external"],
            locale=user["locale"],
            tz=user["tz"],
        )

    async def _user(self, team_id: str, user_id: str) -> dict[str, Any] | None:
        """The account flags, locale and time zone from `users.info`, or None when Slack would
        not say."""
        key = f"{_PREFIX}:user:{team_id}:{user_id}"
        cached = await self._store.get_json(key)
        if cached == {"known": False}:
            return None
        if (
            isinstance(cached, dict)
            and set(cached) == _USER_FLAGS | _USER_TEXTS
            and all(isinstance(cached[flag], bool) for flag in _USER_FLAGS)
            and all(_text_or_none(cached[text]) == cached[text] for text in _USER_TEXTS)
        ):
            return cached
        self.api_calls["users.info"] += 1
        try:
            # Slack sends `locale` only when asked (include_locale); `tz` always.
            response = await self._client.users_info(user=user_id, include_locale=True)
        except SlackBusy:
            raise
        except _CALL_ERRORS as exc:
            code = _error_code(exc)
            if code in _UNKNOWN_USER_ERRORS:
                await self._store.set_json(key, {"known": False}, self._ttl)
            else:
                log.warning("users.info failed for %s: %s", user_id, code)
            return None
        data = response.get("user") or {}
        flags = {
            "known": True,
            "is_bot": bool(data.get("is_bot")) or user_id == "USLACKBOT",
            "deleted": bool(data.get("deleted")),
            "is_restricted": bool(data.get("is_restricted")),
            "is_ultra_restricted": bool(data.get("is_ultra_restricted")),
            "external": _is_external_user(data, team_id),
            "locale": _text_or_none(data.get("locale")),
            "tz": _text_or_none(data.get("tz")),
        }
        await self._store.set_json(key, flags, self._ttl)
        return flags

    async def _usergroups(self, team_id: str) -> dict[str, list[str]]:
        """Member ids by user group handle, for enabled groups of the team (one cached call)."""
        key = f"{_PREFIX}:usergroups:{team_id}"
        if (known := _groups_of(await self._store.get_json(key))) is not None:
            return known
        # One caller fetches while the others wait for its answer: a burst of lookups must not
        # fan out into Tier-2 calls.
        lock = self._group_locks.setdefault(team_id, asyncio.Lock())
        async with lock:
            if (known := _groups_of(await self._store.get_json(key))) is not None:
                return known
            self.api_calls["usergroups.list"] += 1
            try:
                response = await self._client.usergroups_list(include_users=True)
            except SlackBusy:
                raise
            except _CALL_ERRORS as exc:
                code = _error_code(exc)
                log.warning("usergroups.list failed: %s; no one gets a role by user group", code)
                await self._store.set_json(
                    key, {"groups": {}, "error": code}, min(self._ttl, _GROUP_FAILURE_TTL)
                )
                return {}
            groups: dict[str, list[str]] = {}
            for group in response.get("usergroups") or []:
                handle = str(group.get("handle") or "").lower()
                # A disabled group (date_delete set) grants nothing, even if Slack returns it.
                if not handle or group.get("date_delete"):
                    continue
                groups[handle] = [str(u) for u in group.get("users") or []]
            await self._store.set_json(key, {"groups": groups}, self._ttl)
            return groups

    # --- conversations --------------------------------------------------------------------

    async def channel(self, team_id: str, channel_id: str) -> Channel:
        """The conversation's kind, whether other organizations can read it, and its human
        members; `inspectable=False` when Slack would not describe it."""
        key = f"{_PREFIX}:channel:{team_id}:{channel_id}"
        cached = await self._store.get_json(key)
        if isinstance(cached, dict):
            try:
                return Channel(
                    channel_id=channel_id,
                    kind=_KINDS[cached["kind"]],
                    external=bool(cached["external"]),
                    members=tuple(_person_from_json(p) for p in cached["members"]),
                    name=_channel_name(cached.get("name")),
                )
            except (KeyError, TypeError):
                pass  # an entry of another shape: ask Slack again
        try:
            self.api_calls["conversations.info"] += 1
            info = await self._client.conversations_info(channel=channel_id)
            data = info.get("channel") or {}
            member_ids = await self._member_ids(channel_id)
        except SlackBusy:
            raise
        except _CALL_ERRORS as exc:
            code = _error_code(exc)
            log.info("conversation %s cannot be inspected: %s", channel_id, code)
            return self._uninspectable(channel_id, code)
        if member_ids is None:
            return self._uninspectable(channel_id, "too_many_members")
        people = await asyncio.gather(*(self.person(team_id, m) for m in member_ids))
        channel = Channel(
            channel_id=channel_id,
            kind=_kind(data),
            external=_is_external_channel(data, team_id),
            members=tuple(p for p in people if not p.is_bot and not p.deleted),
            name=_channel_name(data.get("name")),
        )
        await self._store.set_json(
            key,
            {
                "name": channel.name,
                "kind": channel.kind,
                "external": channel.external,
                "members": [_person_to_json(p) for p in channel.members],
            },
            self._ttl,
        )
        return channel

    async def _member_ids(self, channel_id: str) -> list[str] | None:
        """Every member id, following cursors; None when there are more than `max_members`."""
        ids: list[str] = []
        cursor: str | None = None
        while True:
            self.api_calls["conversations.members"] += 1
            response = await self._client.conversations_members(
                channel=channel_id, limit=_PAGE_SIZE, cursor=cursor
            )
            ids.extend(str(m) for m in response.get("members") or [])
            if len(ids) > self._max_members:
                return None
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return list(dict.fromkeys(ids))

    @staticmethod
    def _uninspectable(channel_id: str, code: str) -> Channel:
        # Assume the worst about a conversation Slack would not describe.
        return Channel(
            channel_id=channel_id,
            kind=_guess_kind(channel_id),
            external=True,
            inspectable=False,
            error=code,
        )


def _kind(data: Mapping[str, Any]) -> ChannelKind:
    if data.get("is_im"):
        return "im"
    if data.get("is_mpim"):
        return "mpim"
    if data.get("is_private") or data.get("is_group"):
        return "private"
    return "public"


def _is_external_channel(data: Mapping[str, Any], team_id: str) -> bool:
    """True when people of another organization can (or soon will) read the conversation."""
    if data.get("is_ext_shared") or data.get("is_pending_ext_shared"):
        return True
    teams = data.get("shared_team_ids") or []
    if data.get("is_shared") and len(set(teams)) > 1:
        return True
    context = data.get("context_team_id")
    return bool(team_id and context and context != team_id)


def _is_external_user(data: Mapping[str, Any], team_id: str) -> bool:
    """True for an account of another organization (met in a Slack Connect conversation)."""
    if data.get("is_stranger"):
        return True
    if not team_id:
        return False
    teams = {data.get("team_id")}
    enterprise = data.get("enterprise_user") or {}
    teams.update(enterprise.get("teams") or [])
    return bool(data.get("team_id")) and team_id not in teams
