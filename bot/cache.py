"""The data cache: memory or Redis, versioned keys, coalesced fetches; Redis is never required.

What the bot keeps on Redis is sealed: every value is encrypted and authenticated with AES-GCM
under a key derived from BOT_CACHE_KEY, with the Redis key as associated data. Whoever can write
to Redis cannot forge an entry (a manager's group membership, a button token leading to another
customer), move a valid one to another key, or read profiles or the IMS token; a value that does
not open, for whatever reason, is a miss that the next fetch overwrites.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast
from urllib.parse import quote

from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import NullSerializer
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError, ResponseError

from bot.identity import IdentityRef
from bot.settings import MIN_CACHE_KEY_LENGTH

log = logging.getLogger(__name__)

#: Part of every key and every stored entry: bump it when the shape of what is stored changes, so
#: new code never reads entries that old code wrote (and the other way round during a deploy).
CACHE_VERSION = "v2"

#: What a sealed value starts with; a value of any other format (an older one, say) is a miss.
_SEAL_FORMAT = b"s1"
_NONCE_BYTES = 12
_TAG_BYTES = 16

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Slack retries an event for up to about an hour; de-duplication keys live in their own set so that
# profile traffic never evicts them.
_SEEN_MAX_ENTRIES = 10_000
# Redis releases a lock only for the instance that holds it, and extends it only while it holds it.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)
#: The memory cache's default bound in bytes (BOT_CACHE_MAX_BYTES).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# One MSET per chunk keeps each Redis operation small enough for the per-operation timeout.
_SET_MANY_CHUNK = 200
_FIRST_POLL = 0.01
_MAX_POLL = 0.1


def _verbatim(key: str, namespace: str | None = None) -> str:
    """aiocache's key builder: our keys are complete already (see CacheKeys)."""
    return key


def _part(text: str) -> str:
    """One key component, with `:` and anything unusual escaped so components never run together."""
    return quote(text, safe="@._-")


def _identity(ref: IdentityRef, secret: bytes | None) -> str:
    """The namespace in clear and a hash of the value, so keys show no emails or phone numbers.

    With `secret` the hash is keyed (HMAC): a plain hash of a phone number is undone by hashing
    every phone number, so whoever reads Redis's keys could tell whom the bot looked up.
    """
    data = f"{ref.namespace}\x00{ref.value}".encode()
    if secret is None:
        digest = hashlib.sha256(data).hexdigest()[:32]
    else:
        digest = hmac.digest(secret, data, "sha256").hex()[:32]
    return f"{_part(ref.namespace)}:{digest}"


def _derive(cache_key: str, purpose: bytes) -> bytes:
    """A 256-bit key for one purpose, derived from BOT_CACHE_KEY (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ccb cache " + purpose)
    return hkdf.derive(cache_key.encode())


def key_names_secret(cache_key: str) -> bytes:
    """The secret that keys the identity hashes inside cache keys (see CacheKeys)."""
    return _derive(cache_key, b"key names")


class Sealer:
    """Seals values for Redis with AES-256-GCM: a random 96-bit nonce per value, the format tag
    and the Redis key as associated data, so a value opens only under the key it was written to
    and only with the BOT_CACHE_KEY that wrote it."""

    def __init__(self, cache_key: str) -> None:
        if len(cache_key) < MIN_CACHE_KEY_LENGTH:
            raise ValueError(f"the cache key must be at least {MIN_CACHE_KEY_LENGTH} characters")
        self._aead = AESGCM(_derive(cache_key, b"values aes-256-gcm"))

    def seal(self, key: str, payload: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, payload.encode(), _SEAL_FORMAT + key.encode())
        return _SEAL_FORMAT + nonce + sealed

    def open(self, key: str, raw: bytes) -> str | None:
        """The payload, or None when `raw` was not sealed by `seal` for `key` with this key."""
        head = len(_SEAL_FORMAT) + _NONCE_BYTES
        if not raw.startswith(_SEAL_FORMAT) or len(raw) < head + _TAG_BYTES:
            return None
        nonce = raw[len(_SEAL_FORMAT) : head]
        try:
            plain = self._aead.decrypt(nonce, raw[head:], _SEAL_FORMAT + key.encode())
            return plain.decode()
        except (InvalidTag, UnicodeDecodeError):
            return None


class CacheKeys:
    """Every cache key, each versioned and scoped to one org, sandbox and merge policy.

    Profiles, audience ids and merge results differ between sandboxes and merge policies, so two
    deployments sharing one Redis never read each other's entries.
    """

    def __init__(
        self, *, org: str, sandbox: str, merge_policy: str | None, secret: bytes | None = None
    ) -> None:
        """`secret` (see `key_names_secret`) keys the identity hashes; give it on Redis."""
        parts = ("ccb", CACHE_VERSION, org, sandbox, merge_policy or "-")
        self.prefix = ":".join(_part(part) for part in parts)
        self._secret = secret

    def profile(self, ref: IdentityRef) -> str:
        """The merged profile holding `ref`."""
        return f"{self.prefix}:profile:{_identity(ref, self._secret)}"

    def events(self, ref: IdentityRef, limit: int) -> str:
        """The newest `limit` experience events of the profile holding `ref`."""
        return f"{self.prefix}:events:{limit}:{_identity(ref, self._secret)}"

    def not_found(self, ref: IdentityRef) -> str:
        """The remembered answer that no profile holds `ref`."""
        return f"{self.prefix}:notfound:{_identity(ref, self._secret)}"

    def lookup(self, ref: IdentityRef, limit: int) -> str:
        """The unit concurrent lookups share: one identity with one events limit."""
        return f"{self.prefix}:lookup:{limit}:{_identity(ref, self._secret)}"

    def audiences(self) -> str:
        """The marker that the sandbox's audience list has been read (see `audience`)."""
        return f"{self.prefix}:audiences"

    def audience(self, audience_id: str) -> str:
        """One audience of the sandbox (its name), or the answer that Platform does not know it."""
        return f"{self.prefix}:audience:{_part(audience_id)}"

    def token(self, credential: str = "") -> str:
        """The IMS access token the instances share, per credential (client id and scopes): two
        deployments on one Redis with different credentials never share a token."""
        if not credential:
            return f"{self.prefix}:ims-token"
        digest = hashlib.sha256(credential.encode()).hexdigest()[:16]
        return f"{self.prefix}:ims-token:{digest}"

    def lookup_token(self, token: str) -> str:
        """The identity behind an opaque button token."""
        return f"{self.prefix}:ref:{_part(token)}"

    def history(self, team_id: str, user_id: str) -> str:
        """One person's recent lookups (namespace and value, sealed on Redis as every value is)."""
        return f"{self.prefix}:history:{_part(team_id or '-')}:{_part(user_id)}"

    def home_open(self, team_id: str, user_id: str) -> str:
        """The marker that a person opened the bot's App Home recently."""
        return f"{self.prefix}:home-open:{_part(team_id or '-')}:{_part(user_id)}"

    def event(self, event_id: str) -> str:
        """A Slack event id already handled (de-duplication of Slack's retries)."""
        return f"{self.prefix}:slack-event:{_part(event_id)}"

    def request(self, signature: str) -> str:
        """A signed Slack request already admitted (refusal of replays), by a hash of its
        signature, so no request signature is kept."""
        digest = hashlib.sha256(signature.encode()).hexdigest()[:32]
        return f"{self.prefix}:slack-request:{digest}"


def _encode(data_json: str) -> str:
    return f'{{"v":"{CACHE_VERSION}","data":{data_json}}}'


def _decode(raw: str | None) -> Any | None:
    """The data of a stored entry, or None when absent, unreadable or of another version."""
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("v") != CACHE_VERSION:
        return None
    return entry.get("data")


class _Skipped(Exception):
    """Redis was not asked (the breaker is open) or did not answer; the caller falls back."""


class _MemoryStore:
    """A LRU map with lifetimes, bounded in entries and in bytes, over aiocache's
    SimpleMemoryCache (which has no bound)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._cache = SimpleMemoryCache(key_builder=_verbatim, timeout=None)
        # Recency order of the keys stored, with each entry's size; expired keys linger here
        # until touched or evicted, which only makes the bounds tighter.
        self._order: collections.OrderedDict[str, int] = collections.OrderedDict()

    async def get(self, key: str) -> str | None:
        value = await self._cache.get(key)
        if value is None:
            self._forget(key)
            return None
        self._order.move_to_end(key)
        return cast(str, value)

    async def put(self, key: str, value: str, ttl: float) -> None:
        # What the strings occupy in this process, not their length: the bound is on memory.
        size = sys.getsizeof(key) + sys.getsizeof(value)
        await self.delete(key)
        if size > self.max_bytes:
            return  # larger than the whole cache: kept nowhere rather than evicting everything
        await self._cache.set(key, value, ttl=ttl)
        self._order[key] = size
        self.size += size
        while len(self._order) > self.max_entries or self.size > self.max_bytes:
            oldest, oldest_size = self._order.popitem(last=False)
            self.size -= oldest_size
            await self._cache.delete(oldest)

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """Store `key` unless it is present; True when it was stored."""
        if await self._cache.exists(key):
            return False
        await self.put(key, value, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._forget(key)
        await self._cache.delete(key)

    def _forget(self, key: str) -> None:
        self.size -= self._order.pop(key, 0)


class DataCache:
    """JSON entries with lifetimes, in process memory or on Redis shared by every instance.

    On Redis every operation has a short timeout; a failure opens a breaker that skips Redis for
    `breaker_seconds`, during which entries live in this process's memory, so lookups go on
    (straight to AEP on a miss) and the outage costs at most one timeout. The outage is logged
    when it starts and when it ends, not per request.
    """

    def __init__(
        self,
        *,
        remote: Any | None = None,
        sealer: Sealer | None = None,
        max_entries: int = 5000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        breaker_seconds: float = 5.0,
        lock_ttl: float = 5.0,
        lock_wait: float = 10.0,
    ) -> None:
        """`remote`: an aiocache RedisCache (its `timeout` bounds each operation) storing bytes
        as they are, with the `sealer` of its values; or None (this process's memory only)."""
        if remote is not None and sealer is None:
            raise ValueError("a Redis cache needs a key to seal its values (BOT_CACHE_KEY)")
        self._remote = remote
        self._sealer = sealer
        self.kind: Literal["memory", "redis"] = "memory" if remote is None else "redis"
        self._local = _MemoryStore(max_entries, max_bytes)
        self._seen = _MemoryStore(max(max_entries, _SEEN_MAX_ENTRIES), max_bytes)
        self._unreadable_seen: set[str] = set()
        self._breaker_seconds = breaker_seconds
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait
        self._open_until = 0.0
        self._down = False
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.stats: collections.Counter[str] = collections.Counter()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key: str | None = None,
        max_entries: int = 5000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        op_timeout: float = 0.05,
        breaker_seconds: float = 5.0,
        lock_ttl: float = 5.0,
        lock_wait: float = 10.0,
    ) -> DataCache:
        """`memory://` for this process only, or `redis://[user:password@]host:port/db` with
        `key` (BOT_CACHE_KEY, at least MIN_CACHE_KEY_LENGTH characters), which seals every value
        written there; instances sharing a Redis must share the key."""
        remote = sealer = None
        if url.startswith(("redis://", "rediss://")):
            if key is None:
                raise ValueError("a Redis cache needs a key to seal its values (BOT_CACHE_KEY)")
            sealer = Sealer(key)
            options = dict(parse_url(url))
            remote = RedisCache(
                # Values go to Redis as the sealed bytes and come back as bytes: decoding text
                # is ours to do, after the value has been authenticated.
                serializer=NullSerializer(encoding=None),
                key_builder=_verbatim,
                timeout=op_timeout,
                endpoint=options.pop("host", "127.0.0.1"),
                port=options.pop("port", 6379),
                db=options.pop("db", 0),
                password=options.pop("password", None),
                create_connection_timeout=op_timeout,
                connection_pool_kwargs=options,
            )
        elif not url.startswith("memory://"):
            raise ValueError("the cache URL must be memory:// or redis://host:port/db")
        return cls(
            remote=remote,
            sealer=sealer,
            max_entries=max_entries,
            max_bytes=max_bytes,
            breaker_seconds=breaker_seconds,
            lock_ttl=lock_ttl,
            lock_wait=lock_wait,
        )

    @property
    def available(self) -> bool:
        """False while Redis is failing (the breaker is open or half-open); memory always is."""
        return not self._down

    # -- plain entries --------------------------------------------------------------------------

    async def get_json(self, key: str) -> Any | None:
        """The value stored under `key`, or None (absent, expired, unreadable, Redis down)."""
        value = await self._read(key)
        self.stats["hits" if value is not None else "misses"] += 1
        return value

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        """Several values in one round trip, in the order of `keys`; None for each miss."""
        raws: list[Any] = [None] * len(keys)
        if self._remote is not None and keys:
            with contextlib.suppress(_Skipped):
                raws = list(await self._call(lambda redis: redis.multi_get(list(keys))))
        values: list[Any | None] = []
        for key, raw in zip(keys, raws, strict=True):
            value = self._open(key, raw) if raw is not None else None
            if value is None:
                value = _decode(await self._local.get(key))
            self.stats["hits" if value is not None else "misses"] += 1
            values.append(value)
        return values

    async def set_json(self, key: str, value: Any, ttl: float) -> None:
        """Store a JSON-serialisable value for `ttl` seconds (nothing is stored when ttl <= 0)."""
        await self._write(key, json.dumps(value, separators=(",", ":")), ttl)

    async def set_many(self, values: Mapping[str, Any], ttl: float) -> None:
        """Store several JSON-serialisable values for `ttl` seconds, in few round trips."""
        if ttl <= 0 or not values:
            return
        payloads = [
            (key, _encode(json.dumps(value, separators=(",", ":"))))
            for key, value in values.items()
        ]
        self.stats["sets"] += len(payloads)
        for start in range(0, len(payloads), _SET_MANY_CHUNK):
            await self._write_chunk(payloads[start : start + _SET_MANY_CHUNK], ttl)

    async def get_model(self, key: str, model: type[M]) -> M | None:
        """The stored value parsed as `model`; an entry of another shape reads as a miss."""
        value: M | None = None
        data = await self._read(key)
        if data is not None:
            try:
                value = model.model_validate(data)
            except (ValidationError, RecursionError):
                self._unreadable("an entry of another shape")
        self.stats["hits" if value is not None else "misses"] += 1
        return value

    async def set_model(self, key: str, value: BaseModel, ttl: float) -> None:
        """Store a pydantic model as its JSON for `ttl` seconds."""
        await self._write(key, value.model_dump_json(), ttl)

    async def delete(self, key: str) -> None:
        """Forget `key` (on Redis and in this process)."""
        if self._remote is not None:
            with contextlib.suppress(_Skipped):
                await self._call(lambda redis: redis.delete(key))
        await self._local.delete(key)

    async def first_time(self, key: str, ttl: float = 3600) -> bool:
        """True exactly once per key within `ttl` seconds, across instances while Redis is up."""
        # Checked here first: a key this process has seen (also while Redis was away) is not new,
        # and only the first of this process's concurrent callers competes on Redis.
        if not await self._seen.add(key, "1", ttl):
            return False
        if self._remote is not None:
            with contextlib.suppress(_Skipped):
                created = await self._call(
                    lambda redis: redis.raw("set", key, "1", nx=True, px=_millis(ttl))
                )
                return bool(created)
        return True

    # -- coalescing -----------------------------------------------------------------------------

    async def share(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` once for every concurrent caller with this key, in this process.

        A caller that is cancelled stops waiting; the work goes on for the others.
        """
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(work())
            self._inflight[key] = future
            future.add_done_callback(functools.partial(self._settled, key))
        else:
            self.stats["coalesced"] += 1
        return cast(T, await asyncio.shield(future))

    async def exclusive(
        self,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        *,
        check: Callable[[], Awaitable[T | None]] | None = None,
        recheck: bool = True,
        deadline: float | None = None,
    ) -> T:
        """Run `fetch` unless another instance is already running it (Redis only).

        The instance that takes the lock (SET NX PX) runs `check` and, when that finds nothing,
        `fetch`, which stores its result in the cache; it extends the lock while it runs.
        The others poll until the lock is gone, then run `check` (reads that result) and run
        `fetch` themselves only when it finds nothing: an instance that dies holding the lock
        delays the others by at most `lock_ttl`.

        `recheck=False` skips `check` on both paths: a refresh must fetch, not take the stored
        entry, even when it waited for another instance. `deadline` (a `time.monotonic()`
        value) caps the wait: a waiter never waits past its caller's deadline, and `fetch`,
        which must honour that deadline itself, fails at once when none of it is left.
        """
        if self._remote is None:
            return await fetch()
        lock, token = f"{key}:lock", secrets.token_hex(8)
        try:
            acquired = await self._call(
                lambda redis: redis.raw("set", lock, token, nx=True, px=_millis(self._lock_ttl))
            )
        except _Skipped:
            return await fetch()
        if acquired:
            keeper = asyncio.create_task(self._keep_lock(lock, token))
            try:
                # Another instance may have stored the result between our cache miss and the
                # lock: read it before asking AEP again.
                if recheck and check is not None and (stored := await check()) is not None:
                    return stored
                return await fetch()
            finally:
                keeper.cancel()
                with contextlib.suppress(_Skipped):
                    await self._call(lambda redis: redis.raw("eval", _RELEASE, 1, lock, token))
        self.stats["coalesced"] += 1
        await self._await_release(lock, deadline)
        if recheck and check is not None and (stored := await check()) is not None:
            return stored
        return await fetch()

    # -- health ---------------------------------------------------------------------------------

    async def ping(self) -> bool:
        """Whether the cache answers now; asks Redis even while the breaker is open."""
        if self._remote is None:
            return True
        try:
            await self._call(lambda redis: redis.raw("ping"), force=True)
        except _Skipped:
            return False
        return True

    async def aclose(self) -> None:
        """Stop shared work still running and close the Redis connections."""
        for future in list(self._inflight.values()):
            future.cancel()
        if self._remote is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._remote.client.aclose()

    # -- internals ------------------------------------------------------------------------------

    async def _read(self, key: str) -> Any | None:
        """The data stored under `key`: on Redis, else in this process's memory."""
        if self._remote is not None:
            with contextlib.suppress(_Skipped):
                raw = await self._call(lambda redis: redis.get(key))
                if raw is not None and (data := self._open(key, raw)) is not None:
                    return data
        # Also when Redis answered "absent": an entry written here during an outage (a button's
        # token, say) stays readable after Redis returns.
        return _decode(await self._local.get(key))

    def _open(self, key: str, raw: Any) -> Any | None:
        """The data of a value read from Redis, or None (logged once) when it does not open."""
        assert self._sealer is not None
        payload = self._sealer.open(key, raw) if isinstance(raw, bytes) else None
        if payload is None:
            self._unreadable("not sealed for its key with this BOT_CACHE_KEY")
            return None
        data = _decode(payload)
        if data is None:
            self._unreadable("sealed, but not an entry of this version")
        return data

    def _unreadable(self, why: str) -> None:
        """Count a value that reads as a miss; log each reason once per process, without the
        value or the key (a key may name a Slack user)."""
        self.stats["unreadable"] += 1
        if why not in self._unreadable_seen:
            self._unreadable_seen.add(why)
            log.warning(
                "A cache entry could not be read (%s): it counts as a miss and the next fetch "
                "overwrites it; further ones are counted, not logged (a rotated BOT_CACHE_KEY "
                "does this until old entries expire)",
                why,
            )

    async def _write(self, key: str, data_json: str, ttl: float) -> None:
        if ttl <= 0:
            return
        payload = _encode(data_json)
        self.stats["sets"] += 1
        if self._remote is not None:
            assert self._sealer is not None
            sealed = self._sealer.seal(key, payload)
            try:
                await self._call(lambda redis: redis.set(key, sealed, ttl=_seconds(ttl)))
            except _Skipped:
                pass
            else:
                return
        await self._local.put(key, payload, ttl)

    async def _write_chunk(self, chunk: list[tuple[str, str]], ttl: float) -> None:
        if self._remote is not None:
            assert self._sealer is not None
            sealer = self._sealer
            sealed = [(key, sealer.seal(key, payload)) for key, payload in chunk]
            try:
                await self._call(lambda redis: redis.multi_set(sealed, ttl=_seconds(ttl)))
            except _Skipped:
                pass
            else:
                return
        for key, payload in chunk:
            await self._local.put(key, payload, ttl)

    async def _call(
        self, operation: Callable[[Any], Awaitable[Any]], *, force: bool = False
    ) -> Any:
        """One Redis operation under the breaker; raises _Skipped when Redis was not used."""
        if self._remote is None or (not force and time.monotonic() < self._open_until):
            raise _Skipped
        try:
            result = await operation(self._remote)
        except ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                self._trip(exc)
            else:
                # Someone put a list or a hash where we keep a string: that key is unreadable,
                # Redis itself is fine (and our next SET replaces it whatever its type).
                self._unreadable("a Redis value of another type")
            raise _Skipped from exc
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            raise _Skipped from exc
        if self._down:
            self._down = False
            log.info("Redis cache reachable again")
        return result

    def _trip(self, exc: BaseException) -> None:
        self.stats["errors"] += 1
        self._open_until = time.monotonic() + self._breaker_seconds
        if not self._down:
            self._down = True
            log.warning(
                "Redis cache unavailable (%s); answering without it and trying again every %g s",
                type(exc).__name__,
                self._breaker_seconds,
            )

    async def _keep_lock(self, lock: str, token: str) -> None:
        """Extend the lock while its fetch runs, so a slow AEP call is not fetched twice."""
        while True:
            await asyncio.sleep(self._lock_ttl / 3)
            try:
                extended = await self._call(
                    lambda redis: redis.raw(
                        "eval", _EXTEND, 1, lock, token, str(_millis(self._lock_ttl))
                    )
                )
            except _Skipped:
                return
            if not extended:
                return

    async def _await_release(self, lock: str, deadline: float | None) -> None:
        """Poll until another instance releases `lock`, it expires, Redis stops answering,
        `lock_wait` has passed or `deadline` comes."""
        give_up = time.monotonic() + self._lock_wait
        if deadline is not None:
            give_up = min(give_up, deadline)
        pause = _FIRST_POLL
        while (left := give_up - time.monotonic()) > 0:
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, _MAX_POLL)
            try:
                held = await self._call(lambda redis: redis.raw("exists", lock))
            except _Skipped:
                return
            if not held:
                return

    def _settled(self, key: str, future: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            # Every caller may have been cancelled; mark the error seen so asyncio does not log it.
            future.exception()


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _seconds(ttl: float) -> float:
    # aiocache sends a float lifetime as PSETEX milliseconds; Redis refuses zero.
    return max(float(ttl), 0.001)


class _StoredToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: str
    expires_at: float
    refresh_at: float


class CacheTokenStore:
    """The IMS access token kept in the data cache, so instances on one Redis share one token.

    An entry lives until the token's refresh point: after it, the next instance that needs a
    token asks IMS (each instance one at a time) and shares the new one. A token within
    `margin` seconds of expiry is neither handed out nor stored.
    """

    def __init__(
        self,
        cache: DataCache,
        key: str,
        *,
        margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._key = key
        self._margin = margin
        self._clock = clock

    async def load(self) -> tuple[str, float, float] | None:
        """The shared token, its expiry and refresh point, while it is not yet due a refresh."""
        stored = await self._cache.get_model(self._key, _StoredToken)
        now = self._clock()
        if stored is None or min(stored.refresh_at, stored.expires_at - self._margin) <= now:
            return None
        return stored.token, stored.expires_at, stored.refresh_at

    async def save(self, token: str, expires_at: float, refresh_at: float) -> None:
        """Share a freshly issued token until its refresh point."""
        ttl = min(refresh_at, expires_at - self._margin) - self._clock()
        if ttl > 0:
            entry = _StoredToken(token=token, expires_at=expires_at, refresh_at=refresh_at)
            await self._cache.set_model(self._key, entry, ttl)
