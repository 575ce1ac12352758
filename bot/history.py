"""A person's recent lookups, for their App Home: only what re-running a lookup needs, per user,
capped, expiring, in the data cache (so shared by every instance on Redis, sealed there)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from bot.cache import CacheKeys, DataCache
from bot.identity import IdentityRef
from bot.vocabulary import AuditSurface

#: The Home lists this many lookups, newest first; older ones are dropped when a new one comes.
HISTORY_SIZE = 10
#: A person who opened the Home within this many seconds gets it re-published after each lookup
#: (Slack sends app_home_opened on every open; anyone else sees the new entry at their next open,
#: so a busy agent who never looks at the Home costs no views.publish at all).
HOME_RECENT_SECONDS = 600.0


class HistoryEntry(BaseModel):
    """One lookup: the identity to re-run it with, when, and where it was asked. Never profile
    data: the card is made again, with the person's grants at the time they click."""

    model_config = ConfigDict(frozen=True)

    #: opaque id the Home's button carries (not the identity, which stays in the cache)
    id: str = Field(min_length=1, max_length=64)
    namespace: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=1024)
    at: datetime
    surface: AuditSurface

    @property
    def ref(self) -> IdentityRef:
        """The identity to look up again."""
        return IdentityRef(self.namespace, self.value)


class _Stored(BaseModel):
    model_config = ConfigDict(frozen=True)

    entries: list[HistoryEntry] = Field(max_length=HISTORY_SIZE)


class LookupHistory:
    """Each person's last HISTORY_SIZE lookups for `ttl` seconds after the newest (0: none kept).

    Two lookups by one person finishing at the same instant on two instances may keep only one
    of them (read, change, write): a history, not an audit trail, which is kept elsewhere.
    """

    def __init__(self, *, cache: DataCache, keys: CacheKeys, ttl: float) -> None:
        self._cache = cache
        self._keys = keys
        self.ttl = ttl

    @property
    def enabled(self) -> bool:
        """False when BOT_HISTORY_TTL is 0: nothing is recorded and the Home lists nothing."""
        return self.ttl > 0

    async def recent(self, team_id: str, user_id: str) -> list[HistoryEntry]:
        """The person's recent lookups, newest first (a value that does not read is none)."""
        if not self.enabled:
            return []
        stored = await self._cache.get_model(self._keys.history(team_id, user_id), _Stored)
        return list(stored.entries) if stored is not None else []

    async def record(
        self, team_id: str, user_id: str, ref: IdentityRef, *, surface: AuditSurface
    ) -> None:
        """Put `ref` first in the person's history (once: an earlier entry of it moves up)."""
        if not self.enabled:
            return
        entry = HistoryEntry(
            id=secrets.token_urlsafe(9),
            namespace=ref.namespace,
            value=ref.value,
            at=datetime.now(UTC),
            surface=surface,
        )
        older = [e for e in await self.recent(team_id, user_id) if e.ref != ref]
        stored = _Stored(entries=[entry, *older][:HISTORY_SIZE])
        await self._cache.set_model(self._keys.history(team_id, user_id), stored, self.ttl)

    async def find(self, team_id: str, user_id: str, entry_id: str) -> HistoryEntry | None:
        """The person's own entry `entry_id`, or None (cleared, expired, or someone else's)."""
        if not entry_id:
            return None
        return next((e for e in await self.recent(team_id, user_id) if e.id == entry_id), None)

    async def clear(self, team_id: str, user_id: str) -> None:
        """Forget every lookup of the person."""
        await self._cache.delete(self._keys.history(team_id, user_id))

    async def home_opened(self, team_id: str, user_id: str) -> None:
        """Note that the person has the Home open (see HOME_RECENT_SECONDS)."""
        await self._cache.set_json(self._keys.home_open(team_id, user_id), 1, HOME_RECENT_SECONDS)

    async def home_open_recently(self, team_id: str, user_id: str) -> bool:
        """Whether the person opened the Home within HOME_RECENT_SECONDS."""
        return await self._cache.get_json(self._keys.home_open(team_id, user_id)) is not None
