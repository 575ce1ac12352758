"""The data cache: keys, lifetimes, bounds, de-duplication, coalescing and Redis outages."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from pydantic import BaseModel

from bot.cache import CACHE_VERSION, CacheKeys, CacheTokenStore, DataCache
from bot.identity import IdentityRef
from tests.redis_support import CACHE_KEY, RedisProxy, RedisTarget, free_port, isolated_redis

JANE = IdentityRef("Email", "jane.doe@example.com")
ORG = "0A1B2C3D4E5F@AdobeOrg"


class Point(BaseModel):
    x: int
    y: int


@pytest.fixture
def target() -> Iterator[RedisTarget]:
    with isolated_redis() as redis_target:
        yield redis_target


@pytest.fixture
async def memory() -> AsyncIterator[DataCache]:
    cache = DataCache.from_url("memory://", max_entries=10)
    yield cache
    await cache.aclose()


def coalesce(
    cache: DataCache,
    key: str,
    fetch: Callable[[], Awaitable[object]],
    *,
    check: Callable[[], Awaitable[object | None]] | None = None,
) -> Awaitable[object]:
    """One in-flight `fetch` per key, in this process and across instances: `share` around
    `exclusive`, as the lookup composes them."""
    return cache.share(key, lambda: cache.exclusive(key, fetch, check=check))


async def on_redis(target: RedisTarget, **options: float) -> DataCache:
    # Generous per-operation timeout: these tests are about behaviour, not a slow CI machine.
    settings: dict[str, float] = {"op_timeout": 1.0, **options}
    return DataCache.from_url(target.url, key=CACHE_KEY, **settings)  # type: ignore[arg-type]


# -- keys -----------------------------------------------------------------------------------------


def test_keys_are_scoped_to_org_sandbox_and_merge_policy() -> None:
    base = CacheKeys(org=ORG, sandbox="prod", merge_policy="mp-1")
    others = [
        CacheKeys(org="FFFF@AdobeOrg", sandbox="prod", merge_policy="mp-1"),
        CacheKeys(org=ORG, sandbox="dev", merge_policy="mp-1"),
        CacheKeys(org=ORG, sandbox="prod", merge_policy="mp-2"),
        CacheKeys(org=ORG, sandbox="prod", merge_policy=None),
    ]
    for other in others:
        assert other.profile(JANE) != base.profile(JANE)
        assert other.audiences() != base.audiences()
        assert other.not_found(JANE) != base.not_found(JANE)
    again = CacheKeys(org=ORG, sandbox="prod", merge_policy="mp-1")
    assert again.profile(JANE) == base.profile(JANE)


def test_a_colon_inside_a_key_part_does_not_make_two_keys_collide() -> None:
    """Each part is escaped: `a:b` + `c` and `a` + `b:c` are two deployments, not one."""
    one = CacheKeys(org="a:b", sandbox="c", merge_policy=None)
    two = CacheKeys(org="a", sandbox="b:c", merge_policy=None)
    assert one.profile(JANE) != two.profile(JANE)
    assert one.audiences() != two.audiences()
    keys = CacheKeys(org=ORG, sandbox="prod", merge_policy=None)
    assert ":" not in keys.audience("a:b").removeprefix(keys.prefix + ":audience:")
    assert ":" not in keys.lookup_token("t:o:k").removeprefix(keys.prefix + ":ref:")
    assert ":" not in keys.event("Ev:1").removeprefix(keys.prefix + ":slack-event:")
    weird = IdentityRef(namespace="a:b", value="x")
    assert keys.profile(weird).count(":") == keys.profile(JANE).count(":")


def test_keys_of_one_value_in_two_namespaces_differ() -> None:
    keys = CacheKeys(org=ORG, sandbox="prod", merge_policy=None, secret=b"s" * 32)
    email = IdentityRef(namespace="email", value="x123456")
    crmid = IdentityRef(namespace="crmid", value="x123456")
    assert keys.profile(email) != keys.profile(crmid)
    assert keys.lookup(email, 5) != keys.lookup(email, 50)
    assert keys.events(email, 5) != keys.events(email, 50)


def test_keys_of_identities_are_keyed_hashes_when_a_secret_is_given() -> None:
    """On Redis the identity part of a key is an HMAC: a plain hash of a phone number is undone
    by hashing every phone number. Two identities never share a key, with or without one."""
    jane, john = JANE, IdentityRef(namespace="email", value="john.doe@example.com")
    plain = CacheKeys(org=ORG, sandbox="prod", merge_policy=None)
    keyed = CacheKeys(org=ORG, sandbox="prod", merge_policy=None, secret=b"s" * 32)
    other = CacheKeys(org=ORG, sandbox="prod", merge_policy=None, secret=b"t" * 32)
    for keys in (plain, keyed):
        for build in (keys.profile, keys.not_found):
            assert build(jane) != build(john)
        for limit_build in (keys.events, keys.lookup):
            assert limit_build(jane, 5) != limit_build(john, 5)
    for name in ("profile", "not_found"):
        built = {getattr(k, name)(jane) for k in (plain, keyed, other)}
        assert len(built) == 3, name
    for name in ("events", "lookup"):
        built = {getattr(k, name)(jane, 5) for k in (plain, keyed, other)}
        assert len(built) == 3, name
    unkeyed = hashlib.sha256(f"{jane.namespace}\x00{jane.value}".encode()).hexdigest()
    assert plain.profile(jane).endswith(f":{jane.namespace}:{unkeyed[:32]}")
    assert unkeyed[:32] not in keyed.profile(jane)
    assert len(keyed.profile(jane).rsplit(":", 1)[1]) == 32


def test_keys_carry_the_version_and_no_identity_value() -> None:
    keys = CacheKeys(org=ORG, sandbox="prod", merge_policy=None)
    built = [
        keys.profile(JANE),
        keys.events(JANE, 10),
        keys.not_found(JANE),
        keys.lookup(JANE, 10),
        keys.audiences(),
        keys.token(),
        keys.lookup_token("abc"),
        keys.event("Ev123"),
    ]
    assert len(set(built)) == len(built)
    for key in built:
        assert f":{CACHE_VERSION}:" in key
        assert "jane" not in key
    assert keys.events(JANE, 10) != keys.events(JANE, 5)
    assert keys.profile(JANE) != keys.profile(IdentityRef("Email", "Jane.Doe@example.com"))


def test_key_components_cannot_run_together() -> None:
    one = CacheKeys(org="a:b@AdobeOrg", sandbox="c", merge_policy=None)
    two = CacheKeys(org="a@AdobeOrg", sandbox="b:c", merge_policy=None)
    assert one.audiences() != two.audiences()


def test_every_key_has_the_layout_all_instances_of_one_version_share() -> None:
    """Instances of one CACHE_VERSION share Redis during a rolling upgrade: the event
    de-duplication, the replay refusal and the button tokens hold across them only if every
    instance builds the same key. The layout is therefore a contract, changed only with the
    version."""
    secret = b"s" * 32
    prefix = f"ccb:{CACHE_VERSION}:1234@AdobeOrg:prod:-"
    jane = IdentityRef("email", "jane.doe@example.com")
    data = b"email\x00jane.doe@example.com"
    for key_secret, digest in (
        (None, hashlib.sha256(data).hexdigest()[:32]),
        (secret, hmac.new(secret, data, hashlib.sha256).hexdigest()[:32]),
    ):
        keys = CacheKeys(org="1234@AdobeOrg", sandbox="prod", merge_policy=None, secret=key_secret)
        assert keys.prefix == prefix
        assert keys.profile(jane) == f"{prefix}:profile:email:{digest}"
        assert keys.events(jane, 5) == f"{prefix}:events:5:email:{digest}"
        assert keys.not_found(jane) == f"{prefix}:notfound:email:{digest}"
        assert keys.lookup(jane, 5) == f"{prefix}:lookup:5:email:{digest}"
    keys = CacheKeys(org="1234@AdobeOrg", sandbox="prod", merge_policy=None)
    assert keys.audiences() == f"{prefix}:audiences"
    assert keys.audience("seg/1 x") == f"{prefix}:audience:seg%2F1%20x"
    assert keys.token() == f"{prefix}:ims-token"
    assert keys.token("cid") == f"{prefix}:ims-token:{hashlib.sha256(b'cid').hexdigest()[:16]}"
    assert keys.lookup_token("t:k") == f"{prefix}:ref:t%3Ak"
    assert keys.history("", "U1") == f"{prefix}:history:-:U1"
    assert keys.history("T1", "U1") == f"{prefix}:history:T1:U1"
    assert keys.home_open("", "U1") == f"{prefix}:home-open:-:U1"
    assert keys.home_open("T1", "U1") == f"{prefix}:home-open:T1:U1"
    assert keys.event("Ev:1") == f"{prefix}:slack-event:Ev%3A1"
    signature = hashlib.sha256(b"v0=abc").hexdigest()[:32]
    assert keys.request("v0=abc") == f"{prefix}:slack-request:{signature}"
    odd = CacheKeys(org="a:b/c", sandbox="s b", merge_policy="mp-1")
    assert odd.prefix == f"ccb:{CACHE_VERSION}:a%3Ab%2Fc:s%20b:mp-1"
    ns = IdentityRef("Team X/1", "1")
    digest = hashlib.sha256(b"Team X/1\x001").hexdigest()[:32]
    assert odd.profile(ns) == f"{odd.prefix}:profile:Team%20X%2F1:{digest}"


# -- the memory cache -----------------------------------------------------------------------------


async def test_memory_round_trips_json_and_models(memory: DataCache) -> None:
    await memory.set_json("k", {"a": [1, "two", None]}, ttl=60)
    await memory.set_model("p", Point(x=1, y=2), ttl=60)
    assert await memory.get_json("k") == {"a": [1, "two", None]}
    assert await memory.get_model("p", Point) == Point(x=1, y=2)
    assert await memory.get_json("absent") is None
    assert memory.kind == "memory"
    assert memory.available
    assert await memory.ping()
    assert memory.stats["hits"] == 2
    assert memory.stats["misses"] == 1


async def test_memory_entries_expire_after_their_ttl(memory: DataCache) -> None:
    await memory.set_json("short", 1, ttl=0.05)
    await memory.set_json("long", 2, ttl=60)
    await asyncio.sleep(0.1)
    assert await memory.get_json("short") is None
    assert await memory.get_json("long") == 2


async def test_an_entry_of_another_shape_reads_as_a_miss(memory: DataCache) -> None:
    await memory.set_json("p", {"x": "not a number"}, ttl=60)
    assert await memory.get_model("p", Point) is None
    assert memory.stats["misses"] == 1


async def test_delete_forgets_an_entry(memory: DataCache) -> None:
    await memory.set_json("k", 1, ttl=60)
    await memory.delete("k")
    assert await memory.get_json("k") is None


async def test_a_zero_ttl_stores_nothing(memory: DataCache) -> None:
    await memory.set_json("k", 1, ttl=0)
    assert await memory.get_json("k") is None


async def test_memory_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = DataCache.from_url("memory://", max_entries=10)
    for index in range(10):
        await cache.set_json(f"k{index}", index, ttl=60)
    await cache.get_json("k0")  # k0 is now the most recently used
    for index in range(10, 25):
        await cache.set_json(f"k{index}", index, ttl=60)
    present = [i for i in range(25) if await cache.get_json(f"k{i}") is not None]
    assert len(present) == 10
    assert 0 not in present  # used before the last 15 inserts, so evicted in time
    assert present == list(range(15, 25))

    cache = DataCache.from_url("memory://", max_entries=10)
    for index in range(10):
        await cache.set_json(f"k{index}", index, ttl=60)
    await cache.get_json("k0")
    await cache.set_json("k10", 10, ttl=60)
    assert await cache.get_json("k0") == 0  # touched, so k1 went instead
    assert await cache.get_json("k1") is None


async def test_memory_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used() -> None:
    # Ten 20 MB profiles must not take 200 MB: a 1 MiB budget holds five entries of 200 KB.
    cache = DataCache.from_url("memory://", max_entries=1000, max_bytes=1024 * 1024)
    big = "x" * 200_000
    for index in range(4):
        await cache.set_json(f"big{index}", big, ttl=60)
    await cache.get_json("big0")  # big0 is now the most recently used
    for index in range(4, 8):
        await cache.set_json(f"big{index}", big, ttl=60)
    present = [i for i in range(8) if await cache.get_json(f"big{i}") is not None]
    assert present == [0, 4, 5, 6, 7]  # big0 was touched, so big1 to big3 went instead

    # One value larger than the whole budget is not kept, and evicts nothing.
    await cache.set_json("small", 1, ttl=60)
    await cache.set_json("huge", "y" * 2_000_000, ttl=60)
    assert await cache.get_json("huge") is None
    assert await cache.get_json("small") == 1
    assert await cache.get_json("big7") == big


async def test_first_time_is_true_once_per_key_until_it_expires(memory: DataCache) -> None:
    assert await memory.first_time("ev1", ttl=0.05)
    assert not await memory.first_time("ev1", ttl=0.05)
    assert await memory.first_time("ev2")
    await asyncio.sleep(0.1)
    assert await memory.first_time("ev1")


async def test_de_duplication_survives_profile_traffic(memory: DataCache) -> None:
    assert await memory.first_time("ev1")
    for index in range(50):  # five times max_entries
        await memory.set_json(f"k{index}", index, ttl=60)
    assert not await memory.first_time("ev1")


# -- coalescing in one process --------------------------------------------------------------------


async def test_concurrent_callers_of_one_key_share_one_fetch(memory: DataCache) -> None:
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "value"

    waiting = [asyncio.create_task(coalesce(memory, "k", fetch)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["value"] * 50
    assert calls == 1
    assert memory.stats["coalesced"] == 49

    # Once settled, the next caller fetches again.
    assert await coalesce(memory, "k", fetch) == "value"
    assert calls == 2


async def test_a_failed_fetch_fails_every_waiter_and_is_not_kept(memory: DataCache) -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    results = await asyncio.gather(
        *(coalesce(memory, "k", fetch) for _ in range(5)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await coalesce(memory, "k", fetch)
    assert calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_others(memory: DataCache) -> None:
    gate = asyncio.Event()

    async def fetch() -> str:
        await gate.wait()
        return "value"

    first = asyncio.create_task(coalesce(memory, "k", fetch))
    second = asyncio.create_task(coalesce(memory, "k", fetch))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == "value"
    with pytest.raises(asyncio.CancelledError):
        await first


# -- the IMS token store --------------------------------------------------------------------------


async def test_the_token_store_keeps_a_token_until_its_refresh_point(memory: DataCache) -> None:
    now = 1_000_000.0
    store = CacheTokenStore(memory, "token", margin=300, clock=lambda: now)
    assert await store.load() is None
    await store.save("tok-1", now + 86400, now + 82800)
    assert await store.load() == ("tok-1", now + 86400, now + 82800)

    now += 82800  # the refresh point: the next instance asks IMS instead
    assert await store.load() is None

    await store.save("tok-2", now + 100, now + 90)  # within the margin of expiry: not stored
    assert await store.load() is None


# -- Redis ----------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_entries_are_shared_between_instances(target: RedisTarget) -> None:
    one, two = await on_redis(target), await on_redis(target)
    try:
        keys = CacheKeys(org=target.org, sandbox="prod", merge_policy=None)
        await one.set_model(keys.profile(JANE), Point(x=3, y=4), ttl=60)
        assert await two.get_model(keys.profile(JANE), Point) == Point(x=3, y=4)
        assert await two.get_many([keys.profile(JANE), keys.audiences()]) == [
            {"x": 3, "y": 4},
            None,
        ]
        await two.delete(keys.profile(JANE))
        assert await one.get_json(keys.profile(JANE)) is None
        assert one.kind == "redis"
        assert await one.ping()
    finally:
        await one.aclose()
        await two.aclose()


@pytest.mark.redis
async def test_many_entries_are_stored_at_once_with_their_ttl(target: RedisTarget) -> None:
    one, two = await on_redis(target), await on_redis(target)
    keys = [f"{target.marker}:a{index}" for index in range(450)]  # several MSET chunks
    try:
        await one.set_many({key: {"n": index} for index, key in enumerate(keys)}, ttl=60)
        assert await two.get_many(keys) == [{"n": index} for index in range(450)]
        client = target.client()
        assert 0 < int(str(client.pttl(keys[-1]))) <= 60_000
        client.close()
    finally:
        await one.aclose()
        await two.aclose()


async def test_many_entries_are_stored_at_once_in_memory(memory: DataCache) -> None:
    await memory.set_many({"a": 1, "b": [2]}, ttl=60)
    assert await memory.get_many(["a", "b", "c"]) == [1, [2], None]


@pytest.mark.redis
async def test_redis_keys_of_other_sandboxes_and_policies_do_not_mix(target: RedisTarget) -> None:
    cache = await on_redis(target)
    try:
        prod = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-1")
        dev = CacheKeys(org=target.org, sandbox="dev", merge_policy="mp-1")
        other_policy = CacheKeys(org=target.org, sandbox="prod", merge_policy="mp-2")
        await cache.set_json(prod.profile(JANE), "prod", ttl=60)
        assert await cache.get_json(dev.profile(JANE)) is None
        assert await cache.get_json(other_policy.profile(JANE)) is None
        assert await cache.get_json(prod.profile(JANE)) == "prod"
    finally:
        await cache.aclose()


@pytest.mark.redis
async def test_redis_entries_expire_after_their_ttl(target: RedisTarget) -> None:
    cache = await on_redis(target)
    try:
        await cache.set_json(f"{target.marker}:short", 1, ttl=0.05)
        await cache.set_json(f"{target.marker}:long", 2, ttl=60)
        await asyncio.sleep(0.1)
        assert await cache.get_json(f"{target.marker}:short") is None
        assert await cache.get_json(f"{target.marker}:long") == 2
    finally:
        await cache.aclose()


@pytest.mark.redis
async def test_entries_of_another_version_or_format_read_as_misses(target: RedisTarget) -> None:
    cache = await on_redis(target)
    client = target.raw_client()
    try:
        key = f"{target.marker}:entry"
        await cache.set_json(key, {"x": 1}, ttl=60)
        assert await cache.get_json(key) == {"x": 1}
        assert b'"x"' not in client.get(key)  # sealed, not stored as its JSON

        # What the bot wrote before values were sealed (and anything else in clear).
        client.set(key, json.dumps({"v": "v1", "data": {"x": 1}}))
        assert await cache.get_json(key) is None
        client.set(key, json.dumps({"v": CACHE_VERSION, "data": {"x": 1}}))
        assert await cache.get_json(key) is None
        client.set(key, "not json")
        assert await cache.get_json(key) is None
    finally:
        client.close()
        await cache.aclose()


@pytest.mark.redis
async def test_de_duplication_holds_across_instances(target: RedisTarget) -> None:
    one, two = await on_redis(target), await on_redis(target)
    try:
        key = f"{target.marker}:event:Ev1"
        answers = await asyncio.gather(
            *(cache.first_time(key, ttl=60) for cache in [one, two] * 10)
        )
        assert answers.count(True) == 1
        ttl = target.client().pttl(key)
        assert 0 < int(str(ttl)) <= 60_000
    finally:
        await one.aclose()
        await two.aclose()


@pytest.mark.redis
async def test_coalescing_spans_instances_on_redis(target: RedisTarget) -> None:
    one, two = await on_redis(target), await on_redis(target)
    key = f"{target.marker}:lookup"
    result_key = f"{target.marker}:result"
    calls = 0

    def fetcher(
        cache: DataCache,
    ) -> tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[str | None]]]:
        async def fetch() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.1)  # long enough for the other instance to find the lock
            await cache.set_json(result_key, "fetched", ttl=60)
            return "fetched"

        async def check() -> str | None:
            return await cache.get_json(result_key)  # type: ignore[no-any-return]

        return fetch, check

    try:
        jobs = []
        for cache in [one, two] * 10:
            fetch, check = fetcher(cache)
            jobs.append(coalesce(cache, key, fetch, check=check))
        assert await asyncio.gather(*jobs) == ["fetched"] * 20
        assert calls == 1
        assert one.stats["coalesced"] + two.stats["coalesced"] == 19
        assert not target.client().exists(f"{key}:lock")  # released by its holder
    finally:
        await one.aclose()
        await two.aclose()


@pytest.mark.redis
async def test_the_lock_holder_reads_a_result_stored_just_before_it_took_the_lock(
    target: RedisTarget,
) -> None:
    """Instance A missed the cache; B fetched, stored and released; A then takes the free lock:
    A must use B's result, not ask AEP again."""
    cache = await on_redis(target)
    result_key = f"{target.marker}:result"
    fetched = 0

    async def fetch() -> str:
        nonlocal fetched
        fetched += 1
        return "fetched again"

    async def check() -> str | None:
        return await cache.get_json(result_key)  # type: ignore[no-any-return]

    try:
        await cache.set_json(result_key, "stored by B", ttl=60)
        assert await cache.exclusive(f"{target.marker}:k", fetch, check=check) == "stored by B"
        assert fetched == 0
        # A refresh must not take the stored entry.
        assert (
            await cache.exclusive(f"{target.marker}:k", fetch, check=check, recheck=False)
            == "fetched again"
        )
        assert fetched == 1
    finally:
        await cache.aclose()


@pytest.mark.redis
async def test_a_refresh_that_waited_for_another_holder_fetches_after_the_release(
    target: RedisTarget,
) -> None:
    """recheck=False holds on the waiting path too: the stored entry is what the refresh is
    meant to replace."""
    cache = await on_redis(target)
    key = f"{target.marker}:k"
    client = target.client()
    client.set(f"{key}:lock", "another-instance", px=200)
    checked = 0

    async def fetch() -> str:
        assert not client.exists(f"{key}:lock")  # it waited for the holder first
        return "fetched fresh"

    async def check() -> str | None:
        nonlocal checked
        checked += 1
        return "stored, stale"

    try:
        async with asyncio.timeout(5):  # a guard only
            assert await cache.exclusive(key, fetch, check=check, recheck=False) == "fetched fresh"
        assert checked == 0
        assert cache.stats["coalesced"] == 1
    finally:
        client.close()
        await cache.aclose()


@pytest.mark.redis
async def test_a_waiter_stops_waiting_at_its_deadline(target: RedisTarget) -> None:
    """lock_wait is longer than a lookup's deadline: the wait ends at the deadline and `fetch`
    runs with none of it left (the AEP client then fails at once, asking nothing)."""
    cache = await on_redis(target, lock_wait=30)
    key = f"{target.marker}:busy"
    client = target.client()
    client.set(f"{key}:lock", "another-instance", px=30_000)
    deadline = time.monotonic() + 0.1
    seen: list[tuple[bool, bool]] = []

    async def fetch() -> str:
        seen.append((time.monotonic() >= deadline, bool(client.exists(f"{key}:lock"))))
        return "out of time"

    async def check() -> str | None:
        return None

    try:
        async with asyncio.timeout(5):  # a guard only: waiting for lock_wait would be a bug
            assert await cache.exclusive(key, fetch, check=check, deadline=deadline) == (
                "out of time"
            )
        assert seen == [(True, True)]  # the deadline had come; the holder still held the lock
    finally:
        client.close()
        await cache.aclose()


@pytest.mark.redis
async def test_a_lock_is_kept_while_its_fetch_runs(target: RedisTarget) -> None:
    one, two = await on_redis(target, lock_ttl=0.15), await on_redis(target, lock_ttl=0.15)
    key = f"{target.marker}:slow"
    calls = 0
    started = asyncio.Event()

    async def slow_fetch() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.35)  # more than two lock lifetimes
        await one.set_json(f"{key}:result", "slow", ttl=60)
        return "slow"

    async def check() -> str | None:
        return await two.get_json(f"{key}:result")  # type: ignore[no-any-return]

    try:
        holder = asyncio.create_task(coalesce(one, key, slow_fetch))
        await started.wait()
        assert await coalesce(two, key, slow_fetch, check=check) == "slow"
        assert await holder == "slow"
        assert calls == 1
    finally:
        await one.aclose()
        await two.aclose()


@pytest.mark.redis
async def test_a_dead_holder_blocks_no_longer_than_the_lock_ttl(target: RedisTarget) -> None:
    cache = await on_redis(target, lock_ttl=0.2, lock_wait=30)
    key = f"{target.marker}:orphan"
    client = target.client()
    # An instance took the lock and died: the lock is there, no result ever comes.
    client.set(f"{key}:lock", "dead-instance", px=200)
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        assert not client.exists(f"{key}:lock")  # we waited for it to expire, no longer
        return "fetched myself"

    async def check() -> str | None:
        return None

    try:
        async with asyncio.timeout(5):  # a guard only: waiting for lock_wait would be a bug
            assert await coalesce(cache, key, fetch, check=check) == "fetched myself"
        assert calls == 1
        assert cache.stats["coalesced"] == 1
    finally:
        client.close()
        await cache.aclose()


# -- Redis outages --------------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_redis_that_is_down_costs_one_failure_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = DataCache.from_url(
        f"redis://127.0.0.1:{free_port()}/0", key=CACHE_KEY, breaker_seconds=60
    )
    caplog.set_level(logging.INFO, logger="bot.cache")
    try:
        for index in range(20):
            await cache.set_json(f"k{index}", index, ttl=60)
            assert await cache.get_json(f"k{index}") == index  # kept in this process meanwhile
        assert not cache.available
        assert cache.stats["errors"] == 1  # the breaker skipped Redis after the first failure
        assert not await cache.ping()
        assert await cache.first_time("ev1")
        assert not await cache.first_time("ev1")
        assert await coalesce(cache, "k", _constant("answer")) == "answer"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "Redis cache unavailable" in warnings[0].getMessage()
    finally:
        await cache.aclose()


@pytest.mark.redis
async def test_the_cache_recovers_when_redis_returns(
    target: RedisTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.cache")
    proxy = RedisProxy(target.url)
    await proxy.start()
    cache = DataCache.from_url(proxy.url, key=CACHE_KEY, op_timeout=1.0, breaker_seconds=0.05)
    other = await on_redis(target)
    key = f"{target.marker}:k"
    try:
        await cache.set_json(key, "before", ttl=60)
        assert await other.get_json(key) == "before"

        await proxy.stop()
        assert await cache.get_json(key) is None  # Redis is gone: a miss, not an error
        assert not cache.available
        await cache.set_json(key, "during", ttl=60)  # kept in this process only
        assert await cache.get_json(key) == "during"
        assert await other.get_json(key) == "before"

        await proxy.start()
        await asyncio.sleep(0.06)  # the breaker lets the next operation try Redis again
        await cache.set_json(key, "after", ttl=60)
        assert cache.available
        assert await other.get_json(key) == "after"
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unavailable" in m for m in messages) == 1
        assert sum("reachable again" in m for m in messages) == 1
    finally:
        await proxy.stop()
        await cache.aclose()
        await other.aclose()


@pytest.mark.redis
async def test_a_redis_that_does_not_answer_is_given_up_after_the_op_timeout(
    target: RedisTarget,
) -> None:
    proxy = RedisProxy(target.url)
    proxy.stalled = True
    await proxy.start()
    cache = DataCache.from_url(proxy.url, key=CACHE_KEY, op_timeout=0.05, breaker_seconds=60)
    try:
        assert await cache.get_json("k") is None
        assert not cache.available
        for _ in range(10):
            assert await cache.get_json("k") is None
        assert cache.stats["errors"] == 1  # the stalled Redis was asked once, not eleven times
    finally:
        await proxy.stop()
        await cache.aclose()


@pytest.mark.redis
async def test_an_event_handled_during_an_outage_is_not_new_after_it(target: RedisTarget) -> None:
    proxy = RedisProxy(target.url)
    await proxy.start()
    cache = DataCache.from_url(proxy.url, key=CACHE_KEY, op_timeout=1.0, breaker_seconds=0.05)
    key = f"{target.marker}:event:Ev9"
    try:
        await proxy.stop()
        assert await cache.first_time(key)
        await proxy.start()
        await asyncio.sleep(0.06)
        assert not await cache.first_time(key)  # Redis had not seen it, this process had
    finally:
        await proxy.stop()
        await cache.aclose()


def _constant(value: str) -> Callable[[], Awaitable[str]]:
    async def fetch() -> str:
        return value

    return fetch
