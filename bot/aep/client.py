"""The Adobe Experience Platform client: small lookups over one private request function."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx

from bot.aep import bodies, sansio
from bot.aep.auth import ImsTokenSource
from bot.aep.errors import (
    AepError,
    AepTimedOut,
    AepUnavailable,
    AepUnreachable,
    AudiencesNotFound,
    CredentialsProblem,
    ImsUnavailable,
    Misconfigured,
    ProfileNotFound,
    RateLimited,
    ResponseTooLarge,
)
from bot.aep.models import Audience, EventPage, ExperienceEvent, MergePolicy, ProfileEntity
from bot.identity import IdentityRef
from bot.request_id import outbound_id

if TYPE_CHECKING:
    from bot.metrics import Metrics

logger = logging.getLogger(__name__)

PROFILE_SCHEMA = "_xdm.context.profile"
EVENT_SCHEMA = "_xdm.context.experienceevent"

# Retries of 5xx, timeouts and 429 share one budget of attempts, all inside the caller's deadline.
_MAX_ATTEMPTS = 4
# Experience events are optional to a card: one retry at most (a 5xx, a timeout, a 429), so a
# failing events endpoint costs the person an "events could not be read", not the deadline.
_EVENTS_MAX_ATTEMPTS = 2
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 2.0
# Page sizes and bounds: a sandbox holds at most 4000 audiences, a card shows a handful of events.
_AUDIENCE_PAGE = 100
_MAX_AUDIENCE_PAGES = 60
_BULK_CHUNK = sansio.BULK_GET_MAX_IDS
_MAX_EVENT_PAGES = 20


class _NoQueryStrings(logging.Filter):
    """Drop query strings from httpx's own request log line: ours carry the identity looked up."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


def _quiet_httpx_urls() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _NoQueryStrings) for f in httpx_logger.filters):
        httpx_logger.addFilter(_NoQueryStrings())


# Per socket operation; the caller's deadline bounds the whole call (see AepClient).
AEP_TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=5.0, pool=3.0)
AEP_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10)


def create_http_client(
    *, transport: httpx.AsyncBaseTransport | None = None, max_in_flight: int = 5
) -> httpx.AsyncClient:
    """An httpx client fit for IMS and Platform: explicit timeouts, a small keep-alive pool
    (room for `max_in_flight` Platform calls and a token refresh, at least AEP_LIMITS).

    `transport` replaces the network (the in-process demo sandbox, tests); the timeouts stay.
    """
    connections = max(AEP_LIMITS.max_connections or 10, max_in_flight + 2)
    return httpx.AsyncClient(
        transport=transport,
        timeout=AEP_TIMEOUT,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,
        follow_redirects=False,
        headers={"Accept": "application/json"},
    )


@dataclass(slots=True)
class _Budget:
    """One public call's share of time: its deadline, what it was waiting for and what went
    wrong last, for the message."""

    deadline: float
    seconds: float
    last_status: int | None = None
    waiting_for: Literal["platform", "ims"] = "platform"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def exhausted(self) -> AepUnavailable:
        if self.seconds <= 0:
            # The caller spent its time before asking, waiting for another lookup, say.
            return AepTimedOut(
                "The lookup ran out of time before Adobe Experience Platform could be asked. "
                "Try again in a moment."
            )
        seconds = sansio.format_seconds(self.seconds)
        if self.waiting_for == "ims":
            return ImsUnavailable(
                f"Adobe's sign-in service (IMS) did not give the bot an access token within "
                f"{seconds} s. Try again in a moment; if it keeps happening, check "
                "https://status.adobe.com and AEP_IMS_URL."
            )
        last = f" (its last answer was HTTP {self.last_status})" if self.last_status else ""
        return AepTimedOut(
            f"Adobe Experience Platform did not answer within {seconds} s{last}. "
            "Try again in a moment; if it keeps happening, check https://status.adobe.com.",
            status=self.last_status,
        )


class AepClient:
    """Read-only lookups against Real-Time Customer Profile and the Audiences API of one sandbox.

    Every public method takes `deadline`, an absolute `time.monotonic()` value: the whole call,
    retries, token refresh and every page included, ends by then or raises AepUnavailable.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        tokens: ImsTokenSource,
        api_url: str,
        org_id: str,
        client_id: str,
        sandbox: str,
        merge_policy_id: str | None = None,
        max_in_flight: int = 5,
        max_response_bytes: int = bodies.DEFAULT_MAX_RESPONSE_BYTES,
        metrics: Metrics | None = None,
    ) -> None:
        """`max_response_bytes` bounds every answer's body (AEP_MAX_RESPONSE_BYTES): a longer
        one is not read on but raises ResponseTooLarge. `metrics` counts every request."""
        # httpx logs every request's full URL at INFO; the identity must not reach the logs.
        _quiet_httpx_urls()
        self._http = http
        self._tokens = tokens
        self._api_url = api_url.rstrip("/")
        self._org_id = org_id
        self._client_id = client_id
        self._sandbox = sandbox
        # The configured policy (AEP_MERGE_POLICY_ID), or the sandbox's default once resolved:
        # every lookup names its merge policy explicitly (see `merge_policy`).
        self._merge_policy: MergePolicy | None = (
            MergePolicy(id=merge_policy_id, name=merge_policy_id) if merge_policy_id else None
        )
        self._merge_policy_lock = asyncio.Lock()
        self._max_response_bytes = max_response_bytes
        self._metrics = metrics
        # The hub lookup API is meant for low-volume agent use: keep only a few requests in flight.
        self._slots = asyncio.Semaphore(max_in_flight)

    @property
    def merge_policy_in_use(self) -> MergePolicy | None:
        """The merge policy lookups name: the configured one, or the sandbox default once
        `merge_policy` has resolved it; None before that."""
        return self._merge_policy

    async def merge_policy(self, *, deadline: float) -> MergePolicy:
        """The merge policy every lookup names: AEP_MERGE_POLICY_ID when set, else the sandbox's
        default profile merge policy, asked for once (at start, see Services.start) and kept.
        Raises Misconfigured when the sandbox has no default and none is configured."""
        if self._merge_policy is not None:
            return self._merge_policy
        async with self._within(deadline) as budget:
            return await self._resolved_merge_policy(budget)

    async def default_merge_policy(self, *, deadline: float) -> MergePolicy:
        """The sandbox's default merge policy for profiles (`GET /config/mergePolicies?
        schema.name=_xdm.context.profile&default=true`); Misconfigured when there is none."""
        async with self._within(deadline) as budget:
            return await self._default_merge_policy(budget)

    async def _resolved_merge_policy(self, budget: _Budget) -> MergePolicy:
        if self._merge_policy is not None:
            return self._merge_policy
        async with self._merge_policy_lock:
            if self._merge_policy is None:
                self._merge_policy = await self._default_merge_policy(budget)
                logger.info(
                    "AEP_MERGE_POLICY_ID is unset: using the sandbox's default profile merge "
                    "policy %s (%r)",
                    self._merge_policy.id,
                    self._merge_policy.name,
                )
        return self._merge_policy

    async def _default_merge_policy(self, budget: _Budget) -> MergePolicy:
        params = {"schema.name": PROFILE_SCHEMA, "default": "true"}
        url = self._api_url + sansio.MERGE_POLICIES_PATH
        data = await self._request(budget, "GET", url, params=params, endpoint="merge_policies")
        policies = sansio.parse_merge_policies(data)
        # The filter is the server's; check it, a policy of another class would merge nothing.
        for policy in policies:
            if policy.default and policy.schema_name in (None, PROFILE_SCHEMA):
                return policy
        raise Misconfigured(
            f"Sandbox {self._sandbox!r} has no default merge policy for profiles "
            f"({PROFILE_SCHEMA}), and AEP_MERGE_POLICY_ID is not set. Set AEP_MERGE_POLICY_ID "
            "to the id of the merge policy the bot should use, or mark one as the default in "
            "Experience Platform (Profiles > Merge policies)."
        )

    async def get_profile(
        self,
        ref: IdentityRef,
        *,
        fields: Sequence[str] | None = None,
        with_ca: bool = False,
        deadline: float,
    ) -> ProfileEntity:
        """The merged profile holding `ref`; raises ProfileNotFound when no profile holds it.

        `with_ca` asks for computed attributes too (`withCA=true`, the entities guide's feature
        flag). An Email typed with capitals that matches nothing is tried once more in lower case.
        """
        async with self._within(deadline) as budget:
            try:
                return await self._profile(budget, ref, fields, with_ca)
            except ProfileNotFound:
                lowered = _lowered_email(ref)
                if lowered is None:
                    raise
            return await self._profile(budget, lowered, fields, with_ca)

    async def get_events(self, ref: IdentityRef, *, limit: int, deadline: float) -> EventPage:
        """Up to `limit` newest experience events of the profile holding `ref`, newest first.

        Follows `_links.next` only as far as needed to fill `limit`; `more` says whether
        older events exist. Each request is retried at most once (events are optional).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self._within(deadline) as budget:
            try:
                return await self._events(budget, ref, limit)
            except ProfileNotFound:
                lowered = _lowered_email(ref)
                if lowered is None:
                    raise
            return await self._events(budget, lowered, limit)

    async def _events(self, budget: _Budget, ref: IdentityRef, limit: int) -> EventPage:
        query = {
            "schema.name": EVENT_SCHEMA,
            "relatedSchema.name": PROFILE_SCHEMA,
            "relatedEntityId": ref.value,
            "orderby": "-timestamp",
            "limit": str(limit),
            "mergePolicyId": (await self._resolved_merge_policy(budget)).id,
        }
        if ref.namespace:
            # A profile's entity id (an XID) goes without a namespace (reference 2.2).
            query["relatedEntityIdNS"] = ref.namespace
        url: str = self._api_url + sansio.ENTITIES_PATH
        params: dict[str, str] | None = query
        events: list[ExperienceEvent] = []
        more = False
        skipped = 0
        for _ in range(_MAX_EVENT_PAGES):
            data = await self._request(
                budget,
                "GET",
                url,
                params=params,
                endpoint="events",
                identity=ref,
                max_attempts=_EVENTS_MAX_ATTEMPTS,
            )
            page = sansio.parse_event_page(data)
            events.extend(page.events)
            skipped += page.skipped
            more = page.more or len(events) > limit
            if len(events) >= limit or page.next_href is None:
                break
            # The link carries its own query string (and httpx would drop it for params={}).
            url, params = sansio.events_next_url(self._api_url, page.next_href), None
        if skipped:
            # Counts only: an event's content may identify the customer.
            logger.debug("Skipped %d unreadable experience events of this lookup", skipped)
        events.sort(key=lambda event: event.timestamp, reverse=True)
        return EventPage(events=tuple(events[:limit]), more=more)

    async def get_audiences(
        self, ids: Collection[str], *, deadline: float
    ) -> dict[str, Audience | None]:
        """The audiences with these ids (bulk-get, at most 100 ids a request).

        An id maps to its Audience, or to None when Platform does not know it (its entry in
        `results` carries a 404, or the whole answer is the 404 for none of them). An id
        Platform could not answer for now (another error, or not mentioned) is left out: the
        caller shows it as it is and asks again later.
        """
        wanted = list(dict.fromkeys(audience_id for audience_id in ids if audience_id))
        answered: dict[str, Audience | None] = {}
        url = self._api_url + sansio.AUDIENCES_BULK_PATH
        async with self._within(deadline) as budget:
            for start in range(0, len(wanted), _BULK_CHUNK):
                chunk = wanted[start : start + _BULK_CHUNK]
                body = {"ids": [{"id": audience_id} for audience_id in chunk]}
                try:
                    data = await self._request(budget, "POST", url, json=body, endpoint="audiences")
                except AudiencesNotFound:
                    answered.update((i, None) for i in chunk)
                    continue
                bulk = sansio.parse_audience_bulk(data)
                answered.update((i, None) for i in chunk if i in bulk.unknown)
                answered.update((i, bulk.found[i]) for i in chunk if i in bulk.found)
                unanswered = [i for i in chunk if i not in answered]
                if unanswered:
                    statuses = sorted({str(bulk.failed.get(i)) for i in unanswered})
                    logger.debug(
                        "Audience bulk-get left %d of %d ids unanswered (statuses %s)",
                        len(unanswered),
                        len(chunk),
                        ", ".join(statuses),
                    )
        return answered

    async def list_audiences(self, *, deadline: float) -> list[Audience]:
        """Every audience of the sandbox, all pages of GET /audiences (`start` is an offset)."""
        url = self._api_url + sansio.AUDIENCES_PATH
        audiences: dict[str, Audience] = {}
        offset = 0
        async with self._within(deadline) as budget:
            for _ in range(_MAX_AUDIENCE_PAGES):
                params = {"start": str(offset), "limit": str(_AUDIENCE_PAGE)}
                data = await self._request(budget, "GET", url, params=params, endpoint="audiences")
                page = sansio.parse_audience_page(data, start=offset)
                new = {a.id: a for a in page.audiences if a.id not in audiences}
                audiences.update(new)
                # A page that brings nothing new (a server repeating itself) would loop on.
                if not page.more or not new:
                    break
                offset += page.count
            else:
                logger.warning("Audience list cut off after %d pages", _MAX_AUDIENCE_PAGES)
        return list(audiences.values())

    async def namespace_names(self, *, deadline: float) -> dict[str, str]:
        """The sandbox's identity namespaces' names by lower-case code (`GET
        /idnamespace/identities`, standard and custom ones): `{"crmid": "CRM ID"}`."""
        url = self._api_url + sansio.NAMESPACES_PATH
        async with self._within(deadline) as budget:
            data = await self._request(budget, "GET", url, endpoint="namespaces")
        return sansio.parse_namespaces(data)

    async def aclose(self) -> None:
        """Close the HTTP client (shared with the token source)."""
        await self._http.aclose()

    async def _profile(
        self, budget: _Budget, ref: IdentityRef, fields: Sequence[str] | None, with_ca: bool
    ) -> ProfileEntity:
        params = {
            "schema.name": PROFILE_SCHEMA,
            "entityId": ref.value,
            "mergePolicyId": (await self._resolved_merge_policy(budget)).id,
        }
        if ref.namespace:
            # A profile's entity id (an XID) goes without a namespace (reference 2.2).
            params["entityIdNS"] = ref.namespace
        if with_ca:
            params["withCA"] = "true"
        if fields:
            # Platform wants the paths comma-separated with no spaces at all.
            params["fields"] = ",".join("".join(f.split()) for f in fields if f.strip())
        url = self._api_url + sansio.ENTITIES_PATH
        data = await self._request(
            budget, "GET", url, params=params, endpoint="profile", identity=ref
        )
        profile = sansio.parse_profile(data)
        if profile is None:
            raise sansio.profile_not_found(ref.namespace)
        return profile

    @contextlib.asynccontextmanager
    async def _within(self, deadline: float) -> AsyncIterator[_Budget]:
        budget = _Budget(deadline=deadline, seconds=deadline - time.monotonic())
        if budget.seconds <= 0:
            raise budget.exhausted()
        try:
            async with asyncio.timeout(budget.seconds):
                yield budget
        except TimeoutError:
            raise budget.exhausted() from None

    async def _request(
        self,
        budget: _Budget,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        endpoint: sansio.Endpoint,
        identity: IdentityRef | None = None,
        max_attempts: int = _MAX_ATTEMPTS,
    ) -> Any:
        """Send one Platform request, retrying what may pass (at most `max_attempts` tries in
        all); return its JSON or raise typed."""
        attempt = 0
        reauthorised = False
        while True:
            attempt += 1
            # The Slack request's id with this call's number (see bot.request_id.outbound_id).
            request_id = outbound_id()
            token: str | None = None
            problem: AepError
            try:
                budget.waiting_for = "ims"
                token = await self._tokens.token()
                budget.waiting_for = "platform"
                answer = await self._send(method, url, params, json, token, request_id, endpoint)
                return sansio.decipher_response(
                    answer.status,
                    answer.headers,
                    answer.body,
                    endpoint=endpoint,
                    namespace=identity.namespace if identity else None,
                    request_id=request_id,
                    redact=(identity.value,) if identity else (),
                )
            except CredentialsProblem as exc:
                if exc.status != 401 or token is None or reauthorised:
                    raise
                # The token may have been revoked or rotated: one retry with a fresh one.
                reauthorised = True
                attempt -= 1
                await self._tokens.invalidate(token)
                if self._metrics is not None:
                    self._metrics.aep_retry(endpoint)
                continue
            except Misconfigured as exc:
                # What to check goes to the log (the message names settings, never a customer);
                # the person is told only that the bot is misconfigured.
                path = httpx.URL(url).path
                logger.error("%s (request %s, path %s)", exc.message, request_id, path)
                raise
            except httpx.TimeoutException as exc:
                # The exception's text holds the URL, and the URL holds the identity: name the type.
                problem = AepTimedOut(
                    f"Adobe Experience Platform did not answer in time ({type(exc).__name__}). "
                    "Try again in a moment; if it keeps happening, check https://status.adobe.com.",
                    request_id=request_id,
                )
            except httpx.RequestError as exc:
                problem = AepUnreachable(
                    f"Could not reach Adobe Experience Platform ({type(exc).__name__}). Try again "
                    "in a moment; if it keeps happening, check AEP_API_URL and the network.",
                    request_id=request_id,
                )
            except (AepUnavailable, RateLimited) as exc:
                problem = exc
            budget.last_status = problem.status or budget.last_status
            pause = self._pause(problem, attempt)
            if attempt >= max_attempts or pause >= budget.remaining():
                raise problem
            await asyncio.sleep(pause)
            if self._metrics is not None:
                self._metrics.aep_retry(endpoint)

    async def _send(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        token: str,
        request_id: str,
        endpoint: sansio.Endpoint,
    ) -> bodies.Answer:
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": self._client_id,
            "x-gw-ims-org-id": self._org_id,
            "x-sandbox-name": self._sandbox,
            "x-request-id": request_id,
        }
        # Only the path is logged: the query string carries the identity being looked up.
        path = httpx.URL(url).path
        async with self._slots, self._measured(endpoint) as call:
            started = time.monotonic()
            outcome = "cancelled"
            try:
                request = self._http.build_request(
                    method, url, params=params, json=json, headers=headers
                )
                answer = await bodies.fetch(
                    self._http,
                    request,
                    limit=self._max_response_bytes,
                    source="Adobe Experience Platform",
                )
                outcome = str(answer.status)
                call.status = answer.status
                return answer
            except ResponseTooLarge as exc:
                call.status = exc.status
                outcome = f"{exc.status}, body past {self._max_response_bytes} bytes"
                raise
            except httpx.RequestError as exc:
                outcome = type(exc).__name__
                raise
            finally:
                logger.debug(
                    "AEP %s %s -> %s in %.0f ms (x-request-id %s)",
                    method,
                    path,
                    outcome,
                    (time.monotonic() - started) * 1000,
                    request_id,
                )

    @contextlib.asynccontextmanager
    async def _measured(self, endpoint: sansio.Endpoint) -> AsyncIterator[_Measured]:
        """Counts one request in the metrics, when there are any (in flight, status, time)."""
        call = _Measured()
        if self._metrics is None:
            yield call
            return
        with self._metrics.aep_request(endpoint, call):
            yield call

    @staticmethod
    def _pause(problem: AepError, attempt: int) -> float:
        if isinstance(problem, RateLimited) and problem.retry_after is not None:
            return problem.retry_after
        # Exponential backoff with full jitter, so retries from several lookups do not align.
        return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)))


class _Measured:
    """What one request's metrics need to know: its status (None while there is none)."""

    status: int | None = None


def _lowered_email(ref: IdentityRef) -> IdentityRef | None:
    """The lower-cased form of an Email typed with capitals (reference 5.2), else None."""
    lowered = IdentityRef(namespace=ref.namespace, value=ref.value.lower())
    if ref.namespace.lower() != "email" or lowered == ref:
        return None
    return lowered
