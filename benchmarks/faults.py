"""`python -m benchmarks.faults`: the bot under AEP, Slack and Redis faults, then a bounded soak.

One `python -m bot` process in HTTP mode answers signed /customer commands. The demo sandbox
(`python -m bot demo-aep`) and the recording Slack server sit behind fault proxies
(`benchmarks.fault_proxy`), and the cache is a private `redis-server` on a free loopback port
that the run stops and starts. Every phase sends a fixed number of commands at a fixed rate and
measures what reached Slack; nothing is asserted. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import redis.asyncio as aioredis
import redis.exceptions

from benchmarks.fault_proxy import Fault, FaultProxy
from benchmarks.harness import (
    AUDIT_KEY,
    SIGNING_SECRET,
    WARMUP_TEXT,
    distinct_identities,
    machine,
    percentile,
)
from benchmarks.processes import (
    ManagedProcess,
    ProcessError,
    bot_environment,
    free_port,
    start_bot,
    start_sandbox,
)
from bot.demo import payloads as slack_payloads
from bot.demo.slack import RESPONSE_URL_METHOD, RecordedCall, SlackRecorder

CHANNEL_ID = "C0SUPPORT"
# Members of #support whom the demo policy lets look customers up; taken in turn, so that the
# bot asks Slack about people again and again (with BOT_CACHE_SLACK_TTL below).
USERS = ("U0AGENT", "U0BOTH", "U0MANAGER")
#: Slack gives up on an ack after 3 seconds.
ACK_LIMIT_S = 3.0
#: A command with no answer this long after it was sent counts as silence.
ANSWER_WAIT_S = 12.0
#: BOT_CACHE_SLACK_TTL of the bot: short, so Slack faults meet users.info calls in every phase.
SLACK_TTL_S = 2.0
#: After a phase, how long a fresh command may take to get a card (and, after Redis faults, to be
#: cached) before the run goes on regardless.
RECOVERY_WAIT_S = 30.0
SAMPLE_EVERY_S = 0.5
REPEAT_RATE = 0.3
SOAK_RATE = 20.0
AEP_LATENCY_MS = 100.0
_CARD_PREFIX = "Customer profile"
_AEP_PATHS = ("/data/",)  # Platform calls; the IMS token is fetched at start and cached
_SLACK_REPLY_METHODS = frozenset({"chat.postEphemeral", "chat.postMessage"})

RedisFault = Literal["up", "pause", "restart"]


# -- fault presets ------------------------------------------------------------------------------


def _json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


def aep_status(status: int) -> Fault:
    """AEP answering `status` to every Platform call, in the shape the sandbox uses."""
    body = {
        "message": "Service Unavailable",
        "cause": f"Status Code - {status} : Service Unavailable",
        "statusCode": str(status),
    }
    return Fault("status", _AEP_PATHS, status=status, body=_json_body(body))


def aep_rate_limited(retry_after_s: int) -> Fault:
    """AEP's documented 429: an array with `retryAfterMs`, plus a Retry-After header."""
    body = [
        {
            "message": "Too many requests",
            "cause": '{"Errors":["Request rate is large"]}',
            "retryAfterMs": str(retry_after_s * 1000),
            "statusCode": "429",
        }
    ]
    headers = (("Content-Type", "application/json"), ("Retry-After", str(retry_after_s)))
    return Fault("status", _AEP_PATHS, status=429, headers=headers, body=_json_body(body))


def slack_rate_limited(methods: Sequence[str], retry_after_s: int) -> Fault:
    """Slack's 429: `{"ok": false, "error": "ratelimited"}` with Retry-After in seconds."""
    headers = (("Content-Type", "application/json"), ("Retry-After", str(retry_after_s)))
    body = _json_body({"ok": False, "error": "ratelimited"})
    paths = tuple(f"/api/{method}" for method in methods)
    return Fault("status", paths, status=429, headers=headers, body=body)


@dataclass(frozen=True)
class Phase:
    """A bounded stretch of commands at a fixed rate, with the faults in force meanwhile."""

    key: str
    title: str
    rate: float
    seconds: float
    aep: tuple[Fault, ...] = ()
    slack: tuple[Fault, ...] = ()
    redis: RedisFault = "up"
    repeats: float = 0.0

    @property
    def commands(self) -> int:
        return max(1, round(self.rate * self.seconds))


def phases(short: bool) -> list[Phase]:
    """Every phase of a run, in order; `short` keeps each to a few seconds."""
    seconds = 2.0 if short else 10.0
    redis_seconds = 4.0 if short else 20.0
    soak_seconds = 15.0 if short else 120.0
    rate = 5.0
    slack_retry_s = 20
    aep_retry_s = 5
    return [
        Phase("baseline", "no faults", rate, seconds),
        Phase(
            "aep-slow",
            "AEP answers 2 s late",
            rate,
            seconds,
            aep=(Fault("delay", _AEP_PATHS, delay_s=2.0),),
        ),
        Phase("aep-5xx", "AEP answers 503", rate, seconds, aep=(aep_status(503),)),
        Phase(
            "aep-429",
            f"AEP answers 429, Retry-After {aep_retry_s} s",
            rate,
            seconds,
            aep=(aep_rate_limited(aep_retry_s),),
        ),
        Phase(
            "aep-hang",
            "AEP accepts and never answers",
            rate,
            seconds,
            aep=(Fault("hang", _AEP_PATHS),),
        ),
        Phase(
            "aep-reset",
            "AEP resets every connection",
            rate,
            seconds,
            aep=(Fault("reset", _AEP_PATHS),),
        ),
        Phase(
            "redis-pause",
            f"Redis SIGSTOPped for the middle {redis_seconds / 2:g} s, then SIGCONT",
            rate,
            redis_seconds,
            redis="pause",
        ),
        Phase(
            "redis-restart",
            f"Redis killed (SIGKILL) for the middle {redis_seconds / 2:g} s, then started empty",
            rate,
            redis_seconds,
            redis="restart",
        ),
        Phase(
            "slack-429",
            f"Slack users.info and chat.postEphemeral answer 429, Retry-After {slack_retry_s} s",
            rate,
            seconds,
            slack=(slack_rate_limited(("users.info", "chat.postEphemeral"), slack_retry_s),),
        ),
        Phase(
            "slack-reply-5xx",
            "Slack answers 503 to every response_url post",
            rate,
            seconds,
            slack=(Fault("status", ("/response/",), status=503, body=b"{}"),),
        ),
        Phase(
            "soak",
            f"soak: {SOAK_RATE:g} commands/s for {soak_seconds:g} s, "
            f"{REPEAT_RATE:.0%} repeated customers",
            SOAK_RATE,
            soak_seconds,
            repeats=REPEAT_RATE,
        ),
    ]


# -- the private Redis --------------------------------------------------------------------------


class PrivateRedis:
    """A `redis-server` of this run alone on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        # Never the system Redis, whatever the OS hands out.
        assert self.port != 6379
        self._process: asyncio.subprocess.Process | None = None
        self._paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ProcessError("redis-server is not installed (apt-get install redis-server)")
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self._paused = False
        client = aioredis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        give_up = time.monotonic() + 10
        try:
            while True:
                try:
                    await client.ping()
                    return
                except (redis.exceptions.RedisError, OSError):
                    if not self.running or time.monotonic() > give_up:
                        raise ProcessError(
                            f"redis-server on port {self.port} did not start; "
                            f"see {self.workdir / 'redis.log'}"
                        ) from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def keys(self) -> int:
        """How many keys the server holds (0 when it does not answer)."""
        client = aioredis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            return int(await client.dbsize())
        except (redis.exceptions.RedisError, OSError):
            return 0
        finally:
            await client.aclose()

    def pause(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._process is not None and self._paused and self.running:
            self._process.send_signal(signal.SIGCONT)
        self._paused = False

    async def kill(self) -> None:
        if self._process is not None and self.running:
            self._process.kill()
            await self._process.wait()
        self._paused = False

    async def stop(self) -> None:
        self.resume()
        if self._process is not None and self.running:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                await self.kill()


# -- commands and their answers -----------------------------------------------------------------


@dataclass
class Command:
    """One /customer command: who sent what, and when it was acked and answered (monotonic s)."""

    phase: str
    text: str
    user_id: str
    path: str
    sent: float
    acked: float | None = None
    ack_status: int | None = None
    ack_error: str | None = None
    answered: float | None = None
    via: str | None = None
    kind: str | None = None
    words: str | None = None
    # No longer waited for: an answer arriving now is counted as late, not as an answer.
    closed: bool = False

    @property
    def ack_ok(self) -> bool:
        return (
            self.ack_status == 200
            and self.acked is not None
            and self.acked - self.sent <= ACK_LIMIT_S
        )


class _Arrivals(list[RecordedCall]):
    """Stands in for SlackRecorder.calls: hands each call on, keeps none (long runs)."""

    def __init__(self, watch: AnswerWatch) -> None:
        super().__init__()
        self._watch = watch

    def append(self, call: RecordedCall) -> None:
        self._watch.arrived(call)


class AnswerWatch:
    """Matches what reaches the recording Slack server to the command it answers.

    A post to a command's own response URL answers that command. A chat.postEphemeral or
    chat.postMessage to a user in a channel answers the oldest unanswered command that user
    sent there before it (Web API posts carry no response URL to match on).
    """

    def __init__(self, recorder: SlackRecorder) -> None:
        self._by_path: dict[str, Command] = {}
        self._waiting: dict[tuple[str, str], deque[Command]] = {}
        self.unmatched: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        # Set on every arrival, for whoever waits for answers.
        self.news = asyncio.Event()
        recorder.calls = _Arrivals(self)

    def expect(self, command: Command) -> None:
        self._by_path[command.path] = command
        self._waiting.setdefault((command.user_id, CHANNEL_ID), deque()).append(command)

    def _oldest_open(self, key: tuple[str, str]) -> Command | None:
        queue = self._waiting.get(key, deque())
        while queue and (queue[0].answered is not None or queue[0].closed):
            queue.popleft()
        return queue[0] if queue else None

    def arrived(self, call: RecordedCall) -> None:
        self.news.set()
        if call.status != 200 or not call.response.get("ok", False):
            self.refused[call.method] += 1
            return
        command: Command | None = None
        if call.method == RESPONSE_URL_METHOD:
            command = self._by_path.get(call.path)
        elif call.method in _SLACK_REPLY_METHODS:
            key = (str(call.payload.get("user", "")), str(call.payload.get("channel", "")))
            command = self._oldest_open(key)
            if command is not None and command.sent > call.at:
                command = None
        else:
            return
        if (
            command is not None
            and command.answered is None
            and (command.closed or call.at - command.sent > ANSWER_WAIT_S)
        ):
            self.late[call.method] += 1
            return
        if command is None or command.answered is not None:
            self.unmatched[call.method] += 1
            return
        command.answered = call.at
        command.via = call.method
        text = str(call.payload.get("text") or "")
        command.kind = "card" if text.startswith(_CARD_PREFIX) else "words" if text else "empty"
        if command.kind == "words":
            command.words = message_template(text, command.text)

    def close(self, commands: Sequence[Command]) -> None:
        """Stop waiting for these commands; what still arrives for them is late."""
        for command in commands:
            command.closed = True
        for key in self._waiting:
            self._oldest_open(key)


_EMAIL = re.compile(r"[^\s<>|@]+@[^\s<>|@]+")
_NUMBER = re.compile(r"\+?\d[\d ()-]{4,}\d")
_REFERENCE = re.compile(r"\b[0-9a-fA-F]{6,}\b")


def message_template(text: str, typed: str) -> str:
    """The first line of a reply with the identity and anything like it blanked out.

    The bench reports what people were told without any customer's data: the typed identity,
    emails, long numbers and reference ids become placeholders.
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    if typed:
        line = re.sub(re.escape(typed), "<id>", line, flags=re.IGNORECASE)
    line = _EMAIL.sub("<email>", line)
    line = _NUMBER.sub("<n>", line)
    line = _REFERENCE.sub("<ref>", line)
    return line[:90]


# -- process samples ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    """The bot process at one moment: resident memory (MB) and open file descriptors."""

    at: float
    rss_mb: float
    fds: int


def sample_process(bot: ManagedProcess) -> ProcessSample | None:
    """VmRSS from /proc/<pid>/status and the entries of /proc/<pid>/fd; None if it is gone."""
    try:
        rss_kb = 0
        for line in Path(f"/proc/{bot.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{bot.pid}/fd"))
    except (OSError, ValueError):
        return None
    return ProcessSample(at=time.monotonic(), rss_mb=rss_kb / 1024, fds=fds)


@dataclass
class Resources:
    """RSS (MB) and open fds at a phase's start, at most during it, and after it."""

    rss_start: float = float("nan")
    rss_max: float = float("nan")
    rss_after: float = float("nan")
    fds_start: int = -1
    fds_max: int = -1
    fds_after: int = -1

    @classmethod
    def of(
        cls,
        start: ProcessSample | None,
        during: Sequence[ProcessSample],
        after: ProcessSample | None,
    ) -> Resources:
        every = [s for s in (start, *during, after) if s is not None]
        return cls(
            rss_start=start.rss_mb if start else float("nan"),
            rss_max=max((s.rss_mb for s in every), default=float("nan")),
            rss_after=after.rss_mb if after else float("nan"),
            fds_start=start.fds if start else -1,
            fds_max=max((s.fds for s in every), default=-1),
            fds_after=after.fds if after else -1,
        )


# -- results ------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """The figures of one phase."""

    key: str
    title: str
    rate: float
    seconds: float
    sent: int
    acked: int
    answered: int
    cards: int
    in_words: int
    silent: int
    ack_ms: dict[str, float]
    answer_ms: dict[str, float]
    resources: Resources
    # What people were told when it was not a card (placeholders for any data), with counts.
    told: dict[str, int] = field(default_factory=dict)
    ack_failures: dict[str, int] = field(default_factory=dict)
    answered_via: dict[str, int] = field(default_factory=dict)
    aep_proxy: dict[str, int] = field(default_factory=dict)
    slack_proxy: dict[str, int] = field(default_factory=dict)
    healthy_after_s: float | None = None
    logged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _spread(values_s: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
    }


def _ms(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _recovered(result: PhaseResult) -> str:
    if result.healthy_after_s is None:
        return "-"
    if result.healthy_after_s < 0:
        return f"not within {RECOVERY_WAIT_S:g}"
    return f"{result.healthy_after_s:.1f}"


def render(result: PhaseResult) -> str:
    """The readable lines of one phase."""
    r = result.resources
    recovered = _recovered(result) + (" s" if result.healthy_after_s is not None else "")
    lines = [
        f"== {result.key}: {result.title} ({result.sent} commands at {result.rate:g}/s)",
        f"   answered {result.answered}/{result.sent} (cards {result.cards}, in words "
        f"{result.in_words}), silence {result.silent}; acked within 3 s {result.acked}/"
        f"{result.sent}",
        f"   ack ms p50 {_ms(result.ack_ms['p50'])} p99 {_ms(result.ack_ms['p99'])} "
        f"max {_ms(result.ack_ms['max'])}; time to answer ms p50 {_ms(result.answer_ms['p50'])} "
        f"p99 {_ms(result.answer_ms['p99'])} max {_ms(result.answer_ms['max'])}",
        f"   RSS MB start {r.rss_start:.1f} max {r.rss_max:.1f} after {r.rss_after:.1f}; "
        f"open fds start {r.fds_start} max {r.fds_max} after {r.fds_after}; "
        f"recovered {recovered} after the faults ended",
    ]
    if result.told:
        told = "; ".join(f"{n}x {text!r}" for text, n in result.told.items())
        lines.append(f"   told: {told}")
    if result.ack_failures:
        lines.append(f"   not acked: {result.ack_failures}")
    if result.answered_via and set(result.answered_via) != {RESPONSE_URL_METHOD}:
        lines.append(f"   answered via: {result.answered_via}")
    lines.append(f"   proxied requests: AEP {result.aep_proxy}, Slack {result.slack_proxy}")
    lines += [f"   logged: {line}" for line in result.logged]
    lines += [f"   note: {note}" for note in result.notes]
    return "\n".join(lines)


def summary_table(results: Sequence[PhaseResult]) -> str:
    """One Markdown row per phase, ready for BENCHMARKS.md."""
    lines = [
        "| phase | answered / sent | cards | in words | silence | acked ≤ 3 s | ack p50 / p99 (ms) "
        "| answer p50 / p99 (ms) | RSS MB start / max / after | fds start / max / after "
        "| recovered after (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        res = r.resources
        lines.append(
            f"| {r.key} | {r.answered} / {r.sent} | {r.cards} | {r.in_words} | {r.silent} | "
            f"{r.acked} / {r.sent} | {_ms(r.ack_ms['p50'])} / {_ms(r.ack_ms['p99'])} | "
            f"{_ms(r.answer_ms['p50'])} / {_ms(r.answer_ms['p99'])} | "
            f"{res.rss_start:.1f} / {res.rss_max:.1f} / {res.rss_after:.1f} | "
            f"{res.fds_start} / {res.fds_max} / {res.fds_after} | {_recovered(r)} |"
        )
    return "\n".join(lines)


# -- personal data in the logs ------------------------------------------------------------------


def personal_data_in(paths: Sequence[Path], extra_secrets: Sequence[str]) -> list[str]:
    """Where any demo customer's email, phone or name, or a token, occurs in these files.

    The values are the test suite's own whole-run scan list (`tests.conftest.personal_values`)
    plus this run's secrets; the findings name file and line, never the value.
    """
    from tests.conftest import personal_values

    values = personal_values() | set(extra_secrets)
    found: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            hits = sum(1 for value in values if value in line) + ("Bearer " in line)
            if hits:
                found.append(f"{path.name}:{number} ({hits} value(s))")
    return found


_LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (.*)$")
#: Logged by every bot at start against the demo sandbox; not a problem of the run.
_EXPECTED_WARNINGS = ("DEMO sandbox", "demo sandbox's organization", "DEMO policy")


def logged_problems(text: str, most: int = 4) -> list[str]:
    """Distinct warnings and errors in a stretch of log, most frequent first, with counts."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        found = _LOG_LINE.match(line)
        if found is None or any(known in line for known in _EXPECTED_WARNINGS):
            continue
        counts[re.sub(r"\b[0-9a-f]{6,}\b", "…", f"{found.group(1)} {found.group(2)}")] += 1
    return [f"{n}x {message[:160]}" for message, n in counts.most_common(most)]


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Options:
    short: bool
    json_path: str | None
    only: tuple[str, ...]
    workdir: Path | None
    latency_ms: float
    log_level: str
    cache_key: str


class FaultBench:
    """One run: sandbox, recorder, proxies, private Redis and one bot, through every phase."""

    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.recorder = SlackRecorder()
        self.watch = AnswerWatch(self.recorder)
        self.redis = PrivateRedis(workdir)
        self.sandbox: ManagedProcess | None = None
        self.aep_proxy: FaultProxy | None = None
        self.slack_proxy: FaultProxy | None = None
        self.session: aiohttp.ClientSession | None = None
        self.bot: ManagedProcess | None = None
        self.bots: list[ManagedProcess] = []
        self.samples: list[ProcessSample] = []
        self.results: list[PhaseResult] = []
        self.identities: Iterator[str] = distinct_identities()
        self.asked: list[str] = []
        self.first_sample: ProcessSample | None = None
        self._texts = 0

    async def __aenter__(self) -> FaultBench:
        await self.recorder.start()
        await self.redis.start()
        self.sandbox = await start_sandbox(workdir=self.workdir, latency_ms=self.options.latency_ms)
        self.aep_proxy = FaultProxy(self.sandbox.url, name="aep")
        self.slack_proxy = FaultProxy(self.recorder.url, name="slack")
        await self.aep_proxy.start()
        await self.slack_proxy.start()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=ACK_LIMIT_S),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for bot in self.bots:
            code = await bot.stop()
            if code != 0:
                print(f"note: {bot.name} exited with {code}; see {bot.log_path}", flush=True)
        if self.session is not None:
            await self.session.close()
        for proxy in (self.aep_proxy, self.slack_proxy):
            if proxy is not None:
                await proxy.close()
        if self.sandbox is not None:
            await self.sandbox.stop()
        await self.redis.stop()
        await self.recorder.close()

    # -- the bot

    async def start_bot(self) -> ManagedProcess:
        assert self.aep_proxy is not None and self.slack_proxy is not None
        name = f"bot-{len(self.bots) + 1}"
        env = bot_environment(
            port=free_port(),
            slack_api_url=f"{self.slack_proxy.url}/api/",
            aep_url=self.aep_proxy.url,
            signing_secret=SIGNING_SECRET,
            audit_file=self.workdir / f"{name}-audit.jsonl",
            audit_key=AUDIT_KEY,
            cache_url=self.redis.url,
            extra={
                "BOT_CACHE_KEY": self.options.cache_key,
                "BOT_CACHE_SLACK_TTL": f"{SLACK_TTL_S:g}",
                "BOT_LOG_LEVEL": self.options.log_level,
            },
        )
        bot = await start_bot(env, workdir=self.workdir, name=name)
        self.bots.append(bot)
        self.bot = bot
        await self.warm_up(bot)
        return bot

    async def warm_up(self, bot: ManagedProcess) -> None:
        """Let the start-up warm-up (IMS token, audiences) finish; one command must be a card."""
        give_up = time.monotonic() + 10
        while True:
            command = await self.send(bot, "warm-up", WARMUP_TEXT, USERS[0])
            await self.wait_answers([command], 5)
            self.watch.close([command])
            if command.kind == "card":
                return
            if time.monotonic() > give_up:
                raise ProcessError(
                    f"{bot.name} answered the warm-up with {command.kind or 'silence'}: "
                    f"{command.words or ''}\n{bot.log_text()[-2000:]}"
                )
            await asyncio.sleep(0.5)

    # -- commands

    def next_text(self, repeats: float) -> str:
        """A customer not asked for yet, or with probability `repeats` one asked for before."""
        self._texts += 1
        if self.asked and repeats and (self._texts * 0.618034) % 1 < repeats:
            # A deterministic spread of repeats over the phase (golden-ratio sequence).
            return self.asked[(self._texts * 7919) % len(self.asked)]
        text = next(self.identities)
        self.asked.append(text)
        return text

    async def send(self, bot: ManagedProcess, phase: str, text: str, user_id: str) -> Command:
        """POST one signed /customer command; its ack is read (at most 3 s), not its answer."""
        assert self.session is not None and self.slack_proxy is not None
        name = uuid.uuid4().hex
        path = f"/response/{name}"
        body = slack_payloads.slash_command(
            text=text,
            user_id=user_id,
            channel_id=CHANNEL_ID,
            response_url=f"{self.slack_proxy.url}{path}",
        )
        headers = slack_payloads.request_headers(body, secret=SIGNING_SECRET)
        command = Command(phase=phase, text=text, user_id=user_id, path=path, sent=0.0)
        self.watch.expect(command)
        command.sent = time.monotonic()
        try:
            async with self.session.post(
                f"{bot.url}/slack/events", data=body.encode(), headers=headers
            ) as response:
                await response.read()
                command.acked = time.monotonic()
                command.ack_status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            command.ack_error = type(exc).__name__
        return command

    async def wait_answers(self, commands: Sequence[Command], wait_s: float) -> None:
        """Until every command is answered or `wait_s` has passed since the last was sent."""
        if not commands:
            return
        give_up = max(c.sent for c in commands) + wait_s
        while any(c.answered is None for c in commands):
            left = give_up - time.monotonic()
            if left <= 0:
                return
            self.watch.news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.watch.news.wait(), left)

    async def send_at_rate(self, bot: ManagedProcess, phase: Phase) -> list[Command]:
        """Command i no earlier than i / rate seconds after the first; each in its own task."""
        started = time.monotonic()
        tasks: list[asyncio.Task[Command]] = []
        for index in range(phase.commands):
            delay = started + index / phase.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            text = self.next_text(phase.repeats)
            user = USERS[index % len(USERS)]
            tasks.append(asyncio.create_task(self.send(bot, phase.key, text, user)))
        return list(await asyncio.gather(*tasks))

    # -- faults

    def set_faults(self, phase: Phase | None) -> None:
        assert self.aep_proxy is not None and self.slack_proxy is not None
        self.aep_proxy.set_faults(phase.aep if phase else ())
        self.slack_proxy.set_faults(phase.slack if phase else ())

    async def redis_fault(self, phase: Phase) -> None:
        """Stop Redis for the middle half of the phase, then bring it back."""
        try:
            await asyncio.sleep(phase.seconds / 4)
            if phase.redis == "pause":
                self.redis.pause()
            else:
                await self.redis.kill()
            await asyncio.sleep(phase.seconds / 2)
        finally:
            if phase.redis == "pause":
                self.redis.resume()
            elif not self.redis.running:
                await self.redis.start()

    async def healthy_again(self, bot: ManagedProcess, wait_s: float, *, redis: bool) -> float:
        """Seconds until a fresh command gets a card again (-1 if none within `wait_s`).

        With `redis`, the probe's lookup must also have been stored in Redis (the private
        server holds more keys than before): after an outage the bot skips the cache until it
        tries it again.
        """
        started = time.monotonic()
        while time.monotonic() - started < wait_s:
            before = await self.redis.keys() if redis else 0
            probe = await self.send(bot, "probe", next(self.identities), USERS[0])
            await self.wait_answers([probe], min(ANSWER_WAIT_S, wait_s))
            self.watch.close([probe])
            used = not redis or await self.redis.keys() > before
            if probe.kind == "card" and used:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        return -1.0

    # -- phases

    async def sampler(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.bot is not None:
                sample = sample_process(self.bot)
                if sample is not None:
                    self.samples.append(sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)

    async def run_phase(self, phase: Phase) -> PhaseResult:
        assert self.aep_proxy is not None and self.slack_proxy is not None
        notes: list[str] = []
        if self.bot is None or not self.bot.running:
            if self.bot is not None:
                notes.append(f"{self.bot.name} had exited ({self.bot.process.returncode}); "
                             "a new bot process was started")  # fmt: skip
            await self.start_bot()
        bot = self.bot
        assert bot is not None
        log_offset = len(bot.log_text())
        self.aep_proxy.reset_counts()
        self.slack_proxy.reset_counts()
        start = sample_process(bot)
        began = time.monotonic()
        self.set_faults(phase)
        redis_task = asyncio.create_task(self.redis_fault(phase)) if phase.redis != "up" else None
        try:
            commands = await self.send_at_rate(bot, phase)
            if redis_task is not None:
                await redis_task
            await self.wait_answers(commands, ANSWER_WAIT_S)
        finally:
            self.set_faults(None)
            if redis_task is not None and not redis_task.done():
                redis_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await redis_task
        ended = time.monotonic()
        self.watch.close(commands)
        after = sample_process(bot)
        during = [s for s in self.samples if began <= s.at <= ended]
        result = self.summarise(phase, commands, Resources.of(start, during, after))
        result.aep_proxy = dict(self.aep_proxy.counts)
        result.slack_proxy = dict(self.slack_proxy.counts)
        result.healthy_after_s = (
            await self.healthy_again(bot, RECOVERY_WAIT_S, redis=phase.redis != "up")
            if phase.key != "soak"
            else None
        )
        if not bot.running:
            notes.append(f"{bot.name} exited with {bot.process.returncode} during the phase")
        result.logged = logged_problems(bot.log_text()[log_offset:])
        result.notes = notes
        self.results.append(result)
        print(render(result), flush=True)
        return result

    def summarise(
        self, phase: Phase, commands: Sequence[Command], resources: Resources
    ) -> PhaseResult:
        answered = [c for c in commands if c.answered is not None]
        acks = [
            min(c.acked - c.sent, ACK_LIMIT_S) if c.acked is not None else ACK_LIMIT_S
            for c in commands
        ]
        told = Counter(c.words or "" for c in answered if c.kind != "card")
        failures = Counter(c.ack_error or f"HTTP {c.ack_status}" for c in commands if not c.ack_ok)
        return PhaseResult(
            key=phase.key,
            title=phase.title,
            rate=phase.rate,
            seconds=phase.seconds,
            sent=len(commands),
            acked=sum(c.ack_ok for c in commands),
            answered=len(answered),
            cards=sum(c.kind == "card" for c in answered),
            in_words=sum(c.kind == "words" for c in answered),
            silent=len(commands) - len(answered),
            # A command Slack stopped waiting for counts as the 3 s Slack waited.
            ack_ms=_spread(acks),
            answer_ms=_spread([c.answered - c.sent for c in answered if c.answered is not None]),
            resources=resources,
            told=dict(told.most_common(4)),
            ack_failures=dict(failures),
            answered_via=dict(Counter(c.via or "" for c in answered)),
        )

    async def run(self) -> None:
        wanted = [p for p in phases(self.options.short) if self.match(p.key)]
        await self.start_bot()
        assert self.bot is not None
        self.first_sample = sample_process(self.bot)
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.sampler(stop))
        try:
            for phase in wanted:
                await self.run_phase(phase)
        finally:
            stop.set()
            await sampler

    def match(self, key: str) -> bool:
        return not self.options.only or any(key.startswith(o) for o in self.options.only)

    def whole_run(self) -> dict[str, Any]:
        """Figures of the whole run: the bot from its first phase to now, and every command."""
        last = sample_process(self.bot) if self.bot is not None else None
        return {
            "resources": asdict(Resources.of(self.first_sample, self.samples, last)),
            "bot_processes": len(self.bots),
            "sent": sum(r.sent for r in self.results),
            "answered": sum(r.answered for r in self.results),
            "unmatched_slack_posts": dict(self.watch.unmatched),
            # Answers that reached Slack after their command's wait (ANSWER_WAIT_S) was over.
            "late_answers": dict(self.watch.late),
            "refused_by_slack": dict(self.watch.refused),
        }


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.faults",
        description="The bot under AEP, Slack and Redis faults, then a bounded soak (loopback).",
    )
    parser.add_argument(
        "--short", action="store_true", help="2-4 s per phase and a 15 s soak (about 100 s)"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="PATH",
        help="also the figures as one JSON document: to PATH, or to stdout (the tables then go "
        "to stderr)",
    )  # fmt: skip
    parser.add_argument(
        "--phase", action="append", default=[], metavar="KEY",
        help="run only phases whose key starts with KEY (repeatable): baseline, aep-slow, "
        "aep-5xx, aep-429, aep-hang, aep-reset, slack-429, slack-reply-5xx, redis-pause, "
        "redis-restart, soak",
    )  # fmt: skip
    parser.add_argument(
        "--latency-ms", type=float, default=AEP_LATENCY_MS, help="the sandbox's answer delay"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep logs and audit files here (default: temp)"
    )
    parser.add_argument(
        "--cache-key", default=None, help="BOT_CACHE_KEY of the bot (default: a new random one)"
    )
    args = parser.parse_args(argv)
    return Options(
        short=args.short,
        json_path=args.json,
        only=tuple(args.phase),
        workdir=args.workdir,
        latency_ms=args.latency_ms,
        log_level=args.log_level,
        cache_key=args.cache_key or secrets.token_urlsafe(32),
    )


async def _main(options: Options) -> int:
    out = sys.stderr if options.json_path == "-" else sys.stdout
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.ExitStack() as stack:
        print("Machine:\n" + "\n".join(machine()), flush=True)
        workdir = options.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-"))
        )
        workdir.mkdir(parents=True, exist_ok=True)
        bench = FaultBench(options, workdir)
        async with bench:
            await bench.run()
            run = bench.whole_run()
        files = [bot.log_path for bot in bench.bots]
        files += [workdir / f"{bot.name}-audit.jsonl" for bot in bench.bots]
        leaks = personal_data_in(files, [SIGNING_SECRET, AUDIT_KEY, options.cache_key])
        print("\nSummary (Markdown):\n" + summary_table(bench.results))
        res = run["resources"]
        print(
            f"\nWhole run: {run['answered']}/{run['sent']} commands answered; bot RSS MB "
            f"start {res['rss_start']:.1f}, max {res['rss_max']:.1f}, end {res['rss_after']:.1f}; "
            f"open fds start {res['fds_start']}, max {res['fds_max']}, end {res['fds_after']}; "
            f"{run['bot_processes']} bot process(es); {time.monotonic() - started:.0f} s"
        )
        print(
            f"Answers after their command's {ANSWER_WAIT_S:g} s wait (not counted above): "
            f"{run['late_answers'] or 'none'}; Slack posts matching no command: "
            f"{run['unmatched_slack_posts'] or 'none'}; refused by Slack: "
            f"{run['refused_by_slack'] or 'none'}"
        )
        scanned = ", ".join(path.name for path in files if path.exists())
        if leaks:
            print(f"Personal data or tokens in the bot's log or audit: {len(leaks)} line(s): "
                  + ", ".join(leaks[:10]))  # fmt: skip
        else:
            print(f"No personal data or token in the bot's log or audit ({scanned}).")
        payload = {
            "machine": machine(),
            "mode": "short" if options.short else "full",
            "sandbox_latency_ms": options.latency_ms,
            "phases": [asdict(r) for r in bench.results],
            "run": run,
            "personal_data_in_logs": leaks,
            "seconds": time.monotonic() - started,
        }
    document = json.dumps(_finite(payload), indent=2)
    if options.json_path == "-":
        print(document)
    elif options.json_path is not None:
        await asyncio.to_thread(Path(options.json_path).write_text, document + "\n")
    return 1 if leaks else 0


def _finite(value: Any) -> Any:
    """The document with NaN (no value measured) as null, so that it is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.faults` (and `make bench-faults ARGS=...`)."""
    return asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
