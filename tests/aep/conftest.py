"""Fixtures for the AEP client tests: respx-mocked IMS and Platform, and a client wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from aep_support import TOKEN_URL, make_client, make_tokens, token_answer

from bot.aep import client as client_module
from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep retry pauses short so the suite stays fast; the retry logic itself is unchanged."""
    monkeypatch.setattr(client_module, "_BACKOFF_BASE", 0.005)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL, name="token").mock(return_value=token_answer())
        yield mock


@pytest.fixture
async def http(router: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def tokens(http: httpx.AsyncClient) -> ImsTokenSource:
    return make_tokens(http)


@pytest.fixture
def aep(http: httpx.AsyncClient, tokens: ImsTokenSource) -> AepClient:
    return make_client(tokens, http=http)
