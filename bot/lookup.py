"""The lookup: an identity -> cached profile and events, with audience names -> Customer."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.aep.client import AepClient
from bot.aep.errors import (
    AepError,
    CredentialsProblem,
    LookupRejected,
    ProfileNotFound,
)
from bot.aep.models import Audience, EventPage, ProfileEntity
from bot.audiences import AudienceDirectory
from bot.cache import CacheKeys, DataCache
from bot.customer import Customer, build_customer
from bot.identity import IdentityRef
from bot.layout import CardLayout

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class _Stored(BaseModel):
    model_config = ConfigDict(frozen=True)


class _CachedProfile(_Stored):
    profile: ProfileEntity
    fetched_at: datetime


class _CachedEvents(_Stored):
    # None: the credentials may not read events (Ultimate-only, or not enabled).
    page: EventPage | None


class _NotFound(_Stored):
    message: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the cache holds for one lookup."""

    not_found: _NotFound | None = None
    profile: _CachedProfile | None = None
    events: _CachedEvents | None = None
    # The audiences of the cached profile's memberships that the cache knows.
    names: Mapping[str, Audience | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _EventsResult:
    entry: _CachedEvents
    # Transient failures are shown as "events unavailable" but not remembered.
    keep: bool


async def _ready(value: R) -> R:
    return value


def _parse(model: type[M], data: Any) -> M | None:
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def _member_ids(profile: _CachedProfile) -> list[str]:
    return list(profile.profile.audience_ids)


class CustomerLookup:
    """Looks customers up in AEP through the cache, sharing concurrent lookups of one identity."""

    def __init__(
        self,
        *,
        client: AepClient,
        cache: DataCache,
        keys: CacheKeys,
        layout: CardLayout,
        events_limit: int = 10,
        deadline: float = 8.0,
        profile_ttl: float = 60,
        not_found_ttl: float = 15,
        audience_ttl: float = 3600,
        demo: bool = False,
        events_enabled: bool = True,
        listing_deadline: float = 60.0,
        listing_backoff: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`deadline` bounds each lookup; `listing_deadline` the background reading of the
        sandbox's audience list (dozens of pages in a big sandbox), which after a failure
        waits `listing_backoff` seconds, doubled after each further failure."""
        self._client = client
        self._cache = cache
        self._keys = keys
        self._layout = layout
        self._fields = layout.profile_fields()
        self._events_limit = events_limit
        self._deadline = deadline
        self._profile_ttl = profile_ttl
        self._not_found_ttl = not_found_ttl
        self._demo = demo
        self._events_enabled = events_enabled
        self._clock = clock
        self._warned: set[str] = set()
        self.stats: collections.Counter[str] = collections.Counter()
        self.audiences = AudienceDirectory(
            client=client,
            cache=cache,
            keys=keys,
            ttl=audience_ttl,
            listing_deadline=listing_deadline,
            listing_backoff=listing_backoff,
            clock=clock,
            stats=self.stats,
        )

    async def lookup(
        self, ref: IdentityRef, *, refresh: bool = False, events_limit: int | None = None
    ) -> Customer:
        """The customer holding `ref`: from the cache, else from AEP within the lookup deadline.

        `refresh` skips the cached entries and rewrites them. Raises the AepError subclasses;
        ProfileNotFound is remembered for `not_found_ttl`.
        """
        limit = events_limit or self._events_limit
        key = self._keys.lookup(ref, limit)
        deadline = time.monotonic() + self._deadline
        joined = True

        async def once() -> Customer:
            nonlocal joined
            joined = False
            return await self._lookup_once(ref, limit, key, refresh=refresh, deadline=deadline)

        # A refresh must not be answered by a concurrent lookup that reads the cache.
        customer = await self._cache.share(f"{key}:refresh" if refresh else key, once)
        if joined:
            self.stats["coalesced"] += 1
        return customer

    async def warm(self, *, keep: bool = True) -> None:
        """Read the sandbox's audience list in the background (see AudienceDirectory.warm)."""
        await self.audiences.warm(keep=keep)

    # -- one lookup -----------------------------------------------------------------------------

    async def _lookup_once(
        self, ref: IdentityRef, limit: int, key: str, *, refresh: bool, deadline: float
    ) -> Customer:
        if refresh:
            # A refresh re-reads the customer, not the sandbox's audience names.
            parts = _Parts()
        else:
            parts = await self._read(ref, limit)
            customer = self._complete(ref, parts)
            if customer is not None:
                self.stats["cache_hit"] += 1
                return customer

        async def check() -> Customer | None:
            # Another instance fetched this identity meanwhile: take what it stored.
            customer = self._complete(ref, await self._read(ref, limit))
            if customer is not None:
                self.stats["coalesced"] += 1
            return customer

        return await self._cache.exclusive(
            key,
            lambda: self._fetch(ref, limit, parts, refresh=refresh, deadline=deadline),
            check=check,
            recheck=not refresh,
            deadline=deadline,
        )

    async def _read(self, ref: IdentityRef, limit: int) -> _Parts:
        not_found, profile, events = await self._cache.get_many(
            [self._keys.not_found(ref), self._keys.profile(ref), self._keys.events(ref, limit)]
        )
        cached = _parse(_CachedProfile, profile)
        names = await self.audiences.cached(_member_ids(cached)) if cached is not None else {}
        return _Parts(
            not_found=_parse(_NotFound, not_found),
            profile=cached,
            events=_parse(_CachedEvents, events),
            names=names,
        )

    def _complete(self, ref: IdentityRef, parts: _Parts) -> Customer | None:
        """The customer when the cache holds everything it needs, else None."""
        if parts.not_found is not None:
            raise ProfileNotFound(parts.not_found.message, status=parts.not_found.status)
        if parts.profile is None or (self._events_enabled and parts.events is None):
            return None
        if any(i not in parts.names for i in _member_ids(parts.profile)):
            return None
        return self._build(ref, parts.profile, parts.events, parts.names)

    def _build(
        self,
        ref: IdentityRef,
        profile: _CachedProfile,
        events: _CachedEvents | None,
        names: Mapping[str, Audience | None],
    ) -> Customer:
        return build_customer(
            profile=profile.profile,
            query=ref,
            layout=self._layout,
            events=events.page if events is not None and self._events_enabled else None,
            audiences={i: a for i, a in names.items() if a is not None},
            fetched_at=profile.fetched_at,
            demo=self._demo,
        )

    async def _fetch(
        self, ref: IdentityRef, limit: int, parts: _Parts, *, refresh: bool, deadline: float
    ) -> Customer:
        """Fetch what the cache lacks, concurrently and under one deadline, and store it."""
        self.stats["cache_miss"] += 1
        started: list[asyncio.Task[Any]] = []

        def start(job: Coroutine[Any, Any, R]) -> asyncio.Task[R]:
            task = asyncio.create_task(job)
            started.append(task)
            return task

        profile_job = start(
            self._fetch_profile(ref, deadline) if parts.profile is None else _ready(parts.profile)
        )
        events_job = (
            start(self._fetch_events(ref, limit, deadline))
            if self._events_enabled and parts.events is None
            else None
        )
        try:
            try:
                profile = await profile_job
            except ProfileNotFound as exc:
                await self._remember_not_found(ref, limit, exc)
                raise
            fetched_events = None if events_job is None else await events_job
        finally:
            for task in started:
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)
        events = parts.events
        writes = []
        if parts.profile is None:
            writes.append(
                self._cache.set_model(self._keys.profile(ref), profile, self._profile_ttl)
            )
        if fetched_events is not None:
            events = fetched_events.entry
            if fetched_events.keep:
                key = self._keys.events(ref, limit)
                writes.append(self._cache.set_model(key, events, self._profile_ttl))
        if refresh:
            writes.append(self._cache.delete(self._keys.not_found(ref)))
        await asyncio.gather(*writes)
        names = await self.audiences.names(
            _member_ids(profile),
            parts.names,
            look_in_cache=parts.profile is None,
            deadline=deadline,
        )
        return self._build(ref, profile, events, names)

    async def _fetch_profile(self, ref: IdentityRef, deadline: float) -> _CachedProfile:
        self.stats["aep_profile"] += 1
        profile = await self._client.get_profile(ref, fields=self._fields, deadline=deadline)
        return _CachedProfile(profile=profile, fetched_at=self._clock())

    async def _remember_not_found(self, ref: IdentityRef, limit: int, exc: ProfileNotFound) -> None:
        entry = _NotFound(message=exc.message, status=exc.status)
        await asyncio.gather(
            self._cache.set_model(self._keys.not_found(ref), entry, self._not_found_ttl),
            self._cache.delete(self._keys.profile(ref)),
            self._cache.delete(self._keys.events(ref, limit)),
        )

    async def _fetch_events(self, ref: IdentityRef, limit: int, deadline: float) -> _EventsResult:
        self.stats["aep_events"] += 1
        try:
            page = await self._client.get_events(ref, limit=limit, deadline=deadline)
        except ProfileNotFound:
            # Whether the customer exists is the profile call's answer; here it means no events.
            page = EventPage()
        except (CredentialsProblem, LookupRejected) as exc:
            # Events are Ultimate-only and may not be enabled: show the profile without them.
            self._warn_once("events", "Experience events are not available", exc)
            return _EventsResult(_CachedEvents(page=None), keep=True)
        except AepError as exc:
            self._warn_once(f"events-{type(exc).__name__}", "Experience events failed", exc)
            return _EventsResult(_CachedEvents(page=None), keep=False)
        return _EventsResult(_CachedEvents(page=page), keep=True)

    def _warn_once(self, topic: str, what: str, exc: AepError) -> None:
        if topic in self._warned:
            return
        self._warned.add(topic)
        log.warning(
            "%s (%s, status %s, request %s); cards show what is available",
            what,
            type(exc).__name__,
            exc.status,
            exc.request_id,
        )
