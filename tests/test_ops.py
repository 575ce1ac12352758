"""Operations (issue 13): /metrics counts exactly what happened, with labels from fixed sets only;
/readyz says when the bot cannot serve; one request id runs from Slack to the log line, the
audit record and the AEP call; JSON log lines hold no personal data."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from bot import __main__ as entry
from bot import ids, metrics
from bot.demo import payloads as slack_payloads
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.logs import JsonLineFormatter, quiet_libraries
from bot.request_id import SURFACES, RequestContextFilter
from bot.settings import load_settings
from tests.support import (
    JANE,
    RunningBot,
    button,
    command,
    personal_values,
    start_bot,
    submit_share,
)
from tests.test_serve import _free_port as free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(bot: RunningBot) -> Samples:
    response = await bot.http.get(f"{bot.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def answer(bot: RunningBot, text: str, user: str = "U0MANAGER") -> RecordedCall:
    """/customer `text` as `user`; the one answer on its response_url."""
    before = len(bot.slack.calls_to("response_url"))
    response = await bot.send(command(bot, text, user=user))
    assert response.status_code == 200
    calls = await bot.slack.wait_for("response_url", before + 1)
    return calls[before]


async def refused_in_the_ack(bot: RunningBot, text: str, user: str) -> None:
    """/customer `text` as `user`, who has no grants: the acknowledgement is the refusal."""
    response = await bot.send(command(bot, text, user=user))
    assert response.status_code == 200
    assert response.json()["text"].startswith("You don't have access to customer profiles.")


async def audited(bot: RunningBot, count: int) -> None:
    """Wait until `count` audit records were written and counted (a share is audited after its
    post; a record is on disk a moment before the coroutine that wrote it counts it)."""
    for _ in range(500):
        if len(bot.audit()) >= count:
            written = value(await scrape(bot), "bot_audit_records_written_total")
            if written >= count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(bot.audit())} audit records, expected {count}")


async def slash(bot: RunningBot, text: str, user: str = "U0MANAGER") -> dict[str, Any]:
    return (await answer(bot, text, user)).payload


async def test_a_scripted_session_is_counted_exactly(bot: RunningBot) -> None:
    # 1. a cold lookup: IMS token, profile, events and the audience names from AEP
    assert "Jane Doe" in json.dumps(await slash(bot, JANE))
    # 2. the same customer again: answered from the cache
    assert "Jane Doe" in json.dumps(await slash(bot, JANE))
    # 3. AEP refuses a graph over 50 identities (422): an AEP failure, in words
    failed = await slash(bot, "big.graph@example.com")
    assert "Jane Doe" not in json.dumps(failed)
    # 4. someone without a role: refused before any AEP call, in the ack
    await refused_in_the_ack(bot, JANE, user="U0NOBODY")
    # 5. a share: the private card (a cache hit), Share, the modal, the post in the thread
    card = await answer(bot, JANE)
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.SHARE,
            value=button(card, ids.SHARE)["value"],
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
            thread_ts="1700000000.000001",
        )
    )
    [opened] = await bot.slack.wait_for("views.open")
    await submit_share(bot, opened.payload["view"], "U0MANAGER", "escalation")
    await bot.slack.wait_for("chat.postMessage")
    await audited(bot, 6)

    m = await scrape(bot)
    # Every audited request, by surface and outcome.
    assert value(m, "bot_lookups_total", surface="private", outcome="shown") == 3
    assert value(m, "bot_lookups_total", surface="private", outcome="too_many_identities") == 1
    assert value(m, "bot_lookups_total", surface="private", outcome="no_grants") == 1
    assert value(m, "bot_lookups_total", surface="share", outcome="posted") == 1
    assert sum(v for (name, _), v in m.items() if name == "bot_lookups_total") == 6
    assert value(m, "bot_permission_refusals_total", reason="no_grants") == 1
    assert value(m, "bot_audit_records_written_total") == 6
    assert value(m, "bot_audit_records_failed_total") == 0
    # Seven Slack requests were acked (five commands, a click, a submission); four cards
    # reached someone (three private, one shared).
    assert value(m, "bot_ack_seconds_count") == 7
    assert value(m, "bot_time_to_card_seconds_count", surface="private") == 3
    assert value(m, "bot_time_to_card_seconds_count", surface="share") == 1
    # AEP: one token, and for the two cold lookups (Jane, big.graph) one profile request each;
    # events and audience names only for Jane (big.graph's profile fails first, its events
    # request may or may not have been answered: counted either way, never twice).
    assert value(m, "bot_ims_token_refreshes_total") == 1
    assert value(m, "bot_ims_token_failures_total") == 0
    assert value(m, "bot_aep_requests_total", endpoint="token", status_class="2xx") == 1
    assert value(m, "bot_aep_requests_total", endpoint="profile", status_class="2xx") == 1
    assert value(m, "bot_aep_requests_total", endpoint="profile", status_class="4xx") == 1
    assert value(m, "bot_aep_requests_total", endpoint="audiences", status_class="2xx") == 1
    aep_total = sum(v for (name, _), v in m.items() if name == "bot_aep_requests_total")
    assert aep_total == bot.sim.stats.total()
    assert value(m, "bot_aep_request_seconds_count", endpoint="profile") == 2
    assert value(m, "bot_aep_in_flight") == 0
    assert value(m, "bot_aep_retries_total", endpoint="profile") == 0
    # The cache: two cold lookups (1., 3.); three answered from it: 2., the share's private
    # card, and the share itself (it looks the customer up again); the refusal looks nothing up.
    assert value(m, "bot_cache_misses_total") == 2
    assert value(m, "bot_cache_hits_total") == 3
    assert value(m, "bot_cache_redis_errors_total") == 0
    # Slack: the share's checks and post, each by method.
    assert value(m, "bot_slack_api_calls_total", method="views.open", error="ok") == 1
    assert value(m, "bot_slack_api_calls_total", method="chat.postMessage", error="ok") == 1
    assert value(m, "bot_build_info", version="0.1.0", mode="http", demo="true") == 1


async def test_retries_and_429s_are_counted(bot: RunningBot) -> None:
    bot.sim.faults.add("429", endpoint="profile", retry_after_ms=10)
    assert "Jane Doe" in json.dumps(await slash(bot, JANE))
    m = await scrape(bot)
    assert value(m, "bot_aep_throttled_total", endpoint="profile") == 1
    assert value(m, "bot_aep_retries_total", endpoint="profile") == 1
    assert value(m, "bot_aep_requests_total", endpoint="profile", status_class="4xx") == 1
    assert value(m, "bot_aep_requests_total", endpoint="profile", status_class="2xx") == 1


#: The label values the bot may ever write, per label name.
ALLOWED = {
    "surface": set(metrics.AUDIT_SURFACES) | {metrics.OTHER},
    "outcome": set(metrics.OUTCOMES) | {metrics.OTHER},
    "reason": set(metrics.REFUSAL_REASONS) | {metrics.OTHER},
    "endpoint": set(metrics.AEP_ENDPOINTS) | {metrics.OTHER},
    "status_class": set(metrics.STATUS_CLASSES),
    "method": set(metrics.SLACK_METHODS) | {metrics.OTHER},
    "error": set(metrics.SLACK_ERRORS) | {metrics.OTHER},
    "le": None,  # histogram buckets
    "version": None,
    "mode": {"http", "socket", "console"},
    "demo": {"true", "false"},
}


def assert_fixed_labels(samples: Samples, secrets: set[str]) -> None:
    for name, labels in samples:
        for label, text in labels:
            assert label in ALLOWED, f"{name} has an unexpected label {label}"
            allowed = ALLOWED[label]
            assert allowed is None or text in allowed, f"{name}{{{label}={text!r}}}"
            assert not any(secret in text for secret in secrets if len(secret) > 3)


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=80
) | st.sampled_from(["jane.doe@example.com", "+14155550123", "email:x@y.z", "CRM-000123"])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=_TEXT,
    user=st.sampled_from(["U0MANAGER", "U0NOBODY", "U0GUEST", "UFUZZ<x>", "U" + "9" * 30]),
    channel=st.sampled_from(["C0PRIVATE", "C0PUBLIC", "C0SECRET", "D0MANAGER", "C<evil>"]),
    kind=st.sampled_from(["command", "mention", "action"]),
)
async def test_no_label_value_outside_the_fixed_sets_after_fuzzed_input(
    bot: RunningBot, text: str, user: str, channel: str, kind: str
) -> None:
    if kind == "command":
        body = slack_payloads.slash_command(
            text=text, user_id=user, channel_id=channel, response_url=bot.slack.response_url()
        )
    elif kind == "mention":
        body = slack_payloads.app_mention(text=f"<@U0BOT> {text}", user_id=user, channel_id=channel)
    else:
        body = slack_payloads.block_action(
            action_id=ids.VIEW_DETAILS,
            value=text,
            user_id=user,
            channel_id=channel,
            response_url=bot.slack.response_url(),
        )
    await bot.send(body)
    assert_fixed_labels(await scrape(bot), personal_values() | {text, user, channel})


def test_label_gates_map_anything_unknown_to_other() -> None:
    assert metrics.one_of("users.info", metrics.SLACK_METHODS) == "users.info"
    assert metrics.one_of("U0MANAGER", metrics.SLACK_METHODS) == "other"
    assert metrics.outcome_label("post_failed:not_in_channel") == "post_failed"
    assert metrics.outcome_label("jane.doe@example.com") == "other"
    assert metrics.refusal_label("identity_refused:mixed_script") == "identity_mixed_script"
    assert metrics.refusal_label("identity_refused:<script>") == "other"
    assert metrics.status_class(204) == "2xx" and metrics.status_class(None) == "error"


async def test_two_bots_in_one_process_keep_their_own_counts(
    bot: RunningBot, sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    (tmp_path / "other").mkdir()
    other, runner = await start_bot(sim, aep_url, slack, tmp_path / "other")
    try:
        await slash(bot, JANE)
        assert value(await scrape(bot), "bot_audit_records_written_total") == 1
        assert value(await scrape(other), "bot_audit_records_written_total") == 0
    finally:
        await other.http.aclose()
        await runner.cleanup()
        await other.services.aclose()


# --- one request id, from Slack to AEP -----------------------------------------------------


@contextmanager
def captured(log_format: str = "json") -> Iterator[io.StringIO]:
    """Every log record of the bot, formatted as BOT_LOG_FORMAT=json writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    quiet_libraries()
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_one_request_id_runs_from_slack_to_the_log_the_audit_and_aep(
    bot: RunningBot,
) -> None:
    with captured() as stream:
        assert "Jane Doe" in json.dumps(await slash(bot, JANE))
    [record] = bot.audit()
    request_id = record["request_id"]
    assert isinstance(request_id, str) and len(request_id) == 16
    # The log lines of that request carry it, and name the surface it came from.
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    own = [line for line in lines if line["request_id"] == request_id]
    assert own and all(line["surface"] == "command" for line in own)
    assert any(line["logger"] == "bot.aep.client" for line in own)
    # Every AEP call the lookup made is `<request id>-<n>`, n counting from 1.
    sent = [rid for kind, rid in bot.sim.request_ids if kind != "token"]
    assert sent and all(rid.startswith(f"{request_id}-") for rid in sent)
    assert sorted(int(rid.rsplit("-", 1)[1]) for rid in sent) == list(range(1, len(sent) + 1))
    # A second request has another id.
    await slash(bot, "sparse@example.com")
    assert bot.audit()[-1]["request_id"] not in (None, request_id)


async def test_the_error_reference_shown_is_the_request_id(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure nobody foresaw: the person is given a reference, and it is the id the log
    line of that failure carries."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.services.lookup, "lookup", broken)
    monkeypatch.setattr(bot.services.lookup, "lookup_soon", broken)
    with captured() as stream:
        await bot.send(command(bot, JANE))
        [answer] = await bot.slack.wait_for("response_url")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [failure] = [line for line in lines if line["message"].startswith("unhandled error")]
    request_id = failure["request_id"]
    assert request_id and f"reference `{request_id}`" in json.dumps(answer.payload)
    assert failure["surface"] == "command" and failure["level"] == "ERROR"


async def test_json_log_lines_hold_no_personal_data(bot: RunningBot) -> None:
    with captured() as stream:
        await slash(bot, JANE)
        await slash(bot, "hostile@example.com")
        await slash(bot, "+14155550123")
        await slash(bot, "big.graph@example.com")
        await refused_in_the_ack(bot, JANE, user="U0NOBODY")
    text = stream.getvalue()
    assert text
    for line in text.splitlines():
        entry = json.loads(line)
        assert set(entry) <= {
            "time",
            "level",
            "logger",
            "message",
            "request_id",
            "surface",
            "outcome",
            "exc_info",
            "stack_info",
        }
        assert entry["surface"] in (None, *SURFACES)
    leaked = [value for value in personal_values() if value in text]
    assert not leaked and "Bearer " not in text


# --- readiness ------------------------------------------------------------------------------


async def readyz(bot: RunningBot) -> tuple[int, dict[str, Any]]:
    response = await bot.http.get(f"{bot.url}/readyz")
    return response.status_code, response.json()


async def test_ready_when_everything_answers(bot: RunningBot) -> None:
    status, body = await readyz(bot)
    assert status == 200 and body["ready"] is True and body["not_ready"] == {}
    assert body["checks"]["audit"] == "writable" and body["checks"]["cache"] == "memory"
    health = await bot.http.get(f"{bot.url}/healthz")
    assert health.json() == {"ok": True, "demo": True}


async def test_not_ready_when_ims_is_down(bot: RunningBot) -> None:
    bot.sim.faults.add("503", endpoint="token", count=10)
    status, body = await readyz(bot)
    assert status == 503 and body["ready"] is False
    assert set(body["not_ready"]) == {"ims"}
    m = await scrape(bot)
    assert value(m, "bot_ims_token_failures_total") == 1
    assert value(m, "bot_aep_requests_total", endpoint="token", status_class="5xx") == 1
    # Anyone who can reach the port may probe /readyz: more probes are no more IMS requests
    # until the failure is IMS_RECHECK_SECONDS old.
    for _ in range(5):
        status, body = await readyz(bot)
        assert status == 503 and set(body["not_ready"]) == {"ims"}
    m = await scrape(bot)
    assert value(m, "bot_aep_requests_total", endpoint="token", status_class="5xx") == 1


async def test_not_ready_when_ims_refuses_the_credentials(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    running, runner = await start_bot(
        sim, aep_url, slack, tmp_path, aep_client_secret="not-the-secret"
    )
    try:
        status, body = await readyz(running)
        assert status == 503 and set(body["not_ready"]) == {"ims"}
        assert "not-the-secret" not in json.dumps(body)
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def test_not_ready_when_the_audit_file_cannot_be_written(bot: RunningBot) -> None:
    assert (await readyz(bot))[0] == 200
    # The disk fills up: the audit file's descriptor now refuses every write (ENOSPC).
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, bot.services.audit._fd)  # type: ignore[arg-type]
    os.close(full)
    await bot.send(command(bot, JANE))
    await bot.slack.wait_for("response_url")
    for _ in range(200):
        if bot.services.audit.last_failure is not None:
            break
        await asyncio.sleep(0.01)
    status, body = await readyz(bot)
    assert status == 503
    assert "could not be written" in body["not_ready"]["audit"]
    m = await scrape(bot)
    assert value(m, "bot_audit_records_failed_total") == 1
    assert value(m, "bot_audit_records_written_total") == 0


async def test_not_ready_when_the_audit_file_was_removed(bot: RunningBot) -> None:
    bot.audit_path.touch()
    bot.audit_path.unlink()
    status, body = await readyz(bot)
    assert status == 503 and "audit" in body["not_ready"]


@pytest.mark.redis
async def test_ready_but_degraded_when_redis_is_down(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    # Nothing listens on port 1: every Redis operation fails at once.
    running, runner = await start_bot(
        sim,
        aep_url,
        slack,
        tmp_path,
        bot_cache_url="redis://127.0.0.1:1/7",
        bot_cache_key="k" * 43,
    )
    try:
        status, body = await readyz(running)
        assert status == 200 and body["ready"] is True
        assert body["checks"]["cache"].startswith("degraded")
        assert "Jane Doe" in json.dumps(await slash(running, JANE))
        m = await scrape(running)
        assert value(m, "bot_cache_redis_errors_total") >= 1
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def test_not_ready_from_the_moment_a_stop_begins(bot: RunningBot) -> None:
    bot.services.readiness.stopping = True
    status, body = await readyz(bot)
    assert status == 503 and "stopping" in body["not_ready"]


async def test_not_ready_while_socket_mode_is_disconnected(bot: RunningBot) -> None:
    connected = False

    async def is_connected() -> bool:
        return connected

    bot.services.readiness.socket_connected = is_connected
    assert (await readyz(bot))[0] == 503
    connected = True
    status, body = await readyz(bot)
    assert status == 200 and body["checks"]["slack"] == "Socket Mode connected"


# --- the operators' port, and a stop, through `python -m bot run` ---------------------------


class ConnectedSocketModeHandler:
    """Stands in for Slack's Socket Mode connection; `client.is_connected()` as slack_sdk's."""

    def __init__(self, app: Any, app_token: str) -> None:
        self.client = self
        self.open = False

    async def is_connected(self) -> bool:
        return self.open

    async def connect_async(self) -> None:
        self.open = True

    async def close_async(self) -> None:
        self.open = False


async def wait_until_served(http: httpx.AsyncClient, url: str) -> httpx.Response:
    for _ in range(300):
        try:
            return await http.get(url)
        except httpx.TransportError:
            await asyncio.sleep(0.02)
    raise AssertionError(f"nothing answered at {url}")


async def test_socket_mode_serves_metrics_and_readiness_on_metrics_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        "slack_bolt.adapter.socket_mode.async_handler.AsyncSocketModeHandler",
        ConnectedSocketModeHandler,
    )
    port = free_port()
    settings = load_settings(
        _env_file=None,
        slack_app_token="xapp-test",
        slack_bot_token="xoxb-test",
        bot_audit_file=str(tmp_path / "audit.jsonl"),
        metrics_port=port,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(entry.serve(settings, stop=stop))
    async with httpx.AsyncClient(timeout=5) as http:
        scraped = await wait_until_served(http, f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200 and 'mode="socket"' in scraped.text
        for _ in range(100):
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
            if ready.status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert ready.json()["checks"]["slack"] == "Socket Mode connected"
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_readyz_turns_503_at_once_when_a_stop_begins_while_answers_finish(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot import services as services_module

    real_build = services_module.build_services

    def build(*args: Any, **kwargs: Any) -> Any:
        services = real_build(*args, **kwargs)
        services.simulator.faults.latency_ms = 400  # the in-process demo sandbox
        return services

    monkeypatch.setattr(services_module, "build_services", build)
    port = free_port()
    async with SlackRecorder() as slack, httpx.AsyncClient(timeout=5) as http:
        settings = load_settings(
            _env_file=None,
            slack_bot_token="xoxb-test",
            slack_signing_secret="secret",
            slack_api_url=slack.api_url,
            bot_audit_file=str(tmp_path / "audit.jsonl"),
            port=port,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(entry.serve(settings, stop=stop))
        url = f"http://127.0.0.1:{port}"
        await wait_until_served(http, f"{url}/healthz")
        body = slack_payloads.slash_command(
            text=JANE,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=slack.response_url(),
        )
        headers = {
            "Content-Type": slack_payloads.content_type(body),
            **slack_payloads.sign(body, secret="secret"),
        }
        assert (await http.post(f"{url}/slack/events", content=body, headers=headers)).is_success
        stop.set()
        await asyncio.sleep(0.05)
        ready = await http.get(f"{url}/readyz")
        assert ready.status_code == 503 and "stopping" in ready.json()["not_ready"]
        assert not slack.calls_to("response_url") or "Jane" not in json.dumps(
            slack.calls_to("response_url")[-1].payload
        )
        assert await asyncio.wait_for(task, 15) == 0
        [card] = [c for c in slack.calls_to("response_url") if "Jane Doe" in json.dumps(c.payload)]
        assert card
