"""The AEP client against respx-mocked answers: requests, typed errors, retries and the deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from aep_support import (
    API,
    AUDIENCES_URL,
    BULK_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    ENTITIES_URL,
    MERGE_POLICY_ID,
    ORG_ID,
    SANDBOX,
    TOKEN,
    make_client,
    profile_body,
    token_answer,
    within,
)

from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient, create_http_client
from bot.aep.errors import (
    AepUnavailable,
    CredentialsProblem,
    LookupRejected,
    MalformedResponse,
    Misconfigured,
    ProfileNotFound,
    RateLimited,
    TooManyIdentities,
)
from bot.identity import IdentityRef

JANE = IdentityRef(namespace="Email", value="jane.doe@example.com")
NOT_FOUND = httpx.Response(404, json={"statusCode": "404"})


def _profile_route(router: respx.MockRouter) -> respx.Route:
    return router.get(ENTITIES_URL, params={"schema.name": "_xdm.context.profile"}, name="profile")


def _events_route(router: respx.MockRouter) -> respx.Route:
    return router.get(
        ENTITIES_URL, params={"schema.name": "_xdm.context.experienceevent"}, name="events"
    )


def _event(n: int, ts: int) -> dict[str, Any]:
    return {"entityId": f"evt-{n}", "timestamp": ts, "entity": {"eventType": "commerce.purchases"}}


def _events_page(events: list[dict[str, Any]], next_start: str = "") -> dict[str, Any]:
    href = (
        f"/entities?start={next_start}&orderby=-timestamp&schema.name=_xdm.context.experienceevent"
        "&relatedSchema.name=_xdm.context.profile&relatedEntityId=jane.doe@example.com"
        "&relatedEntityIdNS=Email&limit=2"
        if next_start
        else ""
    )
    return {
        "_page": {"orderby": "-timestamp", "count": len(events), "next": next_start},
        "children": events,
        "_links": {"next": {"href": href}},
    }


def _audience(audience_id: str, name: str) -> dict[str, Any]:
    return {
        "id": audience_id,
        "audienceId": audience_id,
        "name": name,
        "lifecycleState": "published",
    }


# --- requests -----------------------------------------------------------------------------------


async def test_profile_lookup_sends_the_documented_request(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(return_value=httpx.Response(200, json=profile_body()))
    profile = await aep.get_profile(
        JANE, fields=["identities", " person.name ", "segmentMembership"], deadline=within(2)
    )
    assert profile.entity_id == "BQxJaneDoeExampleXid00000001"
    assert profile.entity["person"]["name"]["firstName"] == "Jane"
    assert [(i.namespace, i.primary) for i in profile.identities] == [
        ("email", False),
        ("crmid", True),
    ]
    request = route.calls.last.request
    assert dict(request.url.params) == {
        "schema.name": "_xdm.context.profile",
        "entityId": "jane.doe@example.com",
        "entityIdNS": "Email",
        "mergePolicyId": MERGE_POLICY_ID,
        "fields": "identities,person.name,segmentMembership",
    }


#: Adobe's merge-policy list answer (profile/api/merge-policies.md), for the default profile policy.
DEFAULT_POLICY_LIST = {
    "_page": {"totalCount": 1, "pageSize": 1},
    "children": [
        {
            "id": "10648288-cda5-11e8-a8d5-f2801f1b9fd1",
            "name": "profile-default",
            "imsOrgId": ORG_ID,
            "schema": {"name": "_xdm.context.profile"},
            "version": 1,
            "identityGraph": {"type": "none"},
            "attributeMerge": {"type": "timestampOrdered"},
            "default": True,
            "updateEpoch": 1551127597,
        }
    ],
    "_links": {"next": {"href": ""}},
}


async def test_without_a_configured_merge_policy_the_sandbox_default_is_named_on_every_lookup(
    router: respx.MockRouter, tokens: ImsTokenSource, http: httpx.AsyncClient
) -> None:
    policies = router.get(f"{API}/data/core/ups/config/mergePolicies").mock(
        return_value=httpx.Response(200, json=DEFAULT_POLICY_LIST)
    )
    route = _profile_route(router).mock(return_value=httpx.Response(200, json=profile_body()))
    aep = make_client(tokens, http=http, merge_policy_id=None)
    await aep.get_profile(JANE, deadline=within(2))
    await aep.get_profile(JANE, deadline=within(2))
    assert [dict(c.request.url.params) for c in policies.calls] == [
        {"schema.name": "_xdm.context.profile", "default": "true"}
    ]
    params = route.calls.last.request.url.params
    assert params["mergePolicyId"] == "10648288-cda5-11e8-a8d5-f2801f1b9fd1"
    assert "fields" not in params
    assert aep.merge_policy_in_use is not None
    assert aep.merge_policy_in_use.name == "profile-default"


async def test_a_sandbox_with_no_default_merge_policy_is_a_configuration_error_in_words(
    router: respx.MockRouter, tokens: ImsTokenSource, http: httpx.AsyncClient
) -> None:
    router.get(f"{API}/data/core/ups/config/mergePolicies").mock(
        return_value=httpx.Response(200, json={"_page": {"totalCount": 0}, "children": []})
    )
    route = _profile_route(router)
    aep = make_client(tokens, http=http, merge_policy_id=None)
    with pytest.raises(Misconfigured, match=r"no default merge policy.*AEP_MERGE_POLICY_ID"):
        await aep.merge_policy(deadline=within(2))
    assert route.call_count == 0


async def test_every_platform_call_carries_the_four_headers_and_its_own_request_id(
    router: respx.MockRouter, aep: AepClient
) -> None:
    _profile_route(router).mock(return_value=httpx.Response(200, json=profile_body()))
    _events_route(router).mock(
        side_effect=[
            httpx.Response(200, json=_events_page([_event(1, 3000)], next_start="evt-2")),
            httpx.Response(200, json=_events_page([_event(2, 2000)])),
        ]
    )
    router.post(BULK_URL).mock(
        return_value=httpx.Response(207, json={"results": {"a-1": _audience("a-1", "Gold")}})
    )
    router.get(AUDIENCES_URL).mock(
        return_value=httpx.Response(200, json={"children": [_audience("a-1", "Gold")]})
    )
    await aep.get_profile(JANE, deadline=within(2))
    await aep.get_events(JANE, limit=5, deadline=within(2))
    await aep.get_audiences(["a-1"], deadline=within(2))
    await aep.list_audiences(deadline=within(2))

    platform_calls = [c for c in router.calls if c.request.url.host == "platform.test"]
    assert len(platform_calls) == 5
    for call in platform_calls:
        headers = call.request.headers
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["x-api-key"] == CLIENT_ID
        assert headers["x-gw-ims-org-id"] == ORG_ID
        assert headers["x-sandbox-name"] == SANDBOX
        uuid.UUID(headers["x-request-id"])
    assert len({c.request.headers["x-request-id"] for c in platform_calls}) == 5
    assert router.routes["token"].call_count == 1


async def test_http_client_has_explicit_timeouts_and_a_bounded_pool() -> None:
    async with create_http_client() as http:
        assert http.timeout == httpx.Timeout(connect=3.0, read=10.0, write=5.0, pool=3.0)
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 10
        assert http.trust_env is False
    # With another transport (the in-process demo sandbox) the timeouts stay the same.
    demo = httpx.MockTransport(lambda request: httpx.Response(204))
    async with create_http_client(transport=demo) as http:
        assert http.timeout == httpx.Timeout(connect=3.0, read=10.0, write=5.0, pool=3.0)
        assert (await http.get("http://demo.test/")).status_code == 204


# --- not found ----------------------------------------------------------------------------------


async def test_404_is_profile_not_found_without_the_identity_in_the_message(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(return_value=NOT_FOUND)
    with pytest.raises(ProfileNotFound) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    assert "jane.doe" not in str(caught.value)
    assert "Email" in str(caught.value)
    assert route.call_count == 1  # a 404 is an answer, not a failure to retry


@pytest.mark.parametrize(
    "entry",
    [
        {"entityId": "X", "sources": [""], "entity": {}, "lastModifiedAt": "2026-01-01T00:00:00Z"},
        {"entityId": "X", "entity": {"a": 1}, "lastModifiedAt": "1970-01-01T00:00:00Z"},
    ],
)
async def test_an_empty_entity_is_profile_not_found(
    router: respx.MockRouter, aep: AepClient, entry: dict[str, Any]
) -> None:
    _profile_route(router).mock(return_value=httpx.Response(200, json={"X": entry}))
    with pytest.raises(ProfileNotFound):
        await aep.get_profile(IdentityRef("crmid", "CRM-1"), deadline=within(2))


async def test_an_email_with_capitals_is_tried_once_more_in_lower_case(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(
        side_effect=[NOT_FOUND, httpx.Response(200, json=profile_body())]
    )
    profile = await aep.get_profile(
        IdentityRef("Email", "Jane.Doe@Example.com"), deadline=within(2)
    )
    assert profile.entity_id == "BQxJaneDoeExampleXid00000001"
    assert [c.request.url.params["entityId"] for c in route.calls] == [
        "Jane.Doe@Example.com",
        "jane.doe@example.com",
    ]


async def test_events_of_an_email_with_capitals_are_tried_in_lower_case_too(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _events_route(router).mock(
        side_effect=[
            NOT_FOUND,
            httpx.Response(200, json=_events_page([_event(1, 1_700_000_000_000)])),
        ]
    )
    page = await aep.get_events(
        IdentityRef("Email", "Jane.Doe@Example.com"), limit=5, deadline=within(2)
    )
    assert len(page.events) == 1
    assert [c.request.url.params["relatedEntityId"] for c in route.calls] == [
        "Jane.Doe@Example.com",
        "jane.doe@example.com",
    ]


@pytest.mark.parametrize(
    "ref",
    [IdentityRef("Email", "jane.doe@example.com"), IdentityRef("crmid", "CRM-ABC")],
    ids=["email-already-lower-case", "not-an-email"],
)
async def test_no_lower_case_retry_when_it_cannot_help(
    router: respx.MockRouter, aep: AepClient, ref: IdentityRef
) -> None:
    route = _profile_route(router).mock(return_value=NOT_FOUND)
    with pytest.raises(ProfileNotFound):
        await aep.get_profile(ref, deadline=within(2))
    assert route.call_count == 1


# --- refusals -----------------------------------------------------------------------------------


async def test_too_many_related_identities_is_not_retried(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(
        return_value=httpx.Response(
            422, json={"message": "Too many related identities", "statusCode": "422"}
        )
    )
    with pytest.raises(TooManyIdentities):
        await aep.get_profile(JANE, deadline=within(2))
    assert route.call_count == 1


@pytest.mark.parametrize("status", [400, 422])
async def test_other_400_and_422_are_lookup_rejected(
    router: respx.MockRouter, aep: AepClient, status: int
) -> None:
    route = _profile_route(router).mock(
        return_value=httpx.Response(
            status, json={"message": "Invalid field path: person.nme", "statusCode": str(status)}
        )
    )
    with pytest.raises(LookupRejected, match="Invalid field path"):
        await aep.get_profile(JANE, deadline=within(2))
    assert route.call_count == 1


async def test_403_is_a_credentials_problem_explaining_the_permission(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(
        return_value=httpx.Response(
            403,
            json={"message": "UPS-ACC-1000004: IMS Org is not provisioned.", "statusCode": "403"},
        )
    )
    with pytest.raises(CredentialsProblem) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    assert "UPS-ACC-1000004" in caught.value.message
    assert "read access" in caught.value.message
    assert caught.value.status == 403
    assert route.call_count == 1


async def test_ims_refusing_the_credentials_stops_before_platform(
    router: respx.MockRouter, aep: AepClient
) -> None:
    router.routes["token"].mock(
        return_value=httpx.Response(400, json={"error": "invalid_client", "error_description": "x"})
    )
    route = _profile_route(router).mock(return_value=httpx.Response(200, json=profile_body()))
    with pytest.raises(CredentialsProblem, match="AEP_CLIENT_ID and AEP_CLIENT_SECRET"):
        await aep.get_profile(JANE, deadline=within(2))
    assert route.call_count == 0


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["not-json", "wrong-shape"],
)
async def test_unreadable_answers_are_malformed(
    router: respx.MockRouter, aep: AepClient, answer: httpx.Response
) -> None:
    _profile_route(router).mock(return_value=answer)
    with pytest.raises(MalformedResponse):
        await aep.get_profile(JANE, deadline=within(2))


# --- 401 ----------------------------------------------------------------------------------------


async def test_401_fetches_a_fresh_token_and_retries_once(
    router: respx.MockRouter, aep: AepClient, tokens: ImsTokenSource
) -> None:
    router.routes["token"].mock(side_effect=[token_answer("old"), token_answer("new")])
    route = _profile_route(router).mock(
        side_effect=[
            httpx.Response(
                401, json={"error_code": "401013", "message": "Oauth token is not valid"}
            ),
            httpx.Response(200, json=profile_body()),
        ]
    )
    await aep.get_profile(JANE, deadline=within(2))
    assert [c.request.headers["authorization"] for c in route.calls] == [
        "Bearer old",
        "Bearer new",
    ]
    assert tokens.refreshes == 2


async def test_a_second_401_is_a_credentials_problem(
    router: respx.MockRouter, aep: AepClient, tokens: ImsTokenSource
) -> None:
    router.routes["token"].mock(side_effect=[token_answer("old"), token_answer("new")])
    route = _profile_route(router).mock(
        return_value=httpx.Response(
            401, json={"error_code": "401013", "message": "Oauth token is not valid"}
        )
    )
    with pytest.raises(CredentialsProblem) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    assert caught.value.status == 401
    assert "401013" in caught.value.message
    assert route.call_count == 2
    assert tokens.refreshes == 2


# --- 429 and 5xx --------------------------------------------------------------------------------


def _too_many(retry_after_ms: int) -> httpx.Response:
    return httpx.Response(
        429,
        json=[
            {
                "message": "Too many requests",
                "cause": '{"Errors":["Request rate is large"]}',
                "retryAfterMs": str(retry_after_ms),
                "statusCode": "429",
            }
        ],
    )


async def test_429_waits_retry_after_ms_when_it_fits_the_deadline(
    router: respx.MockRouter, aep: AepClient
) -> None:
    arrivals: list[float] = []
    answers = iter([_too_many(150), httpx.Response(200, json=profile_body())])

    def answer(request: httpx.Request) -> httpx.Response:
        arrivals.append(time.monotonic())
        return next(answers)

    _profile_route(router).mock(side_effect=answer)
    profile = await aep.get_profile(JANE, deadline=within(2))
    assert profile.entity_id == "BQxJaneDoeExampleXid00000001"
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.15


async def test_429_honours_the_retry_after_header_when_the_body_has_none(
    router: respx.MockRouter, aep: AepClient
) -> None:
    arrivals: list[float] = []
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0.1"}, json={"status": 429}),
            httpx.Response(200, json=profile_body()),
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        arrivals.append(time.monotonic())
        return next(answers)

    _profile_route(router).mock(side_effect=answer)
    await aep.get_profile(JANE, deadline=within(2))
    assert arrivals[1] - arrivals[0] >= 0.1


async def test_429_that_does_not_fit_the_deadline_is_rate_limited_at_once(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(return_value=_too_many(30_000))
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    assert caught.value.retry_after == 30.0
    assert "30 s" in caught.value.message
    assert route.call_count == 1
    # It gave up without waiting out the deadline.
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-2"])
async def test_a_retry_after_that_is_no_usable_wait_is_ignored(
    router: respx.MockRouter, aep: AepClient, value: str
) -> None:
    route = _profile_route(router).mock(
        return_value=httpx.Response(429, headers={"Retry-After": value}, json={"status": 429})
    )
    with pytest.raises(RateLimited) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    # Retried with the usual backoff, as if Platform had given no advice.
    assert route.call_count == 4
    assert caught.value.retry_after is None
    assert "in a moment" in caught.value.message


@pytest.mark.parametrize(
    "failures",
    [
        [httpx.Response(503), httpx.Response(500, json={"message": "Unable to connect"})],
        [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ],
    ids=["5xx", "transport-errors"],
)
async def test_transient_failures_are_retried_then_succeed(
    router: respx.MockRouter, aep: AepClient, failures: list[Any]
) -> None:
    route = _profile_route(router).mock(
        side_effect=[*failures, httpx.Response(200, json=profile_body())]
    )
    profile = await aep.get_profile(JANE, deadline=within(2))
    assert profile.entity_id == "BQxJaneDoeExampleXid00000001"
    assert route.call_count == 3


async def test_persistent_5xx_ends_as_unavailable(router: respx.MockRouter, aep: AepClient) -> None:
    route = _profile_route(router).mock(return_value=httpx.Response(503))
    with pytest.raises(AepUnavailable, match=r"server error \(503\)"):
        await aep.get_profile(JANE, deadline=within(2))
    assert 2 <= route.call_count <= 4


# --- the deadline -------------------------------------------------------------------------------


async def test_deadline_cuts_off_a_hanging_server(router: respx.MockRouter, aep: AepClient) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=profile_body())

    _profile_route(router).mock(side_effect=hang)
    started = time.monotonic()
    with pytest.raises(AepUnavailable, match=r"did not answer within 0\.3 s"):
        await aep.get_profile(JANE, deadline=within(0.3))
    assert time.monotonic() - started < 0.3 + 0.3


async def test_deadline_cuts_off_a_server_dripping_its_body(
    router: respx.MockRouter, aep: AepClient
) -> None:
    async def drip() -> AsyncIterator[bytes]:
        for byte in json.dumps(profile_body()).encode():
            await asyncio.sleep(0.05)
            yield bytes([byte])

    _profile_route(router).mock(side_effect=lambda request: httpx.Response(200, content=drip()))
    started = time.monotonic()
    with pytest.raises(AepUnavailable, match="did not answer within"):
        await aep.get_profile(JANE, deadline=within(0.3))
    # The whole body would take about 20 s; each byte arrives well within httpx's read timeout.
    assert time.monotonic() - started < 0.3 + 0.3


async def test_a_deadline_already_past_fails_without_calling(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _profile_route(router).mock(return_value=httpx.Response(200, json=profile_body()))
    with pytest.raises(AepUnavailable, match="ran out of time before"):
        await aep.get_profile(JANE, deadline=time.monotonic() - 1)
    assert route.call_count == 0


async def test_the_deadline_covers_retries_too(router: respx.MockRouter, aep: AepClient) -> None:
    async def slow_failure(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return httpx.Response(503)

    _profile_route(router).mock(side_effect=slow_failure)
    started = time.monotonic()
    with pytest.raises(AepUnavailable, match="its last answer was HTTP 503"):
        await aep.get_profile(JANE, deadline=within(0.3))
    assert time.monotonic() - started < 0.3 + 0.3


# --- concurrency --------------------------------------------------------------------------------


async def test_profile_and_events_fetched_together_are_in_flight_at_once(
    router: respx.MockRouter, aep: AepClient
) -> None:
    spans: dict[str, tuple[float, float]] = {}

    def slow(name: str, body: dict[str, Any]) -> Any:
        async def answer(request: httpx.Request) -> httpx.Response:
            started = time.monotonic()
            await asyncio.sleep(0.2)
            spans[name] = (started, time.monotonic())
            return httpx.Response(200, json=body)

        return answer

    _profile_route(router).mock(side_effect=slow("profile", profile_body()))
    _events_route(router).mock(side_effect=slow("events", _events_page([_event(1, 1000)])))
    await asyncio.gather(
        aep.get_profile(JANE, deadline=within(2)),
        aep.get_events(JANE, limit=5, deadline=within(2)),
    )
    # Each request arrived before the other one was answered.
    assert spans["profile"][0] < spans["events"][1]
    assert spans["events"][0] < spans["profile"][1]


async def test_no_more_than_max_in_flight_requests_at_once(
    router: respx.MockRouter, tokens: ImsTokenSource, http: httpx.AsyncClient
) -> None:
    in_flight = 0
    peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json=profile_body())

    _profile_route(router).mock(side_effect=answer)
    aep = make_client(tokens, http=http, max_in_flight=2)
    await asyncio.gather(*(aep.get_profile(JANE, deadline=within(2)) for _ in range(8)))
    assert peak == 2


async def test_fifty_concurrent_lookups_share_one_ims_refresh(
    router: respx.MockRouter, aep: AepClient, tokens: ImsTokenSource
) -> None:
    async def slow_ims(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return token_answer()

    router.routes["token"].mock(side_effect=slow_ims)
    route = _profile_route(router).mock(return_value=httpx.Response(200, json=profile_body()))
    await asyncio.gather(*(aep.get_profile(JANE, deadline=within(3)) for _ in range(50)))
    assert tokens.refreshes == 1
    assert router.routes["token"].call_count == 1
    assert route.call_count == 50


# --- events -------------------------------------------------------------------------------------


async def test_events_ask_newest_first_and_follow_next_only_to_fill_the_limit(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _events_route(router).mock(
        side_effect=[
            httpx.Response(
                200, json=_events_page([_event(1, 5000), _event(2, 4000)], next_start="evt-3")
            ),
            httpx.Response(
                200, json=_events_page([_event(3, 3000), _event(4, 2000)], next_start="evt-5")
            ),
        ]
    )
    page = await aep.get_events(JANE, limit=3, deadline=within(2))
    assert [e.event_id for e in page.events] == ["evt-1", "evt-2", "evt-3"]
    assert page.more
    assert route.call_count == 2
    first, second = (c.request.url for c in route.calls)
    assert dict(first.params) == {
        "schema.name": "_xdm.context.experienceevent",
        "relatedSchema.name": "_xdm.context.profile",
        "relatedEntityId": "jane.doe@example.com",
        "relatedEntityIdNS": "Email",
        "orderby": "-timestamp",
        "limit": "3",
        "mergePolicyId": MERGE_POLICY_ID,
    }
    assert second.path == "/data/core/ups/access/entities"
    assert second.params["start"] == "evt-3"


async def test_events_stop_at_the_first_page_when_it_fills_the_limit(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = _events_route(router).mock(
        return_value=httpx.Response(
            200, json=_events_page([_event(1, 5000), _event(2, 4000)], next_start="evt-3")
        )
    )
    page = await aep.get_events(JANE, limit=2, deadline=within(2))
    assert len(page.events) == 2
    assert page.more
    assert route.call_count == 1


async def test_events_on_the_last_page_say_there_are_no_more(
    router: respx.MockRouter, aep: AepClient
) -> None:
    _events_route(router).mock(
        side_effect=[
            httpx.Response(200, json=_events_page([_event(1, 5000)], next_start="evt-2")),
            httpx.Response(200, json=_events_page([_event(2, 4000)])),
        ]
    )
    page = await aep.get_events(JANE, limit=10, deadline=within(2))
    assert [e.event_id for e in page.events] == ["evt-1", "evt-2"]
    assert not page.more


async def test_an_unreadable_event_is_skipped_and_logged_without_its_content(
    router: respx.MockRouter, aep: AepClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.aep.client")
    odd = {"entityId": "evt-odd", "timestamp": "jane.doe@example.com", "entity": {}}
    _events_route(router).mock(
        return_value=httpx.Response(200, json=_events_page([_event(1, 5000), odd, "x"]))
    )
    page = await aep.get_events(JANE, limit=10, deadline=within(2))
    assert [e.event_id for e in page.events] == ["evt-1"]
    skipped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].startswith("Skipped 2 unreadable")
    assert "evt-odd" not in skipped[0] and "jane" not in skipped[0]


async def test_events_of_an_unknown_profile_are_profile_not_found(
    router: respx.MockRouter, aep: AepClient
) -> None:
    _events_route(router).mock(return_value=NOT_FOUND)
    with pytest.raises(ProfileNotFound):
        await aep.get_events(JANE, limit=5, deadline=within(2))


# --- audiences ----------------------------------------------------------------------------------


async def test_audience_bulk_get_names_found_ids_and_marks_only_404_as_unknown(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = router.post(BULK_URL).mock(
        return_value=httpx.Response(
            207,
            json={
                "results": {
                    "a-1": _audience("a-1", "Gold customers"),
                    "a-2": _audience("a-2", "Churn risk"),
                    "a-unknown": {
                        "requestId": "BNcYkjG1BCnhQ51uToeSdY5D5fQOKcSe",
                        "errors": {"404": [{"code": 404, "message": "Not found."}]},
                    },
                    "a-busy": {
                        "requestId": "r2",
                        "errors": {"503": [{"code": 503, "message": "Service unavailable"}]},
                    },
                },
            },
        )
    )
    found = await aep.get_audiences(
        ["a-1", "a-2", "a-unknown", "a-busy", "a-unmentioned", "a-1"], deadline=within(2)
    )
    assert {k: v.name if v else None for k, v in found.items()} == {
        "a-1": "Gold customers",
        "a-2": "Churn risk",
        "a-unknown": None,
    }
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "ids": [
            {"id": "a-1"},
            {"id": "a-2"},
            {"id": "a-unknown"},
            {"id": "a-busy"},
            {"id": "a-unmentioned"},
        ]
    }


async def test_audience_bulk_get_404_for_none_marks_every_id_unknown(
    router: respx.MockRouter, aep: AepClient
) -> None:
    router.post(BULK_URL).mock(
        return_value=httpx.Response(
            404,
            json={
                "requestId": "Vrxt59wqKLr5OlpnclFc2kMGAVwZQIT2",
                "errors": {
                    "404": [
                        {
                            "code": "UPAPI-113000-404",
                            "message": "The entity missing-audience-1,missing-audience-2 "
                            "is not found.",
                        }
                    ]
                },
                "type": "https://ns.adobe.com/aep/errors/UPAPI-113000-404",
                "title": "The entity missing-audience-1,missing-audience-2 is not found.",
                "status": 404,
            },
        )
    )
    found = await aep.get_audiences(
        ["missing-audience-1", "missing-audience-2"], deadline=within(2)
    )
    assert found == {"missing-audience-1": None, "missing-audience-2": None}


async def test_audience_bulk_get_asks_at_most_100_ids_a_request(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = router.post(BULK_URL).mock(
        side_effect=lambda request: httpx.Response(
            207,
            json={
                "results": {
                    i["id"]: _audience(i["id"], i["id"].upper())
                    for i in json.loads(request.content)["ids"]
                }
            },
        )
    )
    ids = [f"a-{n}" for n in range(250)]
    found = await aep.get_audiences(ids, deadline=within(2))
    assert len(found) == 250
    assert [len(json.loads(c.request.content)["ids"]) for c in route.calls] == [100, 100, 50]


async def test_audience_bulk_get_of_nothing_makes_no_call(
    router: respx.MockRouter, aep: AepClient
) -> None:
    route = router.post(BULK_URL)
    assert await aep.get_audiences([], deadline=within(2)) == {}
    assert route.call_count == 0


async def test_audience_list_reads_every_page_by_offset(
    router: respx.MockRouter, aep: AepClient
) -> None:
    # Adobe's own example answers start=0 with next=1: `next` says a page follows, the offset
    # of that page is the client's to count.
    route = router.get(AUDIENCES_URL).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "children": [_audience("a-1", "One"), _audience("a-2", "Two")],
                    "_page": {"start": 0, "next": 1, "limit": 2},
                    "_links": {"next": {"href": "@/audiences?start=1&limit=2"}},
                },
            ),
            httpx.Response(
                200,
                json={
                    "children": [_audience("a-3", "Three")],
                    "_page": {"start": 2, "next": 2, "limit": 2},
                },
            ),
            httpx.Response(200, json={"children": [_audience("a-4", "Four")], "_page": {}}),
        ]
    )
    audiences = await aep.list_audiences(deadline=within(2))
    assert [a.name for a in audiences] == ["One", "Two", "Three", "Four"]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"start": "0", "limit": "100"},
        {"start": "2", "limit": "100"},
        {"start": "3", "limit": "100"},
    ]


async def test_audience_list_stops_when_a_page_brings_nothing_new(
    router: respx.MockRouter, aep: AepClient
) -> None:
    looping = {
        "children": [_audience("a-1", "One")],
        "_links": {"next": {"href": "@/audiences?start=0&limit=100"}},
    }
    route = router.get(AUDIENCES_URL).mock(return_value=httpx.Response(200, json=looping))
    audiences = await aep.list_audiences(deadline=within(2))
    assert [a.name for a in audiences] == ["One"]
    assert route.call_count == 2  # the second page brought nothing new


# --- logging ------------------------------------------------------------------------------------


async def test_logs_hold_no_identity_token_or_secret(
    router: respx.MockRouter, aep: AepClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The bot holds httpx at WARNING; whoever lowers it still gets request lines without queries.
    caplog.set_level(logging.DEBUG, logger="httpx")
    router.routes["token"].mock(side_effect=[token_answer("old-token"), token_answer("new-token")])
    _profile_route(router).mock(
        side_effect=[
            httpx.Response(
                401, json={"error_code": "401013", "message": "Oauth token is not valid"}
            ),
            httpx.Response(503),
            NOT_FOUND,
            httpx.Response(200, json=profile_body("jane.doe@example.com")),
        ]
    )
    _events_route(router).mock(
        side_effect=[
            httpx.Response(200, json=_events_page([_event(1, 5000)], next_start="evt-2")),
            httpx.Response(200, json=_events_page([_event(2, 4000)])),
        ]
    )
    await aep.get_profile(IdentityRef("Email", "Jane.Doe@Example.com"), deadline=within(2))
    await aep.get_events(JANE, limit=5, deadline=within(2))

    text = "\n".join(record.getMessage() for record in caplog.records)
    # The requests were logged, by path, status and request id...
    assert "GET /data/core/ups/access/entities -> 401" in text
    assert "GET /data/core/ups/access/entities -> 200" in text
    assert "x-request-id" in text
    # ...and nothing that identifies the customer or opens the door.
    for secret in ("jane.doe", "Jane.Doe", "old-token", "new-token", CLIENT_SECRET, "CRM-000123"):
        assert secret not in text
    # httpx's own request line is kept, without the query string.
    assert f"HTTP Request: GET {API}/data/core/ups/access/entities " in text
    assert "entityId=" not in text
