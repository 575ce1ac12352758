"""The lookup: an identity -> cached profile and events, with audience names -> Customer."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.aep.client import AepClient
from bot.aep.errors import AepError, ProfileNotFound
from bot.aep.models import Audience, EventPage, ProfileEntity
from bot.audiences import AudienceDirectory
from bot.cache import CacheKeys, DataCache
from bot.customer import Customer, EventsStatus, build_customer
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
    # None (only in entries of older versions): read as no entry.
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
    """What an events request came to: a page, or the error that stopped it."""

    page: EventPage | None = None
    error: AepError | None = None


#: Statuses of an events request that mean "this organisation may not look events up": Adobe
#: documents event lookup as Ultimate-only and enabled on request, without saying how a
#: non-entitled call is refused, so a forbidden (403), missing (404) or unprocessable (422)
#: answer to the events call of a customer whose profile was found counts as that refusal.
EVENT_REFUSALS = frozenset({403, 404, 422})

EventsMode = Literal["auto", "true", "false"]

#: Seconds a card ready before its events waits for them before it goes without them.
EVENTS_GRACE = 0.05


class EventsSwitch:
    """Whether this process asks AEP for experience events (AEP_EVENTS_ENABLED).

    `auto` asks until the first refusal (see EVENT_REFUSALS), then stops for `recheck_after`
    seconds and asks once more; `true` always asks, `false` never does. The one place that
    decides: the lookup asks `wanted()`, reports what came of a request, and the card shows
    `off` while this says no.
    """

    def __init__(
        self,
        mode: EventsMode,
        *,
        recheck_after: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode = mode
        self._recheck_after = recheck_after
        self._clock = clock
        self._off_since: float | None = None

    def wanted(self) -> bool:
        """True when a lookup should ask for events now."""
        if self.mode != "auto":
            return self.mode == "true"
        return self._off_since is None or self._clock() - self._off_since >= self._recheck_after

    def refused(self, exc: AepError) -> bool:
        """A refusal of an events request for a customer who exists. True when that turned
        events off (auto only); logged in words when it does."""
        if self.mode != "auto":
            return False
        first = self._off_since is None
        self._off_since = self._clock()
        if first:
            log.warning(
                "Adobe Experience Platform refused to look up experience events (%s, HTTP %s, "
                "request %s): this organisation may not look events up through the API (Adobe "
                "allows it only for Real-Time CDP Ultimate, once enabled by Adobe Customer "
                "Care). Cards now show computed attributes instead of recent activity; the bot "
                "asks again in %d minutes. Set AEP_EVENTS_ENABLED=false to stop asking.",
                type(exc).__name__,
                exc.status,
                exc.request_id,
                round(self._recheck_after / 60),
            )
        return True

    def answered(self) -> None:
        """An events request succeeded: when events were off (a re-check), they are on again."""
        if self._off_since is not None:
            self._off_since = None
            log.warning("Adobe Experience Platform answered an events lookup: events are on again")


@dataclass(frozen=True, slots=True)
class Looked:
    """A lookup's answer: the customer, and when its events were still on their way, `later`,
    which waits for them and gives the customer again with them (or saying they failed)."""

    customer: Customer
    later: Callable[[], Awaitable[Customer]] | None = None


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
        events_enabled: EventsMode | bool = "auto",
        with_ca: bool = True,
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
        if isinstance(events_enabled, bool):
            events_enabled = "true" if events_enabled else "false"
        self.events = EventsSwitch(events_enabled)
        # withCA only when the layout names computed attributes (and AEP_WITH_CA allows it).
        self._with_ca = with_ca and layout.has_computed
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
        """The customer holding `ref`, events included: from the cache, else from AEP within
        the lookup deadline.

        `refresh` skips the cached entries and rewrites them. Raises the AepError subclasses;
        ProfileNotFound is remembered for `not_found_ttl`.
        """
        looked = await self.lookup_soon(ref, refresh=refresh, events_limit=events_limit)
        return looked.customer if looked.later is None else await looked.later()

    async def lookup_soon(
        self, ref: IdentityRef, *, refresh: bool = False, events_limit: int | None = None
    ) -> Looked:
        """As `lookup`, but answers as soon as the profile is ready: when its events are still
        on their way the customer says so (`events_status` "loading") and `later` gives it
        again once they arrive or fail, within the same deadline."""
        limit = events_limit or self._events_limit
        key = self._keys.lookup(ref, limit)
        deadline = time.monotonic() + self._deadline
        joined = True

        async def once() -> Looked:
            nonlocal joined
            joined = False
            return await self._lookup_once(ref, limit, key, refresh=refresh, deadline=deadline)

        # A refresh must not be answered by a concurrent lookup that reads the cache.
        looked = await self._cache.share(f"{key}:refresh" if refresh else key, once)
        if joined:
            self.stats["coalesced"] += 1
        return looked

    async def warm(self, *, keep: bool = True) -> None:
        """Read the sandbox's audience list in the background (see AudienceDirectory.warm)."""
        await self.audiences.warm(keep=keep)

    # -- one lookup -----------------------------------------------------------------------------

    async def _lookup_once(
        self, ref: IdentityRef, limit: int, key: str, *, refresh: bool, deadline: float
    ) -> Looked:
        if refresh:
            # A refresh re-reads the customer, not the sandbox's audience names.
            parts = _Parts()
        else:
            parts = await self._read(ref, limit)
            customer = self._complete(ref, parts)
            if customer is not None:
                self.stats["cache_hit"] += 1
                return Looked(customer)

        async def check() -> Looked | None:
            # Another instance fetched this identity meanwhile: take what it stored.
            customer = self._complete(ref, await self._read(ref, limit))
            if customer is not None:
                self.stats["coalesced"] += 1
            return None if customer is None else Looked(customer)

        # The fetch keeps the (Redis) lock until the events are in, so another instance waits
        # for both halves rather than asking for the events again; but the profile half is
        # handed out (`early`) as soon as it is ready.
        early: asyncio.Future[Looked] = asyncio.get_running_loop().create_future()

        async def whole() -> Customer:
            return (await fetching).customer

        fetching = asyncio.ensure_future(
            self._cache.exclusive(
                key,
                lambda: self._fetch(
                    ref, limit, parts, refresh=refresh, deadline=deadline, early=early, rest=whole
                ),
                check=check,
                recheck=not refresh,
                deadline=deadline,
            )
        )
        await asyncio.wait({fetching, early}, return_when=asyncio.FIRST_COMPLETED)
        if early.done():
            return early.result()
        return fetching.result()

    async def _read(self, ref: IdentityRef, limit: int) -> _Parts:
        not_found, profile, events = await self._cache.get_many(
            [self._keys.not_found(ref), self._keys.profile(ref), self._keys.events(ref, limit)]
        )
        cached = _parse(_CachedProfile, profile)
        names = await self.audiences.cached(_member_ids(cached)) if cached is not None else {}
        stored_events = _parse(_CachedEvents, events)
        return _Parts(
            not_found=_parse(_NotFound, not_found),
            profile=cached,
            events=stored_events if stored_events and stored_events.page is not None else None,
            names=names,
        )

    def _complete(self, ref: IdentityRef, parts: _Parts) -> Customer | None:
        """The customer when the cache holds everything it needs, else None."""
        if parts.not_found is not None:
            raise ProfileNotFound(parts.not_found.message, status=parts.not_found.status)
        wanted = self.events.wanted()
        if parts.profile is None or (wanted and parts.events is None):
            return None
        if any(i not in parts.names for i in _member_ids(parts.profile)):
            return None
        page = parts.events.page if wanted and parts.events is not None else None
        return self._build(ref, parts.profile, page, parts.names, "shown" if wanted else "off")

    def _build(
        self,
        ref: IdentityRef,
        profile: _CachedProfile,
        page: EventPage | None,
        names: Mapping[str, Audience | None],
        status: EventsStatus,
    ) -> Customer:
        return build_customer(
            profile=profile.profile,
            query=ref,
            layout=self._layout,
            events=page if status == "shown" else None,
            audiences={i: a for i, a in names.items() if a is not None},
            fetched_at=profile.fetched_at,
            demo=self._demo,
            events_status=status,
        )

    async def _fetch(
        self,
        ref: IdentityRef,
        limit: int,
        parts: _Parts,
        *,
        refresh: bool,
        deadline: float,
        early: asyncio.Future[Looked],
        rest: Callable[[], Awaitable[Customer]],
    ) -> Looked:
        """Fetch what the cache lacks, concurrently and under one deadline, and store it. When
        the profile is ready and its events are not, `early` is given the customer saying so,
        with `rest` (this fetch's whole answer) as its `later`; the fetch goes on to the end."""
        self.stats["cache_miss"] += 1
        started: list[asyncio.Task[Any]] = []

        def start(job: Coroutine[Any, Any, R]) -> asyncio.Task[R]:
            task = asyncio.create_task(job)
            started.append(task)
            return task

        async def stop() -> None:
            for task in started:
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)

        wanted = self.events.wanted()
        profile_job = start(
            self._fetch_profile(ref, deadline) if parts.profile is None else _ready(parts.profile)
        )
        events_job = (
            start(self._fetch_events(ref, limit, deadline))
            if wanted and parts.events is None
            else None
        )
        try:
            try:
                profile = await profile_job
            except ProfileNotFound as exc:
                await self._remember_not_found(ref, limit, exc)
                raise
            writes = []
            if parts.profile is None:
                key = self._keys.profile(ref)
                writes.append(self._cache.set_model(key, profile, self._profile_ttl))
            if refresh:
                writes.append(self._cache.delete(self._keys.not_found(ref)))
            await asyncio.gather(*writes)
            names = await self.audiences.names(
                _member_ids(profile),
                parts.names,
                look_in_cache=parts.profile is None,
                deadline=deadline,
            )
        except BaseException:
            await stop()
            raise
        if events_job is None:
            page = parts.events.page if wanted and parts.events is not None else None
            return Looked(self._build(ref, profile, page, names, "shown" if wanted else "off"))

        if not events_job.done():
            # Events just behind the profile are worth a blink, not a second message.
            await asyncio.wait({events_job}, timeout=EVENTS_GRACE)
        if not events_job.done():
            self.stats["events_later"] += 1
            loading = self._build(ref, profile, None, names, "loading")
            early.set_result(Looked(loading, later=rest))
        try:
            result = await events_job
        except BaseException:
            await stop()
            raise
        return Looked(await self._settle_events(ref, limit, profile, names, result))

    async def _settle_events(
        self,
        ref: IdentityRef,
        limit: int,
        profile: _CachedProfile,
        names: Mapping[str, Audience | None],
        result: _EventsResult,
    ) -> Customer:
        """The customer with what came of its events request, which is remembered (a page) or
        reported to the switch (a refusal: the profile was found, so the refusal is about
        events). A failure is "events could not be read", never "no events"."""
        if result.page is not None:
            self.events.answered()
            entry = _CachedEvents(page=result.page)
            await self._cache.set_model(self._keys.events(ref, limit), entry, self._profile_ttl)
            return self._build(ref, profile, result.page, names, "shown")
        exc = result.error
        assert exc is not None
        if exc.status in EVENT_REFUSALS and self.events.refused(exc):
            return self._build(ref, profile, None, names, "off")
        self._warn_once(f"events-{type(exc).__name__}", "Experience events failed", exc)
        return self._build(ref, profile, None, names, "failed")

    async def _fetch_profile(self, ref: IdentityRef, deadline: float) -> _CachedProfile:
        self.stats["aep_profile"] += 1
        profile = await self._client.get_profile(
            ref, fields=self._fields, with_ca=self._with_ca, deadline=deadline
        )
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
        except AepError as exc:
            # Judged once the profile is known (see _settle_events): a 404 here may only mean
            # that no such customer exists, which is the profile call's answer to give.
            return _EventsResult(error=exc)
        return _EventsResult(page=page)

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
