"""Constants and factories shared by the AEP client tests (fixtures live in conftest.py)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import SecretStr

from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient

API = "https://platform.test"
IMS = "https://ims.test"
TOKEN_URL = f"{IMS}/ims/token/v3"
ENTITIES_URL = f"{API}/data/core/ups/access/entities"
AUDIENCES_URL = f"{API}/data/core/ups/audiences"
BULK_URL = f"{AUDIENCES_URL}/bulk-get"
ORG_ID = "0A1B2C3D4E5F@AdobeOrg"
CLIENT_ID = "bot-client-id"
CLIENT_SECRET = "p8e-very-secret-value"
SANDBOX = "prod"
MERGE_POLICY_ID = "7d1b6e2a-0000-4c5e-9f3a-1a2b3c4d5e6f"
TOKEN = "eyJ-first-access-token"


def within(seconds: float) -> float:
    """An absolute deadline `seconds` from now, as the client expects it."""
    return time.monotonic() + seconds


def token_answer(token: str = TOKEN, expires_in: int = 86399) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": token, "token_type": "bearer", "expires_in": expires_in}
    )


def profile_body(email: str = "jane.doe@example.com") -> dict[str, object]:
    return {
        "BQxJaneDoeExampleXid00000001": {
            "entityId": "BQxJaneDoeExampleXid00000001",
            "sources": ["65f0c0ffee0000000000abcd"],
            "entity": {
                "identities": [
                    {"id": email, "namespace": {"code": "email"}},
                    {"id": "CRM-000123", "namespace": {"code": "crmid"}, "primary": "true"},
                ],
                "person": {"name": {"firstName": "Jane", "lastName": "Doe"}},
            },
            "lastModifiedAt": "2026-03-14T09:26:53Z",
        }
    }


def make_tokens(http: httpx.AsyncClient, **kwargs: Any) -> ImsTokenSource:
    return ImsTokenSource(
        http=http,
        ims_url=IMS,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        scopes="openid,AdobeID",
        **kwargs,
    )


def make_client(
    tokens: ImsTokenSource | None = None,
    *,
    http: httpx.AsyncClient | None = None,
    max_in_flight: int = 5,
    merge_policy_id: str | None = MERGE_POLICY_ID,
) -> AepClient:
    http = http or httpx.AsyncClient()
    return AepClient(
        http=http,
        tokens=tokens or make_tokens(http),
        api_url=API,
        org_id=ORG_ID,
        client_id=CLIENT_ID,
        sandbox=SANDBOX,
        merge_policy_id=merge_policy_id,
        max_in_flight=max_in_flight,
    )
