"""Pure parsing of Adobe's answers: every documented error shape, profiles, events, audiences."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.aep import sansio
from bot.aep.errors import (
    AepUnavailable,
    AudiencesNotFound,
    CredentialsProblem,
    LookupRejected,
    MalformedResponse,
    Misconfigured,
    ProfileNotFound,
    RateLimited,
    TooManyIdentities,
    seconds_to_tell,
)
from bot.aep.models import ProfileIdentity


def _body(data: Any) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("body", "code", "message", "retry_after"),
    [
        pytest.param(
            {"error_code": "401013", "message": "Oauth token is not valid"},
            "401013",
            "Oauth token is not valid",
            None,
            id="gateway",
        ),
        pytest.param(
            {
                "message": "Unable to connect to server",
                "cause": "Status Code - 500 : Connection Timeout",
                "statusCode": "500",
            },
            None,
            "Unable to connect to server: Status Code - 500 : Connection Timeout",
            None,
            id="profile",
        ),
        pytest.param(
            [
                {
                    "message": "Too many requests",
                    "cause": '{"Errors":["Request rate is large"]}',
                    "retryAfterMs": "500",
                    "statusCode": "429",
                }
            ],
            None,
            'Too many requests: {"Errors":["Request rate is large"]}',
            0.5,
            id="429-array",
        ),
        pytest.param(
            {
                "type": "https://ns.adobe.com/aep/errors/UIS-4064-403",
                "title": "Insufficient permissions",
                "status": 403,
                "detail": "The user does not have the required permissions.",
                "report": {"tenantInfo": {}, "additionalContext": None},
            },
            "UIS-4064-403",
            "The user does not have the required permissions.",
            None,
            id="rfc7807",
        ),
        pytest.param(
            {
                "type": "http://ns.adobe.com/adobecloud/problem/namespacevalidation",
                "status": 401,
                "error": "INVALID_IMS_TOKEN",
                "title": "Namespace Validation",
                "report": {"message": "Token is invalid"},
            },
            "INVALID_IMS_TOKEN",
            "Token is invalid",
            None,
            id="rfc7807-report",
        ),
        pytest.param(
            {
                "requestId": "req-42",
                "errors": {"404": [{"code": 404, "message": "The audience entity is not found."}]},
                "type": "https://ns.adobe.com/aep/errors/UPAPI-113430-404",
                "title": "Not found",
                "status": 404,
            },
            "UPAPI-113430-404",
            "The audience entity is not found.",
            None,
            id="segmentation",
        ),
        pytest.param(
            {"message": "UPS-ACC-1000004: IMS Org is not provisioned.", "statusCode": "403"},
            "UPS-ACC-1000004",
            "UPS-ACC-1000004: IMS Org is not provisioned.",
            None,
            id="profile-403-code-in-message",
        ),
        pytest.param(
            {"error": "invalid_client", "error_description": "invalid client_secret parameter"},
            "invalid_client",
            "invalid client_secret parameter",
            None,
            id="ims",
        ),
    ],
)
def test_one_parser_reads_every_documented_error_shape(
    body: Any, code: str | None, message: str, retry_after: float | None
) -> None:
    parsed = sansio.parse_error_body(_body(body))
    assert parsed.code == code
    assert parsed.message == message
    assert parsed.retry_after == retry_after


def test_segmentation_error_keeps_its_request_id() -> None:
    parsed = sansio.parse_error_body(_body({"requestId": "req-42", "errors": {}}))
    assert parsed.request_id == "req-42"


@pytest.mark.parametrize("body", [b"", b"<html>Bad gateway</html>", b"[]", b'"text"', b"null"])
def test_unreadable_error_bodies_give_an_empty_reading(body: bytes) -> None:
    assert sansio.parse_error_body(body) == sansio.ErrorBody()


def _decipher(status: int, body: Any = None, **kwargs: Any) -> Any:
    raw = b"" if body is None else _body(body)
    return sansio.decipher_response(
        status, kwargs.pop("headers", {}), raw, endpoint=kwargs.pop("endpoint", "profile"), **kwargs
    )


def test_2xx_answers_decode_to_json() -> None:
    assert _decipher(200, {"a": 1}) == {"a": 1}
    assert _decipher(207, {"results": {}}) == {"results": {}}


def test_a_2xx_answer_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match="not JSON"):
        sansio.decipher_response(200, {}, b"<html>", endpoint="profile", request_id="r-1")


def test_404_means_no_profile_and_keeps_the_value_out_of_the_message() -> None:
    with pytest.raises(ProfileNotFound) as caught:
        _decipher(404, {"statusCode": "404"}, namespace="Email", request_id="r-1")
    assert "Email" in caught.value.message
    assert caught.value.status == 404
    assert caught.value.request_id == "r-1"


def test_too_many_related_identities_is_its_own_error() -> None:
    body = {"message": "Too many related identities", "statusCode": "422"}
    with pytest.raises(TooManyIdentities, match="more than 50 identities"):
        _decipher(422, body)


def test_a_missing_default_merge_policy_names_the_setting() -> None:
    body = {"message": "No default merge policy exists for schema", "statusCode": "422"}
    with pytest.raises(LookupRejected, match="AEP_MERGE_POLICY_ID"):
        _decipher(422, body)


def test_rejections_redact_identities_platform_echoes_back() -> None:
    body = {"message": "Bad entityId Jane.Doe@Example.com for namespace", "statusCode": "400"}
    with pytest.raises(LookupRejected) as caught:
        _decipher(400, body, redact=["jane.doe@example.com"])
    assert "jane.doe" not in caught.value.message.lower()
    assert "Bad entityId" in caught.value.message


def test_429_takes_retry_after_ms_from_the_body_before_the_header() -> None:
    body = [{"message": "Too many requests", "retryAfterMs": "1500", "statusCode": "429"}]
    with pytest.raises(RateLimited) as caught:
        _decipher(429, body, headers={"retry-after": "9"})
    assert caught.value.retry_after == 1.5
    assert "1.5 s" in caught.value.message


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "-3", "Infinity"])
def test_retry_after_headers_that_are_no_usable_wait_count_as_absent(value: str) -> None:
    assert sansio.retry_after_header({"retry-after": value}) is None


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400", b"NaN", b"Infinity", b'"inf"', b"-500"])
def test_429_with_a_retry_after_ms_that_is_no_usable_wait_says_in_a_moment(raw: bytes) -> None:
    body = b'[{"message": "Too many requests", "retryAfterMs": ' + raw + b', "statusCode": 429}]'
    with pytest.raises(RateLimited) as caught:
        sansio.decipher_response(
            429, {"retry-after": "nan"}, body, endpoint="profile", request_id="r-1"
        )
    assert caught.value.retry_after is None
    assert "in a moment" in caught.value.message


def test_429_falls_back_to_the_retry_after_header() -> None:
    with pytest.raises(RateLimited) as caught:
        _decipher(
            429, {"title": "RequestRateTooLarge", "status": 429}, headers={"retry-after": "2"}
        )
    assert caught.value.retry_after == 2.0


def test_403_explains_the_missing_permission_with_the_gateway_code() -> None:
    body = {"message": "UPS-ACC-1000004: IMS Org is not provisioned.", "statusCode": "403"}
    with pytest.raises(CredentialsProblem) as caught:
        _decipher(403, body)
    assert "UPS-ACC-1000004" in caught.value.message
    assert "read access" in caught.value.message


def test_403_on_events_explains_the_ultimate_entitlement() -> None:
    with pytest.raises(CredentialsProblem, match="Ultimate"):
        _decipher(403, {"statusCode": "403"}, endpoint="events")


def test_403_with_an_invalid_api_key_names_the_client_id_setting() -> None:
    with pytest.raises(CredentialsProblem, match="AEP_CLIENT_ID"):
        _decipher(403, {"error_code": "403003", "message": "Api Key is invalid"})


def test_5xx_is_unavailable() -> None:
    with pytest.raises(AepUnavailable, match=r"server error \(503\)"):
        _decipher(503)


def test_token_response_gives_token_and_lifetime() -> None:
    body = _body({"access_token": "tok", "token_type": "bearer", "expires_in": "86399"})
    assert sansio.parse_token_response(200, body) == ("tok", 86399.0)


@pytest.mark.parametrize(
    "body", [{}, {"access_token": "", "expires_in": 10}, {"access_token": "t", "expires_in": 0}]
)
def test_token_response_without_a_usable_token_is_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        sansio.parse_token_response(200, _body(body))


def test_ims_refusal_names_the_credential_settings() -> None:
    body = _body({"error": "invalid_client", "error_description": "invalid client_secret"})
    with pytest.raises(CredentialsProblem) as caught:
        sansio.parse_token_response(401, body)
    assert "AEP_CLIENT_ID" in caught.value.message
    assert "AEP_CLIENT_SECRET" in caught.value.message
    assert "invalid_client" in caught.value.message


def test_ims_scope_refusal_names_the_scopes_setting() -> None:
    body = _body({"error": "invalid_scope", "error_description": "invalid scope"})
    with pytest.raises(CredentialsProblem, match="AEP_SCOPES"):
        sansio.parse_token_response(400, body)


def test_ims_outage_is_unavailable() -> None:
    with pytest.raises(AepUnavailable, match="IMS"):
        sansio.parse_token_response(502, b"")


# --- profiles -----------------------------------------------------------------------------------


def test_profile_reads_both_identity_shapes_and_string_primary() -> None:
    body = {
        "XID-1": {
            "entityId": "XID-1",
            "sources": ["ds-1", ""],
            "entity": {
                "identities": [
                    {"id": "jane.doe@example.com", "namespace": {"code": "email"}},
                    {"id": "CRM-000123", "namespace": {"code": "crmid"}, "primary": "true"},
                ],
                "identityMap": {
                    "Email": [{"id": "jane.doe@example.com", "primary": True}],
                    "ECID": [{"id": "4123"}],
                },
            },
            "lastModifiedAt": "2026-03-14T09:26:53Z",
        }
    }
    profile = sansio.parse_profile(body)
    assert profile is not None
    assert profile.entity_id == "XID-1"
    assert profile.sources == ("ds-1",)
    assert profile.last_modified_at == datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert profile.identities == (
        ProfileIdentity(namespace="email", value="jane.doe@example.com", primary=True),
        ProfileIdentity(namespace="crmid", value="CRM-000123", primary=True),
        ProfileIdentity(namespace="ECID", value="4123", primary=False),
    )


@pytest.mark.parametrize(
    "entry",
    [
        {"entityId": "X", "sources": [""], "entity": {}, "lastModifiedAt": "2026-01-01T00:00:00Z"},
        {"entityId": "X", "entity": {"a": 1}, "lastModifiedAt": "1970-01-01T00:00:00Z"},
    ],
)
def test_an_empty_entity_or_epoch_timestamp_means_not_found(entry: dict[str, Any]) -> None:
    assert sansio.parse_profile({"X": entry}) is None


def test_an_empty_answer_means_not_found() -> None:
    assert sansio.parse_profile({}) is None


@pytest.mark.parametrize("body", [[], "x", {"X": []}, {"X": {"entity": []}}])
def test_profile_in_the_wrong_shape_is_malformed(body: Any) -> None:
    with pytest.raises(MalformedResponse):
        sansio.parse_profile(body)


# --- events -------------------------------------------------------------------------------------


def _event(n: int, ts: int) -> dict[str, Any]:
    return {
        "relatedEntityId": "XID-1",
        "entityId": f"evt-{n}",
        "timestamp": ts,
        "entity": {"eventType": "web.webpagedetails.pageViews"},
        "lastModifiedAt": "2026-01-20T09:00:05Z",
    }


def test_event_page_with_a_next_page() -> None:
    href = "/entities?start=evt-2&orderby=-timestamp&schema.name=_xdm.context.experienceevent"
    chunk = sansio.parse_event_page(
        {
            "_page": {"orderby": "-timestamp", "start": "evt-1", "count": 1, "next": "evt-2"},
            "children": [_event(1, 1768899600000)],
            "_links": {"next": {"href": href}},
        }
    )
    assert [e.event_id for e in chunk.events] == ["evt-1"]
    assert chunk.events[0].timestamp == datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
    assert chunk.next_href == href
    assert chunk.more


def test_last_event_page_has_empty_next() -> None:
    chunk = sansio.parse_event_page(
        {"_page": {"next": ""}, "children": [], "_links": {"next": {"href": ""}}}
    )
    assert chunk == sansio.EventChunk(events=(), next_href=None, more=False)


@pytest.mark.parametrize("body", [[], {"children": {}}, {"children": "e"}, {"children": None}])
def test_event_page_in_the_wrong_shape_is_malformed(body: Any) -> None:
    with pytest.raises(MalformedResponse):
        sansio.parse_event_page(body)


def test_unreadable_events_are_skipped_and_counted_not_fatal() -> None:
    chunk = sansio.parse_event_page(
        {
            "_page": {"next": ""},
            "children": [
                _event(1, 1768899600000),
                1,
                "evt-x",
                {"entityId": "no-timestamp", "entity": {}},
                {"timestamp": 1768899600000, "entity": {}},
                {"entityId": "bad-timestamp", "timestamp": "next tuesday"},
                _event(2, 1768899500000),
            ],
        }
    )
    assert [e.event_id for e in chunk.events] == ["evt-1", "evt-2"]
    assert chunk.events[1].timestamp == datetime(2026, 1, 20, 8, 58, 20, tzinfo=UTC)
    assert chunk.skipped == 5
    assert not chunk.more


@pytest.mark.parametrize(
    "href",
    [
        "/entities?start=x&limit=5",
        "/data/core/ups/access/entities?start=x&limit=5",
        "https://platform.test/data/core/ups/access/entities?start=x&limit=5",
    ],
)
def test_next_event_link_never_doubles_entities(href: str) -> None:
    url = sansio.events_next_url("https://platform.test/", href)
    assert url == "https://platform.test/data/core/ups/access/entities?start=x&limit=5"


def test_next_link_to_another_host_is_refused() -> None:
    # Following it would hand the bearer token to that host.
    with pytest.raises(MalformedResponse):
        sansio.events_next_url("https://platform.test", "https://evil.test/entities?start=x")


# --- audiences ----------------------------------------------------------------------------------


def _audience(audience_id: str, name: str) -> dict[str, Any]:
    return {
        "id": audience_id,
        "audienceId": audience_id,
        "name": name,
        "description": f"{name}, described",
        "lifecycleState": "published",
        "namespace": "AEPSegments",
    }


def test_audience_page_says_whether_more_follow_and_how_many_it_held() -> None:
    # Adobe's example (segmentation.yaml AudiencesList): start=0, next=1, a page of five.
    chunk = sansio.parse_audience_page(
        {
            "children": [_audience("a-1", "Gold"), {"id": "a-2"}],
            "_page": {"totalCount": 111, "start": 0, "next": 1, "limit": 5},
            "_links": {"next": {"href": "@/audiences?start=1&limit=5&totalCount=111"}},
        },
        start=0,
    )
    assert [(a.id, a.name, a.lifecycle_state) for a in chunk.audiences] == [
        ("a-1", "Gold", "published")
    ]
    assert (chunk.count, chunk.more) == (2, True)
    last = sansio.parse_audience_page(
        {"children": [_audience("a-3", "Last")], "_page": {"totalCount": 111, "next": 1}},
        start=110,
    )
    assert (last.count, last.more) == (1, False)


#: segmentation.yaml, /audiences/bulk-get, 207 example "One audience was not found" (verbatim
#: but for the sandbox block).
ONE_AUDIENCE_NOT_FOUND: dict[str, Any] = {
    "results": {
        "QU9fLTEzOTgzNTE0MzY0NzY0NDg5NzkyOTkx_6ed34f6f-fe21-4a30-934f-6ffe21fa3075": {
            "id": "QU9fLTEzOTgzNTE0MzY0NzY0NDg5NzkyOTkx_6ed34f6f-fe21-4a30-934f-6ffe21fa3075",
            "name": "External Audience",
            "namespace": "AO",
            "imsOrgId": "{ORG_ID}",
            "type": "ExternalSegment",
            "lifecycleStatus": "published",
            "sourceId": "source-id",
            "createdBy": "{USER_ID}",
            "datasetId": "62bf31a105e9891b63525c92",
            "creationTime": 1656697249000,
            "createEpoch": 1656697249,
            "updateTime": 1656697249000,
            "updateEpoch": 1656697249,
            "audienceId": "test-audience-id",
            "isSystem": False,
            "saveSegmentMembership": True,
            "linkedAudienceRef": {"aoWorkflowId": "62bf31858e87e34c8364befa"},
            "originName": "AUDIENCE_ORCHESTRATION",
        },
        "missing-audience": {
            "requestId": "BNcYkjG1BCnhQ51uToeSdY5D5fQOKcSe",
            "errors": {"404": [{"code": 404, "message": "Not found."}]},
        },
    }
}

#: The same operation's 404 example, "All audiences were not found".
ALL_AUDIENCES_NOT_FOUND: dict[str, Any] = {
    "requestId": "Vrxt59wqKLr5OlpnclFc2kMGAVwZQIT2",
    "errors": {
        "404": [
            {
                "code": "UPAPI-113000-404",
                "message": "The entity missing-audience-1,missing-audience-2 is not found.",
            }
        ]
    },
    "type": "https://ns.adobe.com/aep/errors/UPAPI-113000-404",
    "title": "The entity missing-audience-1,missing-audience-2 is not found.",
    "status": 404,
}


def test_adobes_bulk_get_example_with_a_missing_id_reads_it_as_unknown() -> None:
    bulk = sansio.parse_audience_bulk(ONE_AUDIENCE_NOT_FOUND)
    external = "QU9fLTEzOTgzNTE0MzY0NzY0NDg5NzkyOTkx_6ed34f6f-fe21-4a30-934f-6ffe21fa3075"
    assert list(bulk.found) == [external]
    assert bulk.found[external].name == "External Audience"
    assert bulk.found[external].type == "ExternalSegment"
    assert bulk.unknown == {"missing-audience"}
    assert bulk.failed == {}


def test_adobes_bulk_get_404_for_none_is_its_own_error() -> None:
    with pytest.raises(AudiencesNotFound) as caught:
        sansio.decipher_response(
            404, {}, _body(ALL_AUDIENCES_NOT_FOUND), endpoint="audiences", request_id="r-1"
        )
    assert caught.value.status == 404


def test_adobes_bulk_get_400_for_too_many_ids_is_a_rejection() -> None:
    body = {
        "requestId": "6qtdW3er5YruNle8CfFa050FlIuKsEZb",
        "errors": {
            "400": [
                {
                    "code": "UPAPI-113015-400",
                    "message": "The number of requested IDs is invalid. Cannot be 0 or exceed 100.",
                }
            ]
        },
        "type": "https://ns.adobe.com/aep/errors/UPAPI-113015-400",
        "title": "The number of requested IDs is invalid. Cannot be 0 or exceed 100.",
        "status": 400,
    }
    with pytest.raises(LookupRejected, match="UPAPI-113015-400"):
        sansio.decipher_response(400, {}, _body(body), endpoint="audiences")


def test_bulk_entries_with_other_errors_are_failed_not_unknown() -> None:
    bulk = sansio.parse_audience_bulk(
        {
            "results": {
                "a-1": _audience("a-1", "Gold"),
                "a-typed": {"errors": {"404": [{"code": "UPAPI-113430-404"}]}},
                "a-busy": {"errors": {"503": [{"code": 503, "message": "Service unavailable"}]}},
                "a-odd": {"message": "something went wrong"},
            },
        }
    )
    assert list(bulk.found) == ["a-1"]
    assert bulk.unknown == {"a-typed"}
    assert bulk.failed == {"a-busy": 503, "a-odd": None}


#: profile.yaml `NotFoundError` (the Profile service's 404) and the gateway's own 404 body
#: (experience-platform troubleshooting: `error_code` + `message`).
PROFILE_404 = {"statusCode": "404"}
GATEWAY_404 = {"error_code": "404050", "message": "Resource not found"}


def test_a_profile_service_404_means_no_such_customer() -> None:
    for endpoint in ("profile", "events"):
        with pytest.raises(ProfileNotFound):
            _decipher(404, PROFILE_404, namespace="Email", endpoint=endpoint)


@pytest.mark.parametrize(
    "endpoint", ["profile", "events", "audiences", "merge_policies", "namespaces"]
)
def test_a_gateway_404_is_a_configuration_problem_that_names_what_to_check(endpoint: str) -> None:
    with pytest.raises(Misconfigured) as caught:
        _decipher(404, GATEWAY_404, namespace="Email", endpoint=endpoint)
    assert not isinstance(caught.value, ProfileNotFound)
    assert "AEP_API_URL" in caught.value.message and "AEP_SANDBOX" in caught.value.message


def test_adobes_merge_policy_list_gives_the_default_profile_policy() -> None:
    policies = sansio.parse_merge_policies(
        {
            "_page": {"totalCount": 1, "pageSize": 1},
            "children": [
                {
                    "id": "10648288-cda5-11e8-a8d5-f2801f1b9fd1",
                    "name": "profile-default",
                    "imsOrgId": "{ORG_ID}",
                    "schema": {"name": "_xdm.context.profile"},
                    "version": 1,
                    "identityGraph": {"type": "none"},
                    "attributeMerge": {"type": "timestampOrdered"},
                    "default": True,
                    "updateEpoch": 1551127597,
                },
                {"name": "no id, left out"},
            ],
            "_links": {"next": {"href": ""}},
        }
    )
    assert [(p.id, p.name, p.schema_name, p.default) for p in policies] == [
        ("10648288-cda5-11e8-a8d5-f2801f1b9fd1", "profile-default", "_xdm.context.profile", True)
    ]


def test_audience_bulk_in_the_wrong_shape_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        sansio.parse_audience_bulk({"nothing": 1})


@pytest.mark.parametrize(
    ("wait", "told"),
    [(0.0, 1), (0.2, 1), (1.4, 1), (1.6, 2), (30.0, 30), (-1.0, None), (None, None)],
)
def test_a_wait_is_told_in_whole_seconds_never_as_zero(
    wait: float | None, told: int | None
) -> None:
    assert seconds_to_tell(wait) == told


def test_a_rate_limit_keeps_its_status_and_request_id() -> None:
    assert (RateLimited("busy").status, RateLimited("busy").request_id) == (429, None)
    error = RateLimited("busy", retry_after=3.0, status=503, request_id="r-9")
    assert (error.status, error.request_id, error.retry_after) == (503, "r-9", 3.0)


def test_the_namespace_list_gives_names_by_lower_case_code() -> None:
    names = sansio.parse_namespaces(
        [
            {"id": 6, "code": "Email", "name": "Email", "custom": False},
            {"id": 2816734, "code": "crmid", "name": "CRM  ID", "custom": True},
            {"id": 9, "code": "acmeMember", "name": "Acme member number"},
            {"id": 10, "code": "noname"},
            {"id": 11, "name": "No code"},
            "not a namespace",
        ]
    )
    assert names == {"email": "Email", "crmid": "CRM ID", "acmemember": "Acme member number"}


def test_a_namespace_list_that_is_no_list_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        sansio.parse_namespaces({"children": []})
