"""The use case: an identity -> cached profile, events and audience names -> Customer."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bot import request_id
from bot.aep.client import AepClient
from bot.aep.errors import (
    AepError,
    CredentialsProblem,
    LookupRejected,
    ProfileNotFound,
    RateLimited,
)
from bot.aep.models import Audience, EventPage, ProfileEntity
from bot.cache import CacheKeys, DataCache
from bot.customer import Customer, build_customer
from bot.identity import IdentityRef
from bot.layout import CardLayout

log = logging.getLogger(__name__)

#: How long a lookup with unnamed audiences waits for an audience listing under way, once its
#: profile has arrived, before it asks for its customer's audiences itself.
_LISTING_GRACE = 0.5
#: The audience list is read again when this share of `audience_ttl` has passed, so the names
#: never lapse while the bot runs.
_LISTING_REFRESH = 0.75
#: The longest pause between two attempts to read the audience list after failures.
_LISTING_BACKOFF_MAX = 900.0

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


class _KnownAudience(_Stored):
    # None: Platform did not know this id when asked (deleted, or from another source).
    audience: Audience | None


class _Listing(_Stored):
    """The marker that the whole audience list of the sandbox has been read into the cache,
    and when (every instance on one Redis reads it, so that one listing serves them all)."""

    count: int
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the cache holds for one lookup."""

    not_found: _NotFound | None = None
    profile: _CachedProfile | None = None
    events: _CachedEvents | None = None
    # The audiences of the cached profile's memberships that the cache knows.
    names: Mapping[str, Audience | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _ListingOutcome:
    listed: bool
    # Seconds until the list should be read (again).
    due_in: float


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
        self._audience_ttl = audience_ttl
        self._demo = demo
        self._events_enabled = events_enabled
        self._listing_deadline = listing_deadline
        self._listing_backoff = listing_backoff
        self._clock = clock
        # The one listing of audiences this process runs at a time (see `warm`).
        self._listing: asyncio.Task[_ListingOutcome] | None = None
        self._listing_failures = 0
        self._warned: set[str] = set()
        self.stats: collections.Counter[str] = collections.Counter()

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
        """Read the sandbox's audience list (and so the IMS token) now, so that a cold lookup is
        one round trip; with `keep`, go on until cancelled: read it again before the names
        expire, and after a failure once a pause has passed (growing with each failure).

        This is the only place the list is read, one listing at a time per process, under its
        own `listing_deadline`: lookups ask Platform only for their customer's audiences.
        Failures are logged (their type, never their text), not raised, and never end the loop.
        """
        while True:
            outcome = await self._list_audiences()
            if not keep:
                return
            await asyncio.sleep(outcome.due_in)

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
        names = await self._cached_names(_member_ids(cached)) if cached is not None else {}
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
        names = await self._names(_member_ids(profile), parts, deadline)
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

    # -- audience names -------------------------------------------------------------------------
    #
    # Each audience is its own entry, so a lookup reads only the few audiences its customer
    # belongs to (a sandbox may hold thousands). `warm` reads the whole list into these entries
    # in the background; a lookup asks Platform (bulk-get) only for its customer's ids the cache
    # lacks, and remembers each answer: the audience, or that Platform does not know the id.
    # An id Platform could not answer for now is shown as it is and asked for again next time.

    async def _cached_names(self, ids: list[str]) -> dict[str, Audience | None]:
        if not ids:
            return {}
        values = await self._cache.get_many([self._keys.audience(i) for i in ids])
        names: dict[str, Audience | None] = {}
        for audience_id, value in zip(ids, values, strict=True):
            entry = _parse(_KnownAudience, value)
            if entry is not None:
                names[audience_id] = entry.audience
        return names

    async def _names(
        self, ids: list[str], parts: _Parts, deadline: float
    ) -> dict[str, Audience | None]:
        """Names for the audience ids: from the cache, else from Platform within `deadline`."""
        names: dict[str, Audience | None] = {i: parts.names[i] for i in ids if i in parts.names}
        unread = [i for i in ids if i not in names]
        if unread and parts.profile is None:
            # A freshly fetched profile: its audiences may be cached already.
            names.update(await self._cached_names(unread))
        missing = [i for i in ids if i not in names]
        if missing and await self._listing_landed(deadline):
            names.update(await self._cached_names(missing))
            missing = [i for i in ids if i not in names]
        if not missing:
            return names
        self.stats["aep_audiences"] += 1
        try:
            found = await self._client.get_audiences(missing, deadline=deadline)
        except AepError as exc:
            # The card shows the ids instead; the next lookup asks again.
            self._warn_once("audience-names", "Audience names could not be read", exc)
            return names
        # Ids Platform left out failed for now: not remembered, so the next lookup asks again.
        answered = {i: found[i] for i in missing if i in found}
        await self._store_audiences(answered)
        names.update(answered)
        return names

    async def _listing_landed(self, deadline: float) -> bool:
        """Wait a short grace, never past `deadline`, for a listing under way; True when it
        finished with the names in the cache."""
        listing = self._listing
        grace = min(_LISTING_GRACE, deadline - time.monotonic())
        if listing is None or listing.done() or grace <= 0:
            return False
        # A big sandbox takes many pages to list: past the grace, the lookup asks for its
        # customer's few audiences and the listing goes on for later lookups.
        await asyncio.wait([listing], timeout=grace)
        return (
            listing.done()
            and not listing.cancelled()
            and listing.exception() is None
            and listing.result().listed
        )

    async def _list_audiences(self) -> _ListingOutcome:
        """Read the audience list, joining the listing under way if there is one."""
        if self._listing is None or self._listing.done():
            self._listing = asyncio.create_task(self._read_listing())
        return await self._listing

    async def _read_listing(self) -> _ListingOutcome:
        # A task of its own, so its own request id (its log lines and AEP calls carry it).
        request_id.begin("background")
        deadline = time.monotonic() + self._listing_deadline
        key = self._keys.audiences()
        refresh_after = self._audience_ttl * _LISTING_REFRESH

        async def fresh() -> float | None:
            # Another instance on the same Redis has just read the list: take its work.
            listing = await self._cache.get_model(key, _Listing)
            if listing is None:
                return None
            due_in = refresh_after - (self._clock() - listing.loaded_at).total_seconds()
            return due_in if due_in > 0 else None

        async def load() -> float:
            self.stats["aep_audiences"] += 1
            listed = await self._client.list_audiences(deadline=deadline)
            audiences = {a.id: a for a in listed}
            await self._store_audiences(audiences)
            listing = _Listing(count=len(audiences), loaded_at=self._clock())
            await self._cache.set_model(key, listing, self._audience_ttl)
            return refresh_after

        try:
            due_in = await self._cache.exclusive(key, load, check=fresh, deadline=deadline)
        except Exception as exc:
            # The task lives as long as the process: any failure, expected (AepError) or not
            # (a bug, the cache), is logged and retried, never the end of the listing.
            return self._listing_failed(exc)
        if self._listing_failures:
            log.info("The audience list was read after %d failures", self._listing_failures)
            self._listing_failures = 0
        return _ListingOutcome(listed=True, due_in=due_in)

    def _listing_failed(self, exc: Exception) -> _ListingOutcome:
        """Log a failed listing (its type only: an exception's text may hold data) and say
        when to try again: exponential backoff with jitter, at least a Retry-After."""
        self._listing_failures += 1
        pause = self._listing_backoff * 2 ** min(self._listing_failures - 1, 16)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            pause = max(pause, exc.retry_after)
        pause = min(pause, _LISTING_BACKOFF_MAX)
        # Jitter, so that instances that failed together do not all ask again together.
        pause = random.uniform(pause / 2, pause)
        expected = isinstance(exc, AepError)
        if not expected:
            level = logging.ERROR
        else:
            level = logging.WARNING if self._listing_failures == 1 else logging.INFO
        log.log(
            level,
            "The audience list could not be read (%s, status %s, request %s; failure %d in a "
            "row); trying again in %.0f s, lookups ask for their customer's audiences meanwhile",
            type(exc).__name__,
            exc.status if isinstance(exc, AepError) else None,
            exc.request_id if isinstance(exc, AepError) else None,
            self._listing_failures,
            pause,
        )
        return _ListingOutcome(listed=False, due_in=pause)

    async def _store_audiences(self, audiences: Mapping[str, Audience | None]) -> None:
        await self._cache.set_many(
            {
                self._keys.audience(i): _KnownAudience(audience=a).model_dump(mode="json")
                for i, a in audiences.items()
            },
            self._audience_ttl,
        )

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
