"""Button tokens: the opaque value a card's buttons carry, which leads back to the identity the
card shows without putting the identity into Slack's payloads."""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from bot.cache import CacheKeys, DataCache
from bot.identity import IdentityRef

#: How long a button's token leads back to its identity.
REMEMBER_TTL = 24 * 3600.0


@dataclass(frozen=True)
class Place:
    """Where a card was answered: the conversation, and the thread of the message it answers
    (a message shortcut's message, a mention), so Share posts into that thread."""

    channel_id: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class Recalled:
    """What a button token leads back to: the identity, and where its card was answered (None
    for a card answered outside any conversation: the App Home, a direct message)."""

    ref: IdentityRef
    place: Place | None


class _RememberedRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str
    value: str
    # Where the card was answered; absent in tokens of cards answered outside a conversation.
    channel: str | None = None
    thread_ts: str | None = None


class ButtonTokens:
    """Issues tokens for identities and reads them back, through the data cache."""

    def __init__(self, *, cache: DataCache, keys: CacheKeys) -> None:
        self._cache = cache
        self._keys = keys
        self._key = secrets.token_bytes(32)

    async def remember(self, ref: IdentityRef, *, place: Place | None = None) -> str:
        """An opaque token for button values that leads back to `ref` (and `place`, where the
        card was answered) for 24 hours.

        One token per identity and place (a keyed hash, so it reveals nothing): every card of a
        customer in one conversation refreshes the same entry instead of adding one, so a bounded
        memory cache under load evicts the buttons of customers nobody has looked at for a while,
        not every button. The place is kept with the identity, never in the button's value, so a
        click cannot move a share into another conversation or thread.
        """
        where = "" if place is None else f"\0{place.channel_id}\0{place.thread_ts or ''}"
        named = f"{ref.namespace.lower()}\0{ref.value}{where}"
        digest = hmac.digest(self._key, named.encode(), "sha256")
        token = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        entry = _RememberedRef(
            namespace=ref.namespace,
            value=ref.value,
            channel=place.channel_id if place else None,
            thread_ts=place.thread_ts if place else None,
        )
        await self._cache.set_model(self._keys.lookup_token(token), entry, REMEMBER_TTL)
        return token

    async def recall(self, token: str) -> IdentityRef | None:
        """The identity behind a token from `remember`, or None when unknown or expired."""
        recalled = await self.recall_place(token)
        return recalled.ref if recalled is not None else None

    async def recall_place(self, token: str) -> Recalled | None:
        """The identity behind a token from `remember` and where its card was answered, or
        None when unknown or expired."""
        if not token:
            return None
        entry = await self._cache.get_model(self._keys.lookup_token(token), _RememberedRef)
        if entry is None:
            return None
        place = Place(entry.channel, entry.thread_ts or None) if entry.channel else None
        return Recalled(IdentityRef(entry.namespace, entry.value), place)
