"""The demo sandbox answers as the documented AEP API does, in process and over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from bot.demo.dataset import (
    DEFAULT_MERGE_POLICY_ID,
    NO_STITCH_MERGE_POLICY_ID,
    load_dataset,
    xid_for,
)
from bot.demo.simulator import AepSimulator

ENTITIES = "/data/core/ups/access/entities"
AUDIENCES = "/data/core/ups/audiences"
PROFILE = "_xdm.context.profile"
EVENTS = "_xdm.context.experienceevent"
JANE = load_dataset().customers[0]


def profile_query(entity_id: str, namespace: str, **extra: str) -> dict[str, str]:
    return {"schema.name": PROFILE, "entityId": entity_id, "entityIdNS": namespace, **extra}


def event_query(entity_id: str, namespace: str, **extra: str) -> dict[str, str]:
    return {
        "schema.name": EVENTS,
        "relatedSchema.name": PROFILE,
        "relatedEntityId": entity_id,
        "relatedEntityIdNS": namespace,
        **extra,
    }


def only_entry(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body) == 1
    (key, entry), *_ = body.items()
    assert entry["entityId"] == key
    return dict(entry)


# ------------------------------------------------------------------------------------------------
# IMS


async def test_token_is_issued_for_the_demo_credentials(
    client: httpx.AsyncClient, token_form: dict[str, str]
) -> None:
    response = await client.post("/ims/token/v3", data=token_form)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert body["access_token"]


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"scope": ""}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
async def test_token_request_is_rejected_like_ims(
    client: httpx.AsyncClient,
    sim: AepSimulator,
    token_form: dict[str, str],
    change: dict[str, str],
    status: int,
    error: str,
) -> None:
    response = await client.post("/ims/token/v3", data=token_form | change)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert sim.stats["rejected"] == 1


async def test_an_expired_token_is_refused(token_form: dict[str, str]) -> None:
    from bot.demo.transport import in_process_transport

    sim = AepSimulator(token_ttl=0)
    async with httpx.AsyncClient(transport=in_process_transport(sim), base_url="http://d") as c:
        token = (await c.post("/ims/token/v3", data=token_form)).json()
        assert token["expires_in"] == 0
        response = await c.get(
            ENTITIES,
            params=profile_query("jane.doe@example.com", "email"),
            headers={
                "Authorization": f"Bearer {token['access_token']}",
                "x-api-key": "demo-client-id",
                "x-gw-ims-org-id": "DEMO0000000000000000000@AdobeOrg",
                "x-sandbox-name": "prod",
            },
        )
    assert response.status_code == 401
    assert response.json() == {"error_code": "401013", "message": "Oauth token is not valid"}


async def test_revoked_tokens_are_refused_until_a_new_one_is_issued(
    client: httpx.AsyncClient,
    sim: AepSimulator,
    headers: dict[str, str],
    token_form: dict[str, str],
) -> None:
    query = profile_query("jane.doe@example.com", "email")
    sim.revoke_tokens()
    assert (await client.get(ENTITIES, params=query, headers=headers)).status_code == 401
    fresh = (await client.post("/ims/token/v3", data=token_form)).json()["access_token"]
    headers = headers | {"Authorization": f"Bearer {fresh}"}
    assert (await client.get(ENTITIES, params=query, headers=headers)).status_code == 200


# ------------------------------------------------------------------------------------------------
# Gateway headers


def gateway(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}


@pytest.mark.parametrize(
    ("header", "value", "status", "body"),
    [
        ("Authorization", None, 403, gateway("403010", "Oauth token is missing.")),
        ("Authorization", "Bearer forged", 401, gateway("401013", "Oauth token is not valid")),
        ("x-api-key", None, 403, gateway("403000", "Api Key is required")),
        ("x-api-key", "other-client", 403, gateway("403003", "Api Key is invalid")),
        ("x-gw-ims-org-id", None, 400, gateway("400003", "Missing header")),
        ("x-gw-ims-org-id", "OTHER@AdobeOrg", 403, gateway("403025", "Profile is not valid")),
    ],
)
async def test_gateway_rejects_bad_headers_with_its_own_body(
    client: httpx.AsyncClient,
    sim: AepSimulator,
    headers: dict[str, str],
    header: str,
    value: str | None,
    status: int,
    body: dict[str, str],
) -> None:
    changed = {k: v for k, v in headers.items() if k != header}
    if value is not None:
        changed[header] = value
    response = await client.get(
        ENTITIES, params=profile_query("jane.doe@example.com", "email"), headers=changed
    )
    assert response.status_code == status
    assert response.json() == body
    assert sim.stats["rejected"] == 1


@pytest.mark.parametrize("sandbox", [None, "Prod", "dev"])
async def test_sandbox_must_be_the_lower_case_demo_sandbox(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str], sandbox: str | None
) -> None:
    changed = {k: v for k, v in headers.items() if k != "x-sandbox-name"}
    if sandbox is not None:
        changed["x-sandbox-name"] = sandbox
    response = await client.get(AUDIENCES, headers=changed)
    assert response.status_code == 403
    body = response.json()
    assert body["statusCode"] == "403"
    assert "sandbox" in body["message"]
    assert sim.stats["rejected"] == 1


# ------------------------------------------------------------------------------------------------
# Profile lookups


@pytest.mark.parametrize(
    ("namespace", "value"),
    [
        ("email", "jane.doe@example.com"),
        ("Email", "Jane.Doe@Example.com"),
        ("Phone", "+14155550123"),
        ("crmid", "CRM-000123"),
        ("CRMID", "CRM-000123"),
        ("ECID", next(v for ns, v in JANE.identities if ns == "ecid")),
        ("loyaltyId", next(v for ns, v in JANE.identities if ns == "loyaltyid")),
    ],
)
async def test_profile_is_found_by_every_identity(
    client: httpx.AsyncClient, headers: dict[str, str], namespace: str, value: str
) -> None:
    response = await client.get(
        ENTITIES,
        params=profile_query(value, namespace, mergePolicyId=DEFAULT_MERGE_POLICY_ID),
        headers=headers,
    )
    entry = only_entry(response)
    assert entry["entityId"] == JANE.entity_id
    assert entry["lastModifiedAt"] == JANE.last_modified_at
    assert entry["sources"]
    assert entry["entity"]["person"]["name"] == {"firstName": "Jane", "lastName": "Doe"}
    codes = {identity["namespace"]["code"] for identity in entry["entity"]["identities"]}
    assert codes == {"crmid", "email", "phone", "ecid", "loyaltyid"}


async def test_the_b2b_spelling_entityIdNs_is_accepted(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    query = {"schema.name": PROFILE, "entityId": "CRM-000123", "entityIdNs": "crmid"}
    assert (
        only_entry(await client.get(ENTITIES, params=query, headers=headers))["entityId"]
        == JANE.entity_id
    )


async def test_an_xid_is_looked_up_without_a_namespace(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    query = {"schema.name": PROFILE, "entityId": xid_for("Phone", "+14155550123")}
    assert (
        only_entry(await client.get(ENTITIES, params=query, headers=headers))["entityId"]
        == JANE.entity_id
    )


async def test_identity_map_only_profiles_come_back_with_identity_map(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    customer = next(c for c in load_dataset().customers if "identityMap" in c.entity)
    namespace, value = customer.identities[0]
    entry = only_entry(
        await client.get(ENTITIES, params=profile_query(value, namespace), headers=headers)
    )
    assert "identities" not in entry["entity"]
    assert entry["entity"]["identityMap"][namespace][0]["id"] == value


async def test_fields_filter_keeps_only_the_asked_paths(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    query = profile_query(
        "jane.doe@example.com", "email", fields="person.name,_acme.scores.churnPropensity,loyalty"
    )
    entity = only_entry(await client.get(ENTITIES, params=query, headers=headers))["entity"]
    assert entity == {
        "person": {"name": {"firstName": "Jane", "lastName": "Doe"}},
        "_acme": {"scores": {"churnPropensity": 0.82}},
        "loyalty": JANE.entity["loyalty"],
    }


async def test_fields_with_spaces_are_rejected(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    query = profile_query("jane.doe@example.com", "email", fields="person.name, loyalty")
    response = await client.get(ENTITIES, params=query, headers=headers)
    assert response.status_code == 400
    assert response.json()["statusCode"] == "400"


async def test_unknown_identity_is_a_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for namespace, value in (("email", "nobody@example.com"), ("Phone", "4155550123")):
        response = await client.get(
            ENTITIES, params=profile_query(value, namespace), headers=headers
        )
        assert response.status_code == 404
        assert response.json()["statusCode"] == "404"


@pytest.mark.parametrize("merge_policy", [DEFAULT_MERGE_POLICY_ID, NO_STITCH_MERGE_POLICY_ID])
async def test_a_graph_above_50_identities_is_422_too_many_related_identities(
    client: httpx.AsyncClient, headers: dict[str, str], merge_policy: str
) -> None:
    big = load_dataset().find("email", "big.graph@example.com")
    assert big is not None
    ecid = next(v for ns, v in big.identities[-3:] if ns == "ecid")
    for namespace, value in (("email", "big.graph@example.com"), ("ECID", ecid)):
        query = profile_query(value, namespace, mergePolicyId=merge_policy)
        response = await client.get(ENTITIES, params=query, headers=headers)
        assert response.status_code == 422
        body = response.json()
        assert body["message"] == "Too many related identities"
        assert body["statusCode"] == "422"
        assert body["cause"]
    events = await client.get(
        ENTITIES, params=event_query("big.graph@example.com", "email"), headers=headers
    )
    assert events.status_code == 422


async def test_no_stitch_merge_policy_returns_only_the_asked_identitys_fragment(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    by_email = only_entry(
        await client.get(
            ENTITIES,
            params=profile_query(
                "jane.doe@example.com", "email", mergePolicyId=NO_STITCH_MERGE_POLICY_ID
            ),
            headers=headers,
        )
    )
    by_crm = only_entry(
        await client.get(
            ENTITIES,
            params=profile_query("CRM-000123", "crmid", mergePolicyId=NO_STITCH_MERGE_POLICY_ID),
            headers=headers,
        )
    )
    # Each fragment is its own entity; the crmid is Jane's primary identity, so it keeps her id.
    assert by_email["entityId"] not in (by_crm["entityId"], JANE.entity_id)
    assert by_email["entity"]["identities"] == [
        {"id": "jane.doe@example.com", "namespace": {"code": "email"}, "primary": True}
    ]
    assert "personalEmail" in by_email["entity"] and "_acme" not in by_email["entity"]
    assert "crm" in by_crm["entity"]["_acme"] and "personalEmail" not in by_crm["entity"]
    assert "segmentMembership" not in by_crm["entity"]


async def test_unknown_merge_policy_is_a_422(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    query = profile_query(
        "jane.doe@example.com", "email", mergePolicyId="00000000-0000-4000-8000-000000000000"
    )
    response = await client.get(ENTITIES, params=query, headers=headers)
    assert response.status_code == 422
    assert response.json()["statusCode"] == "422"


async def test_post_batch_answers_unknown_identities_with_an_empty_entity(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {
        "schema": {"name": PROFILE},
        "fields": ["person.name"],
        "identities": [
            {"entityId": "jane.doe@example.com", "entityIdNS": {"code": "Email"}},
            {"entityId": "nobody@example.com", "entityIdNS": {"code": "Email"}},
        ],
        "mergePolicyId": DEFAULT_MERGE_POLICY_ID,
    }
    response = await client.post(ENTITIES, json=body, headers=headers)
    assert response.status_code == 200
    entries = response.json()
    assert entries[JANE.entity_id]["entity"] == {
        "person": {"name": {"firstName": "Jane", "lastName": "Doe"}}
    }
    unknown = entries[xid_for("Email", "nobody@example.com")]
    assert unknown["entity"] == {}
    assert unknown["lastModifiedAt"] == "1970-01-01T00:00:00Z"


async def test_post_batch_with_the_big_graph_is_a_207_with_the_failure(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {
        "schema": {"name": PROFILE},
        "identities": [{"entityId": "big.graph@example.com", "entityIdNS": {"code": "email"}}],
    }
    response = await client.post(ENTITIES, json=body, headers=headers)
    assert response.status_code == 207
    (failure,) = response.json()
    assert failure["error"]["message"] == "Too many related identities"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [(None, 400), ("text/plain", 415), ("application/x-www-form-urlencoded", 415)],
)
async def test_post_needs_a_json_content_type(
    client: httpx.AsyncClient,
    sim: AepSimulator,
    headers: dict[str, str],
    content_type: str | None,
    status: int,
) -> None:
    body = json.dumps(
        {
            "schema": {"name": PROFILE},
            "identities": [{"entityId": "CRM-000123", "entityIdNS": {"code": "crmid"}}],
        }
    ).encode()
    request = client.build_request("POST", ENTITIES, content=body, headers=headers)
    request.headers.pop("content-type", None)
    if content_type is not None:
        request.headers["content-type"] = content_type
    response = await client.send(request)
    assert response.status_code == status
    assert response.json()["status"] == status
    assert sim.stats["rejected"] == 1


# ------------------------------------------------------------------------------------------------
# Experience events


async def test_events_page_newest_first_and_follow_the_relative_next_href(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    url: str | None = ENTITIES
    params: dict[str, str] | None = event_query(
        "jane.doe@example.com", "email", orderby="-timestamp"
    )
    pages = []
    while url:
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        href = page["_links"]["next"]["href"]
        assert bool(href) == bool(page["_page"]["next"])
        # Documented: the href is relative to /data/core/ups/access and starts with /entities.
        url, params = ("/data/core/ups/access" + href, None) if href else (None, None)
    assert [p["_page"]["count"] for p in pages] == [1000, len(JANE.events) - 1000]
    stamps = [child["timestamp"] for p in pages for child in p["children"]]
    assert stamps == sorted(stamps, reverse=True)
    ids = [child["entityId"] for p in pages for child in p["children"]]
    assert sorted(ids) == sorted(e["_id"] for e in JANE.events)
    first = pages[0]["children"][0]
    assert first["relatedEntityId"] == JANE.entity_id
    assert first["entity"]["_id"] == first["entityId"]
    assert pages[0]["_page"]["orderby"] == "-timestamp"
    assert pages[1]["_page"]["start"] == pages[0]["_page"]["next"]
    assert sim.stats["events"] == 2


async def test_events_limit_order_and_time_window(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    oldest = sorted(JANE.events, key=lambda e: e["timestamp"])[:3]
    query = event_query("CRM-000123", "crmid", limit="2", orderBy="+timestamp", fields="eventType")
    page = (await client.get(ENTITIES, params=query, headers=headers)).json()
    assert [c["entityId"] for c in page["children"]] == [e["_id"] for e in oldest[:2]]
    assert page["children"][0]["entity"] == {"eventType": oldest[0]["eventType"]}
    assert page["_page"]["next"] == oldest[2]["_id"]
    # startTime is inclusive and endTime exclusive, both in milliseconds.
    window = event_query(
        "CRM-000123",
        "crmid",
        startTime=str(oldest[1]["timestamp"]),
        endTime=str(oldest[2]["timestamp"]),
    )
    page = (await client.get(ENTITIES, params=window, headers=headers)).json()
    assert [c["entityId"] for c in page["children"]] == [oldest[1]["_id"]]
    assert page["_links"]["next"]["href"] == ""
    assert page["_page"]["next"] == ""


async def test_events_property_filter(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    query = event_query("jane.doe@example.com", "email", property="eventType=commerce.purchases")
    page = (await client.get(ENTITIES, params=query, headers=headers)).json()
    expected = [e for e in JANE.events if e["eventType"] == "commerce.purchases"]
    assert page["_page"]["count"] == len(expected) > 0
    # Adobe allows at most three property filters.
    too_many = httpx.QueryParams(event_query("jane.doe@example.com", "email"))
    for value in ("eventType=a", "eventType=b", "eventType=c", "eventType=d"):
        too_many = too_many.add("property", value)
    assert (await client.get(ENTITIES, params=too_many, headers=headers)).status_code == 400


async def test_events_of_an_unknown_identity_are_a_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(
        ENTITIES, params=event_query("nobody@example.com", "email"), headers=headers
    )
    assert response.status_code == 404
    assert response.json()["statusCode"] == "404"


async def test_customer_without_events_gets_an_empty_last_page(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(
        ENTITIES, params=event_query("sparse@example.com", "email"), headers=headers
    )
    assert response.status_code == 200
    page = response.json()
    assert page["children"] == []
    assert page["_page"]["count"] == 0
    assert page["_links"]["next"]["href"] == ""


async def test_no_stitch_events_are_those_of_the_asked_identity(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    query = event_query("CRM-000123", "crmid", mergePolicyId=NO_STITCH_MERGE_POLICY_ID)
    page = (await client.get(ENTITIES, params=query, headers=headers)).json()
    types = {child["entity"]["eventType"] for child in page["children"]}
    assert types == {"commerce.purchases"}


async def test_post_events_pages_by_reposting_the_payload(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body: dict[str, Any] | None = {
        "schema": {"name": EVENTS},
        "relatedSchema": {"name": PROFILE},
        "identities": [{"relatedEntityId": JANE.entity_id}],
        "orderby": "-timestamp",
        "limit": 1000,
    }
    counts = []
    while body is not None:
        response = await client.post(ENTITIES, json=body, headers=headers)
        assert response.status_code == 200, response.text
        result = response.json()[JANE.entity_id]
        counts.append(result["_page"]["count"])
        body = result["_links"]["next"].get("payload")
    assert counts == [1000, len(JANE.events) - 1000]


# ------------------------------------------------------------------------------------------------
# Audiences, namespaces, identity


async def test_audience_list_pages_with_next_and_relative_href(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    seen: list[str] = []
    start: str | None = "0"
    while start is not None:
        page = (
            await client.get(AUDIENCES, params={"start": start, "limit": "5"}, headers=headers)
        ).json()
        seen += [audience["id"] for audience in page["children"]]
        start = page["_page"].get("next")
        if start is not None:
            assert page["_links"]["next"]["href"].startswith(f"@/audiences?start={start}&limit=5")
    assert sorted(seen) == sorted(a["id"] for a in load_dataset().audiences)
    assert len(seen) > 5


async def test_audience_property_filter_and_single_lookup(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    audience_id = next(iter(JANE.entity["segmentMembership"]["ups"]))
    page = (
        await client.get(
            AUDIENCES, params={"property": f"audienceId=={audience_id}"}, headers=headers
        )
    ).json()
    assert [a["id"] for a in page["children"]] == [audience_id]
    single = await client.get(f"{AUDIENCES}/{audience_id}", headers=headers)
    assert single.status_code == 200
    assert single.json()["name"] == page["children"][0]["name"]
    missing = await client.get(f"{AUDIENCES}/00000000-0000-4000-8000-000000000000", headers=headers)
    assert missing.status_code == 404
    error = missing.json()
    assert error["status"] == 404
    assert error["errors"]["404"][0]["code"] == 404


async def test_audience_bulk_get_answers_207(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    wanted = list(JANE.entity["segmentMembership"]["ups"])
    body = {"ids": [{"id": i} for i in [*wanted, "no-such-audience"]]}
    response = await client.post(f"{AUDIENCES}/bulk-get", json=body, headers=headers)
    assert response.status_code == 207
    result = response.json()
    # segmentation.yaml: every id is a key of `results`; an unknown one carries a 404 entry.
    assert set(result) == {"results"}
    assert set(result["results"]) == {*wanted, "no-such-audience"}
    missing = result["results"]["no-such-audience"]
    assert missing["errors"] == {"404": [{"code": 404, "message": "Not found."}]}
    assert missing["requestId"]


async def test_audience_bulk_get_answers_404_when_none_exist(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {"ids": [{"id": "missing-audience-1"}, {"id": "missing-audience-2"}]}
    response = await client.post(f"{AUDIENCES}/bulk-get", json=body, headers=headers)
    assert response.status_code == 404
    error = response.json()
    assert error["type"] == "https://ns.adobe.com/aep/errors/UPAPI-113000-404"
    assert error["errors"]["404"][0] == {
        "code": "UPAPI-113000-404",
        "message": "The entity missing-audience-1,missing-audience-2 is not found.",
    }


@pytest.mark.parametrize("count", [0, 101])
async def test_audience_bulk_get_answers_400_for_0_or_more_than_100_ids(
    client: httpx.AsyncClient, headers: dict[str, str], count: int
) -> None:
    body = {"ids": [{"id": f"a-{n}"} for n in range(count)]}
    response = await client.post(f"{AUDIENCES}/bulk-get", json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"]["400"][0]["code"] == "UPAPI-113015-400"


async def test_audience_list_start_is_an_offset(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    first = (await client.get(AUDIENCES, params={"limit": 3}, headers=headers)).json()
    second = (await client.get(AUDIENCES, params={"start": 1, "limit": 3}, headers=headers)).json()
    assert [a["id"] for a in second["children"]][:2] == [a["id"] for a in first["children"]][1:]
    assert first["_page"]["next"] == 3
    assert {a["type"] for a in load_dataset().audiences} == {"SegmentDefinition", "ExternalSegment"}


async def test_namespaces_list_includes_the_custom_ones(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/data/core/idnamespace/identities", headers=headers)
    assert response.status_code == 200
    by_code = {ns["code"]: ns for ns in response.json()}
    assert {"Email", "Phone", "ECID", "crmid", "loyaltyId"} <= set(by_code)
    assert by_code["crmid"]["custom"] is True and by_code["Email"]["id"] == 6


async def test_identity_graph_lists_the_linked_identities(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    xid = (
        await client.get(
            "/data/core/identity/identity",
            params={"namespace": "email", "id": "jane.doe@example.com"},
            headers=headers,
        )
    ).json()["xid"]
    assert xid == xid_for("email", "jane.doe@example.com")
    body = {
        "composite_xids": [{"ns": "Email", "id": "jane.doe@example.com"}],
        "projection_type": "set",
    }
    graph = (await client.post("/data/core/identity/v2/graph", json=body, headers=headers)).json()
    members = {(m["ns"], m["id"]) for m in graph["graphs"][0]["members"]}
    assert ("Phone", "+14155550123") in members and ("crmid", "CRM-000123") in members


async def test_unknown_path_is_a_404(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert (await client.get("/data/core/ups/nothing", headers=headers)).status_code == 404


# ------------------------------------------------------------------------------------------------
# Faults and latency


async def test_429_fault_has_the_documented_array_and_a_retry_after_header(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    sim.faults.add("429", endpoint="profile", retry_after_ms=1500)
    query = profile_query("jane.doe@example.com", "email")
    limited = await client.get(ENTITIES, params=query, headers=headers)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    (error,) = limited.json()
    assert error["retryAfterMs"] == "1500"
    assert error["statusCode"] == "429"
    assert (await client.get(ENTITIES, params=query, headers=headers)).status_code == 200


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
async def test_server_error_faults(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str], kind: str, status: int
) -> None:
    sim.faults.add(kind, count=2)  # type: ignore[arg-type]
    for _ in range(2):
        response = await client.get(AUDIENCES, headers=headers)
        assert response.status_code == status
        assert response.json()["statusCode"] == str(status)
    assert (await client.get(AUDIENCES, headers=headers)).status_code == 200


async def test_fault_for_one_endpoint_spares_the_others(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    sim.faults.add("500", endpoint="events")
    profile = await client.get(
        ENTITIES, params=profile_query("CRM-000123", "crmid"), headers=headers
    )
    assert profile.status_code == 200
    events = await client.get(ENTITIES, params=event_query("CRM-000123", "crmid"), headers=headers)
    assert events.status_code == 500
    assert sim.faults.pending == 0


async def test_token_fault(
    client: httpx.AsyncClient, sim: AepSimulator, token_form: dict[str, str]
) -> None:
    sim.faults.add("503", endpoint="token")
    assert (await client.post("/ims/token/v3", data=token_form)).status_code == 503
    assert (await client.post("/ims/token/v3", data=token_form)).status_code == 200


async def test_malformed_fault_is_a_200_with_truncated_json(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    sim.faults.add("malformed", endpoint="profile")
    response = await client.get(
        ENTITIES, params=profile_query("CRM-000123", "crmid"), headers=headers
    )
    assert response.status_code == 200
    assert response.content
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_drip_fault_delivers_the_correct_body(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    sim.faults.add("drip", endpoint="audiences")
    response = await client.get(f"{AUDIENCES}/{load_dataset().audiences[0]['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == load_dataset().audiences[0]


async def test_hang_fault_never_answers(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    sim.faults.add("hang", endpoint="profile")
    with pytest.raises((TimeoutError, httpx.TimeoutException)):
        async with asyncio.timeout(0.05):
            await client.get(ENTITIES, params=profile_query("CRM-000123", "crmid"), headers=headers)
    assert sim.stats["profile"] == 1


async def test_latency_applies_per_request_so_concurrent_requests_overlap(
    client: httpx.AsyncClient, sim: AepSimulator, headers: dict[str, str]
) -> None:
    sim.faults.latency_ms = 20
    await client.get(ENTITIES, params=profile_query("CRM-000123", "crmid"), headers=headers)
    await client.get(
        ENTITIES, params=event_query("CRM-000123", "crmid", limit="1"), headers=headers
    )
    assert sim.max_in_flight == 1
    profile, events = await asyncio.gather(
        client.get(ENTITIES, params=profile_query("CRM-000123", "crmid"), headers=headers),
        client.get(ENTITIES, params=event_query("CRM-000123", "crmid", limit="1"), headers=headers),
    )
    assert profile.status_code == events.status_code == 200
    assert sim.max_in_flight == 2


async def test_request_id_is_echoed(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get(AUDIENCES, headers=headers | {"x-request-id": "req-42"})
    assert response.headers["x-request-id"] == "req-42"
