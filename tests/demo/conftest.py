"""Fixtures for the demo sandbox tests: a simulator, and clients over both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.demo.dataset import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORG_ID, DEMO_SANDBOX
from bot.demo.server import start_server
from bot.demo.simulator import AepSimulator
from bot.demo.transport import in_process_transport

_TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": DEMO_CLIENT_ID,
    "client_secret": DEMO_CLIENT_SECRET,
    "scope": "openid,AdobeID,read_organizations",
}


@pytest.fixture
def sim() -> AepSimulator:
    return AepSimulator()


@pytest.fixture(params=["in-process", "http"])
async def client(
    request: pytest.FixtureRequest, sim: AepSimulator
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that reaches `sim` in process or over real loopback HTTP."""
    if request.param == "in-process":
        transport = in_process_transport(sim, drip_interval=0)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.invalid") as c:
            yield c
        return
    # Plain HTTP on loopback: verify=False only skips loading CA certificates (~50 ms a client).
    async with (
        await start_server(sim, drip_interval=0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5, verify=False) as c,
    ):
        yield c


@pytest.fixture
def token_form() -> dict[str, str]:
    """A valid client-credentials form for the demo IMS."""
    return dict(_TOKEN_FORM)


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Valid Platform headers (the four of section 1.5) with a freshly issued token."""
    response = await client.post("/ims/token/v3", data=_TOKEN_FORM)
    assert response.status_code == 200, response.text
    return {
        "Authorization": f"Bearer {response.json()['access_token']}",
        "x-api-key": DEMO_CLIENT_ID,
        "x-gw-ims-org-id": DEMO_ORG_ID,
        "x-sandbox-name": DEMO_SANDBOX,
    }
