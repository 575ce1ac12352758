"""Adobe IMS access tokens (OAuth Server-to-Server): fetched once, shared, refreshed early."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx
from pydantic import SecretStr

from bot.aep import bodies, sansio
from bot.aep.errors import ImsUnavailable

if TYPE_CHECKING:
    from bot.metrics import Metrics

logger = logging.getLogger(__name__)

# Refresh when less than min(1 h, 10 % of the token's lifetime) remains (Adobe issues 24 h tokens).
_MAX_MARGIN = 3600.0
_MARGIN_SHARE = 0.1
# A token this close to expiry is not worth sending even when IMS cannot give a new one.
_LAST_USE = 5.0
# After IMS failed to refresh an ageing token, keep using that token this long before asking
# again, so that lookups do not queue one after another behind an IMS that is down.
_IMS_RETRY_AFTER = 30.0


class TokenStore(Protocol):
    """Where several bot instances share one token, so that they do not each ask IMS."""

    async def load(self) -> tuple[str, float, float] | None:
        """The shared token, its expiry and when to refresh it (unix times), if one is stored
        and not yet due for a refresh."""
        ...

    async def save(self, token: str, expires_at: float, refresh_at: float) -> None:
        """Share a freshly issued token until `refresh_at`; it expires at `expires_at`."""
        ...


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float
    refresh_at: float

    @classmethod
    def lasting(cls, value: str, expires_at: float, lifetime: float) -> _Token:
        margin = min(_MAX_MARGIN, _MARGIN_SHARE * max(lifetime, 0.0))
        return cls(value=value, expires_at=expires_at, refresh_at=expires_at - margin)

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at

    def usable(self, now: float) -> bool:
        return now < self.expires_at - _LAST_USE


class _Asked:
    """One IMS request as its metrics see it."""

    status: int | None = None


class ImsTokenSource:
    """Access tokens for Platform calls, from the client_credentials grant of Adobe IMS."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        ims_url: str,
        client_id: str,
        client_secret: SecretStr,
        scopes: str,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        max_response_bytes: int = bodies.DEFAULT_MAX_RESPONSE_BYTES,
        metrics: Metrics | None = None,
    ) -> None:
        self._http = http
        self._metrics = metrics
        self._max_response_bytes = max_response_bytes
        self._url = ims_url.rstrip("/") + sansio.TOKEN_PATH
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = scopes
        self._store = store
        self._clock = clock
        self._current: _Token | None = None
        # The token Platform last refused: a shared store may still hand it out.
        self._refused: str | None = None
        self._refreshing = asyncio.Lock()
        self._ims_retry_at = 0.0
        self.refreshes = 0

    async def token(self) -> str:
        """A valid access token; asks IMS only when none is cached or the cached one is ageing.

        However many callers wait, one of them refreshes and the others take its result.
        """
        current = self._current
        if current is not None and self._good_enough(current, self._clock()):
            return current.value
        async with self._refreshing:
            now = self._clock()
            current = self._current
            if current is not None and self._good_enough(current, now):
                return current.value
            shared = await self._load(now)
            if shared is not None and shared.fresh(now):
                self._current = shared
                return shared.value
            try:
                issued = await self._fetch()
            except ImsUnavailable:
                # IMS is down but the token we hold has not expired yet: keep using it.
                if current is not None and current.usable(now):
                    logger.warning("IMS unavailable; using the current token until it expires")
                    self._ims_retry_at = now + _IMS_RETRY_AFTER
                    return current.value
                raise
            self._current = issued
            await self._save(issued)
            return issued.value

    def _good_enough(self, token: _Token, now: float) -> bool:
        """Fresh, or ageing while IMS recently failed to replace it (and still usable)."""
        return token.fresh(now) or (now < self._ims_retry_at and token.usable(now))

    async def invalidate(self, token: str) -> None:
        """Forget `token` after Platform refused it (401), unless a newer one replaced it."""
        self._refused = token
        if self._current is not None and self._current.value == token:
            self._current = None

    async def _fetch(self) -> _Token:
        self.refreshes += 1
        if self._metrics is None:
            return await self._ask_ims()
        self._metrics.ims_refreshes.inc()
        call = _Asked()
        try:
            with self._metrics.aep_request("token", call):
                token = await self._ask_ims(call)
        except Exception:
            self._metrics.ims_failures.inc()
            raise
        return token

    async def _ask_ims(self, call: _Asked | None = None) -> _Token:
        started = time.monotonic()
        request = self._http.build_request(
            "POST",
            self._url,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret.get_secret_value(),
                "scope": self._scopes,
            },
            headers={"Accept": "application/json"},
        )
        try:
            answer = await bodies.fetch(
                self._http,
                request,
                limit=self._max_response_bytes,
                source="Adobe's sign-in service (IMS)",
            )
        except httpx.RequestError as exc:
            logger.debug("IMS token request failed: %s", type(exc).__name__)
            what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else None
            raise ImsUnavailable(
                f"Adobe's sign-in service (IMS) {what or 'could not be reached'} "
                f"({type(exc).__name__}). Check AEP_IMS_URL and the network; try again in a moment."
            ) from None
        if call is not None:
            call.status = answer.status
        logger.debug(
            "IMS POST %s -> %d in %.0f ms",
            sansio.TOKEN_PATH,
            answer.status,
            (time.monotonic() - started) * 1000,
        )
        value, lifetime = sansio.parse_token_response(answer.status, answer.body)
        logger.info("IMS issued an access token valid for %.0f s", lifetime)
        return _Token.lasting(value, self._clock() + lifetime, lifetime)

    async def _load(self, now: float) -> _Token | None:
        if self._store is None:
            return None
        try:
            stored = await self._store.load()
        except Exception as exc:  # a shared store is an optimisation; IMS still answers without it
            logger.warning("Could not read the shared IMS token (%s)", type(exc).__name__)
            return None
        if stored is None or stored[0] == self._refused:
            return None
        value, expires_at, refresh_at = stored
        # The refresh point travels with the token: judged by what is left now, the margin
        # would shrink with the token and every instance would refresh only at the last minute.
        return _Token(value=value, expires_at=expires_at, refresh_at=refresh_at)

    async def _save(self, token: _Token) -> None:
        if self._store is None:
            return
        try:
            await self._store.save(token.value, token.expires_at, token.refresh_at)
        except Exception as exc:  # as in _load: sharing failed, the token itself is fine
            logger.warning("Could not share the IMS token (%s)", type(exc).__name__)
