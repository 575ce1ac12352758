"""AEP answers the bot must bound: absurd Retry-After, JSON nested past the recursion limit,
bodies without end, and failures that must each be told in their own words (issue 8, items 4
and 6). Played as the failing service would: the demo sandbox over loopback HTTP or in process,
respx where a single odd answer is enough."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from aep_support import AUDIENCES_URL, ENTITIES_URL, within
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.aep import sansio
from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient, create_http_client
from bot.aep.errors import (
    MalformedResponse,
    RateLimited,
    ResponseTooLarge,
)
from bot.cache import CacheKeys, DataCache
from bot.demo.dataset import (
    DEFAULT_MERGE_POLICY_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_ORG_ID,
    DEMO_SANDBOX,
)
from bot.demo.server import start_server
from bot.demo.simulator import FLOOD_CHUNK, AepSimulator
from bot.demo.slack import SlackRecorder
from bot.demo.transport import in_process_transport
from bot.identity import IdentityRef
from bot.layout import load_layout
from bot.logs import QUIET_LIBRARIES
from bot.lookup import CustomerLookup
from bot.settings import DEFAULT_AEP_SCOPES
from tests.support import command, start_bot

JANE = IdentityRef("Email", "jane.doe@example.com")
LIMIT = 256 * 1024
IN_2099 = format_datetime(datetime(2099, 1, 1, tzinfo=UTC), usegmt=True)


def _connect(url: str, transport: httpx.AsyncBaseTransport | None = None) -> AepClient:
    """The real client (IMS and Platform) against the demo sandbox at `url`, bodies capped."""
    http = create_http_client(transport=transport)
    tokens = ImsTokenSource(
        http=http,
        ims_url=url,
        client_id=DEMO_CLIENT_ID,
        client_secret=SecretStr(DEMO_CLIENT_SECRET),
        scopes=DEFAULT_AEP_SCOPES,
        max_response_bytes=LIMIT,
    )
    return AepClient(
        http=http,
        tokens=tokens,
        api_url=url,
        org_id=DEMO_ORG_ID,
        client_id=DEMO_CLIENT_ID,
        sandbox=DEMO_SANDBOX,
        merge_policy_id=DEFAULT_MERGE_POLICY_ID,
        max_response_bytes=LIMIT,
    )


@pytest.fixture
async def in_process() -> AsyncIterator[tuple[AepSimulator, AepClient]]:
    """The sandbox in process: a flood goes exactly as far as the client reads it."""
    sim = AepSimulator()
    aep = _connect("http://demo.invalid", in_process_transport(sim, drip_interval=0))
    try:
        yield sim, aep
    finally:
        await aep.aclose()


@pytest.fixture
async def over_http() -> AsyncIterator[tuple[AepSimulator, AepClient]]:
    """The sandbox over real loopback HTTP."""
    sim = AepSimulator()
    server = await start_server(sim, port=0)
    aep = _connect(server.url)
    try:
        yield sim, aep
    finally:
        await aep.aclose()
        await server.close()


async def _until(ready: Callable[[], bool]) -> None:
    """Poll `ready` until it holds; a guard of 5 s turns a hang into a failure."""
    for _ in range(500):
        if ready():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def _profile_route(router: respx.MockRouter) -> respx.Route:
    return router.get(ENTITIES_URL, params={"schema.name": "_xdm.context.profile"})


# --- Retry-After that no one can wait for ---------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Retry-After": IN_2099}, {"status": 429}),
        ({"Retry-After": "100000000"}, {"status": 429}),
        ({}, [{"message": "Too many requests", "retryAfterMs": 1e11, "statusCode": "429"}]),
        ({}, [{"message": "Too many requests", "retryAfterMs": "1e11", "statusCode": "429"}]),
    ],
    ids=["http-date-2099", "1e8-seconds", "retryAfterMs-1e11", "retryAfterMs-1e11-text"],
)
async def test_an_absurd_retry_after_gives_up_at_once_and_says_a_few_minutes(
    router: respx.MockRouter, aep: AepClient, headers: dict[str, str], body: Any
) -> None:
    route = _profile_route(router).mock(
        return_value=httpx.Response(429, headers=headers, json=body)
    )
    with pytest.raises(RateLimited) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    assert route.call_count == 1  # no wait of that length fits: not slept, not retried
    assert caught.value.retry_after == sansio.RETRY_AFTER_CAP
    assert caught.value.seconds_to_tell() is None
    assert "a few minutes" in caught.value.message
    assert "100000000" not in caught.value.message


@pytest.mark.parametrize("value", ["NaN", "nan", "-Infinity"])
async def test_a_nan_retry_after_ms_is_no_advice_and_the_usual_backoff_applies(
    router: respx.MockRouter, aep: AepClient, value: str
) -> None:
    body = b'[{"message": "Too many requests", "retryAfterMs": ' + value.encode() + b"}]"
    if value == "nan":
        body = b'[{"message": "Too many requests", "retryAfterMs": "nan"}]'
    route = _profile_route(router).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "NaN"}, content=body)
    )
    with pytest.raises(RateLimited) as caught:
        await aep.get_profile(JANE, deadline=within(2))
    assert route.call_count == 4
    assert caught.value.retry_after is None
    assert caught.value.seconds_to_tell() is None


def test_a_small_retry_after_is_told_in_seconds() -> None:
    assert RateLimited("x", retry_after=2.4).seconds_to_tell() == 2
    assert RateLimited("x", retry_after=0.2).seconds_to_tell() == 1
    assert RateLimited("x", retry_after=60).seconds_to_tell() == 60
    assert RateLimited("x", retry_after=61).seconds_to_tell() is None


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_any_retry_after_header_is_no_advice_or_a_bounded_wait(value: str) -> None:
    seconds = sansio.retry_after_header({"retry-after": value})
    assert seconds is None or 0 <= seconds <= sansio.RETRY_AFTER_CAP


@settings(max_examples=200)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31)))
def test_any_http_date_retry_after_is_a_bounded_wait(when: datetime) -> None:
    header = format_datetime(when.replace(tzinfo=UTC), usegmt=True)
    seconds = sansio.retry_after_header({"retry-after": header})
    assert seconds is not None and 0 <= seconds <= sansio.RETRY_AFTER_CAP


@settings(max_examples=200)
@given(st.one_of(st.floats(), st.integers(min_value=-(10**400), max_value=10**400), st.text()))
def test_any_retry_after_ms_is_no_advice_or_a_bounded_wait(value: Any) -> None:
    body = json.dumps([{"message": "Too many requests", "retryAfterMs": value}])
    seconds = sansio.parse_error_body(body).retry_after
    assert seconds is None or 0 <= seconds <= sansio.RETRY_AFTER_CAP


# --- JSON nested past any real document -----------------------------------------------------


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(min_value=sansio.MAX_JSON_DEPTH + 1, max_value=200_000),
    kind=st.sampled_from(["array", "object"]),
)
def test_deeply_nested_json_is_an_unreadable_answer_never_a_recursion_error(
    depth: int, kind: str
) -> None:
    body = _nested(depth, kind)
    for endpoint in ("profile", "events", "audiences"):
        with pytest.raises(MalformedResponse):
            sansio.decipher_response(200, {}, body, endpoint=endpoint)
    # Error bodies and IMS answers are read with the same care.
    assert sansio.parse_error_body(body) == sansio.ErrorBody()
    with pytest.raises(MalformedResponse):
        sansio.parse_token_response(200, body)


@given(depth=st.integers(min_value=1, max_value=sansio.MAX_JSON_DEPTH))
def test_nesting_up_to_the_limit_is_read(depth: int) -> None:
    assert sansio.read_json(_nested(depth, "array")) is not None


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "entity",
                    "entityId",
                    "lastModifiedAt",
                    "children",
                    "_page",
                    "next",
                    "_links",
                    "href",
                    "results",
                    "errors",
                    "id",
                    "name",
                    "identities",
                    "identityMap",
                    "namespace",
                    "code",
                    "timestamp",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_JSON)
def test_every_shape_reader_turns_an_unexpected_shape_into_an_unreadable_answer(
    data: Any,
) -> None:
    readers = (
        sansio.parse_profile,
        sansio.parse_event_page,
        sansio.parse_audience_page,
        sansio.parse_audience_bulk,
    )
    for read in readers:
        with contextlib.suppress(MalformedResponse):
            read(data)


async def test_a_deeply_nested_profile_is_reported_as_unreadable(
    in_process: tuple[AepSimulator, AepClient],
) -> None:
    sim, aep = in_process
    sim.faults.add("deep", endpoint="profile")
    with pytest.raises(MalformedResponse) as caught:
        await aep.get_profile(JANE, deadline=within(5))
    assert "cannot read" in caught.value.message
    assert sim.stats["profile"] == 1  # an unreadable answer is not asked for again


async def test_a_deeply_nested_ims_answer_is_reported_as_unreadable(
    in_process: tuple[AepSimulator, AepClient],
) -> None:
    sim, aep = in_process
    sim.faults.add("deep", endpoint="token")
    with pytest.raises(MalformedResponse):
        await aep.get_profile(JANE, deadline=within(5))


# --- bodies without end ---------------------------------------------------------------------


async def test_an_endless_answer_is_cut_off_at_the_limit_and_memory_stays_bounded(
    in_process: tuple[AepSimulator, AepClient],
) -> None:
    sim, aep = in_process
    await aep.get_profile(JANE, deadline=within(5))  # the token, so only the flood is measured
    sim.faults.add("flood", endpoint="events", flood_bytes=64 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as caught:
            await aep.get_events(JANE, limit=10, deadline=within(5))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Read one piece past the limit, then stopped: the other 63.7 MB were never asked for.
    assert sim.flood_sent <= LIMIT + FLOOD_CHUNK
    assert peak < 8 * LIMIT
    assert "too large" in caught.value.message
    assert caught.value.request_id is not None
    assert sim.stats["events"] == 1  # a body that is too large is not asked for again


async def test_an_endless_answer_over_http_drops_the_connection(
    over_http: tuple[AepSimulator, AepClient],
) -> None:
    sim, aep = over_http
    flood = 256 * 1024 * 1024
    sim.faults.add("flood", endpoint="profile", flood_bytes=flood)
    with pytest.raises(ResponseTooLarge):
        await aep.get_profile(JANE, deadline=within(5))
    # The server keeps writing only until it learns the client hung up: socket buffers' worth
    # (up to tens of MB on loopback), never the whole body.
    await _until(lambda: not sim.in_flight and sim.flood_sent > 0)
    await asyncio.sleep(0.2)
    assert sim.flood_sent < flood // 4
    # The pool is intact: the next lookup is answered.
    profile = await aep.get_profile(JANE, deadline=within(5))
    assert profile.entity_id


async def test_an_announced_huge_body_is_refused_before_a_byte_is_read(
    router: respx.MockRouter, aep: AepClient
) -> None:
    pulled = 0

    class Counted(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(8000):  # 500 MB, as announced
                pulled += 65536
                yield b" " * 65536

    _profile_route(router).mock(
        return_value=httpx.Response(
            200, headers={"Content-Length": str(500 * 1024 * 1024)}, stream=Counted()
        )
    )
    with pytest.raises(ResponseTooLarge):  # the default limit, 4 MiB
        await aep.get_profile(JANE, deadline=within(2))
    assert pulled == 0


async def test_an_ims_answer_without_end_is_cut_off_too(
    in_process: tuple[AepSimulator, AepClient],
) -> None:
    sim, aep = in_process
    sim.faults.add("flood", endpoint="token", flood_bytes=64 * 1024 * 1024)
    with pytest.raises(ResponseTooLarge) as caught:
        await aep.get_profile(JANE, deadline=within(5))
    assert "sign-in service (IMS)" in caught.value.message
    assert sim.flood_sent <= LIMIT + FLOOD_CHUNK


def test_the_limit_is_a_setting_with_a_sane_default() -> None:
    from bot.settings import load_settings

    assert load_settings(_env_file=None).aep_max_response_bytes == 4 * 1024 * 1024
    assert load_settings(_env_file=None, aep_max_response_bytes=65536).aep_max_response_bytes


# --- the background audience listing --------------------------------------------------------


async def test_the_audience_listing_survives_an_unreadable_answer_logs_it_and_retries(
    router: respx.MockRouter, aep: AepClient, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"children": [{"id": "aud-1", "name": "Gold members"}], "_page": {}}
    route = router.get(AUDIENCES_URL).mock(
        side_effect=[
            httpx.Response(200, content=_nested(100_000, "array")),
            httpx.Response(200, content=_nested(100_000, "object")),
            httpx.Response(200, json=good),
        ]
    )
    cache = DataCache.from_url("memory://")
    lookup = CustomerLookup(
        client=aep,
        cache=cache,
        keys=CacheKeys(org="org@AdobeOrg", sandbox="prod", merge_policy=None),
        layout=load_layout(),
        listing_backoff=0.01,
    )
    warming = asyncio.create_task(lookup.warm())
    try:
        await _until(lambda: route.call_count == 3 and not lookup.audiences._listing_failures)
        assert not warming.done()  # alive, and it read the list on the third try
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)
        await cache.aclose()
    failures = [r.getMessage() for r in caplog.records if "audience list could not" in r.msg]
    assert len(failures) == 2
    assert "MalformedResponse" in failures[0]
    assert "failure 2 in a row" in failures[1]
    assert any("was read after 2 failures" in r.getMessage() for r in caplog.records)


async def test_the_audience_listing_survives_an_unexpected_error_and_names_only_its_type(
    router: respx.MockRouter, aep: AepClient, caplog: pytest.LogCaptureFixture
) -> None:
    router.get(AUDIENCES_URL).mock(
        return_value=httpx.Response(200, json={"children": [], "_page": {}})
    )
    cache = DataCache.from_url("memory://")
    real_exclusive = cache.exclusive
    calls = 0

    async def broken_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("jane.doe@example.com is in this text")
        return await real_exclusive(*args, **kwargs)

    cache.exclusive = broken_once  # type: ignore[method-assign]
    lookup = CustomerLookup(
        client=aep,
        cache=cache,
        keys=CacheKeys(org="org@AdobeOrg", sandbox="prod", merge_policy=None),
        layout=load_layout(),
        listing_backoff=0.01,
    )
    warming = asyncio.create_task(lookup.warm())
    try:
        await _until(lambda: calls == 2 and not lookup.audiences._listing_failures)
        assert not warming.done()
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)
        await cache.aclose()
    [failure] = [r for r in caplog.records if "audience list could not" in r.msg]
    assert failure.levelno == logging.ERROR
    assert "RuntimeError" in failure.getMessage()
    assert "jane.doe" not in failure.getMessage() and failure.exc_info is None


# --- each failure in its own words, end to end through a signed /customer -------------------


@pytest.fixture
def library_log_levels() -> Iterator[None]:
    """Starting the app holds chatty libraries' loggers above DEBUG for the whole process;
    put them back, so that later tests see the log lines they expect."""
    saved = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


async def _answer_to(
    sandbox: tuple[AepSimulator, str],
    slack: SlackRecorder,
    tmp_path: Path,
    faults: list[dict[str, Any]],
    **overrides: Any,
) -> str:
    sim, url = sandbox
    for fault in faults:
        sim.faults.add(**fault)
    bot, runner = await start_bot(sim, url, slack, tmp_path, **overrides)
    try:
        response = await bot.send(command(bot, JANE.value))
        assert response.status_code == 200
        # Well inside the 8 s deadline: a fast failure is told at once, not waited out.
        [answer] = await bot.slack.wait_for("response_url", timeout=5)
        text: str = answer.payload["text"]
        return text
    finally:
        await bot.http.aclose()
        await runner.cleanup()
        await bot.services.aclose()


@pytest.mark.parametrize(
    ("faults", "overrides", "said", "not_said"),
    [
        pytest.param(
            [{"kind": "500", "endpoint": "profile", "count": 50}],
            {},
            "answered with a server error (HTTP 500)",
            "did not answer",
            id="fast-5xx",
        ),
        pytest.param(
            [{"kind": "hang", "endpoint": "profile", "count": 50}],
            {"bot_lookup_deadline": 1.0},
            "did not answer within 1 second",
            "server error",
            id="timeout",
        ),
        pytest.param(
            [{"kind": "500", "endpoint": "token", "count": 50}],
            {},
            "sign-in service (IMS) did not let the bot in",
            "did not answer within",
            id="ims-5xx",
        ),
        pytest.param(
            [{"kind": "hang", "endpoint": "token", "count": 50}],
            {"bot_lookup_deadline": 1.0},
            "sign-in service (IMS) did not let the bot in",
            "Adobe Experience Platform did not answer",
            id="ims-timeout",
        ),
        pytest.param(
            [{"kind": "429", "endpoint": "profile", "count": 50, "retry_after_ms": 10**11}],
            {},
            "Try again in a few minutes.",
            "100000000",
            id="429-absurd-wait",
        ),
        pytest.param(
            [{"kind": "deep", "endpoint": "profile"}],
            {},
            "sent an answer the bot could not read",
            "went wrong",
            id="deep-json",
        ),
        pytest.param(
            [{"kind": "flood", "endpoint": "profile", "flood_bytes": 64 * 1024 * 1024}],
            {"aep_max_response_bytes": LIMIT},
            "answer was too large for the bot to read",
            "went wrong",
            id="endless-body",
        ),
    ],
)
@pytest.mark.usefixtures("library_log_levels")
async def test_the_person_is_told_what_happened_in_its_own_words(
    sandbox: tuple[AepSimulator, str],
    slack: SlackRecorder,
    tmp_path: Path,
    faults: list[dict[str, Any]],
    overrides: dict[str, Any],
    said: str,
    not_said: str,
) -> None:
    text = await _answer_to(sandbox, slack, tmp_path, faults, **overrides)
    assert said in text
    assert not_said not in text


@pytest.mark.usefixtures("library_log_levels")
async def test_an_unreadable_answer_is_audited_as_malformed_not_as_an_error(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, url = sandbox
    sim.faults.add("flood", endpoint="profile", flood_bytes=64 * 1024 * 1024)
    bot, runner = await start_bot(sim, url, slack, tmp_path, aep_max_response_bytes=LIMIT)
    try:
        await bot.send(command(bot, JANE.value))
        await bot.slack.wait_for("response_url", timeout=5)
        [record] = [r for r in bot.audit() if r["action"] == "lookup"]
        assert record["outcome"] == "malformed"
    finally:
        await bot.http.aclose()
        await runner.cleanup()
        await bot.services.aclose()
