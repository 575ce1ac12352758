"""IMS tokens: one refresh however many wait, refresh ahead of expiry, 401 invalidation, sharing."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from aep_support import CLIENT_ID, CLIENT_SECRET, TOKEN, make_tokens, token_answer

from bot.aep.errors import AepUnavailable, CredentialsProblem


class Clock:
    """A settable unix clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    """A TokenStore shared by several token sources, as a Redis-backed one would be."""

    def __init__(self) -> None:
        self.saved: tuple[str, float, float] | None = None
        self.loads = 0

    async def load(self) -> tuple[str, float, float] | None:
        self.loads += 1
        return self.saved

    async def save(self, token: str, expires_at: float, refresh_at: float) -> None:
        self.saved = (token, expires_at, refresh_at)


class BrokenStore:
    async def load(self) -> tuple[str, float, float] | None:
        raise ConnectionError("redis down")

    async def save(self, token: str, expires_at: float, refresh_at: float) -> None:
        raise ConnectionError("redis down")


def _issue(*tokens: str, expires_in: int = 86399) -> list[httpx.Response]:
    return [token_answer(token, expires_in) for token in tokens]


async def test_token_request_is_the_documented_client_credentials_form(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    tokens = make_tokens(http)
    assert await tokens.token() == TOKEN
    request = router.routes["token"].calls.last.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
        "scope": ["openid,AdobeID"],
    }
    # The secret travels in the body, never in the URL where proxies log it.
    assert CLIENT_SECRET not in str(request.url)


async def test_fifty_concurrent_callers_cause_exactly_one_ims_call(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    async def slow_ims(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return token_answer()

    router.routes["token"].mock(side_effect=slow_ims)
    tokens = make_tokens(http)
    results = await asyncio.gather(*(tokens.token() for _ in range(50)))
    assert set(results) == {TOKEN}
    assert tokens.refreshes == 1
    assert router.routes["token"].call_count == 1
    assert await tokens.token() == TOKEN
    assert tokens.refreshes == 1


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [(86399, 3600.0), (100, 10.0)],
    ids=["24h-token-one-hour-early", "short-token-ten-percent-early"],
)
async def test_token_is_refreshed_ahead_of_expiry(
    router: respx.MockRouter, http: httpx.AsyncClient, lifetime: int, margin: float
) -> None:
    router.routes["token"].mock(side_effect=_issue("first", "second", expires_in=lifetime))
    clock = Clock()
    tokens = make_tokens(http, clock=clock)
    start = clock.now
    assert await tokens.token() == "first"

    clock.now = start + lifetime - margin - 1
    assert await tokens.token() == "first"
    assert tokens.refreshes == 1

    clock.now = start + lifetime - margin + 1
    assert await tokens.token() == "second"
    assert tokens.refreshes == 2


async def test_invalidate_drops_only_the_current_token(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.routes["token"].mock(side_effect=_issue("first", "second", "third"))
    tokens = make_tokens(http)
    assert await tokens.token() == "first"
    await tokens.invalidate("first")
    assert await tokens.token() == "second"
    # A late 401 for a token already replaced must not throw the new one away.
    await tokens.invalidate("first")
    assert await tokens.token() == "second"
    assert tokens.refreshes == 2


async def test_ims_refusing_the_credentials_names_the_settings(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.routes["token"].mock(
        return_value=httpx.Response(
            401, json={"error": "invalid_client", "error_description": "invalid client_secret"}
        )
    )
    with pytest.raises(CredentialsProblem) as caught:
        await make_tokens(http).token()
    assert "AEP_CLIENT_ID" in caught.value.message
    assert "AEP_CLIENT_SECRET" in caught.value.message
    assert CLIENT_SECRET not in caught.value.message


async def test_ims_429_is_a_busy_service_not_a_credentials_problem(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    """IMS throttling the bot says nothing about its credentials: a token still valid is kept
    in use, and once none is left the failure reads as a busy service."""
    router.routes["token"].mock(
        side_effect=[token_answer("first", 86399), httpx.Response(429), httpx.Response(429)]
    )
    clock = Clock()
    tokens = make_tokens(http, clock=clock)
    start = clock.now
    assert await tokens.token() == "first"
    clock.now = start + 86399 - 1800  # inside the refresh window: IMS answers 429
    assert await tokens.token() == "first"
    clock.now = start + 86399
    with pytest.raises(AepUnavailable) as caught:
        await tokens.token()
    assert not isinstance(caught.value, CredentialsProblem)
    assert caught.value.cause != "credentials"
    assert "AEP_CLIENT" not in caught.value.message


async def test_ims_unreachable_is_unavailable(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.routes["token"].mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(AepUnavailable, match="IMS"):
        await make_tokens(http).token()


async def test_a_token_still_valid_is_used_while_ims_is_down(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.routes["token"].mock(
        side_effect=[token_answer("first", 86399), httpx.Response(503), httpx.Response(503)]
    )
    clock = Clock()
    tokens = make_tokens(http, clock=clock)
    start = clock.now
    assert await tokens.token() == "first"
    clock.now = start + 86399 - 1800  # inside the refresh window, not yet expired
    assert await tokens.token() == "first"
    clock.now = start + 86399  # expired: nothing left to fall back on
    with pytest.raises(AepUnavailable):
        await tokens.token()


async def test_after_ims_failed_callers_do_not_queue_behind_it_while_the_token_lasts(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = router.routes["token"].mock(
        side_effect=[token_answer("first", 86399), httpx.Response(503), token_answer("second")]
    )
    clock = Clock()
    tokens = make_tokens(http, clock=clock)
    start = clock.now
    assert await tokens.token() == "first"
    clock.now = start + 86399 - 1800  # inside the refresh window; IMS fails once
    assert await tokens.token() == "first"
    calls = route.call_count
    # Many lookups right after: none waits for IMS again until the retry pause is over.
    assert await asyncio.gather(*(tokens.token() for _ in range(20))) == ["first"] * 20
    assert route.call_count == calls
    clock.now += 31
    assert await tokens.token() == "second"


async def test_a_shared_token_is_refreshed_at_its_refresh_point_not_at_expiry(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.routes["token"].mock(side_effect=_issue("shared", "renewed"))
    store = MemoryStore()
    clock = Clock()
    start = clock.now
    first = make_tokens(http, store=store, clock=clock)
    second = make_tokens(http, store=store, clock=clock)
    assert await first.token() == "shared"
    assert await second.token() == "shared"
    clock.now = start + 86399 - 3000  # past the refresh point (an hour before expiry)
    assert await second.token() == "renewed"
    assert second.refreshes == 1


async def test_instances_share_a_token_through_the_store(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    router.routes["token"].mock(side_effect=_issue("shared", "fresh"))
    store = MemoryStore()
    clock = Clock()
    first = make_tokens(http, store=store, clock=clock)
    second = make_tokens(http, store=store, clock=clock)
    assert await first.token() == "shared"
    assert store.saved == ("shared", clock.now + 86399, clock.now + 86399 - 3600)
    assert await second.token() == "shared"
    assert (first.refreshes, second.refreshes) == (1, 0)

    # Platform refused the shared token: the store still holds it, but it must not come back.
    await second.invalidate("shared")
    assert await second.token() == "fresh"
    assert store.saved is not None and store.saved[0] == "fresh"


async def test_a_broken_store_does_not_stop_lookups(
    router: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    tokens = make_tokens(http, store=BrokenStore())
    assert await tokens.token() == TOKEN
    assert tokens.refreshes == 1
