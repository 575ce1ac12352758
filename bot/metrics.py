"""Prometheus metrics of one bot (one registry per Services): label values from small fixed sets.

No label ever holds a user, channel, team, identity or any value from a payload: each value is
checked against its set here, and anything else is counted as "other". Counts the cache and the
lookup already keep (their `stats`) are read at scrape time rather than counted twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bot import request_id
from bot.aep.errors import ErrorKind
from bot.aep.sansio import Endpoint
from bot.identity import RefusalReason
from bot.vocabulary import AuditAction, AuditSurface, OutcomeWord

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

OTHER = "other"

#: Latency buckets from 10 ms to 10 s (Slack's ack limit is 3 s, the lookup deadline 8 s).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

AUDIT_SURFACES: tuple[str, ...] = get_args(AuditSurface)
AUDIT_ACTIONS: tuple[str, ...] = get_args(AuditAction)
#: An audit outcome as a label: its word or error kind, or the family of a refusal or failed post
#: (a post's Slack error code is not a fixed set; the audit record keeps it).
OUTCOMES: tuple[str, ...] = (
    *get_args(OutcomeWord),
    *get_args(ErrorKind),
    "no_grants",
    "identity_refused",
    "post_failed",
)
REFUSAL_REASONS: tuple[str, ...] = (
    "no_grants",
    "channel_refused",
    "share_not_allowed",
    "events_not_granted",
    *(f"identity_{reason}" for reason in get_args(RefusalReason)),
)
AEP_ENDPOINTS: tuple[str, ...] = (*get_args(Endpoint), "token")
#: `error`: no answer (timeout, connection); `cancelled`: the caller stopped waiting.
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error", "cancelled")
#: The Web API methods the bot calls (Bolt's authorization calls auth.test).
SLACK_METHODS = (
    "auth.test",
    "chat.postEphemeral",
    "chat.postMessage",
    "chat.unfurl",
    "chat.update",
    "conversations.info",
    "conversations.members",
    "conversations.open",
    "entity.presentDetails",
    "usergroups.list",
    "usergroups.users.list",
    "users.info",
    "views.open",
    "views.publish",
    "views.update",
)
#: The Slack error codes told apart; any other code counts as "other".
SLACK_ERRORS = (
    "ok",
    "ratelimited",
    "no_answer",
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "restricted_action",
    "msg_too_long",
    "msg_blocks_too_long",
    "invalid_blocks",
    "user_not_found",
    "missing_scope",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "expired_trigger_id",
    "slack_error",
)


def one_of(value: object, allowed: Iterable[str]) -> str:
    """`value` when it is in `allowed`, else "other": the one gate every label value passes."""
    return value if isinstance(value, str) and value in allowed else OTHER


def outcome_label(outcome: object) -> str:
    """An audit outcome as a label: `no_grants:lookup` -> `no_grants`."""
    return one_of(str(outcome).split(":", 1)[0], OUTCOMES)


def refusal_label(outcome: object) -> str:
    """A refusal's reason kind: `identity_refused:mixed_script` -> `identity_mixed_script`."""
    text = str(outcome)
    family, _, detail = text.partition(":")
    if family == "identity_refused":
        return one_of(f"identity_{detail}", REFUSAL_REASONS)
    return one_of(family, REFUSAL_REASONS)


def status_class(status: int | None) -> str:
    """`2xx` … `5xx` for an HTTP status, `error` when there was no answer."""
    if status is None or not 200 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


class Metrics:
    """Every metric of one bot, on its own registry (tests and several apps in one process do
    not collide). Methods take plain values and map them onto the fixed label sets."""

    def __init__(self, *, version: str = "", mode: str = "", demo: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build = Info("bot_build", "The bot's version, Slack mode and demo flag.", registry=r)
        self.build.info({"version": version, "mode": mode, "demo": str(demo).lower()})
        self.lookups = Counter(
            "bot_lookups",
            "Audited requests (lookups, refreshes, details, shares, refusals) by surface and "
            "outcome.",
            ["surface", "outcome"],
            registry=r,
        )
        self.refusals = Counter(
            "bot_permission_refusals", "Refusals by reason.", ["reason"], registry=r
        )
        self.ack_seconds = Histogram(
            "bot_ack_seconds",
            "From a Slack request's arrival to the bot's acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.card_seconds = Histogram(
            "bot_time_to_card_seconds",
            "From a Slack request's arrival to its card (private or shared), by surface.",
            ["surface"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.aep_requests = Counter(
            "bot_aep_requests",
            "HTTP requests to AEP and IMS by endpoint and status class.",
            ["endpoint", "status_class"],
            registry=r,
        )
        self.aep_seconds = Histogram(
            "bot_aep_request_seconds",
            "Duration of one HTTP request to AEP or IMS, body included.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.aep_retries = Counter(
            "bot_aep_retries", "AEP requests sent again after a failure.", ["endpoint"], registry=r
        )
        self.aep_throttled = Counter(
            "bot_aep_throttled", "AEP answers 429 (rate-limited).", ["endpoint"], registry=r
        )
        self.aep_in_flight = Gauge("bot_aep_in_flight", "AEP requests on the wire now.", registry=r)
        self.ims_refreshes = Counter(
            "bot_ims_token_refreshes", "Access tokens asked of Adobe IMS.", registry=r
        )
        self.ims_failures = Counter(
            "bot_ims_token_failures", "IMS token requests that gave no token.", registry=r
        )
        self.slack_calls = Counter(
            "bot_slack_api_calls",
            "Slack Web API calls by method and error (`ok` when Slack took it).",
            ["method", "error"],
            registry=r,
        )
        self.audit_written = Counter(
            "bot_audit_records_written", "Audit records made durable.", registry=r
        )
        self.audit_failed = Counter(
            "bot_audit_records_failed", "Audit records that could not be written.", registry=r
        )
        self._stats = _StatsCollector()
        r.register(self._stats)

    # -- reading counts kept elsewhere -----------------------------------------------------------

    def read_stats(
        self, *, lookup: Callable[[], dict[str, int]], cache: Callable[[], dict[str, int]]
    ) -> None:
        """Where the cache counts come from: the lookup's and the cache's `stats` counters."""
        self._stats.lookup, self._stats.cache = lookup, cache

    # -- events ----------------------------------------------------------------------------------

    def audited(self, *, action: str, surface: str, outcome: object) -> None:
        """One audit record written: count the request, its refusal, and its time to card."""
        self.audit_written.inc()
        label = outcome_label(outcome)
        self.lookups.labels(one_of(surface, AUDIT_SURFACES), label).inc()
        if action == "refusal" or label in ("channel_refused", "share_not_allowed"):
            self.refusals.labels(refusal_label(outcome)).inc()
        scope = request_id.current()
        if scope is not None and label in ("shown", "posted"):
            self.card_seconds.labels(one_of(surface, AUDIT_SURFACES)).observe(
                time.monotonic() - scope.started
            )

    def acked(self, seconds: float) -> None:
        self.ack_seconds.observe(seconds)

    @contextmanager
    def aep_request(self, endpoint: str, call: Answered) -> Iterator[None]:
        """Around one HTTP request to AEP or IMS: in flight while it runs, then its status class
        (`call.status` once the block ends, None when there was no answer) and duration."""
        label = one_of(endpoint, AEP_ENDPOINTS)
        started = time.monotonic()
        answered = "error"
        self.aep_in_flight.inc()
        try:
            yield
        except asyncio.CancelledError:
            # The lookup no longer needed it (a sibling request failed first): not AEP's error.
            answered = "cancelled"
            raise
        finally:
            self.aep_in_flight.dec()
            self.aep_seconds.labels(label).observe(time.monotonic() - started)
            if call.status is not None:
                answered = status_class(call.status)
            self.aep_requests.labels(label, answered).inc()
            if call.status == 429:
                self.aep_throttled.labels(label).inc()

    def aep_retry(self, endpoint: str) -> None:
        self.aep_retries.labels(one_of(endpoint, AEP_ENDPOINTS)).inc()

    def slack_call(self, method: str, error: str) -> None:
        self.slack_calls.labels(one_of(method, SLACK_METHODS), one_of(error, SLACK_ERRORS)).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class Answered(Protocol):
    """One outbound request as its metrics see it: the HTTP status, once there is one."""

    status: int | None


class _StatsCollector(Collector):
    """The cache counts: lookups answered from the cache, fetched, joined, and Redis errors."""

    def __init__(self) -> None:
        self.lookup: Callable[[], dict[str, int]] = dict
        self.cache: Callable[[], dict[str, int]] = dict

    def collect(self) -> Iterator[Metric]:
        lookup, cache = self.lookup(), self.cache()
        yield _counter("bot_cache_hits", "Lookups answered from the cache.", lookup, "cache_hit")
        yield _counter("bot_cache_misses", "Lookups that had to ask AEP.", lookup, "cache_miss")
        yield _counter(
            "bot_cache_coalesced",
            "Lookups that waited for the same lookup already under way (here or on another "
            "instance) instead of asking AEP.",
            lookup,
            "coalesced",
        )
        yield _counter("bot_cache_redis_errors", "Redis operations that failed.", cache, "errors")

    def describe(self) -> Iterator[Metric]:
        return iter(())


def _counter(name: str, documentation: str, stats: dict[str, int], key: str) -> Metric:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], float(stats.get(key, 0)))
    return family
