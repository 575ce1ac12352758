"""Audience names: each audience its own cache entry, the sandbox's whole list read in the
background, and a lookup asking Platform only for its own customer's ids the cache lacks."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from bot import request_id
from bot.aep.client import AepClient
from bot.aep.errors import AepError, RateLimited
from bot.aep.models import Audience
from bot.cache import CacheKeys, DataCache

log = logging.getLogger(__name__)

#: How long a lookup with unnamed audiences waits for an audience listing under way, once its
#: profile has arrived, before it asks for its customer's audiences itself.
_LISTING_GRACE = 0.5
#: The audience list is read again when this share of the audience TTL has passed, so the names
#: never lapse while the bot runs.
_LISTING_REFRESH = 0.75
#: The longest pause between two attempts to read the audience list after failures.
_LISTING_BACKOFF_MAX = 900.0


class _KnownAudience(BaseModel):
    model_config = ConfigDict(frozen=True)
    # None: Platform did not know this id when asked (deleted, or from another source).
    audience: Audience | None


class _Listing(BaseModel):
    """The marker that the whole audience list of the sandbox has been read into the cache,
    and when (every instance on one Redis reads it, so that one listing serves them all)."""

    model_config = ConfigDict(frozen=True)
    count: int
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class _ListingOutcome:
    listed: bool
    # Seconds until the list should be read (again).
    due_in: float


class AudienceDirectory:
    """The names of audiences, by id, through the cache.

    Each audience is its own entry, so a lookup reads only the few audiences its customer
    belongs to (a sandbox may hold thousands). `warm` reads the whole list into these entries
    in the background; a lookup asks Platform (bulk-get) only for its customer's ids the cache
    lacks, and remembers each answer: the audience, or that Platform does not know the id.
    An id Platform could not answer for now is shown as it is and asked for again next time.
    """

    def __init__(
        self,
        *,
        client: AepClient,
        cache: DataCache,
        keys: CacheKeys,
        ttl: float,
        listing_deadline: float,
        listing_backoff: float,
        clock: Callable[[], datetime],
        stats: collections.Counter[str],
    ) -> None:
        """`listing_deadline` bounds the background reading of the sandbox's audience list
        (dozens of pages in a big sandbox), which after a failure waits `listing_backoff`
        seconds, doubled after each further failure."""
        self._client = client
        self._cache = cache
        self._keys = keys
        self._audience_ttl = ttl
        self._listing_deadline = listing_deadline
        self._listing_backoff = listing_backoff
        self._clock = clock
        self._stats = stats
        # The one listing of audiences this process runs at a time (see `warm`).
        self._listing: asyncio.Task[_ListingOutcome] | None = None
        self._listing_failures = 0
        self._warned = False

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

    async def cached(self, ids: list[str]) -> dict[str, Audience | None]:
        """The audiences of `ids` the cache knows (None: Platform did not know the id)."""
        if not ids:
            return {}
        values = await self._cache.get_many([self._keys.audience(i) for i in ids])
        names: dict[str, Audience | None] = {}
        for audience_id, value in zip(ids, values, strict=True):
            entry = _parse_known(value)
            if entry is not None:
                names[audience_id] = entry.audience
        return names

    async def names(
        self,
        ids: list[str],
        known: Mapping[str, Audience | None],
        *,
        look_in_cache: bool,
        deadline: float,
    ) -> dict[str, Audience | None]:
        """Names for the audience ids: `known` ones (read with the cached profile), the cache
        when `look_in_cache` (a freshly fetched profile), else Platform within `deadline`."""
        names: dict[str, Audience | None] = {i: known[i] for i in ids if i in known}
        unread = [i for i in ids if i not in names]
        if unread and look_in_cache:
            names.update(await self.cached(unread))
        missing = [i for i in ids if i not in names]
        if missing and await self._listing_landed(deadline):
            names.update(await self.cached(missing))
            missing = [i for i in ids if i not in names]
        if not missing:
            return names
        self._stats["aep_audiences"] += 1
        try:
            found = await self._client.get_audiences(missing, deadline=deadline)
        except AepError as exc:
            # The card shows the ids instead; the next lookup asks again.
            self._warn_once(exc)
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
            self._stats["aep_audiences"] += 1
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

    def _warn_once(self, exc: AepError) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning(
            "Audience names could not be read (%s, status %s, request %s); cards show what is "
            "available",
            type(exc).__name__,
            exc.status,
            exc.request_id,
        )


def _parse_known(data: object) -> _KnownAudience | None:
    if data is None:
        return None
    try:
        return _KnownAudience.model_validate(data)
    except ValidationError:
        return None
