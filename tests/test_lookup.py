"""CustomerLookup: what reaches AEP, what the cache answers, and how failures degrade."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient
from bot.aep.errors import (
    AepError,
    AepUnavailable,
    CredentialsProblem,
    LookupRejected,
    ProfileNotFound,
    TooManyIdentities,
)
from bot.aep.models import Audience, EventPage, ExperienceEvent, ProfileEntity, ProfileIdentity
from bot.button_tokens import ButtonTokens, Place, Recalled
from bot.cache import CacheKeys, CacheTokenStore, DataCache
from bot.demo.dataset import (
    DEFAULT_MERGE_POLICY_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_ORG_ID,
    DEMO_SANDBOX,
    NO_STITCH_MERGE_POLICY_ID,
)
from bot.demo.simulator import AepSimulator
from bot.demo.transport import in_process_transport
from bot.identity import IdentityRef
from bot.layout import load_layout
from bot.lookup import CustomerLookup, EventsSwitch
from bot.settings import DEFAULT_AEP_SCOPES
from tests.redis_support import CACHE_KEY, RedisProxy, RedisTarget, free_port, isolated_redis

JANE = IdentityRef("Email", "jane.doe@example.com")
SAM = IdentityRef("Email", "sam@example.com")
NOBODY = IdentityRef("Email", "nobody@example.com")
ORG = "0A1B2C3D4E5F@AdobeOrg"
LAYOUT = load_layout()
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

AUDIENCES = {
    "aud-1": Audience(id="aud-1", name="Gold members"),
    "aud-2": Audience(id="aud-2", name="Cart abandoners"),
    "aud-3": Audience(id="aud-3", name="Newsletter"),
    "aud-late": Audience(id="aud-late", name="Created after the directory was read"),
}


def profile_of(first: str, last: str, *audience_ids: str) -> ProfileEntity:
    return ProfileEntity(
        entity_id=f"id-{first.lower()}",
        entity={
            "person": {"name": {"firstName": first, "lastName": last}},
            "loyalty": {"tier": "gold"},
            "segmentMembership": {
                "ups": {
                    audience_id: {
                        "status": "realized",
                        "lastQualificationTime": "2026-10-01T10:00:00Z",
                    }
                    for audience_id in audience_ids
                }
            },
        },
        identities=(
            ProfileIdentity(namespace="Email", value="jane.doe@example.com", primary=True),
        ),
    )


def page_of(*titles: str) -> EventPage:
    return EventPage(
        events=tuple(
            ExperienceEvent(
                event_id=f"ev-{index}",
                timestamp=T0 - timedelta(hours=index),
                entity={
                    "eventType": "web.webpagedetails.pageViews",
                    "web": {"webPageDetails": {"name": title}},
                },
            )
            for index, title in enumerate(titles)
        ),
        more=False,
    )


@dataclass
class FakeAep:
    """AepClient's lookup methods over dictionaries, counting calls and recording deadlines."""

    profiles: dict[IdentityRef, ProfileEntity] = field(default_factory=dict)
    events: dict[IdentityRef, EventPage] = field(default_factory=dict)
    audiences: dict[str, Audience] = field(default_factory=lambda: dict(AUDIENCES))
    listed: Collection[str] = ("aud-1", "aud-2", "aud-3")
    delay: float = 0.0
    events_delay: float = 0.0
    list_delay: float = 0.0
    profile_error: AepError | None = None
    events_error: AepError | None = None
    audiences_error: AepError | None = None
    # Ids the bulk-get leaves out of its answer, as for an entry Platform answered with a 5xx.
    failing: set[str] = field(default_factory=set)
    # Failures of the next audience listings, one per listing.
    list_errors: list[AepError] = field(default_factory=list)
    lists_ended: int = 0
    # Notified when a listing starts and when it ends.
    listing: asyncio.Condition = field(default_factory=asyncio.Condition)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    deadlines: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    asked_audiences: list[list[str]] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)
    with_ca: list[bool] = field(default_factory=list)

    async def get_profile(
        self,
        ref: IdentityRef,
        *,
        fields: Sequence[str] | None = None,
        with_ca: bool = False,
        deadline: float,
    ) -> ProfileEntity:
        self.calls["profile"] += 1
        self.with_ca.append(with_ca)
        self.deadlines["profile"].append(deadline)
        assert fields and "segmentMembership" in fields and "person.name.firstName" in fields
        await asyncio.sleep(self.delay)
        if self.profile_error is not None:
            raise self.profile_error
        if ref not in self.profiles:
            raise ProfileNotFound("No customer profile holds this Email identity.", status=404)
        return self.profiles[ref]

    async def get_events(self, ref: IdentityRef, *, limit: int, deadline: float) -> EventPage:
        self.calls["events"] += 1
        self.deadlines["events"].append(deadline)
        self.limits.append(limit)
        await asyncio.sleep(self.delay + self.events_delay)
        if self.events_error is not None:
            raise self.events_error
        if ref not in self.events:
            raise ProfileNotFound("no events", status=404)
        return self.events[ref]

    async def get_audiences(
        self, ids: Collection[str], *, deadline: float
    ) -> dict[str, Audience | None]:
        self.calls["get_audiences"] += 1
        self.deadlines["get_audiences"].append(deadline)
        self.asked_audiences.append(sorted(ids))
        if self.audiences_error is not None:
            raise self.audiences_error
        return {i: self.audiences.get(i) for i in ids if i not in self.failing}

    async def list_audiences(self, *, deadline: float) -> list[Audience]:
        self.calls["list_audiences"] += 1
        self.deadlines["list_audiences"].append(deadline)
        await self._notify()
        try:
            await asyncio.sleep(self.delay + self.list_delay)
            if self.list_errors:
                raise self.list_errors.pop(0)
            if self.audiences_error is not None:
                raise self.audiences_error
            return [self.audiences[i] for i in self.listed]
        finally:
            self.lists_ended += 1
            await self._notify()

    async def _notify(self) -> None:
        async with self.listing:
            self.listing.notify_all()

    async def until(self, ready: Callable[[], bool]) -> None:
        """Wait until `ready()` holds, checked whenever a listing starts or ends."""
        async with self.listing:
            await self.listing.wait_for(ready)


def jane_aep(**options: Any) -> FakeAep:
    fake = FakeAep(**options)
    fake.profiles[JANE] = profile_of("Jane", "Doe", "aud-1", "aud-2")
    fake.events[JANE] = page_of("Pricing", "Home")
    fake.profiles[SAM] = profile_of("Sam", "Sparse")
    fake.events[SAM] = page_of()
    return fake


def lookup_keys() -> CacheKeys:
    return CacheKeys(org=ORG, sandbox="prod", merge_policy="mp-1")


def make_lookup(
    aep: FakeAep,
    cache: DataCache,
    *,
    keys: CacheKeys | None = None,
    clock_at: list[datetime] | None = None,
    **options: Any,
) -> CustomerLookup:
    now = clock_at if clock_at is not None else [T0]
    return CustomerLookup(
        client=aep,  # type: ignore[arg-type]
        cache=cache,
        keys=keys or lookup_keys(),
        layout=LAYOUT,
        clock=lambda: now[0],
        **options,
    )


@pytest.fixture
async def memory() -> AsyncIterator[DataCache]:
    cache = DataCache.from_url("memory://")
    yield cache
    await cache.aclose()


@pytest.fixture
def target() -> Iterator[RedisTarget]:
    with isolated_redis() as redis_target:
        yield redis_target


# -- one lookup -----------------------------------------------------------------------------------


async def test_a_lookup_builds_the_customer_from_profile_events_and_audience_names(
    memory: DataCache,
) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, demo=True)
    customer = await lookup.lookup(JANE)
    assert customer.name == "Jane Doe"
    assert customer.query == JANE
    assert [e.detail for e in customer.events] == ["Pricing", "Home"]
    assert customer.events_available
    assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
    assert customer.fetched_at == T0
    assert customer.demo
    assert aep.calls == {"profile": 1, "events": 1, "get_audiences": 1}
    # One deadline for the lookup, the audience names included.
    assert aep.deadlines["profile"] == aep.deadlines["events"] == aep.deadlines["get_audiences"]


async def test_the_lookup_deadline_is_the_configured_seconds_from_now(memory: DataCache) -> None:
    aep = jane_aep()
    before = time.monotonic()
    await make_lookup(aep, memory, deadline=3.0).lookup(JANE)
    (deadline,) = aep.deadlines["profile"]
    assert before + 3.0 <= deadline <= time.monotonic() + 3.0


async def test_a_cached_customer_costs_no_aep_call_and_keeps_its_fetch_time(
    memory: DataCache,
) -> None:
    aep = jane_aep()
    now = [T0]
    lookup = make_lookup(aep, memory, clock_at=now)
    await lookup.lookup(JANE)
    now[0] = T0 + timedelta(seconds=30)
    customer = await lookup.lookup(JANE)
    assert customer.name == "Jane Doe"
    assert customer.fetched_at == T0  # the card says how old the data is
    assert aep.calls == {"profile": 1, "events": 1, "get_audiences": 1}
    assert lookup.stats["cache_hit"] == 1
    assert lookup.stats["cache_miss"] == 1


async def test_cached_entries_expire_after_the_profile_ttl(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, profile_ttl=0.05)
    await lookup.lookup(JANE)
    await asyncio.sleep(0.1)
    await lookup.lookup(JANE)
    assert aep.calls["profile"] == 2
    assert aep.calls["events"] == 2
    assert aep.calls["get_audiences"] == 1  # audience names live longer


async def test_fifty_concurrent_lookups_make_one_profile_and_one_events_call(
    memory: DataCache,
) -> None:
    aep = jane_aep(delay=0.02)
    lookup = make_lookup(aep, memory)
    customers = await asyncio.gather(*(lookup.lookup(JANE) for _ in range(50)))
    assert {c.name for c in customers} == {"Jane Doe"}
    assert aep.calls == {"profile": 1, "events": 1, "get_audiences": 1}
    assert lookup.stats["coalesced"] == 49


async def test_a_refresh_bypasses_the_cache_and_rewrites_it(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory)
    await lookup.lookup(JANE)
    aep.profiles[JANE] = profile_of("Janet", "Doe", "aud-1")
    aep.events[JANE] = page_of("Checkout")

    refreshed = await lookup.lookup(JANE, refresh=True)
    assert refreshed.name == "Janet Doe"
    assert [e.detail for e in refreshed.events] == ["Checkout"]
    assert aep.calls["profile"] == 2

    again = await lookup.lookup(JANE)  # the refreshed entry, from the cache
    assert again.name == "Janet Doe"
    assert aep.calls["profile"] == 2


async def test_an_events_limit_has_its_own_entry(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, events_limit=10)
    await lookup.lookup(JANE)
    await lookup.lookup(JANE, events_limit=25)
    assert aep.limits == [10, 25]
    assert aep.calls["profile"] == 1  # the profile entry serves both


# -- not found and errors -------------------------------------------------------------------------


async def test_not_found_is_remembered_for_the_not_found_ttl(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, not_found_ttl=0.05)
    for _ in range(3):
        with pytest.raises(ProfileNotFound) as caught:
            await lookup.lookup(NOBODY)
        assert caught.value.status == 404
        assert "No customer profile" in caught.value.message
    assert aep.calls["profile"] == 1
    await asyncio.sleep(0.1)
    with pytest.raises(ProfileNotFound):
        await lookup.lookup(NOBODY)
    assert aep.calls["profile"] == 2


async def test_a_refresh_looks_again_for_a_customer_not_found(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory)
    with pytest.raises(ProfileNotFound):
        await lookup.lookup(NOBODY)
    aep.profiles[NOBODY] = profile_of("New", "Customer")
    aep.events[NOBODY] = page_of()
    assert (await lookup.lookup(NOBODY, refresh=True)).name == "New Customer"
    assert (await lookup.lookup(NOBODY)).name == "New Customer"  # the not-found entry is gone
    assert aep.calls["profile"] == 2


@pytest.mark.parametrize(
    "error",
    [
        AepUnavailable("Platform did not answer", status=503),
        TooManyIdentities("Too many related identities", status=422),
        CredentialsProblem("Refused", status=403),
    ],
)
async def test_profile_errors_propagate_and_are_not_remembered(
    memory: DataCache, error: AepError
) -> None:
    aep = jane_aep(profile_error=error)
    lookup = make_lookup(aep, memory)
    for _ in range(2):
        with pytest.raises(type(error)):
            await lookup.lookup(JANE)
    assert aep.calls["profile"] == 2


@pytest.mark.parametrize(
    "error",
    [
        CredentialsProblem("Not entitled", status=403),
        ProfileNotFound("no such thing", status=404),
        LookupRejected("Experience event lookup not enabled", status=422),
    ],
)
async def test_a_refused_events_lookup_turns_events_off_once_and_says_so_in_words(
    memory: DataCache, error: AepError, caplog: pytest.LogCaptureFixture
) -> None:
    aep = jane_aep(events_error=error)
    lookup = make_lookup(aep, memory)
    for ref in (JANE, JANE, SAM):
        customer = await lookup.lookup(ref)
        assert customer.events_status == "off"
        assert not customer.events_available and customer.events == ()
    assert aep.calls["events"] == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "Ultimate" in warning.getMessage() and "AEP_EVENTS_ENABLED" in warning.getMessage()


async def test_events_turned_off_are_asked_for_again_after_an_hour(memory: DataCache) -> None:
    aep = jane_aep(events_error=CredentialsProblem("Not entitled", status=403))
    lookup = make_lookup(aep, memory)
    now = [0.0]
    lookup.events = EventsSwitch("auto", clock=lambda: now[0])
    assert (await lookup.lookup(JANE)).events_status == "off"
    now[0] = 3599.0
    assert (await lookup.lookup(SAM)).events_status == "off"
    assert aep.calls["events"] == 1
    aep.events_error = None
    now[0] = 3600.0
    customer = await lookup.lookup(JANE)
    assert customer.events_status == "shown"
    assert [e.detail for e in customer.events] == ["Pricing", "Home"]
    assert lookup.events.wanted()


async def test_with_events_forced_on_a_refusal_is_a_failure_asked_again(
    memory: DataCache,
) -> None:
    aep = jane_aep(events_error=CredentialsProblem("Not entitled", status=403))
    lookup = make_lookup(aep, memory, events_enabled="true")
    assert (await lookup.lookup(JANE)).events_status == "failed"
    assert (await lookup.lookup(JANE)).events_status == "failed"
    assert aep.calls["events"] == 2


async def test_an_events_404_for_a_customer_who_does_not_exist_leaves_events_on(
    memory: DataCache,
) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory)
    with pytest.raises(ProfileNotFound):
        await lookup.lookup(IdentityRef(namespace="email", value="nobody@example.com"))
    assert lookup.events.wanted()
    assert (await lookup.lookup(JANE)).events_status == "shown"


async def test_events_that_fail_for_now_degrade_and_are_asked_again(memory: DataCache) -> None:
    aep = jane_aep(events_error=AepUnavailable("slow", status=504))
    lookup = make_lookup(aep, memory)
    customer = await lookup.lookup(JANE)
    assert customer.events_status == "failed" and not customer.events_available
    aep.events_error = None
    customer = await lookup.lookup(JANE)
    assert customer.events_available
    assert [e.detail for e in customer.events] == ["Pricing", "Home"]
    assert aep.calls["events"] == 2
    assert aep.calls["profile"] == 1  # the profile came from the cache the second time


async def test_a_profile_without_events_shows_an_empty_timeline(memory: DataCache) -> None:
    aep = jane_aep()
    customer = await make_lookup(aep, memory).lookup(SAM)
    assert customer.events_status == "shown" and customer.events_available
    assert customer.events == ()


async def test_a_soon_lookup_answers_before_late_events_and_brings_them_later(
    memory: DataCache,
) -> None:
    aep = jane_aep(events_delay=0.3)
    lookup = make_lookup(aep, memory)
    looked = await lookup.lookup_soon(JANE)
    assert looked.customer.name == "Jane Doe"
    assert looked.customer.events_status == "loading" and looked.customer.events == ()
    assert looked.later is not None
    assert aep.calls["events"] == 1
    customer = await looked.later()
    assert customer.events_status == "shown"
    assert [e.detail for e in customer.events] == ["Pricing", "Home"]
    # Both halves were stored: the next lookup is whole from the cache.
    again = await lookup.lookup_soon(JANE)
    assert again.later is None and again.customer.events_status == "shown"
    assert aep.calls == collections.Counter(
        {"profile": 1, "events": 1, "get_audiences": aep.calls["get_audiences"]}
    )


async def test_a_soon_lookup_whose_late_events_fail_says_so_later(memory: DataCache) -> None:
    aep = jane_aep(events_delay=0.2, events_error=AepUnavailable("slow", status=504))
    looked = await make_lookup(aep, memory).lookup_soon(JANE)
    assert looked.customer.events_status == "loading" and looked.later is not None
    assert (await looked.later()).events_status == "failed"


async def test_a_plain_lookup_waits_for_the_events(memory: DataCache) -> None:
    aep = jane_aep(events_delay=0.2)
    customer = await make_lookup(aep, memory).lookup(JANE)
    assert customer.events_status == "shown" and len(customer.events) == 2


async def test_events_disabled_makes_no_events_call(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, events_enabled="false")
    customer = await lookup.lookup(JANE)
    await lookup.lookup(JANE)
    assert not customer.events_available and customer.events_status == "off"
    assert aep.calls["events"] == 0
    assert aep.calls["profile"] == 1


# -- audience names -------------------------------------------------------------------------------


async def test_after_warm_a_cold_lookup_is_one_round_trip(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory)
    await lookup.warm(keep=False)
    assert aep.calls == {"list_audiences": 1}
    customer = await lookup.lookup(JANE)
    assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
    assert aep.calls == {"list_audiences": 1, "profile": 1, "events": 1}


async def test_an_audience_missing_from_the_directory_is_fetched_once(memory: DataCache) -> None:
    aep = jane_aep()
    aep.profiles[JANE] = profile_of("Jane", "Doe", "aud-1", "aud-late", "aud-deleted")
    lookup = make_lookup(aep, memory)
    await lookup.warm(keep=False)
    customer = await lookup.lookup(JANE)
    names = {a.audience_id: a.name for a in customer.audiences}
    assert names == {
        "aud-1": "Gold members",
        "aud-late": "Created after the directory was read",
        "aud-deleted": None,  # unknown to Platform: its name is unknown
    }
    assert aep.asked_audiences == [["aud-deleted", "aud-late"]]

    await lookup.lookup(JANE, refresh=True)
    await lookup.lookup(SAM)
    assert aep.calls["get_audiences"] == 1  # neither the known nor the unknown id asked again
    assert aep.calls["list_audiences"] == 1


async def test_an_audience_platform_could_not_answer_has_no_name_and_is_asked_again(
    memory: DataCache,
) -> None:
    aep = jane_aep(failing={"aud-2"})
    lookup = make_lookup(aep, memory)
    first = await lookup.lookup(JANE)
    assert {a.audience_id: a.name for a in first.audiences} == {
        "aud-1": "Gold members",
        "aud-2": None,
    }
    aep.failing.clear()  # Platform answers for it again
    second = await lookup.lookup(JANE)
    assert {a.name for a in second.audiences} == {"Gold members", "Cart abandoners"}
    assert aep.asked_audiences == [["aud-1", "aud-2"], ["aud-2"]]
    assert aep.calls["profile"] == 1  # the profile came from the cache the second time
    await lookup.lookup(JANE)
    assert aep.calls["get_audiences"] == 2  # now it is remembered


async def test_lookups_never_list_the_audiences_themselves(memory: DataCache) -> None:
    aep = jane_aep(delay=0.01)
    lookup = make_lookup(aep, memory)
    customers = await asyncio.gather(lookup.lookup(JANE), lookup.lookup(SAM))
    assert {a.name for a in customers[0].audiences} == {"Gold members", "Cart abandoners"}
    assert aep.calls["list_audiences"] == 0
    assert aep.asked_audiences == [["aud-1", "aud-2"]]  # Sam belongs to no audience


async def test_a_listing_that_outlives_lookups_is_not_started_again_by_them(
    memory: DataCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big sandbox: the list takes longer than a lookup's deadline. It runs once, in the
    background under its own deadline, while each cold lookup names its own audiences."""
    monkeypatch.setattr("bot.audiences._LISTING_GRACE", 0.01)
    aep = jane_aep(list_delay=30)
    lookup = make_lookup(aep, memory, deadline=0.5)
    warming = asyncio.create_task(lookup.warm())
    try:
        for index in range(3):
            ref = IdentityRef("Email", f"customer-{index}@example.com")
            aep.profiles[ref] = profile_of("Cust", str(index), f"aud-{index + 1}")
            customer = await lookup.lookup(ref)
            assert [a.name for a in customer.audiences] == [AUDIENCES[f"aud-{index + 1}"].name]
        assert aep.calls["list_audiences"] == 1
        assert aep.calls["get_audiences"] == 3
        (listing_deadline,) = aep.deadlines["list_audiences"]
        assert listing_deadline > max(aep.deadlines["profile"]) + 30  # its own, long deadline
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_a_lookup_waits_briefly_for_a_listing_under_way(memory: DataCache) -> None:
    aep = jane_aep(list_delay=0.05)
    lookup = make_lookup(aep, memory)
    warming = asyncio.create_task(lookup.warm(keep=False))
    await asyncio.sleep(0)  # the listing has started
    customer = await lookup.lookup(JANE)
    assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
    assert aep.calls["get_audiences"] == 0  # the listing landed within the grace
    await warming


async def test_a_slow_audience_list_does_not_hold_the_card_back(
    memory: DataCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.audiences._LISTING_GRACE", 0.01)
    aep = jane_aep(list_delay=0.2)
    lookup = make_lookup(aep, memory)
    warming = asyncio.create_task(lookup.warm(keep=False))
    await asyncio.sleep(0)
    customer = await lookup.lookup(JANE)
    assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
    assert aep.asked_audiences == [["aud-1", "aud-2"]]  # this customer's, asked directly
    await warming  # the list goes on in the background and lands in the cache
    aep.profiles[SAM] = profile_of("Sam", "Sparse", "aud-3")
    assert [a.name for a in (await lookup.lookup(SAM)).audiences] == ["Newsletter"]
    assert aep.calls["get_audiences"] == 1
    assert aep.calls["list_audiences"] == 1


@pytest.mark.parametrize("who", [SAM, JANE], ids=["no-audiences", "audiences-cached"])
async def test_no_wait_for_a_listing_when_every_audience_is_named(
    memory: DataCache, monkeypatch: pytest.MonkeyPatch, who: IdentityRef
) -> None:
    monkeypatch.setattr("bot.audiences._LISTING_GRACE", 30.0)
    aep = jane_aep(list_delay=30)
    lookup = make_lookup(aep, memory)
    await lookup.lookup(JANE)  # names Jane's audiences
    await memory.delete(lookup_keys().profile(JANE))
    warming = asyncio.create_task(lookup.warm())
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(5):  # a guard only: waiting out the grace would be a bug
            await lookup.lookup(who)
        assert aep.calls["list_audiences"] == 1
        assert not warming.done()
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_the_wait_for_a_listing_ends_at_the_lookup_deadline(
    memory: DataCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.audiences._LISTING_GRACE", 30.0)
    aep = jane_aep(list_delay=30)
    lookup = make_lookup(aep, memory, deadline=0.2)
    warming = asyncio.create_task(lookup.warm())
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(5):  # a guard only: waiting out the grace would be a bug
            customer = await lookup.lookup(JANE)
        assert customer.name == "Jane Doe"
        assert aep.calls["get_audiences"] == 1
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_audience_failures_leave_names_unknown_instead_of_failing(
    memory: DataCache, caplog: pytest.LogCaptureFixture
) -> None:
    aep = jane_aep(audiences_error=AepUnavailable("down", status=503))
    customer = await make_lookup(aep, memory).lookup(JANE)
    assert {a.audience_id: a.name for a in customer.audiences} == {"aud-1": None, "aud-2": None}
    assert customer.name == "Jane Doe"


async def test_warm_failures_are_logged_once_and_not_raised(
    memory: DataCache, caplog: pytest.LogCaptureFixture
) -> None:
    aep = jane_aep(audiences_error=CredentialsProblem("Refused", status=403))
    await make_lookup(aep, memory).warm(keep=False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "CredentialsProblem" in warnings[0].getMessage()


async def test_a_failed_listing_is_tried_again_after_a_pause_and_not_by_lookups(
    memory: DataCache,
) -> None:
    down = AepUnavailable("down", status=503)
    aep = jane_aep(list_errors=[down])
    lookup = make_lookup(aep, memory, listing_backoff=3600)
    warming = asyncio.create_task(lookup.warm())
    try:
        await aep.until(lambda: aep.lists_ended == 1)
        for _ in range(3):
            customer = await lookup.lookup(JANE, refresh=True)
            assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
        assert aep.calls["list_audiences"] == 1  # in its pause: neither lookups nor warm list
        assert aep.calls["get_audiences"] == 1
        assert not warming.done()
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_warm_keeps_trying_until_the_list_is_read_then_warns_no_more(
    memory: DataCache, caplog: pytest.LogCaptureFixture
) -> None:
    down = AepUnavailable("down", status=503)
    aep = jane_aep(list_errors=[down, down], list_delay=0.02)
    lookup = make_lookup(aep, memory, listing_backoff=0.01)
    warming = asyncio.create_task(lookup.warm())
    try:
        async with asyncio.timeout(5):  # a guard only
            await aep.until(lambda: aep.calls["list_audiences"] == 3)
        await lookup.warm(keep=False)  # joins the third listing, which succeeds
        await asyncio.sleep(0.05)
        assert aep.calls["list_audiences"] == 3  # read: due again only before the names expire
        customer = await lookup.lookup(JANE)
        assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
        assert aep.calls["get_audiences"] == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # the first failure of the streak, not every retry
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_warm_reads_the_list_again_before_the_names_expire(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, audience_ttl=0.4)
    warming = asyncio.create_task(lookup.warm())
    try:
        async with asyncio.timeout(5):  # a guard only
            await aep.until(lambda: aep.calls["list_audiences"] == 2)
        # Read again before they expire, the names never lapse: the lookup asks for none.
        customer = await lookup.lookup(JANE)
        assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
        assert aep.calls["get_audiences"] == 0
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_audience_names_live_for_the_audience_ttl(memory: DataCache) -> None:
    aep = jane_aep()
    lookup = make_lookup(aep, memory, audience_ttl=0.05, profile_ttl=60)
    await lookup.lookup(JANE)
    await asyncio.sleep(0.1)
    await lookup.lookup(JANE)
    assert aep.calls["get_audiences"] == 2
    assert aep.calls["profile"] == 1


# -- keys and button tokens -----------------------------------------------------------------------


async def test_other_merge_policies_and_sandboxes_do_not_share_entries(memory: DataCache) -> None:
    aep = jane_aep()
    for sandbox, policy in [("prod", "mp-1"), ("prod", "mp-2"), ("dev", "mp-1")]:
        keys = CacheKeys(org=ORG, sandbox=sandbox, merge_policy=policy)
        await make_lookup(aep, memory, keys=keys).lookup(JANE)
    assert aep.calls["profile"] == 3


async def test_remember_and_recall_an_identity_behind_an_opaque_token(memory: DataCache) -> None:
    lookup = ButtonTokens(cache=memory, keys=lookup_keys())
    token = await lookup.remember(JANE)
    assert "jane" not in token.lower()
    assert await lookup.recall(token) == JANE
    assert await lookup.remember(IdentityRef("Email", "john@example.com")) != token
    assert await lookup.recall("made-up") is None
    assert await lookup.recall("") is None


async def test_cards_of_one_customer_share_one_token_so_buttons_do_not_crowd_the_cache() -> None:
    cache = DataCache(max_entries=10)
    lookup = ButtonTokens(cache=cache, keys=lookup_keys())
    tokens = {await lookup.remember(JANE) for _ in range(50)}
    assert len(tokens) == 1
    assert await lookup.recall(tokens.pop()) == JANE


async def test_a_button_token_is_short_url_safe_and_bound_to_its_instance(
    memory: DataCache,
) -> None:
    """A token is 22 URL-safe characters (128 bits, no padding) whatever the identity, so a
    button value never grows with an email; another instance's key gives another token, and the
    namespace counts in any case: `Email` and `email` are one identity, `crmid` another."""
    one = ButtonTokens(cache=memory, keys=lookup_keys())
    other = ButtonTokens(cache=memory, keys=lookup_keys())
    long_email = IdentityRef("email", "a" * 300 + "@example.com")
    for ref in (JANE, long_email, IdentityRef("crmid", "1")):
        token = await one.remember(ref)
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token), token
        assert await other.remember(ref) != token
    same = IdentityRef("EMAIL", JANE.value)
    assert await one.remember(same) == await one.remember(IdentityRef("email", JANE.value))
    assert await one.recall(await one.remember(same)) == same


async def test_cards_of_one_customer_in_two_places_each_lead_back_to_their_own_place(
    memory: DataCache,
) -> None:
    """A card answered in a thread of one channel and a card of the same customer in another
    thread, the channel itself or elsewhere have tokens of their own: a click on either answers
    where that card was (its Share goes into that thread), never where another was answered
    last."""
    tokens = ButtonTokens(cache=memory, keys=lookup_keys())
    places = [
        Place("C0SALES", "1700000000.000100"),
        Place("C0SALES", "1700000000.000200"),
        Place("C0SALES", None),
        Place("D0DM", None),
    ]
    remembered = [await tokens.remember(JANE, place=place) for place in places]
    remembered.append(await tokens.remember(JANE))
    assert len(set(remembered)) == 5
    for token, place in zip(remembered, [*places, None], strict=True):
        assert await tokens.recall_place(token) == Recalled(JANE, place)


# -- Redis ----------------------------------------------------------------------------------------


def redis_cache(url: str, **options: Any) -> DataCache:
    return DataCache.from_url(url, **{"key": CACHE_KEY, "op_timeout": 1.0, **options})


@pytest.mark.redis
async def test_lookups_on_two_instances_share_one_aep_call(target: RedisTarget) -> None:
    keys = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
    caches = [redis_cache(target.url), redis_cache(target.url)]
    fakes = [jane_aep(delay=0.05), jane_aep(delay=0.05)]
    lookups = [
        make_lookup(fake, cache, keys=keys) for fake, cache in zip(fakes, caches, strict=True)
    ]
    try:
        customers = await asyncio.gather(*(lookups[i % 2].lookup(JANE) for i in range(20)))
        assert {c.name for c in customers} == {"Jane Doe"}
        assert sum(f.calls["profile"] for f in fakes) == 1
        assert sum(f.calls["events"] for f in fakes) == 1
        assert sum(lookup.stats["coalesced"] for lookup in lookups) == 19
    finally:
        for cache in caches:
            await cache.aclose()


@pytest.mark.redis
async def test_a_not_found_on_one_instance_is_known_to_the_other(target: RedisTarget) -> None:
    keys = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
    caches = [redis_cache(target.url), redis_cache(target.url)]
    fakes = [jane_aep(), jane_aep()]
    try:
        for fake, cache in zip(fakes, caches, strict=True):
            with pytest.raises(ProfileNotFound):
                await make_lookup(fake, cache, keys=keys).lookup(NOBODY)
        assert [f.calls["profile"] for f in fakes] == [1, 0]
    finally:
        for cache in caches:
            await cache.aclose()


@pytest.mark.redis
async def test_a_refresh_that_waits_for_another_instance_still_asks_aep(
    target: RedisTarget,
) -> None:
    keys = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
    cache = redis_cache(target.url)
    client = target.client()
    aep = jane_aep()
    lookup = make_lookup(aep, cache, keys=keys)
    try:
        await lookup.lookup(JANE)
        aep.profiles[JANE] = profile_of("Janet", "Doe", "aud-1")
        # Another instance is looking Jane up: it holds the lock.
        client.set(f"{keys.lookup(JANE, 10)}:lock", "another-instance", px=200)
        refreshed = await lookup.lookup(JANE, refresh=True)
        assert refreshed.name == "Janet Doe"  # not the stored entry it waited beside
        assert aep.calls["profile"] == 2
    finally:
        client.close()
        await cache.aclose()


@pytest.mark.redis
async def test_a_refresh_that_waits_for_another_instance_looks_again_for_a_not_found(
    target: RedisTarget,
) -> None:
    keys = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
    cache = redis_cache(target.url)
    client = target.client()
    aep = jane_aep()
    lookup = make_lookup(aep, cache, keys=keys)
    try:
        with pytest.raises(ProfileNotFound):
            await lookup.lookup(NOBODY)
        aep.profiles[NOBODY] = profile_of("New", "Customer")
        client.set(f"{keys.lookup(NOBODY, 10)}:lock", "another-instance", px=200)
        assert (await lookup.lookup(NOBODY, refresh=True)).name == "New Customer"
    finally:
        client.close()
        await cache.aclose()


@pytest.mark.redis
async def test_instances_warming_together_list_the_audiences_once(target: RedisTarget) -> None:
    keys = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
    caches = [redis_cache(target.url), redis_cache(target.url)]
    fakes = [jane_aep(list_delay=0.1), jane_aep(list_delay=0.1)]
    lookups = [
        make_lookup(fake, cache, keys=keys) for fake, cache in zip(fakes, caches, strict=True)
    ]
    try:
        await asyncio.gather(*(lookup.warm(keep=False) for lookup in lookups))
        assert sum(f.calls["list_audiences"] for f in fakes) == 1
        customer = await lookups[1].lookup(JANE)
        assert {a.name for a in customer.audiences} == {"Gold members", "Cart abandoners"}
        assert fakes[1].calls["get_audiences"] == 0
    finally:
        for cache in caches:
            await cache.aclose()


async def test_lookups_answer_while_redis_is_down() -> None:
    cache = redis_cache(f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.05)
    aep = jane_aep()
    lookup = make_lookup(aep, cache)
    try:
        customers = await asyncio.gather(*(lookup.lookup(JANE) for _ in range(10)))
        assert {c.name for c in customers} == {"Jane Doe"}
        assert aep.calls["profile"] == 1  # still coalesced within this instance
        assert not cache.available
        buttons = ButtonTokens(cache=cache, keys=lookup_keys())
        token = await buttons.remember(JANE)
        assert await buttons.recall(token) == JANE
    finally:
        await cache.aclose()


@pytest.mark.redis
async def test_lookups_go_on_through_a_redis_outage_and_use_it_again_after(
    target: RedisTarget,
) -> None:
    proxy = RedisProxy(target.url)
    await proxy.start()
    keys = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
    cache = redis_cache(proxy.url, breaker_seconds=0.05)
    other_cache = redis_cache(target.url)
    aep, other_aep = jane_aep(), jane_aep()
    lookup = make_lookup(aep, cache, keys=keys)
    try:
        await proxy.stop()
        assert (await lookup.lookup(JANE)).name == "Jane Doe"
        assert not cache.available

        await proxy.start()
        await asyncio.sleep(0.06)
        assert (await lookup.lookup(SAM)).name == "Sam Sparse"
        assert cache.available
        # What was fetched after the outage is in Redis for the other instances.
        await make_lookup(other_aep, other_cache, keys=keys).lookup(SAM)
        assert other_aep.calls["profile"] == 0
    finally:
        await proxy.stop()
        await cache.aclose()
        await other_cache.aclose()


# -- against the demo AEP sandbox -----------------------------------------------------------------


@dataclass
class Stack:
    """The real AEP client wired to one simulator, as one bot instance would have it."""

    lookup: CustomerLookup
    cache: DataCache
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.cache.aclose()


def demo_stack(
    sim: AepSimulator,
    cache: DataCache,
    *,
    org: str = DEMO_ORG_ID,
    merge_policy: str = DEFAULT_MERGE_POLICY_ID,
    **options: Any,
) -> Stack:
    url = "http://demo-aep.invalid"
    http = httpx.AsyncClient(transport=in_process_transport(sim))
    keys = CacheKeys(org=org, sandbox=DEMO_SANDBOX, merge_policy=merge_policy)
    tokens = ImsTokenSource(
        http=http,
        ims_url=url,
        client_id=DEMO_CLIENT_ID,
        client_secret=SecretStr(DEMO_CLIENT_SECRET),
        scopes=DEFAULT_AEP_SCOPES,
        store=CacheTokenStore(cache, keys.token()),
    )
    client = AepClient(
        http=http,
        tokens=tokens,
        api_url=url,
        org_id=DEMO_ORG_ID,
        client_id=DEMO_CLIENT_ID,
        sandbox=DEMO_SANDBOX,
        merge_policy_id=merge_policy,
    )
    lookup = CustomerLookup(
        client=client, cache=cache, keys=keys, layout=LAYOUT, demo=True, **options
    )
    return Stack(lookup=lookup, cache=cache, http=http)


DEMO_JANE = IdentityRef("Email", "jane.doe@example.com")
DEMO_SAM = IdentityRef("Email", "sparse@example.com")


async def test_demo_after_warm_a_cold_lookup_costs_one_round_trip() -> None:
    sim = AepSimulator()
    stack = demo_stack(sim, DataCache.from_url("memory://"))
    try:
        await stack.lookup.warm(keep=False)
        assert sim.stats["token"] == 1
        assert sim.stats["audiences"] >= 1
        sim.reset()
        sim.faults.latency_ms = 10  # long enough for the two calls to overlap
        customer = await stack.lookup.lookup(DEMO_JANE)
        assert customer.name == "Jane Doe"
        assert customer.events and customer.events_available
        assert customer.audiences
        assert all(a.name != a.audience_id for a in customer.audiences)
        assert (sim.stats["profile"], sim.stats["events"]) == (1, 1)
        assert sim.stats["token"] == sim.stats["audiences"] == 0
        assert sim.max_in_flight == 2  # profile and events side by side
    finally:
        await stack.aclose()


async def test_demo_fifty_concurrent_lookups_reach_aep_once() -> None:
    sim = AepSimulator()
    sim.faults.latency_ms = 20
    stack = demo_stack(sim, DataCache.from_url("memory://"))
    try:
        customers = await asyncio.gather(*(stack.lookup.lookup(DEMO_JANE) for _ in range(50)))
        assert {c.name for c in customers} == {"Jane Doe"}
        assert (sim.stats["profile"], sim.stats["events"], sim.stats["token"]) == (1, 1, 1)
    finally:
        await stack.aclose()


async def test_demo_unknown_customer_is_not_found_once() -> None:
    sim = AepSimulator()
    stack = demo_stack(sim, DataCache.from_url("memory://"))
    try:
        for _ in range(2):
            with pytest.raises(ProfileNotFound):
                await stack.lookup.lookup(IdentityRef("Email", "nobody@example.com"))
        assert sim.stats["profile"] == 1
        sparse = await stack.lookup.lookup(DEMO_SAM)
        assert sparse.name == "Sam Sparse"
        assert sparse.audiences == ()
    finally:
        await stack.aclose()


async def test_demo_merge_policies_keep_separate_entries() -> None:
    sim = AepSimulator()
    cache = DataCache.from_url("memory://")
    stitched = demo_stack(sim, cache)
    fragment = demo_stack(sim, cache, merge_policy=NO_STITCH_MERGE_POLICY_ID)
    try:
        whole = await stitched.lookup.lookup(DEMO_JANE)
        part = await fragment.lookup.lookup(DEMO_JANE)
        assert sim.stats["profile"] == 2
        assert len(part.fields) < len(whole.fields)
    finally:
        await stitched.http.aclose()
        await fragment.aclose()


@pytest.mark.redis
async def test_demo_a_lookup_waiting_on_a_busy_instance_stops_at_its_deadline(
    target: RedisTarget,
) -> None:
    """The lock wait (10 s) is longer than the lookup deadline: the lookup gives up at its
    deadline, with no time left to ask AEP, and says AEP is unavailable."""
    sim = AepSimulator()
    keys = CacheKeys(org=target.org, sandbox=DEMO_SANDBOX, merge_policy=DEFAULT_MERGE_POLICY_ID)
    stack = demo_stack(sim, redis_cache(target.url), org=target.org, deadline=0.2)
    client = target.client()
    # Another instance is fetching Jane and keeps its lock alive.
    client.set(f"{keys.lookup(DEMO_JANE, 10)}:lock", "another-instance", px=30_000)
    try:
        async with asyncio.timeout(5):  # a guard only: waiting out the lock would be a bug
            with pytest.raises(AepUnavailable, match="ran out of time"):
                await stack.lookup.lookup(DEMO_JANE)
        assert sim.stats["profile"] == sim.stats["events"] == 0
    finally:
        client.close()
        await stack.aclose()


@pytest.mark.redis
async def test_demo_instances_on_one_redis_share_the_ims_token_and_the_profile(
    target: RedisTarget,
) -> None:
    sim = AepSimulator()
    stacks = [
        demo_stack(sim, redis_cache(target.url), org=target.org),
        demo_stack(sim, redis_cache(target.url), org=target.org),
    ]
    try:
        await stacks[0].lookup.lookup(DEMO_JANE)
        customer = await stacks[1].lookup.lookup(DEMO_JANE)
        assert customer.name == "Jane Doe"
        assert sim.stats["token"] == 1
        assert sim.stats["profile"] == 1
        await stacks[1].lookup.lookup(DEMO_SAM)
        assert sim.stats["token"] == 1  # the second instance took the shared token
    finally:
        for stack in stacks:
            await stack.aclose()


@pytest.mark.parametrize("setting", [True, False])
async def test_computed_attributes_are_asked_for_when_the_layout_names_them(
    memory: DataCache, setting: bool
) -> None:
    assert LAYOUT.has_computed
    aep = jane_aep()
    await make_lookup(aep, memory, with_ca=setting).lookup(JANE)
    assert aep.with_ca == [setting]
