"""Button tokens: the opaque value a card's buttons carry, which leads back to the identity the
card shows without putting the identity into Slack's payloads."""

from __future__ import annotations

import base64
import hmac
import secrets

from pydantic import BaseModel, ConfigDict

from bot.cache import CacheKeys, DataCache
from bot.identity import IdentityRef

#: How long a button's token leads back to its identity.
REMEMBER_TTL = 24 * 3600.0


class _RememberedRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str
    value: str


class ButtonTokens:
    """Issues tokens for identities and reads them back, through the data cache."""

    def __init__(self, *, cache: DataCache, keys: CacheKeys) -> None:
        self._cache = cache
        self._keys = keys
        self._key = secrets.token_bytes(32)

    async def remember(self, ref: IdentityRef) -> str:
        """An opaque token for button values that leads back to `ref` for 24 hours.

        One token per identity (a keyed hash, so it reveals nothing): every card of a customer
        refreshes the same entry instead of adding one, so a bounded memory cache under load
        evicts the buttons of customers nobody has looked at for a while, not every button.
        """
        digest = hmac.digest(self._key, f"{ref.namespace.lower()}\0{ref.value}".encode(), "sha256")
        token = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        entry = _RememberedRef(namespace=ref.namespace, value=ref.value)
        await self._cache.set_model(self._keys.lookup_token(token), entry, REMEMBER_TTL)
        return token

    async def recall(self, token: str) -> IdentityRef | None:
        """The identity behind a token from `remember`, or None when unknown or expired."""
        if not token:
            return None
        entry = await self._cache.get_model(self._keys.lookup_token(token), _RememberedRef)
        return IdentityRef(entry.namespace, entry.value) if entry is not None else None
