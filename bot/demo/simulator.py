"""The AEP simulator: answers IMS, Profile, Segmentation and Identity calls as Adobe documents them.

Shapes follow ../shared/reference/aep-profile-api.md; where Adobe documents no shape the simulator
picks a plausible one and the code marks it [U].
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import operator
import re
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from bot.demo.dataset import (
    COMPUTED_ATTRIBUTES,
    DATASET_BY_NAMESPACE,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_ORG_ID,
    DEMO_SANDBOX,
    EPOCH_RFC3339,
    NAMESPACES,
    TENANT,
    DemoCustomer,
    DemoDataset,
    load_dataset,
    merge_policies,
    rfc3339,
    xid_for,
)

FaultKind = Literal["429", "500", "hang", "malformed", "drip", "503", "deep", "flood"]
FaultEndpoint = Literal["any", "token", "profile", "events", "audiences", "namespaces"]
#: Real-Time CDP editions the sandbox can play. Adobe's entities guide: only Ultimate
#: organisations (that Adobe has enabled) may look experience events up through the API.
Edition = Literal["ultimate", "prime"]
EDITIONS: tuple[Edition, ...] = get_args(Edition)

IMS_TOKEN_PATH = "/ims/token/v3"  # noqa: S105 - a URL path, not a password
ENTITIES_PATH = "/data/core/ups/access/entities"
AUDIENCES_PATH = "/data/core/ups/audiences"
MERGE_POLICIES_PATH = "/data/core/ups/config/mergePolicies"
NAMESPACES_PATH = "/data/core/idnamespace/identities"
XID_PATH = "/data/core/identity/identity"
GRAPH_PATH = "/data/core/identity/v2/graph"

PROFILE_SCHEMA = "_xdm.context.profile"
EVENT_SCHEMA = "_xdm.context.experienceevent"
_ENTITY_SCHEMAS = {PROFILE_SCHEMA, "_xdm.context.account", "_xdm.context.opportunity"}
MAX_GRAPH_IDENTITIES = 50
DEFAULT_EVENT_LIMIT = 1000
DEFAULT_AUDIENCE_LIMIT = 20  # [U] the segmentation docs give no default page size
MAX_BULK_GET_IDS = 100  # segmentation.yaml: "Cannot be 0 or exceed 100"
MAX_PROPERTY_FILTERS = 3
#: A 'deep' fault answers 200 with JSON nested this deep (past Python's recursion limit).
DEEP_NESTING = 100_000
#: A 'flood' fault streams this many body bytes by default: far past any sane answer.
FLOOD_BYTES = 1024 * 1024 * 1024
#: The pieces a flood is written in.
FLOOD_CHUNK = 64 * 1024
_JSON = "application/json;charset=utf-8"


@dataclass
class SimResponse:
    """One answer. `drip`: write the body byte by byte, slowly; `hang`: never answer at all;
    `flood`: after `body`, stream this many more bytes (no Content-Length) while the client
    reads, counting them in the simulator's `flood_sent`."""

    status: int
    headers: dict[str, str]
    body: bytes
    drip: bool = False
    hang: bool = False
    flood: int = 0

    def json(self) -> Any:
        """The body parsed as JSON (for tests and the admin endpoints)."""
        return json.loads(self.body)


@dataclass
class _Fault:
    kind: FaultKind
    endpoint: FaultEndpoint
    remaining: int
    retry_after_ms: int
    flood_bytes: int = FLOOD_BYTES


class Faults:
    """Mutable fault settings: `latency_ms` before every Platform and IMS answer (or, for an
    endpoint named in `endpoint_latency_ms`, that endpoint's own), and a queue of one-shot
    faults that the next matching requests suffer, oldest first."""

    def __init__(
        self, latency_ms: float = 0, endpoint_latency_ms: dict[str, float] | None = None
    ) -> None:
        self.latency_ms = latency_ms
        self.endpoint_latency_ms: dict[str, float] = {}
        for endpoint, ms in (endpoint_latency_ms or {}).items():
            self.set_latency(endpoint, ms)
        self._queue: list[_Fault] = []

    def set_latency(self, endpoint: str, ms: float) -> None:
        """Delay every answer of one endpoint by `ms` (instead of `latency_ms`)."""
        if endpoint not in get_args(FaultEndpoint) or endpoint == "any":
            raise ValueError(f"unknown endpoint {endpoint!r}; use one of {get_args(FaultEndpoint)}")
        if ms < 0:
            raise ValueError("a latency must not be negative")
        self.endpoint_latency_ms[endpoint] = ms

    def latency_for(self, endpoint: str) -> float:
        """Milliseconds to wait before answering a request to `endpoint`."""
        return self.endpoint_latency_ms.get(endpoint, self.latency_ms)

    def add(
        self,
        kind: FaultKind,
        *,
        endpoint: FaultEndpoint = "any",
        count: int = 1,
        retry_after_ms: int = 500,
        flood_bytes: int = FLOOD_BYTES,
    ) -> None:
        """Queue a fault for the next `count` requests to `endpoint` (or to any endpoint).

        Kinds: '429' (with `retry_after_ms`), '500', '503', 'hang' (never answers), 'malformed'
        (half the real body), 'drip' (the real body, slowly), 'deep' (200 with JSON nested
        DEEP_NESTING levels), 'flood' (200 with a body of `flood_bytes`, streamed).
        """
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}; use one of {get_args(FaultKind)}")
        if endpoint not in get_args(FaultEndpoint):
            raise ValueError(f"unknown endpoint {endpoint!r}; use one of {get_args(FaultEndpoint)}")
        if count < 1 or retry_after_ms < 0 or flood_bytes < 0:
            raise ValueError("count must be at least 1; retry_after_ms, flood_bytes not negative")
        self._queue.append(_Fault(kind, endpoint, count, retry_after_ms, flood_bytes))

    def take(self, endpoint: str) -> _Fault | None:
        """Consume one fault for a request to `endpoint`, if one is queued for it."""
        for fault in self._queue:
            if fault.endpoint in ("any", endpoint):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._queue.remove(fault)
                return fault
        return None

    def extend(self, other: Faults) -> None:
        """Queue every fault still pending in `other` behind this queue's own."""
        self._queue.extend(
            _Fault(f.kind, f.endpoint, f.remaining, f.retry_after_ms, f.flood_bytes)
            for f in other._queue
        )

    @property
    def pending(self) -> int:
        """How many faulty answers are still queued."""
        return sum(fault.remaining for fault in self._queue)

    def clear(self) -> None:
        """Drop every queued fault and the latencies."""
        self.latency_ms = 0
        self.endpoint_latency_ms.clear()
        self._queue.clear()


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def param(self, *names: str) -> str | None:
        """The first value of the first of `names` present (spellings drift across Adobe docs)."""
        for name in names:
            for key, value in self.query:
                if key == name:
                    return value
        return None

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]


class _Problem(Exception):
    """Raised inside a handler to answer with an error response."""

    def __init__(self, response: SimResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _json(status: int, payload: Any, *, content_type: str = _JSON) -> SimResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return SimResponse(status, {"content-type": content_type}, body)


def _gateway_error(status: int, code: str, message: str) -> SimResponse:
    # Section 1.5: the gateway's own body shape. Statuses per code are [U] (see the reference).
    return _json(status, {"error_code": code, "message": message})


def _profile_error(status: int, message: str, cause: str | None = None) -> _Problem:
    payload: dict[str, Any] = {"message": message}
    if cause is not None:
        payload["cause"] = cause
    payload["statusCode"] = str(status)
    return _Problem(_json(status, payload))


def _events_not_entitled() -> _Problem:
    # Adobe's entities guide: Prime organisations cannot look experience events up through the
    # API, and Ultimate ones need Adobe to enable it. [U] The status and body of that refusal
    # are not documented; this is the Profile ForbiddenError of reference 2.6 (403, code
    # UPS-ACC-...), the documented answer for an organisation lacking a permission.
    return _profile_error(
        403,
        "UPS-ACC-1000005: Experience event lookup is not enabled for this IMS Org.",
        "Real-Time CDP Ultimate with event lookup enabled is required",
    )


def _not_found() -> _Problem:
    # [U] The documented NotFoundError only has statusCode; the message is the simulator's.
    return _profile_error(404, "No profile found for the requested identity")


def _too_many_identities(customer: DemoCustomer) -> dict[str, str]:
    return {
        "message": "Too many related identities",
        "cause": (
            f"The identity graph of this profile links {len(customer.identities)} identities, "
            f"more than the limit of {MAX_GRAPH_IDENTITIES}. Narrow the query."
        ),
        "statusCode": "422",
    }


def _segmentation_error(
    status: int, message: str, code: str, *, entry_code: int | str | None = None
) -> _Problem:
    """Segmentation's error body; `entry_code` is the `code` of the entry under `errors`
    (the status, or for bulk-get the whole code, as Adobe's examples write it)."""
    return _Problem(
        _json(
            status,
            {
                "requestId": str(uuid.uuid4()),
                "errors": {
                    str(status): [
                        {"code": status if entry_code is None else entry_code, "message": message}
                    ]
                },
                "type": f"https://ns.adobe.com/aep/errors/{code}",
                "title": message.split(".")[0],
                "status": status,
            },
        )
    )


def _identity_error(status: int, title: str, detail: str) -> _Problem:
    return _Problem(_json(status, {"title": title, "status": status, "detail": detail}))


def _fields(raw: str | Sequence[Any] | None) -> list[str] | None:
    """Parse `fields`: comma-separated (GET) or a list (POST), paths relative to the entity."""
    if not raw:
        return None  # absent or empty: every field
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    if not all(isinstance(item, str) for item in items) or any(" " in item for item in items):
        raise _profile_error(
            400,
            "Invalid value for parameter fields",
            "fields is a comma-separated list of field paths without spaces",
        )
    return [item for item in items if item]


def select_fields(entity: Mapping[str, Any], paths: Sequence[str] | None) -> dict[str, Any]:
    """A copy of `entity` with only the dotted `paths` (through arrays too); all when None."""
    if paths is None:
        return dict(entity)
    result: dict[str, Any] = {}
    taken: list[str] = []
    for path in sorted(set(paths), key=len):
        # A shorter path already copied the whole subtree: copying into it would alias the data.
        if any(path == done or path.startswith(done + ".") for done in taken):
            continue
        taken.append(path)
        _copy_path(entity, result, path.split("."))
    return result


def _copy_path(source: Any, target: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if not isinstance(source, Mapping) or head not in source:
        return
    value = source[head]
    if not rest:
        target[head] = value
    elif isinstance(value, list):
        items = target.setdefault(head, [{} for _ in value])
        for source_item, target_item in zip(value, items, strict=True):
            _copy_path(source_item, target_item, rest)
    elif isinstance(value, Mapping):
        inner = target.setdefault(head, {})
        _copy_path(value, inner, rest)
        if not inner:
            del target[head]


def _int_param(raw: str | int | None, name: str, default: int, *, minimum: int = 0) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _profile_error(
            400, f"Invalid value for parameter {name}", f"{name} must be an integer"
        ) from None
    if value < minimum:
        raise _profile_error(
            400, f"Invalid value for parameter {name}", f"{name} must be >= {minimum}"
        )
    return value


def _descending(raw: str | None) -> bool:
    """`-timestamp` newest first; `+timestamp` / `timestamp` (the default) oldest first."""
    # An unencoded `+` arrives as a space; read it as the ascending order it meant.
    order = (raw or "+timestamp").strip()
    if order not in ("-timestamp", "+timestamp", "timestamp"):
        raise _profile_error(
            400, "Invalid value for parameter orderby", "use -timestamp or +timestamp"
        )
    return order == "-timestamp"


_PROPERTY = re.compile(r"^([A-Za-z0-9_.@:]+)(!=|<=|>=|=|<|>)(.*)$")


def _property_filters(raw: Sequence[str]) -> list[Callable[[Mapping[str, Any]], bool]]:
    """Parse the event-only `property` filters (`field{op}value`, at most three)."""
    if len(raw) > MAX_PROPERTY_FILTERS:
        raise _profile_error(400, "Too many property filters", "at most 3 property filters")
    filters = []
    for text in raw:
        match = _PROPERTY.match(text)
        if match is None:
            raise _profile_error(400, "Invalid value for parameter property", "use field{op}value")
        filters.append(_property_filter(match[1], match[2], match[3].strip('"')))
    return filters


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _property_filter(path: str, op: str, wanted: str) -> Callable[[Mapping[str, Any]], bool]:
    compare = _OPERATORS[op]

    def check(event: Mapping[str, Any]) -> bool:
        value: Any = event
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return False
        target: Any = wanted
        if isinstance(value, bool):
            target = wanted.lower() == "true"
        elif isinstance(value, int | float):
            try:
                target = float(wanted)
            except ValueError:
                return False
        return compare(value, target)

    return check


def _event_identities(event: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (code.lower(), item.get("id"))
        for code, items in event.get("identityMap", {}).items()
        for item in items
    }


@dataclass(frozen=True)
class _EventQuery:
    """One event lookup, parsed from GET parameters or a POST body."""

    policy: Mapping[str, Any]
    fields: list[str] | None
    start_time: int | None
    end_time: int | None
    limit: int
    descending: bool
    filters: list[Callable[[Mapping[str, Any]], bool]] = field(default_factory=list)


@dataclass(frozen=True)
class _Resolved:
    customer: DemoCustomer
    namespace: str
    value: str


_Handler = Callable[[_Request], SimResponse]


class AepSimulator:
    """Answers the documented AEP calls from a demo dataset, with injectable latency and faults.

    `stats` counts requests per endpoint kind ("token", "profile", "events", "audiences",
    "namespaces", "identity", "merge_policies", "unknown") plus "rejected" for header/auth
    failures; `max_in_flight` is the most requests ever handled at the same time.
    """

    def __init__(
        self,
        dataset: DemoDataset | None = None,
        *,
        faults: Faults | None = None,
        token_ttl: int = 86399,
        edition: Edition = "ultimate",
    ) -> None:
        """`edition` "prime" refuses experience-event lookups as for an organisation that is not
        entitled to them; "ultimate" answers them."""
        if edition not in EDITIONS:
            raise ValueError(f"unknown edition {edition!r}; use one of {EDITIONS}")
        self.edition = edition
        self.dataset = dataset if dataset is not None else load_dataset()
        self.faults = faults if faults is not None else Faults()
        self.token_ttl = token_ttl
        self.stats: collections.Counter[str] = collections.Counter()
        #: (endpoint kind, x-request-id) of the latest requests, oldest first: what a support
        #: case at Adobe would be looked up by.
        self.request_ids: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)
        self.in_flight = 0
        self.max_in_flight = 0
        # Body bytes of 'flood' faults handed to clients so far (by the server or transport).
        self.flood_sent = 0
        self._tokens: dict[str, float] = {}
        self._policies = {policy["id"]: policy for policy in merge_policies()}

    def reset(self) -> None:
        """Clear stats, the in-flight high-water mark, latency and queued faults (not tokens)."""
        self.stats.clear()
        self.max_in_flight = self.in_flight
        self.flood_sent = 0
        self.faults.clear()

    def drop_default_merge_policy(self) -> None:
        """Make the sandbox one with no default profile merge policy (a misconfigured sandbox:
        a lookup naming no policy is then refused with 422, as the entities guide says)."""
        self._policies = {key: p | {"default": False} for key, p in self._policies.items()}

    def revoke_tokens(self) -> None:
        """Forget every issued token, so the next Platform call gets 401 (tests token refresh)."""
        self._tokens.clear()

    async def handle(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> SimResponse:
        """Answer one HTTP request; applies the latency (asyncio.sleep) and queued faults."""
        request = _Request(
            method=method.upper(),
            path=path.rstrip("/") or "/",
            query=list(query),
            headers={name.lower(): value for name, value in headers.items()},
            body=body,
        )
        kind, handler = self._route(request)
        self.stats[kind] += 1
        self.request_ids.append((kind, request.headers.get("x-request-id", "")))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            latency = self.faults.latency_for(kind)
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            response = self._answer(request, kind, handler)
        finally:
            self.in_flight -= 1
        response.headers["x-request-id"] = request.headers.get("x-request-id") or str(uuid.uuid4())
        return response

    def _answer(self, request: _Request, kind: str, handler: _Handler) -> SimResponse:
        fault = self.faults.take(kind)
        if fault is not None and fault.kind in ("429", "500", "503", "hang", "deep", "flood"):
            return _fault_response(fault)
        try:
            if kind not in ("token", "unknown"):
                self._check_gateway(request)
            if kind == "events" and self.edition == "prime":
                raise _events_not_entitled()
            response = handler(request)
        except _Problem as problem:
            response = problem.response
        if fault is not None and fault.kind == "malformed":
            # Cut the real answer in half: a 200 whose body is not valid JSON.
            return SimResponse(200, response.headers, response.body[: len(response.body) // 2])
        if fault is not None and fault.kind == "drip":
            response.drip = True
        return response

    # ---------------------------------------------------------------------------------------
    # Routing and the gateway

    def _route(self, request: _Request) -> tuple[str, _Handler]:
        path, method = request.path, request.method
        routes: dict[tuple[str, str], tuple[str, _Handler]] = {
            ("POST", IMS_TOKEN_PATH): ("token", self._token),
            ("GET", NAMESPACES_PATH): ("namespaces", self._namespaces),
            ("GET", XID_PATH): ("identity", self._xid),
            ("POST", GRAPH_PATH): ("identity", self._graph),
            ("GET", AUDIENCES_PATH): ("audiences", self._audience_list),
            ("POST", AUDIENCES_PATH + "/bulk-get"): ("audiences", self._audience_bulk_get),
            ("GET", MERGE_POLICIES_PATH): ("merge_policies", self._merge_policy_list),
        }
        if (method, path) in routes:
            return routes[(method, path)]
        if path == ENTITIES_PATH and method == "GET":
            if request.param("schema.name") == EVENT_SCHEMA:
                return "events", self._events_get
            return "profile", self._profile_get
        if path == ENTITIES_PATH and method == "POST":
            if _body_schema(request.body) == EVENT_SCHEMA:
                return "events", self._events_post
            return "profile", self._profile_post
        if method == "GET" and path.startswith(AUDIENCES_PATH + "/"):
            return "audiences", self._audience_get
        if method == "GET" and path.startswith(MERGE_POLICIES_PATH + "/"):
            return "merge_policies", self._merge_policy_get
        if method == "GET" and path.startswith(NAMESPACES_PATH + "/"):
            return "namespaces", self._namespace_get
        return "unknown", _unknown_route

    def _check_gateway(self, request: _Request) -> None:
        """The four headers of section 1.5, then Content-Type on requests with a body."""
        rejection = self._gateway_rejection(request)
        if rejection is not None:
            self.stats["rejected"] += 1
            raise _Problem(rejection)

    def _gateway_rejection(self, request: _Request) -> SimResponse | None:
        headers = request.headers
        authorization = headers.get("authorization", "").strip()
        if not authorization:
            return _gateway_error(403, "403010", "Oauth token is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self._token_valid(token.strip()):
            return _gateway_error(401, "401013", "Oauth token is not valid")
        api_key = headers.get("x-api-key")
        if not api_key:
            return _gateway_error(403, "403000", "Api Key is required")
        if api_key != DEMO_CLIENT_ID:
            return _gateway_error(403, "403003", "Api Key is invalid")
        org = headers.get("x-gw-ims-org-id")
        if not org:
            return _gateway_error(400, "400003", "Missing header")
        if org != DEMO_ORG_ID:
            return _gateway_error(403, "403025", "Profile is not valid")
        sandbox = headers.get("x-sandbox-name")
        if sandbox != DEMO_SANDBOX:
            # [U] Wording is the simulator's; the shape is the Profile ForbiddenError of 2.6.
            if not sandbox:
                message = "Missing header x-sandbox-name: send the sandbox name, e.g. prod"
            else:
                message = (
                    "Sandbox is not accessible for this organization: sandbox names are "
                    f"lower-case; this organization has {DEMO_SANDBOX!r}"
                )
            return _json(403, {"message": message, "statusCode": "403"})
        if request.method in ("POST", "PUT", "PATCH"):
            content_type = headers.get("content-type", "").strip()
            if not content_type:
                return _json(
                    400,
                    {
                        "type": "/placeholder/type/uri",
                        "status": 400,
                        "title": "BadRequestError",
                        "detail": "A valid content-type must be specified",
                    },
                )
            if content_type.split(";")[0].strip().lower() != "application/json":
                return _json(
                    415,
                    {
                        "status": 415,
                        "title": "HTTP 415 Unsupported Media Type",
                        "type": "http://ns.adobe.com/adobecloud/problem/unsupported-media-type",
                    },
                )
        return None

    def _token_valid(self, token: str) -> bool:
        expires = self._tokens.get(token)
        return expires is not None and time.monotonic() < expires

    # ---------------------------------------------------------------------------------------
    # IMS

    def _token(self, request: _Request) -> SimResponse:
        form = dict(request.query)  # IMS also takes the fields as query parameters
        content_type = request.headers.get("content-type", "")
        if request.body and "application/x-www-form-urlencoded" in content_type:
            form.update(urllib.parse.parse_qsl(request.body.decode(), keep_blank_values=True))
        missing = [
            name
            for name in ("grant_type", "client_id", "client_secret", "scope")
            if not form.get(name)
        ]
        # [U] IMS-style error bodies: {"error", "error_description"}.
        if missing:
            self.stats["rejected"] += 1
            return _json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": f"missing required parameter(s): {', '.join(missing)}",
                },
            )
        if form["grant_type"] != "client_credentials":
            self.stats["rejected"] += 1
            return _json(
                400,
                {"error": "unsupported_grant_type", "error_description": "unsupported grant_type"},
            )
        if form["client_id"] != DEMO_CLIENT_ID or form["client_secret"] != DEMO_CLIENT_SECRET:
            self.stats["rejected"] += 1
            which = "client_id" if form["client_id"] != DEMO_CLIENT_ID else "client_secret"
            return _json(
                401, {"error": "invalid_client", "error_description": f"invalid {which} parameter"}
            )
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = "demo-" + secrets.token_urlsafe(32)
        self._tokens[token] = now + self.token_ttl
        return _json(
            200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl}
        )

    # ---------------------------------------------------------------------------------------
    # Profile: entities

    def _policy(self, policy_id: str | None) -> Mapping[str, Any]:
        if policy_id is None or policy_id == "":
            default = next((p for p in self._policies.values() if p["default"]), None)
            if default is None:
                # The current entities guide: no default policy and none passed is a 422.
                raise _profile_error(
                    422,
                    "No default merge policy exists for schema _xdm.context.profile",
                    "Pass mergePolicyId, or mark a merge policy as the default",
                )
            return default
        policy = self._policies.get(policy_id)
        if policy is None:
            # [U] message wording; the shape is the Profile ResponseErrorContext.
            raise _profile_error(
                422,
                "Merge policy not found",
                f"No merge policy with id {policy_id} exists in sandbox {DEMO_SANDBOX}",
            )
        return policy

    def _resolve(self, entity_id: str, namespace: str | None) -> _Resolved | None:
        """The customer behind an identity (namespace + value) or an XID (no namespace)."""
        if not namespace:
            found = self.dataset.find_xid(entity_id)
            return _Resolved(*found) if found is not None else None
        customer = self.dataset.find(namespace, entity_id)
        if customer is None:
            return None
        value = (
            entity_id if customer.fragment(namespace, entity_id) is not None else entity_id.lower()
        )
        return _Resolved(customer, namespace, value)

    def _entry(
        self,
        resolved: _Resolved,
        policy: Mapping[str, Any],
        fields: list[str] | None,
        with_ca: bool = False,
    ) -> dict[str, Any] | None:
        """The `{entityId, sources, entity, lastModifiedAt}` of a profile under a merge policy;
        its computed attributes only `with_ca` (the entities guide's `withCA` flag, honoured)."""
        customer = resolved.customer
        if policy["identityGraph"]["type"] == "none":
            fragment = customer.fragment(resolved.namespace, resolved.value)
            if fragment is None:
                return None
            entity_id = xid_for(resolved.namespace, resolved.value)
            sources = [DATASET_BY_NAMESPACE[resolved.namespace.lower()]]
            entity = fragment
        else:
            entity_id = customer.entity_id
            sources = sorted({DATASET_BY_NAMESPACE[ns.lower()] for ns, _ in customer.identities})
            entity = customer.entity
        if not with_ca and COMPUTED_ATTRIBUTES in entity.get(TENANT, {}):
            tenant = {k: v for k, v in entity[TENANT].items() if k != COMPUTED_ATTRIBUTES}
            entity = {**entity, TENANT: tenant}
        return {
            "entityId": entity_id,
            "sources": sources,
            "entity": select_fields(entity, fields),
            "lastModifiedAt": customer.last_modified_at,
        }

    def _profile_get(self, request: _Request) -> SimResponse:
        schema = request.param("schema.name")
        if not schema:
            raise _profile_error(400, "Missing required parameter schema.name")
        if schema not in _ENTITY_SCHEMAS:
            raise _profile_error(400, f"Invalid value for parameter schema.name: {schema}")
        entity_id = request.param("entityId")
        if not entity_id:
            raise _profile_error(400, "Missing required parameter entityId")
        namespace = request.param("entityIdNS", "entityIdNs")
        policy = self._policy(request.param("mergePolicyId"))
        fields = _fields(request.param("fields"))
        resolved = self._resolve(entity_id, namespace) if schema == PROFILE_SCHEMA else None
        if resolved is None:
            raise _not_found()
        if len(resolved.customer.identities) > MAX_GRAPH_IDENTITIES:
            return _json(422, _too_many_identities(resolved.customer))
        with_ca = (request.param("withCA") or "").lower() == "true"
        entry = self._entry(resolved, policy, fields, with_ca)
        if entry is None:
            raise _not_found()
        return _json(200, {entry["entityId"]: entry})

    def _profile_post(self, request: _Request) -> SimResponse:
        body = _json_body(request.body)
        if _body_schema(request.body) != PROFILE_SCHEMA:
            raise _profile_error(400, "Invalid or missing schema.name", "use _xdm.context.profile")
        identities = body.get("identities")
        if not isinstance(identities, list) or not identities:
            raise _profile_error(400, "Missing required property identities")
        policy = self._policy(body.get("mergePolicyId"))
        fields = _fields(body.get("fields"))
        results: dict[str, Any] = {}
        failures: list[dict[str, Any]] = []
        for item in identities:
            entity_id, namespace = _requested_identity(item, "entityId", "entityIdNS")
            resolved = self._resolve(entity_id, namespace)
            if resolved is not None and len(resolved.customer.identities) > MAX_GRAPH_IDENTITIES:
                failures.append(
                    {
                        "xid": resolved.customer.entity_id,
                        "error": _too_many_identities(resolved.customer),
                    }
                )
                continue
            with_ca = body.get("withCA") is True
            entry = self._entry(resolved, policy, fields, with_ca) if resolved else None
            if entry is None:
                # Documented trap: an unknown identity is no 404 but an empty entity at the epoch.
                xid = xid_for(namespace, entity_id) if namespace else entity_id
                entry = {
                    "entityId": xid,
                    "sources": [""],
                    "entity": {},
                    "lastModifiedAt": EPOCH_RFC3339,
                }
            results[entry["entityId"]] = entry
        if failures:
            # [U] The documented 207 body lists the failures; whether the successful entries
            # come along is not documented, so the simulator returns only the failures.
            return _json(207, failures)
        return _json(200, results)

    # ---------------------------------------------------------------------------------------
    # Profile: experience events

    def _event_list(self, resolved: _Resolved, query: _EventQuery) -> list[dict[str, Any]]:
        """The profile's events under the query's merge policy, window and filters, in order."""
        events: Iterable[dict[str, Any]] = resolved.customer.events
        if query.policy["identityGraph"]["type"] == "none":
            asked = (resolved.namespace.lower(), resolved.value)
            events = [event for event in events if asked in _event_identities(event)]
        selected = [
            event
            for event in events
            if (query.start_time is None or event["timestamp"] >= query.start_time)
            and (query.end_time is None or event["timestamp"] < query.end_time)
            and all(check(event) for check in query.filters)
        ]
        selected.sort(
            key=lambda event: (event["timestamp"], event["_id"]), reverse=query.descending
        )
        return selected

    def _event_page(
        self, resolved: _Resolved, query: _EventQuery, start: str | None
    ) -> tuple[dict[str, Any], str]:
        """`_page` and `children` of one page, and the id that starts the next page ("" if none)."""
        events = self._event_list(resolved, query)
        offset = 0
        if start:
            positions = {event["_id"]: index for index, event in enumerate(events)}
            if start not in positions:
                raise _profile_error(
                    400, "Invalid value for parameter start", "unknown page cursor"
                )
            offset = positions[start]
        page = events[offset : offset + query.limit]
        next_id = events[offset + query.limit]["_id"] if offset + query.limit < len(events) else ""
        children = [
            {
                "relatedEntityId": resolved.customer.entity_id,
                "entityId": event["_id"],
                "timestamp": event["timestamp"],
                "entity": select_fields(event, query.fields),
                "lastModifiedAt": rfc3339(event["timestamp"] + 5000),
            }
            for event in page
        ]
        return {
            "_page": {
                "orderby": "-timestamp" if query.descending else "timestamp",
                "start": page[0]["_id"] if page else "",
                "count": len(children),
                "next": next_id,
            },
            "children": children,
        }, next_id

    def _events_get(self, request: _Request) -> SimResponse:
        if request.param("relatedSchema.name") != PROFILE_SCHEMA:
            raise _profile_error(
                400, "Invalid or missing relatedSchema.name", "use _xdm.context.profile"
            )
        related_id = request.param("relatedEntityId")
        if not related_id:
            raise _profile_error(400, "Missing required parameter relatedEntityId")
        namespace = request.param("relatedEntityIdNS", "relatedEntityIdNs")
        query = _EventQuery(
            policy=self._policy(request.param("mergePolicyId")),
            fields=_fields(request.param("fields")),
            start_time=_optional_int(request.param("startTime"), "startTime"),
            end_time=_optional_int(request.param("endTime"), "endTime"),
            limit=_int_param(request.param("limit"), "limit", DEFAULT_EVENT_LIMIT, minimum=1),
            descending=_descending(request.param("orderby", "orderBy")),
            filters=_property_filters(request.params("property")),
        )
        resolved = self._resolve(related_id, namespace)
        if resolved is None:
            raise _not_found()
        if len(resolved.customer.identities) > MAX_GRAPH_IDENTITIES:
            return _json(422, _too_many_identities(resolved.customer))
        page, next_id = self._event_page(resolved, query, request.param("start"))
        href = ""
        if next_id:
            kept = [(key, value) for key, value in request.query if key != "start"]
            href = "/entities?" + urllib.parse.urlencode([("start", next_id), *kept], safe="@,:")
        page["_links"] = {"next": {"href": href}}
        return _json(200, page)

    def _events_post(self, request: _Request) -> SimResponse:
        body = _json_body(request.body)
        related_schema = body.get("relatedSchema")
        if not isinstance(related_schema, dict) or related_schema.get("name") != PROFILE_SCHEMA:
            raise _profile_error(
                400, "Invalid or missing relatedSchema.name", "use _xdm.context.profile"
            )
        identities = body.get("identities")
        if not isinstance(identities, list) or not identities:
            raise _profile_error(400, "Missing required property identities")
        time_filter = body.get("timeFilter") or {}
        if not isinstance(time_filter, dict):
            raise _profile_error(400, "Invalid value for property timeFilter")
        query = _EventQuery(
            policy=self._policy(body.get("mergePolicyId")),
            fields=_fields(body.get("fields")),
            start_time=_optional_int(time_filter.get("startTime"), "timeFilter.startTime"),
            end_time=_optional_int(time_filter.get("endTime"), "timeFilter.endTime"),
            limit=_int_param(body.get("limit"), "limit", DEFAULT_EVENT_LIMIT, minimum=1),
            descending=_descending(body.get("orderby", body.get("orderBy"))),
        )
        results: dict[str, Any] = {}
        failures: list[dict[str, Any]] = []
        for item in identities:
            related_id, namespace = _requested_identity(
                item, "relatedEntityId", "relatedEntityIdNS"
            )
            resolved = self._resolve(related_id, namespace)
            if resolved is None:
                # [U] An unknown profile in a POST event lookup: an empty page.
                order = "-timestamp" if query.descending else "timestamp"
                results[related_id] = {
                    "_page": {"orderby": order, "start": "", "count": 0, "next": ""},
                    "children": [],
                    "_links": {"next": {"href": ""}},
                }
                continue
            if len(resolved.customer.identities) > MAX_GRAPH_IDENTITIES:
                failures.append(
                    {
                        "xid": resolved.customer.entity_id,
                        "error": _too_many_identities(resolved.customer),
                    }
                )
                continue
            page, next_id = self._event_page(resolved, query, item.get("start"))
            link: dict[str, Any] = {"href": ""}
            if next_id:
                # Documented: POST the payload again to get this profile's next page.
                follow = {key: value for key, value in item.items() if key != "start"}
                link = {
                    "href": "/entities",
                    "payload": body | {"identities": [follow | {"start": next_id}]},
                }
            page["_links"] = {"next": link}
            results[related_id] = page
        if failures:
            return _json(207, failures)  # [U] as for profiles
        return _json(200, results)

    # ---------------------------------------------------------------------------------------
    # Segmentation: audiences

    def _audience_list(self, request: _Request) -> SimResponse:
        audiences = [a for a in self.dataset.audiences if not a.get("isSystem")]
        for expression in request.params("property"):
            name, op, wanted = _split_property(expression)
            audiences = [a for a in audiences if (str(a.get(name)) == wanted) == (op == "==")]
        for name in ("name", "description"):
            needle = request.param(name)
            if needle:
                audiences = [a for a in audiences if needle.lower() in str(a.get(name, "")).lower()]
        sort_field, _, direction = (request.param("sort") or "name:asc").partition(":")
        direction = direction or "asc"
        if direction not in ("asc", "desc"):
            raise _segmentation_error(400, "Invalid sort direction. Use asc or desc.", "UPAPI-400")
        audiences.sort(
            key=lambda a: str(a.get(sort_field, "")).lower(), reverse=direction == "desc"
        )
        # `start` is an offset (segmentation.yaml). [D] Adobe's example answers start=0 with
        # next=1 for a page of five; here `_page.next` is the offset of the next page.
        start = _int_param(request.param("start"), "start", 0)
        limit = _int_param(request.param("limit"), "limit", DEFAULT_AUDIENCE_LIMIT, minimum=1)
        total = len(audiences)
        children = audiences[start : start + limit]
        page: dict[str, Any] = {
            "totalCount": total,
            "totalPages": math.ceil(total / limit),
            "sortField": sort_field,
            "sort": direction,
            "pageSize": len(children),
            "limit": limit,
            "start": start,
        }
        links: dict[str, Any] = {}
        if start + limit < total:
            page["next"] = start + limit
            kept = [(k, v) for k, v in request.query if k not in ("start", "limit", "totalCount")]
            query = [
                ("start", str(start + limit)),
                ("limit", str(limit)),
                ("totalCount", str(total)),
                *kept,
            ]
            links["next"] = {"href": "@/audiences?" + urllib.parse.urlencode(query, safe="=:")}
        return _json(200, {"children": children, "_page": page, "_links": links})

    def _audience_get(self, request: _Request) -> SimResponse:
        audience_id = urllib.parse.unquote(request.path.removeprefix(AUDIENCES_PATH + "/"))
        audience = self.dataset.audience(audience_id)
        if audience is None:
            raise _segmentation_error(
                404,
                f"The audience entity {audience_id} is not found. Please check the audience id.",
                "UPAPI-113430-404",
            )
        return _json(200, audience)

    def _audience_bulk_get(self, request: _Request) -> SimResponse:
        """segmentation.yaml `/audiences/bulk-get`: 207 with every id a key of `results` (an
        unknown one as an entry with `errors: {"404": [...]}`), 404 when none exist, 400 for
        0 or more than 100 ids."""
        body = _json_body(request.body)
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, dict) and i.get("id") for i in ids):
            raise _segmentation_error(
                400, "Invalid request body. Expected ids: [{id}].", "UPAPI-113015-400"
            )
        if not 1 <= len(ids) <= MAX_BULK_GET_IDS:
            message = "The number of requested IDs is invalid. Cannot be 0 or exceed 100."
            raise _segmentation_error(
                400, message, "UPAPI-113015-400", entry_code="UPAPI-113015-400"
            )
        wanted = list(dict.fromkeys(str(item["id"]) for item in ids))
        results: dict[str, Any] = {}
        missing: list[str] = []
        for audience_id in wanted:
            audience = self.dataset.audience(audience_id)
            if audience is None:
                missing.append(audience_id)
                results[audience_id] = {
                    "requestId": secrets.token_urlsafe(24),
                    "errors": {"404": [{"code": 404, "message": "Not found."}]},
                }
            else:
                results[audience_id] = audience
        if len(missing) == len(wanted):
            raise _segmentation_error(
                404,
                f"The entity {','.join(missing)} is not found.",
                "UPAPI-113000-404",
                entry_code="UPAPI-113000-404",
            )
        return _json(207, {"results": results})

    # ---------------------------------------------------------------------------------------
    # Merge policies and Identity Service

    def _merge_policy_list(self, request: _Request) -> SimResponse:
        policies = list(self._policies.values())
        schema = request.param("schema.name")
        if schema:
            policies = [p for p in policies if p["schema"]["name"] == schema]
        if request.param("default") in ("true", "false"):
            wanted = request.param("default") == "true"
            policies = [p for p in policies if p["default"] == wanted]
        return _json(
            200,
            {
                "_page": {"totalCount": len(policies), "pageSize": len(policies)},
                "children": policies,
                "_links": {"next": {"href": ""}},
            },
        )

    def _merge_policy_get(self, request: _Request) -> SimResponse:
        policy = self._policies.get(request.path.removeprefix(MERGE_POLICIES_PATH + "/"))
        if policy is None:
            raise _profile_error(404, "Merge policy not found")
        return _json(200, policy)

    def _namespaces(self, request: _Request) -> SimResponse:
        return _json(200, list(NAMESPACES))

    def _namespace_get(self, request: _Request) -> SimResponse:
        wanted = request.path.removeprefix(NAMESPACES_PATH + "/")
        namespace = next((ns for ns in NAMESPACES if str(ns["id"]) == wanted), None)
        if namespace is None:
            raise _identity_error(404, "NotFound", f"No namespace with id {wanted}")
        return _json(200, namespace)

    def _namespace_code(self, code: str | None, nsid: str | int | None) -> str:
        for namespace in NAMESPACES:
            if (code and namespace["code"].lower() == code.lower()) or (
                nsid is not None and str(namespace["id"]) == str(nsid)
            ):
                return str(namespace["code"])
        raise _identity_error(400, "InvalidInput", "Unknown identity namespace")

    def _xid(self, request: _Request) -> SimResponse:
        value = request.param("id")
        if not value:
            raise _identity_error(400, "InvalidInput", "Missing required parameter id")
        code = self._namespace_code(request.param("namespace"), request.param("nsid"))
        return _json(200, {"xid": xid_for(code, value)})

    def _graph(self, request: _Request) -> SimResponse:
        body = _json_body(request.body)
        projection = body.get("projection_type")
        if projection not in ("set", "graph"):
            raise _identity_error(400, "InvalidInput", "projection_type must be set or graph")
        requested: list[tuple[Any, _Resolved | None]] = []
        for item in body.get("composite_xids") or []:
            if not isinstance(item, dict) or not item.get("id"):
                raise _identity_error(400, "InvalidInput", "composite_xids items need ns and id")
            code = self._namespace_code(item.get("ns"), item.get("nsid"))
            requested.append((item, self._resolve(str(item["id"]), code)))
        for xid in body.get("xids") or []:
            found = self.dataset.find_xid(str(xid))
            requested.append((xid, _Resolved(*found) if found else None))
        if not requested or len(requested) > 1000:
            raise _identity_error(400, "InvalidInput", "Send between 1 and 1000 identities")
        graphs = []
        unprocessed = []
        for key, resolved in requested:
            if resolved is None:
                unprocessed.append(key)  # [U] how unknown identities are reported
                continue
            members = [
                {"ns": self._namespace_code(ns, None), "id": value}
                for ns, value in resolved.customer.identities
            ]
            graph: dict[str, Any] = {"xid" if isinstance(key, str) else "composite_xid": key}
            if projection == "set":
                graph["members"] = members
            else:
                graph |= _graph_projection(members, resolved.customer)
            graphs.append(graph)
        unprocessed_key = "unprocessed_xids" if body.get("xids") else "unprocessed_composite_xids"
        return _json(
            200,
            {
                "version": "2.0",
                "graphs": graphs,
                unprocessed_key: unprocessed,
                "algo_type": "STITCH_ALL",
            },
            content_type="application/json;version=2.2.1;charset=utf-8",
        )


def _graph_projection(members: list[dict[str, Any]], customer: DemoCustomer) -> dict[str, Any]:
    """Vertices and edges of a star graph around the primary identity."""
    stamp = int(datetime.fromisoformat(customer.last_modified_at).timestamp() * 1000)
    primary = members[0]
    return {
        "vertices": [{"composite_xid": member, "last_updated_ts": stamp} for member in members],
        "edges": [
            {
                "composite_xid_pair": [primary, member],
                "first_established_ts": stamp,
                "last_established_ts": stamp,
                "dataset_ids": [DATASET_BY_NAMESPACE[member["ns"].lower()]],
                "batch_ids": [],
            }
            for member in members[1:]
        ],
    }


def _fault_response(fault: _Fault) -> SimResponse:
    if fault.kind == "hang":
        return SimResponse(200, {}, b"", hang=True)
    if fault.kind == "deep":
        return SimResponse(200, {"content-type": _JSON}, b"[" * DEEP_NESTING + b"]" * DEEP_NESTING)
    if fault.kind == "flood":
        # The start of an event page that never ends.
        return SimResponse(200, {"content-type": _JSON}, b'{"children": [', flood=fault.flood_bytes)
    if fault.kind == "429":
        response = _json(
            429,
            [
                {
                    "message": "Too many requests",
                    "cause": '{"Errors":["Request rate is large"]}',
                    "retryAfterMs": str(fault.retry_after_ms),
                    "statusCode": "429",
                }
            ],
        )
        # [U] Only retryAfterMs is documented; the header is in whole seconds.
        response.headers["retry-after"] = str(math.ceil(fault.retry_after_ms / 1000))
        return response
    if fault.kind == "503":
        # [U] No 503 body is documented; this mirrors the documented 500 shape.
        return _json(
            503,
            {
                "message": "Service Unavailable",
                "cause": "Status Code - 503 : Service Unavailable",
                "statusCode": "503",
            },
        )
    return _json(
        500,
        {
            "message": "Unable to connect to server",
            "cause": "Status Code - 500 : Connection Timeout",
            "statusCode": "500",
        },
    )


_FLOOD_EVENT = b'{"entityId": "flood", "timestamp": 0}, '
_FLOOD_PIECE = (_FLOOD_EVENT * (FLOOD_CHUNK // len(_FLOOD_EVENT) + 1))[:FLOOD_CHUNK]


def flood_pieces(total: int) -> Iterator[bytes]:
    """The body of a 'flood' answer after its first bytes: `total` bytes of event objects, in
    pieces of FLOOD_CHUNK."""
    left = total
    while left > 0:
        # A fresh copy each time, as bytes read off a socket are: holding pieces costs memory.
        piece = bytes(memoryview(_FLOOD_PIECE)[: min(left, FLOOD_CHUNK)])
        left -= len(piece)
        yield piece


def _unknown_route(request: _Request) -> SimResponse:
    # [U] The gateway's answer for a path it does not know.
    return _gateway_error(404, "404050", "Resource not found")


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _profile_error(400, "Malformed request body", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _profile_error(400, "Malformed request body", "the body must be a JSON object")
    return body


def _body_schema(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    schema = body.get("schema") if isinstance(body, dict) else None
    name = schema.get("name") if isinstance(schema, dict) else None
    return name if isinstance(name, str) else None


def _requested_identity(item: Any, id_key: str, ns_key: str) -> tuple[str, str | None]:
    """(value, namespace code or None for an XID) of one item of a POST `identities` list."""
    if not isinstance(item, dict) or not isinstance(item.get(id_key), str) or not item[id_key]:
        raise _profile_error(400, f"Each identity needs {id_key}")
    namespace = item.get(ns_key) or item.get(ns_key[:-1] + "s")
    code = namespace.get("code") if isinstance(namespace, dict) else namespace
    return item[id_key], code if isinstance(code, str) and code else None


def _optional_int(raw: str | int | None, name: str) -> int | None:
    return None if raw is None or raw == "" else _int_param(raw, name, 0)


def _split_property(expression: str) -> tuple[str, str, str]:
    for op in ("!=", "=="):
        name, found, wanted = expression.partition(op)
        if found:
            return name, op, wanted
    raise _segmentation_error(400, "Invalid property filter. Use attribute==value.", "UPAPI-400")
