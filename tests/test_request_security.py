"""Requests that did not come from Slack, or came incomplete, as an attacker or a bad network would
send them: through the real HTTP server, Slack's Web API and response_url recorded on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from pydantic import SecretStr
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import ids
from bot.app import create_app
from bot.demo import payloads as slack_payloads
from bot.demo.slack import SlackRecorder
from bot.settings import load_settings
from bot.slack_urls import response_url_allowed
from tests.redis_support import CACHE_KEY, isolated_redis
from tests.support import SIGNING_SECRET, RunningBot, settle, start_bot

JANE = "jane.doe@example.com"
#: Slack gives up on an answer after 3 s; every answer here must come well inside that.
SLACK_WAITS_S = 2.5


class Trap:
    """A TCP server on 127.0.0.2 (loopback, but not the host of SLACK_API_URL) that counts
    connections: a response_url an attacker names, standing for an internal address."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.2", 0)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.2:{port}/hook"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    server = Trap()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def hostile_command(response_url: str) -> bytes:
    return slack_payloads.slash_command(
        text=JANE, user_id="U0MANAGER", channel_id="C0PRIVATE", response_url=response_url
    ).encode()


def hostile_mention() -> bytes:
    return slack_payloads.app_mention(
        text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE"
    ).encode()


FORM = slack_payloads.CONTENT_TYPE_FORM


def malformed_requests(trap_url: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every shape of request that must not pass: (body, headers)."""
    body = hostile_command(trap_url)
    now = str(int(time.time()))
    good = sign(body, now)

    def headers(
        timestamp: str | bytes | None, signature: str | None, content_type: str = FORM
    ) -> Any:
        found: dict[str, str | bytes] = {"Content-Type": content_type}
        if timestamp is not None:
            found["X-Slack-Request-Timestamp"] = timestamp
        if signature is not None:
            found["X-Slack-Signature"] = signature
        return found

    stale, ahead = str(int(time.time()) - 301), str(int(time.time()) + 301)
    float_ts = f"{now}.5"
    not_utf8 = b"payload=\xff\xfe" + body
    return {
        "no timestamp": (body, headers(None, good)),
        "empty timestamp": (body, headers("", good)),
        "word timestamp": (body, headers("abc", sign(body, "abc"))),
        "exponent timestamp": (body, headers("1e3", sign(body, "1e3"))),
        "huge timestamp": (body, headers("9" * 40, sign(body, "9" * 40))),
        "negative timestamp": (body, headers("-" + now, sign(body, "-" + now))),
        "float timestamp": (body, headers(float_ts, sign(body, float_ts))),
        "unicode digits timestamp": (body, headers("١٢٣".encode(), good)),
        "stale timestamp": (body, headers(stale, sign(body, stale))),
        "future timestamp": (body, headers(ahead, sign(body, ahead))),
        "no signature": (body, headers(now, None)),
        "non-hex signature": (body, headers(now, "v0=" + "zz" * 32)),
        "short signature": (body, headers(now, good[:-2])),
        "other version": (body, headers(now, "v1=" + good[3:])),
        "upper-case signature": (body, headers(now, good.upper().replace("V0=", "v0="))),
        "wrong secret": (body, headers(now, sign(body, now, secret="guessed"))),
        "empty body": (b"", headers(now, good)),
        "non-UTF-8 body, signed": (not_utf8, headers(now, sign(not_utf8, now))),
        "wrong content type, signed": (body, headers(now, good, content_type="text/plain")),
        "event with word timestamp": (hostile_mention(), headers("abc", "v0=00")),
    }


@pytest.fixture
def security_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def lines_at_info(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO]


def assert_one_short_security_line(caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    records = lines_at_info(caplog)
    assert [r.name for r in records] == ["bot.security"], [r.getMessage() for r in records]
    [record] = records
    line = record.getMessage()
    assert len(line) < 120 and record.exc_info is None
    assert JANE not in line and "U0MANAGER" not in line and "127.0.0.2" not in line
    assert body[:40].decode(errors="replace") not in line or not body


CASES = sorted(malformed_requests("http://127.0.0.2:1/hook"))


@pytest.mark.parametrize("case", CASES)
async def test_a_request_that_fails_verification_gets_401_and_nothing_else(
    bot: RunningBot, trap: Trap, security_log: pytest.LogCaptureFixture, case: str
) -> None:
    body, headers = malformed_requests(trap.url)[case]
    response = await bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    await settle(0.2)
    assert response.status_code == 401
    assert bot.slack.calls == []
    assert trap.connections == 0
    assert sum(bot.sim.stats.values()) == 0
    assert bot.audit() == []
    assert_one_short_security_line(security_log, body)


async def raw_exchange(bot: RunningBot, request: bytes, *, within: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes (a hung server fails the budget)."""
    host, port = bot.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.read()
    finally:
        writer.close()


async def test_a_huge_body_is_refused_without_being_read(
    bot: RunningBot, security_log: pytest.LogCaptureFixture
) -> None:
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: 50000000\r\n"
        f"X-Slack-Request-Timestamp: {int(time.time())}\r\nX-Slack-Signature: v0={'0' * 64}\r\n\r\n"
    ).encode()
    answer = await raw_exchange(bot, head + b"payload=")
    assert answer.startswith(b"HTTP/1.1 401")
    assert bot.slack.calls == []
    assert_one_short_security_line(security_log, b"")


async def test_two_hundred_garbage_requests_add_a_few_short_lines_of_log(
    bot: RunningBot, security_log: pytest.LogCaptureFixture
) -> None:
    headers = {"Content-Type": FORM, "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "x"}
    for _ in range(200):
        response = await bot.http.post(f"{bot.url}/slack/events", content=b"x", headers=headers)
        assert response.status_code == 401
    logged = "\n".join(r.getMessage() for r in lines_at_info(security_log))
    assert len(lines_at_info(security_log)) == 200
    assert len(logged) < 200 * 100 and "Traceback" not in security_log.text
    assert bot.slack.calls == []


async def test_a_signed_request_replayed_within_the_window_is_answered_once(
    bot: RunningBot, security_log: pytest.LogCaptureFixture
) -> None:
    body = slack_payloads.slash_command(
        text=JANE,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    stamp = int(time.time())
    first = await bot.send(body, timestamp=stamp)
    replay = await bot.send(body, timestamp=stamp)
    assert first.status_code == 200
    assert replay.status_code == 401
    await bot.slack.wait_for("response_url")
    await settle(0.3)
    assert len(bot.slack.calls_to("response_url")) == 1
    assert bot.sim.stats["profile"] == 1
    assert [r.getMessage() for r in security_log.records if r.name == "bot.security"] == [
        "refused a Slack request: replayed request (answered 401)"
    ]


async def test_a_replayed_copy_marked_as_a_slack_retry_gets_a_plain_200_and_nothing_done(
    bot: RunningBot,
) -> None:
    body = slack_payloads.app_mention(
        text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE"
    )
    stamp = int(time.time())
    await bot.send(body, timestamp=stamp)
    again = await bot.send(body, timestamp=stamp, headers={"X-Slack-Retry-Num": "1"})
    assert again.status_code == 200 and again.content == b""
    await bot.slack.wait_for("chat.postMessage")
    await settle(0.3)
    assert len(bot.slack.calls_to("chat.postMessage")) == 1


async def test_a_replay_sent_to_another_instance_is_refused_through_redis(
    bot: RunningBot, tmp_path: Path
) -> None:
    with isolated_redis() as redis:
        overrides = {
            "bot_cache_url": redis.url,
            "bot_cache_key": SecretStr(CACHE_KEY),
            "aep_org_id": redis.org,
        }
        one, one_runner = await start_bot(
            bot.sim, "http://127.0.0.1:9", bot.slack, tmp_path, **overrides
        )
        two, two_runner = await start_bot(
            bot.sim, "http://127.0.0.1:9", bot.slack, tmp_path, **overrides
        )
        try:
            body = slack_payloads.slash_command(
                text="help",
                user_id="U0MANAGER",
                channel_id="C0PRIVATE",
                response_url=bot.slack.response_url(),
            )
            stamp = int(time.time())
            first = await one.send(body, timestamp=stamp)
            replay = await two.send(body, timestamp=stamp)
            assert first.status_code == 200 and "customer" in first.json()["text"].lower()
            assert replay.status_code == 401
        finally:
            for running, runner in ((one, one_runner), (two, two_runner)):
                await running.http.aclose()
                await runner.cleanup()
                await running.services.aclose()


async def test_a_client_that_stops_sending_its_body_is_cut_off(
    sandbox: Any, slack: SlackRecorder, tmp_path: Path
) -> None:
    sim, aep_url = sandbox
    bot, runner = await start_bot(sim, aep_url, slack, tmp_path, bot_request_read_timeout=0.3)
    try:
        head = (
            "POST /slack/events HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: {FORM}\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        # Never sends the rest: the server must answer and close, not wait for ever.
        answer = await raw_exchange(bot, head + b"payload=%7B", within=5.0)
        assert answer.startswith(b"HTTP/1.1 408")
        assert slack.calls == []
    finally:
        await bot.http.aclose()
        await runner.cleanup()
        await bot.services.aclose()


# --- the error handler answers only verified requests, and only on Slack's hosts -------------


async def test_a_verified_request_failing_answers_only_on_a_slack_response_host(
    bot: RunningBot,
    trap: Trap,
    monkeypatch: pytest.MonkeyPatch,
    security_log: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.services.lookup, "lookup", broken)
    monkeypatch.setattr(bot.services.lookup, "lookup_soon", broken)
    body = slack_payloads.slash_command(
        text=JANE, user_id="U0MANAGER", channel_id="C0PRIVATE", response_url=trap.url
    )
    # A signed request whose response_url is not Slack's (only Slack can sign; belt and braces).
    response = await bot.send(body)
    assert response.status_code == 200
    for _ in range(200):
        if any("not on a Slack host" in r.getMessage() for r in security_log.records):
            break
        await asyncio.sleep(0.01)
    await settle(0.2)
    assert trap.connections == 0
    assert any("not on a Slack host" in r.getMessage() for r in security_log.records)


async def test_an_http_request_that_bypassed_the_gate_is_refused_by_the_app(
    bot: RunningBot,
) -> None:
    app = create_app(bot.settings, bot.services)
    body = slack_payloads.slash_command(
        text=JANE,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    headers = {
        k.lower(): v for k, v in slack_payloads.request_headers(body, secret=SIGNING_SECRET).items()
    }
    response = await app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    await settle(0.2)
    assert response.status == 401
    assert bot.slack.calls == []


async def test_socket_mode_requests_need_no_signature_and_still_get_error_replies(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    app = create_app(bot.settings, bot.services)
    form = slack_payloads.slash_command(
        text=JANE,
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        response_url=bot.slack.response_url(),
    )
    payload = {key: values[0] for key, values in parse_qs(form).items()}
    response = await app.async_dispatch(AsyncBoltRequest(body=payload, mode="socket_mode"))
    assert response.status == 200
    [card] = await bot.slack.wait_for("response_url")
    assert "Jane Doe" in json.dumps(card.payload)
    monkeypatch.setattr(bot.services.lookup, "lookup", broken)
    monkeypatch.setattr(bot.services.lookup, "lookup_soon", broken)
    payload["response_url"] = bot.slack.response_url()
    await app.async_dispatch(AsyncBoltRequest(body=payload, mode="socket_mode"))
    [_, failure] = await bot.slack.wait_for("response_url", count=2)
    assert "reference" in failure.payload["text"].lower()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/commands/T1/2/abc", True),
        ("https://hooks.slack.com:443/actions/T1/2/abc", True),
        ("https://HOOKS.SLACK.COM/commands/T1/2/abc", True),
        ("http://hooks.slack.com/commands/T1/2/abc", False),
        ("https://hooks.slack.com:8443/commands/T1/2/abc", False),
        ("https://hooks.slack.com.evil.example/commands", False),
        ("https://evil.example/hooks.slack.com", False),
        ("https://hooks.slack.com@evil.example/", False),
        ("https://user@hooks.slack.com/commands", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://127.0.0.1:6379/", False),
        ("http://[::1]:80/", False),
        ("https://hooks.slack.com:notaport/", False),
        ("hooks.slack.com/commands", False),
        ("", False),
    ],
)
def test_response_urls_are_allowed_only_on_slack_hosts(url: str, allowed: bool) -> None:
    settings = load_settings(_env_file=None, slack_api_url="https://slack.com/api/")
    assert response_url_allowed(url, settings) is allowed


def test_a_local_slack_stand_in_allows_response_urls_on_its_own_host_only() -> None:
    settings = load_settings(_env_file=None, slack_api_url="http://127.0.0.1:8888/api/")
    assert response_url_allowed("http://127.0.0.1:9999/response/abc", settings)
    assert response_url_allowed("https://hooks.slack.com/commands/T1/2/abc", settings)
    assert not response_url_allowed("http://127.0.0.2:8888/response/abc", settings)
    assert not response_url_allowed("http://localhost:8888/response/abc", settings)
    public = load_settings(_env_file=None, slack_api_url="http://10.0.0.5/api/")
    assert not response_url_allowed("http://10.0.0.5/response/abc", public)


# --- signed but incomplete: answered at once, in words where a path works ------------------


def form_without(body: str, field: str) -> str:
    fields = {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}
    fields.pop(field)
    return urlencode(fields)


def payload_without(body: str, field: str) -> str:
    payload = json.loads(parse_qs(body)["payload"][0])
    payload.pop(field)
    return urlencode({"payload": json.dumps(payload)})


async def send_in_time(bot: RunningBot, body: str) -> Any:
    async with asyncio.timeout(SLACK_WAITS_S):
        return await bot.send(body)


@pytest.mark.parametrize("missing", ["user_id", "response_url"])
async def test_a_command_missing_who_or_where_is_refused_in_the_ack(
    bot: RunningBot, missing: str
) -> None:
    body = form_without(
        slack_payloads.slash_command(
            text=JANE,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        ),
        missing,
    )
    response = await send_in_time(bot, body)
    assert response.status_code == 200
    assert "did not send everything" in response.json()["text"]
    await settle(0.3)
    assert bot.slack.calls_to("response_url") == []
    assert sum(bot.sim.stats.values()) == 0


async def test_help_without_a_response_url_is_still_answered(bot: RunningBot) -> None:
    body = form_without(
        slack_payloads.slash_command(
            text="help",
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        ),
        "response_url",
    )
    response = await send_in_time(bot, body)
    assert response.status_code == 200 and "/customer" in response.json()["text"]


async def test_a_shortcut_without_a_user_is_acked_and_refused_in_words(bot: RunningBot) -> None:
    body = payload_without(
        slack_payloads.message_shortcut(
            message_text=JANE,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        ),
        "user",
    )
    response = await send_in_time(bot, body)
    assert response.status_code == 200
    [notice] = await bot.slack.wait_for("response_url")
    assert "did not send everything" in notice.payload["text"]
    await settle(0.3)
    assert len(bot.slack.calls_to("response_url")) == 1
    assert sum(bot.sim.stats.values()) == 0


async def test_a_shortcut_without_a_response_url_is_refused_privately(bot: RunningBot) -> None:
    body = payload_without(
        slack_payloads.message_shortcut(
            message_text=JANE,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        ),
        "response_url",
    )
    response = await send_in_time(bot, body)
    assert response.status_code == 200
    [notice] = await bot.slack.wait_for("chat.postEphemeral")
    assert notice.payload["user"] == "U0MANAGER"
    assert "did not send everything" in notice.payload["text"]
    assert sum(bot.sim.stats.values()) == 0


async def test_a_button_click_without_a_user_is_acked_and_refused_in_words(
    bot: RunningBot,
) -> None:
    body = payload_without(
        slack_payloads.block_action(
            action_id=ids.REFRESH,
            value="token",
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=bot.slack.response_url(),
        ),
        "user",
    )
    response = await send_in_time(bot, body)
    assert response.status_code == 200
    [notice] = await bot.slack.wait_for("response_url")
    assert "did not send everything" in notice.payload["text"]
    await settle(0.3)
    assert len(bot.slack.calls_to("response_url")) == 1


async def test_an_event_without_event_id_is_answered_once_however_often_it_comes(
    bot: RunningBot,
) -> None:
    envelope = json.loads(
        slack_payloads.app_mention(
            text=f"<@U0BOT> {JANE}", user_id="U0MANAGER", channel_id="C0PRIVATE"
        )
    )
    envelope.pop("event_id")
    body = json.dumps(envelope)
    stamp = int(time.time())
    for attempt in range(3):  # Slack's retries, each a new delivery with its own timestamp
        async with asyncio.timeout(SLACK_WAITS_S):
            response = await bot.send(body, timestamp=stamp + attempt)
        assert response.status_code == 200
    await bot.slack.wait_for("chat.postMessage")
    await settle(0.3)
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
