"""Pure parsing of IMS and Platform answers: status and bytes in, models or typed errors out."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.aep.errors import (
    AepServerError,
    AudiencesNotFound,
    CredentialsProblem,
    ImsUnavailable,
    LookupRejected,
    MalformedResponse,
    Misconfigured,
    ProfileNotFound,
    RateLimited,
    TooManyIdentities,
    seconds_to_tell,
)
from bot.aep.models import Audience, ExperienceEvent, MergePolicy, ProfileEntity
from bot.aep.xdm import number_of as _number
from bot.aep.xdm import parse_timestamp
from bot.aep.xdm import text_of as _text

Endpoint = Literal["profile", "events", "audiences", "merge_policies", "namespaces"]

TOKEN_PATH = "/ims/token/v3"  # noqa: S105 (a URL path, not a secret)
ACCESS_PATH = "/data/core/ups/access"
ENTITIES_PATH = ACCESS_PATH + "/entities"
UPS_PATH = "/data/core/ups"
AUDIENCES_PATH = UPS_PATH + "/audiences"
AUDIENCES_BULK_PATH = AUDIENCES_PATH + "/bulk-get"
MERGE_POLICIES_PATH = UPS_PATH + "/config/mergePolicies"
#: Identity Service: every identity namespace the sandbox knows, standard and custom.
NAMESPACES_PATH = "/data/core/idnamespace/identities"
#: Most ids one audience bulk-get takes (Adobe: "Cannot be 0 or exceed 100", a 400 otherwise).
BULK_GET_MAX_IDS = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Server text goes into messages shown to people; keep it short enough to read.
_MAX_DETAIL = 200
# "UPS-ACC-1000004: IMS Org is not provisioned." -> UPS-ACC-1000004
_CODE_PREFIX = re.compile(r"^\s*([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\s*:?\s*")
_TOO_MANY = "too many related identities"
# A status as Platform writes it in error entries: 404, "404", "404.0" or "UPAPI-113430-404".
_STATUS = re.compile(r"(?:^|-)([1-5][0-9]{2})(?:\.0+)?$")
#: The longest wait any Retry-After or retryAfterMs is taken to ask for. Platform asks for
#: milliseconds to seconds; a larger value (1e8 s, a date in 2099) is an error on its side, and
#: reading it as asked would park the audience listing for years.
RETRY_AFTER_CAP = 3600.0
#: JSON nested deeper than this is no document Platform sends (an XDM profile nests about a
#: dozen levels). Refusing it here keeps every later reader of the value (pydantic, the cache's
#: JSON, the templates) far from Python's recursion limit.
MAX_JSON_DEPTH = 64
# IMS issues 24-hour tokens; a longer `expires_in` is not believed.
_MAX_TOKEN_LIFETIME = 86400.0


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an error body says, whichever of Adobe's error shapes it came in."""

    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    """Seconds to wait, from `retryAfterMs`, at most RETRY_AFTER_CAP."""
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventChunk:
    """One page of an event lookup: its events, where the next page is, and whether one exists."""

    events: tuple[ExperienceEvent, ...]
    next_href: str | None
    more: bool
    skipped: int = 0
    """Events on the page that could not be read (no id, no timestamp, not an object)."""


@dataclass(frozen=True, slots=True)
class AudienceBulk:
    """What a bulk-get (207) answer says about each id: found, unknown to Platform, or failed."""

    found: Mapping[str, Audience]
    """Audiences keyed as Platform keyed them."""
    unknown: frozenset[str]
    """Ids Platform reported as not found (404): deleted, or never existed."""
    failed: Mapping[str, int | None]
    """Ids Platform could not answer for now, with the status it gave (None when it gave none)."""


@dataclass(frozen=True, slots=True)
class AudienceChunk:
    """One page of GET /audiences: its audiences, how many entries it held, and whether Platform
    says more follow (`_page.next`, or a `totalCount` past this page)."""

    audiences: tuple[Audience, ...]
    count: int
    """Entries on the page, readable or not: the next page starts this far on."""
    more: bool


# --- error bodies -------------------------------------------------------------------------------


def parse_error_body(body: bytes | str) -> ErrorBody:
    """Read any of Adobe's error shapes; never raises, an unreadable body gives an empty ErrorBody.

    Accepted: gateway `error_code`/`message`; Profile `message`/`cause`/`statusCode`; the 429 array
    of `{message, cause, retryAfterMs, statusCode}`; RFC 7807 `type`/`title`/`status`/`detail`
    (with `report`); segmentation `requestId`/`errors`; IMS `error`/`error_description`.
    """
    data = _loads_or_none(body)
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), None)
    if not isinstance(data, dict):
        return ErrorBody()
    if isinstance(data.get("error"), dict):
        # The 207 entry shape: {"xid": ..., "error": {"message", "cause", "statusCode"}}
        data = {**data, **data["error"]}

    message = _first_text(data, "message", "detail", "description", "error_description")
    cause = _text(data.get("cause"))
    report = data.get("report")
    if message is None and isinstance(report, dict):
        message = _text(report.get("message"))
    segmentation = _segmentation_error(data.get("errors"))
    if message is None and segmentation is not None:
        message = segmentation[1]
    if message is None:
        message = _text(data.get("title"))
    if message is not None and cause is not None and cause not in message:
        message = f"{message}: {cause}"

    code = _first_text(data, "error_code", "errorCode") or _type_code(data.get("type"))
    if code is None and segmentation is not None:
        code = segmentation[0]
    if code is None and message is not None and (match := _CODE_PREFIX.match(message)):
        code = match.group(1)
    if code is None:
        code = _text(data.get("error"))

    retry_ms = _number(data.get("retryAfterMs"))
    return ErrorBody(
        code=code,
        message=message,
        retry_after=_bounded_wait(retry_ms / 1000) if retry_ms is not None else None,
        request_id=_first_text(data, "requestId", "request_id"),
    )


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header, given as seconds or as an HTTP date, at most
    RETRY_AFTER_CAP.

    A negative or non-finite number of seconds, or text that is neither, is no advice at all:
    None, as if absent. A date in the past means now (0).
    """
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return _bounded_wait(seconds)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return _bounded_wait(max(seconds, 0.0))


def _bounded_wait(seconds: float) -> float | None:
    """A wait Platform asked for, bounded: None when negative or not finite, at most the cap."""
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP)


def read_json(body: bytes | str) -> Any:
    """The JSON value of `body`, or ValueError when it is not one the bot can hold: bytes that
    are not UTF-8 text, text that is not JSON, or nesting deeper than MAX_JSON_DEPTH (which
    the parser would otherwise answer with RecursionError)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _nested_deeper_than(data, MAX_JSON_DEPTH):
        raise ValueError("JSON nested too deeply")
    return data


def _nested_deeper_than(data: Any, limit: int) -> bool:
    # Iterative, so that measuring the depth cannot itself run out of stack.
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def profile_not_found(namespace: str | None, *, request_id: str | None = None) -> ProfileNotFound:
    """The error for an identity no profile holds; the value stays out of the message."""
    which = f"this {namespace} identity" if namespace else "this identity"
    return ProfileNotFound(
        f"No customer profile holds {which} under the configured merge policy. "
        "Check the spelling, or search by another identity (email, phone or CRM id).",
        status=404,
        request_id=request_id,
    )


def decipher_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    endpoint: Endpoint,
    namespace: str | None = None,
    request_id: str | None = None,
    redact: Iterable[str] = (),
) -> Any:
    """Decoded JSON of a 2xx answer; any other status becomes the matching typed error.

    `redact` lists values (identities) that must not reach the error's message even when
    Platform echoes them back.
    """
    if 200 <= status < 300:
        if not body:
            return None
        try:
            return read_json(body)
        except ValueError:
            raise MalformedResponse(
                f"Adobe Experience Platform answered {status} with a body the bot cannot read "
                "(not JSON, or nested too deeply). Try again; if it persists, report the request "
                "id to Adobe.",
                status=status,
                request_id=request_id,
            ) from None

    error = parse_error_body(body)
    said = _said(status, error, redact)
    if status == 404 and _is_gateway_error(body):
        # The gateway's own `error_code` body: the request never reached a service, so the
        # path, the region or the sandbox is wrong; it says nothing about any customer.
        raise Misconfigured(
            f"The Adobe gateway found nothing at the address the bot called {said}. The bot is "
            "misconfigured: check AEP_API_URL (https://platform.adobe.io, or your region's "
            "gateway) and AEP_SANDBOX (the sandbox name, lower-case).",
            status=status,
            request_id=request_id,
        )
    if status == 404 and endpoint == "audiences":
        # Segmentation's 404 (`UPAPI-113000-404` on bulk-get: none of the ids exist).
        raise AudiencesNotFound(
            f"Platform knows none of the audiences asked for {said}.",
            status=status,
            request_id=request_id,
        )
    if status == 404 and endpoint in ("profile", "events"):
        # The Profile service's own 404 (`NotFoundError`, `{"statusCode": "404"}`).
        raise profile_not_found(namespace, request_id=request_id)
    if status in (400, 422) and _TOO_MANY in (error.message or "").lower():
        raise TooManyIdentities(
            "This customer's identity graph links more than 50 identities, so Platform refuses "
            "to look the profile up. Retrying will not help: ask an AEP admin to review the "
            "identity graph, or search by a narrower identity.",
            status=status,
            request_id=request_id,
        )
    if status == 422 and "merge polic" in (error.message or "").lower():
        raise LookupRejected(
            f"Platform could not build the profile view {said}. Set AEP_MERGE_POLICY_ID "
            "to a merge policy of this sandbox.",
            status=status,
            request_id=request_id,
        )
    if status == 401:
        raise CredentialsProblem(
            f"Platform did not accept the bot's access token {said}, even a freshly "
            "issued one. Check that the Developer Console project behind AEP_CLIENT_ID has the "
            "Experience Platform API added and matches AEP_ORG_ID.",
            status=status,
            request_id=request_id,
        )
    if status == 403:
        raise CredentialsProblem(
            _forbidden_message(endpoint, error, said), status=status, request_id=request_id
        )
    if status == 429:
        retry_after = error.retry_after
        if retry_after is None:
            retry_after = retry_after_header(headers)
        if retry_after is not None and seconds_to_tell(retry_after) is not None:
            wait = f"in {format_seconds(retry_after)} s"
        else:
            wait = "in a moment" if retry_after is None else "in a few minutes"
        raise RateLimited(
            f"Platform is rate-limiting the bot's requests {said}. Try again {wait}.",
            retry_after=retry_after,
            status=status,
            request_id=request_id,
        )
    if status >= 500:
        raise AepServerError(
            f"Adobe Experience Platform answered with a server error {said}. Try again in a "
            "moment; if it keeps happening, check https://status.adobe.com.",
            status=status,
            request_id=request_id,
        )
    if 400 <= status < 500:
        what = {"audiences": "audience lookup", "merge_policies": "merge policy lookup"}.get(
            endpoint, "profile lookup"
        )
        raise LookupRejected(
            f"Platform rejected the {what} {said}. Retrying will not help: check "
            "the identity namespace, the field list and AEP_API_URL.",
            status=status,
            request_id=request_id,
        )
    raise MalformedResponse(
        f"Adobe Experience Platform answered with unexpected HTTP status {status}. "
        "Check AEP_API_URL.",
        status=status,
        request_id=request_id,
    )


def _is_gateway_error(body: bytes) -> bool:
    """Whether an error body is the gateway's `{"error_code", "message"}` shape, which no
    Platform service (Profile, Segmentation) answers with."""
    data = _loads_or_none(body)
    return isinstance(data, dict) and _text(data.get("error_code")) is not None


def _forbidden_message(endpoint: Endpoint, error: ErrorBody, said: str) -> str:
    code = error.code or ""
    if code in {"403000", "403003"}:
        return (
            f"The Adobe gateway does not accept the bot's API key {said}. Check that "
            "AEP_CLIENT_ID is the Client ID of the bot's Developer Console project."
        )
    if code == "403025":
        return (
            f"The bot's credential is not entitled to this organization {said}. Check that "
            "AEP_ORG_ID is the organization of the bot's Developer Console project."
        )
    if endpoint == "events":
        return (
            f"Platform refused to read this customer's experience events {said}. Event "
            "lookup needs Real-Time CDP Ultimate with event lookup enabled by Adobe Customer Care, "
            "and a product profile with read access to profiles; or set AEP_EVENTS_ENABLED=false."
        )
    thing = {"audiences": "audiences", "merge_policies": "merge policies"}.get(
        endpoint, "customer profiles"
    )
    if "sandbox" in (error.message or "").lower():
        return (
            f"Platform refused the sandbox {said}. Check that AEP_SANDBOX is the sandbox's name "
            "(lower case, as in the Experience Platform UI's sandbox switcher) and that the bot's "
            "Developer Console project has a product profile in that sandbox."
        )
    return (
        f"Platform refused to read {thing} {said}. The product profile of the bot's "
        f"Developer Console project probably lacks read access to {thing} in this sandbox, or "
        "the organization is not provisioned for Real-Time Customer Profile. Ask an Adobe admin "
        "to grant the access."
    )


# --- IMS ----------------------------------------------------------------------------------------


def parse_token_response(status: int, body: bytes) -> tuple[str, float]:
    """(access token, lifetime in seconds) from an IMS answer, or the typed error it amounts to."""
    data = _loads_or_none(body)
    if 200 <= status < 300:
        token = data.get("access_token") if isinstance(data, dict) else None
        lifetime = _number(data.get("expires_in")) if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or lifetime is None or lifetime <= 0:
            raise MalformedResponse(
                "Adobe IMS answered without a usable access token. Check AEP_IMS_URL; "
                "try again in a moment.",
                status=status,
            )
        return token, min(lifetime, _MAX_TOKEN_LIFETIME)
    error = parse_error_body(body)
    said = f" ({error.code}{': ' + error.message if error.message else ''})" if error.code else ""
    if status in (400, 401, 403):
        if error.code == "invalid_scope":
            raise CredentialsProblem(
                f"Adobe IMS refused the requested scopes{said}. Set AEP_SCOPES to the scopes the "
                "bot's OAuth Server-to-Server credential shows in Adobe Developer Console.",
                status=status,
            )
        raise CredentialsProblem(
            f"Adobe IMS refused the bot's credentials{said}. Check AEP_CLIENT_ID and "
            "AEP_CLIENT_SECRET against the OAuth Server-to-Server credential in Adobe Developer "
            "Console.",
            status=status,
        )
    if status == 429 or status >= 500:
        raise ImsUnavailable(
            f"Adobe's sign-in service (IMS) is unavailable ({status}). Try again in a moment.",
            status=status,
        )
    raise MalformedResponse(
        f"Adobe IMS answered with unexpected HTTP status {status}. Check AEP_IMS_URL.",
        status=status,
    )


# --- profiles -----------------------------------------------------------------------------------


def parse_profile(data: Any) -> ProfileEntity | None:
    """The merged profile of a GET entities answer, or None when the answer means "not found".

    The body is keyed by entity id; an entry whose `entity` is `{}` or whose `lastModifiedAt`
    is the epoch is Platform's way of saying nothing matched.
    """
    if not isinstance(data, dict):
        raise _malformed("a profile lookup", "it is not a JSON object")
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("entity", {}), dict):
            raise _malformed("a profile lookup", "an entry is not an entity object")
        entity: dict[str, Any] = entry.get("entity") or {}
        modified = parse_timestamp(entry.get("lastModifiedAt"))
        if not entity or modified == _EPOCH:
            continue
        sources = entry.get("sources")
        return ProfileEntity(
            entity_id=_text(entry.get("entityId")) or str(key),
            entity=entity,
            last_modified_at=modified,
            sources=tuple(s for s in sources if isinstance(s, str) and s)
            if isinstance(sources, list)
            else (),
        )
    return None


# --- events -------------------------------------------------------------------------------------


def parse_event_page(data: Any) -> EventChunk:
    """One page of an event lookup (`_page`, `children`, `_links`).

    A child that cannot be read (not an object, no id or no timestamp) is skipped and counted
    in `skipped`: one odd event must not cost the agent the whole timeline.
    """
    if not isinstance(data, dict) or not isinstance(data.get("children", []), list):
        raise _malformed("an event lookup", "it has no `children` list")
    children = data.get("children", [])
    events = tuple(event for event in map(_parse_event, children) if event is not None)
    skipped = len(children) - len(events)
    page = _object(data, "_page")
    href = _next_href(data)
    if "next" in page:
        # `_page.next` is the authority; the href is only how to get there.
        more = bool(_text(page.get("next")))
        href = href if more else None
    else:
        more = href is not None
    return EventChunk(events=events, next_href=href, more=more, skipped=skipped)


def _parse_event(child: Any) -> ExperienceEvent | None:
    if not isinstance(child, dict):
        return None
    entity = _object(child, "entity")
    event_id = _text(child.get("entityId")) or _text(entity.get("_id"))
    timestamp = parse_timestamp(child.get("timestamp", entity.get("timestamp")))
    if event_id is None or timestamp is None:
        return None
    return ExperienceEvent(event_id=event_id, timestamp=timestamp, entity=entity)


def events_next_url(api_url: str, href: str) -> str:
    """Absolute URL of the next event page from `_links.next.href` (relative `/entities?...`)."""
    base = api_url.rstrip("/")
    if href.startswith(ENTITIES_PATH):
        return base + href
    if href.startswith("/access/entities"):
        return base + UPS_PATH + href
    if href.startswith("/entities"):
        return base + ACCESS_PATH + href
    return _same_origin(base, href, "an event lookup")


# --- audiences ----------------------------------------------------------------------------------


def parse_audience(data: Any) -> Audience | None:
    """An audience from its JSON object; None when it has no id or no name to show."""
    if not isinstance(data, dict):
        return None
    audience_id = _text(data.get("id")) or _text(data.get("audienceId"))
    name = _text(data.get("name"))
    if audience_id is None or name is None:
        return None
    return Audience(
        id=audience_id,
        name=name,
        description=_text(data.get("description")),
        lifecycle_state=_text(data.get("lifecycleState")),
        type=_text(data.get("type")),
    )


def parse_audience_page(data: Any, *, start: int = 0) -> AudienceChunk:
    """One page of GET /audiences asked for at offset `start` (`children`, `_page`).

    `start` is an offset (segmentation.yaml: "the starting offset"), so the next page is asked
    for at `start` + the entries of this one; `_page.next` and `_links.next` say only *whether*
    one exists, since Adobe's own example answers start=0 with next=1 for a page of five.
    """
    if not isinstance(data, dict) or not isinstance(data.get("children", []), list):
        raise _malformed("the audience list", "it has no `children` list")
    children = data.get("children", [])
    audiences = tuple(a for a in map(parse_audience, children) if a is not None)
    page = _object(data, "_page")
    total = _number(page.get("totalCount"))
    more = bool(_text(page.get("next"))) or _next_href(data) is not None
    if total is not None:
        more = start + len(children) < total
    return AudienceChunk(audiences=audiences, count=len(children), more=more and bool(children))


# --- identity namespaces ------------------------------------------------------------------------


def parse_namespaces(data: Any) -> dict[str, str]:
    """The names of a GET /idnamespace/identities answer (a JSON array of namespaces), by
    lower-case code: `{"crmid": "CRM ID"}`. An entry without a code or a name is left out."""
    if not isinstance(data, list):
        raise _malformed("the identity namespace list", "it is not a list")
    names: dict[str, str] = {}
    for entry in data:
        if not isinstance(entry, dict):
            continue
        code, name = _text(entry.get("code")), _text(entry.get("name"))
        if code and name and len(name) <= 60:
            names.setdefault(code.lower(), " ".join(name.split()))
    return names


# --- merge policies -----------------------------------------------------------------------------


def parse_merge_policies(data: Any) -> tuple[MergePolicy, ...]:
    """The merge policies of a GET /config/mergePolicies answer (`children`); a policy with
    no id is left out."""
    if not isinstance(data, dict) or not isinstance(data.get("children", []), list):
        raise _malformed("the merge policy list", "it has no `children` list")
    policies = []
    for child in data.get("children", []):
        if not isinstance(child, dict) or (policy_id := _text(child.get("id"))) is None:
            continue
        policies.append(
            MergePolicy(
                id=policy_id,
                name=_text(child.get("name")) or policy_id,
                schema_name=_text(_object(child, "schema").get("name")),
                default=child.get("default") is True,
            )
        )
    return tuple(policies)


def parse_audience_bulk(data: Any) -> AudienceBulk:
    """What a bulk-get (207) answer says about each id.

    Adobe's shape (segmentation.yaml, "One audience was not found"): every id asked for is a key
    of `results`; a found id maps to the audience, an id Platform does not know maps to
    `{"requestId": ..., "errors": {"404": [{"code": 404, "message": "Not found."}]}}`. Only a
    404 makes an id unknown; an entry with any other error is one to ask again about.
    """
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise _malformed("an audience bulk-get", "it has no `results` object")
    found: dict[str, Audience] = {}
    unknown: set[str] = set()
    failed: dict[str, int | None] = {}
    for key, value in results.items():
        audience = parse_audience(value)
        if audience is not None:
            found[str(key)] = audience
        elif (status := _entry_status(value)) == 404:
            unknown.add(str(key))
        else:
            failed[str(key)] = status
    return AudienceBulk(found=found, unknown=frozenset(unknown), failed=failed)


def _entry_status(entry: Any) -> int | None:
    """The HTTP status of one failed bulk-get entry: the key of its `errors` map (`"404"`), or
    the `code` of an error under it (404, or a code ending in it, `UPAPI-113430-404`)."""
    errors = entry.get("errors") if isinstance(entry, dict) else None
    if not isinstance(errors, dict):
        return None
    for key, items in errors.items():
        listed = items if isinstance(items, list) else []
        codes = [item.get("code") for item in listed if isinstance(item, dict)]
        for candidate in (key, *codes):
            text = _text(candidate)
            if text is not None and (match := _STATUS.search(text)):
                return int(match.group(1))
    return None


# --- small helpers ------------------------------------------------------------------------------


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _next_href(data: Mapping[str, Any]) -> str | None:
    return _text(_object(_object(data, "_links"), "next").get("href"))


def _same_origin(base: str, href: str, what: str) -> str:
    # Never send the bearer token to a host other than the configured gateway.
    if href.startswith(("http://", "https://")):
        there, here = urlsplit(href), urlsplit(base)
        if (there.scheme, there.netloc) == (here.scheme, here.netloc):
            return href
    raise _malformed(what, "its next-page link points somewhere unexpected")


def _malformed(what: str, why: str) -> MalformedResponse:
    return MalformedResponse(
        f"Adobe Experience Platform answered {what} in a shape the bot cannot read ({why}). "
        "Try again; if it persists, the API may have changed: report it to the bot's maintainers."
    )


def _said(status: int, error: ErrorBody, redact: Iterable[str]) -> str:
    """`(403, UPS-ACC-1000004: IMS Org is not provisioned.)`: the status and what the body said."""
    parts = [str(status)]
    if error.code and not (error.message or "").startswith(error.code):
        parts.append(error.code)
    if error.message:
        message = error.message
        for value in redact:
            if value:
                message = re.sub(re.escape(value), "…", message, flags=re.IGNORECASE)
        if len(message) > _MAX_DETAIL:
            message = message[: _MAX_DETAIL - 1] + "…"
        parts.append(message)
    if len(parts) == 3:
        return f"({parts[0]}, {parts[1]}: {parts[2]})"
    return f"({', '.join(parts)})"


def _segmentation_error(errors: Any) -> tuple[str | None, str | None] | None:
    # {"errors": {"404": [{"code": 404, "message": "..."}]}}, or a plain list of such items.
    items: list[Any] = []
    if isinstance(errors, dict):
        for value in errors.values():
            items.extend(value if isinstance(value, list) else [value])
    elif isinstance(errors, list):
        items = errors
    for item in items:
        if isinstance(item, dict):
            return _text(item.get("code")), _text(item.get("message"))
        if isinstance(item, str):
            return None, item
    return None


def _type_code(value: Any) -> str | None:
    # "https://ns.adobe.com/aep/errors/UPAPI-113430-404" -> UPAPI-113430-404
    text = _text(value)
    if text is None:
        return None
    last = text.rstrip("/").rsplit("/", 1)[-1]
    return last if _CODE_PREFIX.match(last) else None


def format_seconds(value: float) -> str:
    """Seconds as people read them: `0.5`, `8`, `2.3`."""
    return f"{max(round(value, 1), 0.1):g}"


def _loads_or_none(body: bytes | str) -> Any:
    try:
        return read_json(body) if body else None
    except ValueError:
        return None


def _first_text(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        if (text := _text(data.get(key))) is not None:
            return text
    return None
