"""The AEP client against the demo sandbox over real loopback HTTP: data, faults, concurrency."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aep_support import within
from pydantic import SecretStr

from bot.aep import client as client_module
from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient, create_http_client
from bot.aep.errors import (
    AepServerError,
    AepUnavailable,
    CredentialsProblem,
    MalformedResponse,
    Misconfigured,
    ProfileNotFound,
    RateLimited,
    TooManyIdentities,
)
from bot.demo.dataset import (
    DEFAULT_MERGE_POLICY_ID,
    DELETED_AUDIENCE_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_ORG_ID,
    DEMO_SANDBOX,
)
from bot.demo.server import DemoServer, start_server
from bot.demo.simulator import AepSimulator
from bot.identity import IdentityRef
from bot.settings import DEFAULT_AEP_SCOPES

JANE = IdentityRef("Email", "jane.doe@example.com")


@dataclass
class Sandbox:
    sim: AepSimulator
    server: DemoServer
    tokens: ImsTokenSource
    aep: AepClient


def _connect(
    server: DemoServer, *, secret: str = DEMO_CLIENT_SECRET
) -> tuple[ImsTokenSource, AepClient]:
    http = create_http_client()
    tokens = ImsTokenSource(
        http=http,
        ims_url=server.url,
        client_id=DEMO_CLIENT_ID,
        client_secret=SecretStr(secret),
        scopes=DEFAULT_AEP_SCOPES,
    )
    aep = AepClient(
        http=http,
        tokens=tokens,
        api_url=server.url,
        org_id=DEMO_ORG_ID,
        client_id=DEMO_CLIENT_ID,
        sandbox=DEMO_SANDBOX,
        merge_policy_id=DEFAULT_MERGE_POLICY_ID,
    )
    return tokens, aep


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sim = AepSimulator()
    server = await start_server(sim, port=0)
    tokens, aep = _connect(server)
    try:
        yield Sandbox(sim=sim, server=server, tokens=tokens, aep=aep)
    finally:
        await aep.aclose()
        await server.close()


async def test_jane_doe_profile_with_identities(sandbox: Sandbox) -> None:
    profile = await sandbox.aep.get_profile(
        JANE, fields=["identities", "person.name", "segmentMembership"], deadline=within(3)
    )
    assert profile.entity["person"]["name"]["firstName"] == "Jane"
    identities = {(i.namespace.lower(), i.value) for i in profile.identities}
    assert ("email", "jane.doe@example.com") in identities
    assert ("crmid", "CRM-000123") in identities
    assert any(i.primary for i in profile.identities)
    assert profile.last_modified_at is not None
    # The sandbox checks the four headers on every call; none was refused.
    assert sandbox.sim.stats["rejected"] == 0
    assert (sandbox.sim.stats["token"], sandbox.sim.stats["profile"]) == (1, 1)


async def test_newest_events_first_with_more_to_come(sandbox: Sandbox) -> None:
    page = await sandbox.aep.get_events(JANE, limit=25, deadline=within(3))
    assert len(page.events) == 25
    assert page.more  # Jane has 1600 events
    stamps = [event.timestamp for event in page.events]
    assert stamps == sorted(stamps, reverse=True)
    assert len({event.event_id for event in page.events}) == 25
    # The sandbox answers `limit` events per page: one page fills it.
    assert sandbox.sim.stats["events"] == 1
    assert sandbox.sim.stats["rejected"] == 0


async def test_a_customer_without_events_has_an_empty_page(sandbox: Sandbox) -> None:
    page = await sandbox.aep.get_events(
        IdentityRef("Email", "sparse@example.com"), limit=10, deadline=within(3)
    )
    assert page.events == ()
    assert not page.more


async def test_big_graph_is_too_many_identities_and_not_retried(sandbox: Sandbox) -> None:
    with pytest.raises(TooManyIdentities):
        await sandbox.aep.get_profile(
            IdentityRef("Email", "big.graph@example.com"), deadline=within(3)
        )
    assert sandbox.sim.stats["profile"] == 1


async def test_unknown_email_is_not_found_after_one_lower_case_retry(sandbox: Sandbox) -> None:
    with pytest.raises(ProfileNotFound) as caught:
        await sandbox.aep.get_profile(
            IdentityRef("Email", "Nobody.Here@Example.com"), deadline=within(3)
        )
    assert "nobody" not in str(caught.value).lower()
    assert sandbox.sim.stats["profile"] == 2


async def test_audience_names_for_janes_memberships(sandbox: Sandbox) -> None:
    profile = await sandbox.aep.get_profile(JANE, fields=["segmentMembership"], deadline=within(3))
    ids = set(profile.entity["segmentMembership"]["ups"])
    assert ids
    found = await sandbox.aep.get_audiences([*ids, "no-such-audience"], deadline=within(3))
    assert set(found) == {*ids, "no-such-audience"}
    assert found.pop("no-such-audience") is None  # the sandbox answers 404 for it
    assert all(audience is not None and audience.name for audience in found.values())
    assert sandbox.sim.stats["rejected"] == 0


async def test_audience_list_reads_every_page(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "_AUDIENCE_PAGE", 5)
    audiences = await sandbox.aep.list_audiences(deadline=within(3))
    expected = {a["id"] for a in sandbox.sim.dataset.audiences if not a.get("isSystem")}
    assert {a.id for a in audiences} == expected
    assert len(audiences) == len(expected)
    assert sandbox.sim.stats["audiences"] == -(-len(expected) // 5)


async def test_profile_and_events_overlap_in_flight(sandbox: Sandbox) -> None:
    await sandbox.aep.get_profile(JANE, deadline=within(3))  # token and connection warmed up
    sandbox.sim.reset()
    sandbox.sim.faults.latency_ms = 200
    await asyncio.gather(
        sandbox.aep.get_profile(JANE, deadline=within(3)),
        sandbox.aep.get_events(JANE, limit=10, deadline=within(3)),
    )
    assert (sandbox.sim.stats["profile"], sandbox.sim.stats["events"]) == (1, 1)
    assert sandbox.sim.max_in_flight == 2


async def test_fifty_concurrent_lookups_one_token(sandbox: Sandbox) -> None:
    sandbox.sim.faults.latency_ms = 20
    await asyncio.gather(*(sandbox.aep.get_profile(JANE, deadline=within(5)) for _ in range(50)))
    assert sandbox.sim.stats["token"] == 1
    assert sandbox.tokens.refreshes == 1
    assert sandbox.sim.stats["profile"] == 50
    # The client keeps to its five slots however many lookups wait.
    assert sandbox.sim.max_in_flight <= 5


async def test_revoked_token_is_replaced_once(sandbox: Sandbox) -> None:
    await sandbox.aep.get_profile(JANE, deadline=within(3))
    sandbox.sim.revoke_tokens()
    profile = await sandbox.aep.get_profile(JANE, deadline=within(3))
    assert profile.entity
    assert sandbox.tokens.refreshes == 2
    assert sandbox.sim.stats["rejected"] == 1


async def test_wrong_secret_names_the_settings(sandbox: Sandbox) -> None:
    _, aep = _connect(sandbox.server, secret="not-the-secret")
    try:
        with pytest.raises(CredentialsProblem, match="AEP_CLIENT_SECRET"):
            await aep.get_profile(JANE, deadline=within(3))
    finally:
        await aep.aclose()
    assert sandbox.sim.stats["profile"] == 0


async def test_429_within_the_deadline_is_waited_out(sandbox: Sandbox) -> None:
    sandbox.sim.faults.add("429", endpoint="profile", retry_after_ms=100)
    profile = await sandbox.aep.get_profile(JANE, deadline=within(3))
    assert profile.entity
    assert sandbox.sim.stats["profile"] == 2


async def test_429_beyond_the_deadline_is_rate_limited(sandbox: Sandbox) -> None:
    sandbox.sim.faults.add("429", endpoint="profile", retry_after_ms=60_000)
    with pytest.raises(RateLimited) as caught:
        await sandbox.aep.get_profile(JANE, deadline=within(3))
    assert caught.value.retry_after == 60.0
    assert sandbox.sim.stats["profile"] == 1


@pytest.mark.parametrize("kind", ["500", "503"])
async def test_server_errors_are_retried(sandbox: Sandbox, kind: str) -> None:
    sandbox.sim.faults.add(kind, endpoint="profile", count=2)
    profile = await sandbox.aep.get_profile(JANE, deadline=within(3))
    assert profile.entity
    assert sandbox.sim.stats["profile"] == 3


@pytest.mark.parametrize("kind", ["500", "503"])
async def test_an_events_server_error_is_retried_once(sandbox: Sandbox, kind: str) -> None:
    sandbox.sim.faults.add(kind, endpoint="events", count=1)
    page = await sandbox.aep.get_events(JANE, limit=5, deadline=within(3))
    assert len(page.events) == 5
    assert sandbox.sim.stats["events"] == 2


async def test_events_failing_twice_are_not_asked_a_third_time(sandbox: Sandbox) -> None:
    sandbox.sim.faults.add("500", endpoint="events", count=2)
    with pytest.raises(AepServerError):
        await sandbox.aep.get_events(JANE, limit=5, deadline=within(3))
    assert sandbox.sim.stats["events"] == 2


async def test_ims_outage_is_retried(sandbox: Sandbox) -> None:
    sandbox.sim.faults.add("503", endpoint="token")
    profile = await sandbox.aep.get_profile(JANE, deadline=within(3))
    assert profile.entity
    assert sandbox.sim.stats["token"] == 2


async def test_malformed_answer_is_reported(sandbox: Sandbox) -> None:
    sandbox.sim.faults.add("malformed", endpoint="profile")
    with pytest.raises(MalformedResponse):
        await sandbox.aep.get_profile(JANE, deadline=within(3))


@pytest.mark.parametrize("kind", ["hang", "drip"])
async def test_deadline_cuts_off_a_hanging_or_dripping_server(sandbox: Sandbox, kind: str) -> None:
    await sandbox.aep.get_profile(JANE, deadline=within(3))  # token first: time the lookup only
    sandbox.sim.faults.add(kind, endpoint="profile")
    started = time.monotonic()
    with pytest.raises(AepUnavailable, match=r"did not answer within 0\.4 s"):
        await sandbox.aep.get_profile(JANE, deadline=within(0.4))
    # A dripped profile takes minutes at a byte per 0.2 s; the deadline ends it on time.
    assert time.monotonic() - started < 0.4 + 0.3


async def test_logs_over_real_http_hold_no_identity_or_token(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.sim.faults.add("503", endpoint="profile")
    await sandbox.aep.get_profile(JANE, deadline=within(3))
    await sandbox.aep.get_events(JANE, limit=5, deadline=within(3))
    with pytest.raises(ProfileNotFound):
        await sandbox.aep.get_profile(IdentityRef("crmid", "CRM-404404"), deadline=within(3))
    token = await sandbox.tokens.token()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/data/core/ups/access/entities -> 503" in text
    for secret in ("jane.doe", "CRM-404404", DEMO_CLIENT_SECRET, token):
        assert secret not in text


# --- Adobe's documented shapes, over HTTP (issue 10) -------------------------------------------


def _unconfigured(server: DemoServer, *, api_url: str | None = None) -> AepClient:
    """A client with AEP_MERGE_POLICY_ID unset (and, with `api_url`, a wrong gateway path)."""
    http = create_http_client()
    tokens = ImsTokenSource(
        http=http,
        ims_url=server.url,
        client_id=DEMO_CLIENT_ID,
        client_secret=SecretStr(DEMO_CLIENT_SECRET),
        scopes=DEFAULT_AEP_SCOPES,
    )
    return AepClient(
        http=http,
        tokens=tokens,
        api_url=api_url or server.url,
        org_id=DEMO_ORG_ID,
        client_id=DEMO_CLIENT_ID,
        sandbox=DEMO_SANDBOX,
    )


async def test_the_sandbox_default_merge_policy_is_resolved_once_and_named(
    sandbox: Sandbox,
) -> None:
    aep = _unconfigured(sandbox.server)
    try:
        policy = await aep.merge_policy(deadline=within(5))
        assert policy.id == DEFAULT_MERGE_POLICY_ID
        profile = await aep.get_profile(JANE, deadline=within(5))
        await aep.get_events(JANE, limit=3, deadline=within(5))
    finally:
        await aep.aclose()
    assert profile.entity_id
    assert sandbox.sim.stats["merge_policies"] == 1


async def test_a_sandbox_without_a_default_merge_policy_stops_the_client_in_words(
    sandbox: Sandbox,
) -> None:
    sandbox.sim.drop_default_merge_policy()
    aep = _unconfigured(sandbox.server)
    try:
        with pytest.raises(Misconfigured, match="no default merge policy"):
            await aep.get_profile(JANE, deadline=within(5))
    finally:
        await aep.aclose()
    assert sandbox.sim.stats["profile"] == 0


async def test_a_wrong_gateway_path_is_a_configuration_problem_not_a_missing_customer(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    aep = _unconfigured(sandbox.server, api_url=sandbox.server.url + "/wrong-region")
    caplog.set_level(logging.ERROR, logger="bot.aep.client")
    try:
        with pytest.raises(Misconfigured) as caught:
            await aep.get_profile(JANE, deadline=within(5))
    finally:
        await aep.aclose()
    assert not isinstance(caught.value, ProfileNotFound)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "AEP_API_URL" in logged and "jane" not in logged.lower()


async def test_a_profile_service_404_is_no_such_customer(sandbox: Sandbox) -> None:
    with pytest.raises(ProfileNotFound):
        await sandbox.aep.get_profile(
            IdentityRef("Email", "nobody@example.com"), deadline=within(5)
        )


async def test_bulk_get_over_http_names_known_ids_and_marks_deleted_and_unknown_ones(
    sandbox: Sandbox,
) -> None:
    known = sandbox.sim.dataset.audiences[0]["id"]
    found = await sandbox.aep.get_audiences(
        [known, DELETED_AUDIENCE_ID, "never-existed"], deadline=within(5)
    )
    assert found[known] is not None and found[known].type in (
        "SegmentDefinition",
        "ExternalSegment",
    )
    assert found[DELETED_AUDIENCE_ID] is None and found["never-existed"] is None
    # None of them exist: the sandbox answers the documented 404, read as "all unknown".
    none = await sandbox.aep.get_audiences(["gone-1", "gone-2"], deadline=within(5))
    assert none == {"gone-1": None, "gone-2": None}


async def test_the_audience_listing_pages_by_offset_and_reads_every_audience(
    sandbox: Sandbox,
) -> None:
    listed = await sandbox.aep.list_audiences(deadline=within(5))
    expected = {a["id"] for a in sandbox.sim.dataset.audiences if not a.get("isSystem")}
    assert {a.id for a in listed} == expected
    assert len(listed) == len(expected)
