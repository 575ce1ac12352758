"""`python -m benchmarks.harness`: the bot under signed /customer load, against a naive baseline.

The bot runs as real `python -m bot` processes in HTTP mode, the demo sandbox as
`python -m bot demo-aep` in its own process (with injected latency), and the recording Slack server
in this process: its response_url receipts time each card's arrival. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis

from benchmarks.processes import (
    ManagedProcess,
    bot_environment,
    free_port,
    start_bot,
    start_sandbox,
)
from bot.demo import payloads as slack_payloads
from bot.demo.dataset import DEMO_ORG_ID, load_dataset
from bot.demo.simulator import MAX_GRAPH_IDENTITIES
from bot.demo.slack import RESPONSE_URL_METHOD, RecordedCall, SlackRecorder
from bot.identity import extract_identities

SIGNING_SECRET = "bench-signing-secret"
AUDIT_KEY = "bench-audit-key"
USER_ID = "U0AGENT"
CHANNEL_ID = "C0SUPPORT"
CARD_TIMEOUT_S = 30.0
WARMUP_TEXT = "SPARSE@EXAMPLE.COM"
SERIAL_COMMANDS = 30
REPEAT_RATE = 0.3
DEFAULT_RATE = 10.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
SCENARIOS = ("a", "b", "c", "d", "naive", "e")
#: Scenario e: cold commands sent one at a time, events slower than the profile.
EVENTS_COMMANDS = 30
_SAMPLE_EVERY_S = 0.25
_CARD_PREFIX = "Customer profile"
#: The words of the "Looking up…" a slow /customer answer posts before its card (issue 16: the
#: ack is empty, and that note is said only past BOT_SLOW_ANSWER_SECONDS): not the answer.
_INTERIM_WORDS = "Looking up"
_ERROR_WORDS = (
    ("not_found", "No customer profile"),
    ("too_many_identities", "identities"),
    ("rate_limited", "busy"),
    ("unavailable", "did not answer"),
)


# -- identities ---------------------------------------------------------------------------------


def _typed(namespace: str, value: str) -> str | None:
    """How a person would type this identity, checked to parse back to exactly it."""
    for text in (value, f"{namespace}:{value}"):
        refs = extract_identities(text)
        if (
            len(refs) == 1
            and refs[0].namespace.casefold() == namespace.casefold()
            and refs[0].value == value
        ):
            return text
    return None


def _case_variant(email: str, index: int) -> str:
    """The `index`-th capitalisation of an email's local part (0 is the email itself)."""
    local, _, domain = email.partition("@")
    letters = [i for i, char in enumerate(local) if char.isalpha()]
    chars = list(local)
    for bit, position in enumerate(letters):
        if index >> bit & 1:
            chars[position] = chars[position].upper()
    return "".join(chars) + "@" + domain


def distinct_identities() -> Iterator[str]:
    """Texts of /customer commands, each a distinct cache key of a customer the sandbox has.

    First every identity of every demo customer (email, phone, CRM id, ECID, loyalty id; the
    customer whose identity graph AEP refuses is left out), then capitalisations of the emails:
    the bot keys its cache on the value as typed, and the sandbox matches emails in any case.
    """
    customers = [c for c in load_dataset().customers if len(c.identities) <= MAX_GRAPH_IDENTITIES]
    seen: set[str] = {WARMUP_TEXT}
    emails: list[str] = []
    for customer in customers:
        for namespace, value in customer.identities:
            text = _typed(namespace, value)
            if text is not None and text not in seen:
                seen.add(text)
                if namespace.casefold() == "email":
                    emails.append(value)
                yield text
    index = 1
    while True:
        for email in emails:
            variant = _case_variant(email, index)
            if variant not in seen:
                seen.add(variant)
                yield variant
        index += 1


def take(identities: Iterator[str], count: int) -> list[str]:
    """The next `count` texts of an identity stream."""
    return [next(identities) for _ in range(count)]


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between closest ranks; NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Spread:
    """Median, p95, p99 and max of a set of durations, in milliseconds."""

    median: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        ms = [s * 1000 for s in seconds]
        return cls(
            median=percentile(ms, 50),
            p95=percentile(ms, 95),
            p99=percentile(ms, 99),
            max=max(ms) if ms else float("nan"),
        )


# -- Slack side: commands out, cards in ---------------------------------------------------------


class _Arrivals(list[RecordedCall]):
    """Replaces SlackRecorder.calls: hands each post to a response URL to whoever waits for it,
    and keeps no payloads (a long run would otherwise hold every card in memory)."""

    def __init__(self, on_call: Callable[[RecordedCall], None]) -> None:
        super().__init__()
        self._on_call = on_call

    def append(self, call: RecordedCall) -> None:
        self._on_call(call)


class CardWatch:
    """Futures for the first post to each response URL, resolved as the recorder answers it."""

    def __init__(self, recorder: SlackRecorder) -> None:
        self._waiting: dict[str, asyncio.Future[RecordedCall]] = {}
        # Scenario e: the second post to a response URL (the card updated with its events).
        self._updates: dict[str, asyncio.Future[RecordedCall]] = {}
        #: how many answers said "Looking up…" before their card (they were slow)
        self.interim = 0
        recorder.calls = _Arrivals(self._arrived)

    def expect(self, path: str) -> asyncio.Future[RecordedCall]:
        future: asyncio.Future[RecordedCall] = asyncio.get_running_loop().create_future()
        self._waiting[path] = future
        return future

    def expect_update(self, path: str) -> asyncio.Future[RecordedCall]:
        """A future for the post after the first one to `path` (register before sending)."""
        future: asyncio.Future[RecordedCall] = asyncio.get_running_loop().create_future()
        self._updates[path] = future
        return future

    def forget(self, path: str) -> None:
        self._waiting.pop(path, None)
        self._updates.pop(path, None)

    def _arrived(self, call: RecordedCall) -> None:
        if call.method != RESPONSE_URL_METHOD:
            return
        if _INTERIM_WORDS in str(call.payload.get("text") or "") and call.path in self._waiting:
            self.interim += 1  # the answer is still coming: keep waiting for it
            return
        future = self._waiting.pop(call.path, None)
        if future is None:
            future = self._updates.pop(call.path, None)
        if future is not None and not future.done():
            future.set_result(call)


@dataclass
class Sample:
    """One command: when it was sent, acknowledged and answered (time.monotonic seconds)."""

    target: str
    sent: float
    acked: float | None = None
    ack_status: int | None = None
    answered: float | None = None
    outcome: str = "no_answer"

    @property
    def ack_s(self) -> float | None:
        return None if self.acked is None else self.acked - self.sent

    @property
    def card_s(self) -> float | None:
        return None if self.answered is None else self.answered - self.sent


def _outcome(call: RecordedCall) -> str:
    text = str(call.payload.get("text") or "")
    if text.startswith(_CARD_PREFIX):
        return "card"
    for outcome, words in _ERROR_WORDS:
        if words in text:
            return outcome
    return "other"


class Driver:
    """Sends signed /customer commands to bot processes and times ack and card."""

    def __init__(
        self, recorder: SlackRecorder, watch: CardWatch, session: aiohttp.ClientSession
    ) -> None:
        self._recorder = recorder
        self._watch = watch
        self._session = session

    async def command(self, bot: ManagedProcess, text: str) -> Sample:
        """One command: POST it signed, read the ack, wait for the answer at its response URL."""
        name = uuid.uuid4().hex
        response_url = self._recorder.response_url(name)
        path = f"/response/{name}"
        body = slack_payloads.slash_command(
            text=text, user_id=USER_ID, channel_id=CHANNEL_ID, response_url=response_url
        )
        headers = slack_payloads.request_headers(body, secret=SIGNING_SECRET)
        answer = self._watch.expect(path)
        sample = Sample(target=bot.name, sent=time.monotonic())
        try:
            async with self._session.post(
                f"{bot.url}/slack/events", data=body.encode(), headers=headers
            ) as response:
                await response.read()
                sample.acked = time.monotonic()
                sample.ack_status = response.status
            if sample.ack_status != 200:
                sample.outcome = f"ack_{sample.ack_status}"
                return sample
            call = await asyncio.wait_for(answer, CARD_TIMEOUT_S)
        except (TimeoutError, aiohttp.ClientError) as exc:
            sample.outcome = type(exc).__name__
            return sample
        finally:
            self._watch.forget(path)
        sample.answered = call.at
        sample.outcome = _outcome(call)
        return sample

    async def command_with_events(
        self, bot: ManagedProcess, text: str
    ) -> tuple[float | None, float | None, bool]:
        """Scenario e: seconds to the first card, seconds to the card holding its events (the
        first one when it already did), and whether the events came as an update."""
        name = uuid.uuid4().hex
        response_url = self._recorder.response_url(name)
        path = f"/response/{name}"
        body = slack_payloads.slash_command(
            text=text, user_id=USER_ID, channel_id=CHANNEL_ID, response_url=response_url
        )
        headers = slack_payloads.request_headers(body, secret=SIGNING_SECRET)
        first = self._watch.expect(path)
        update = self._watch.expect_update(path)
        sent = time.monotonic()
        try:
            async with self._session.post(
                f"{bot.url}/slack/events", data=body.encode(), headers=headers
            ) as response:
                await response.read()
            card = await asyncio.wait_for(first, CARD_TIMEOUT_S)
            if "Loading recent activity" not in json.dumps(card.payload):
                return card.at - sent, card.at - sent, False
            later = await asyncio.wait_for(update, CARD_TIMEOUT_S)
        except (TimeoutError, aiohttp.ClientError):
            return None, None, False
        finally:
            self._watch.forget(path)
        return card.at - sent, later.at - sent, True

    async def run(
        self,
        bots: Sequence[ManagedProcess],
        texts: Sequence[str],
        *,
        concurrency: int,
        rate: float | None = None,
    ) -> list[Sample]:
        """Every text as one command, bots taken in turn, at most `concurrency` unanswered.

        With `rate`, command i is sent no earlier than i / rate seconds after the first.
        """
        slots = asyncio.Semaphore(concurrency)
        started = time.monotonic()
        tasks: list[asyncio.Task[Sample]] = []

        async def one(bot: ManagedProcess, text: str) -> Sample:
            try:
                return await self.command(bot, text)
            finally:
                slots.release()

        for index, text in enumerate(texts):
            if rate:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await slots.acquire()
            tasks.append(asyncio.create_task(one(bots[index % len(bots)], text)))
        return list(await asyncio.gather(*tasks))


# -- results ------------------------------------------------------------------------------------


@dataclass
class MemoryTrace:
    """Resident memory of one bot process over a phase, in MB."""

    idle_start: float
    idle_warm: float
    start: float
    end: float
    highest: float
    peak_hwm: float
    at_fifth: float
    # RSS at 0 %, 10 %, ..., 100 % of the phase.
    deciles: list[float] = field(default_factory=list)


@dataclass
class Result:
    """The figures of one measured phase."""

    key: str
    title: str
    commands: int
    outcomes: dict[str, int]
    seconds: float
    ack: Spread
    card: Spread
    latency_ms: float
    aep: dict[str, int]
    memory: dict[str, MemoryTrace]
    cpu_s: dict[str, float]
    harness_cpu_s: float
    warm: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    # Warnings and errors the processes logged (they log ids and statuses, no customer data).
    problems: list[str] = field(default_factory=list)
    #: answers that said "Looking up…" before their card (slower than BOT_SLOW_ANSWER_SECONDS)
    interim: int = 0

    @property
    def cards(self) -> int:
        return self.outcomes.get("card", 0)

    @property
    def throughput(self) -> float:
        return self.cards / self.seconds if self.seconds > 0 else 0.0

    def per_lookup(self, *kinds: str) -> float:
        return sum(self.aep.get(kind, 0) for kind in kinds) / max(self.commands, 1)

    @property
    def aep_total(self) -> int:
        return sum(v for k, v in self.aep.items() if k not in ("max_in_flight", "rejected"))

    @property
    def hit_ratio(self) -> float:
        """Share of lookups answered without a profile call to AEP (cache hits and coalesced)."""
        return 1 - self.aep.get("profile", 0) / max(self.commands, 1)

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(
            cards=self.cards,
            throughput=self.throughput,
            aep_per_lookup=self.aep_total / max(self.commands, 1),
            profile_per_lookup=self.per_lookup("profile"),
            events_per_lookup=self.per_lookup("events"),
            hit_ratio=self.hit_ratio,
        )
        return data


def _ms(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def render(result: Result) -> str:
    """The table of one phase."""
    lines = [f"== {result.key}: {result.title}"]
    failed = {k: v for k, v in result.outcomes.items() if k != "card"}
    lines.append(
        f"   {result.commands} commands, {result.cards} cards"
        + (f", not a card: {failed}" if failed else "")
        + (f"; {result.interim} said 'Looking up…' first" if result.interim else "")
        + f"; {result.seconds:.1f} s, {result.throughput:.1f} cards/s"
    )
    lines.append(f"   {'':24}{'median':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for label, spread in (("ack (ms)", result.ack), ("time to card (ms)", result.card)):
        row = "".join(f"{_ms(v):>9}" for v in dataclasses.astuple(spread))
        lines.append(f"   {label:24}{row}")
    minus = result.card.p95 - result.latency_ms
    lines.append(
        f"   time to card p95 minus AEP latency ({result.latency_ms:g} ms): {_ms(minus)} ms"
    )
    aep = result.aep
    lines.append(
        f"   AEP calls: profile {aep.get('profile', 0)}, events {aep.get('events', 0)}, "
        f"audiences {aep.get('audiences', 0)}, token {aep.get('token', 0)}; "
        f"{result.aep_total / max(result.commands, 1):.2f} per lookup "
        f"(profile {result.per_lookup('profile'):.2f}, events {result.per_lookup('events'):.2f}); "
        f"most in flight at AEP {aep.get('max_in_flight', 0)}"
    )
    lines.append(f"   cache hit ratio (lookups with no profile call): {result.hit_ratio:.0%}")
    for name, mem in result.memory.items():
        lines.append(
            f"   {name} RSS MB: idle {mem.idle_start:.1f} (after warm-up {mem.idle_warm:.1f}), "
            f"phase start {mem.start:.1f}, at 20 % {mem.at_fifth:.1f}, end {mem.end:.1f}, "
            f"highest {mem.highest:.1f}, VmHWM {mem.peak_hwm:.1f}; "
            f"CPU {result.cpu_s[name]:.2f} s "
            f"({1000 * result.cpu_s[name] / max(result.commands, 1):.1f} ms/command)"
        )
        if result.key in ("c", "d"):
            lines.append(
                f"   {name} RSS MB at each tenth of the phase: "
                + " ".join(f"{value:.1f}" for value in mem.deciles)
            )
    lines.append(
        f"   harness CPU {result.harness_cpu_s:.2f} s; warm before the phase: "
        + ", ".join(f"{k} {v}" for k, v in result.warm.items())
    )
    return "\n".join(lines)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Options:
    scenarios: tuple[str, ...]
    latency_ms: float
    concurrency: int
    duration: float
    rate: float | None
    redis_url: str
    customers: int
    json_path: Path | None
    workdir: Path | None = None
    max_in_flight: int | None = None
    events_latency_ms: float = 600.0

    def bot_settings(self) -> dict[str, str]:
        """Settings the bot processes get beyond the harness's own."""
        return {} if self.max_in_flight is None else {"AEP_MAX_IN_FLIGHT": str(self.max_in_flight)}


class Bench:
    """One harness run: the sandbox process, the recorder, and bot processes per phase."""

    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.recorder = SlackRecorder()
        self.watch = CardWatch(self.recorder)
        self.sandbox: ManagedProcess | None = None
        self.session: aiohttp.ClientSession | None = None
        self.results: list[Result] = []
        self.identities = distinct_identities()
        self._bots = 0

    @property
    def driver(self) -> Driver:
        assert self.session is not None
        return Driver(self.recorder, self.watch, self.session)

    async def __aenter__(self) -> Bench:
        await self.recorder.start()
        self.sandbox = await start_sandbox(workdir=self.workdir, latency_ms=self.options.latency_ms)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self.sandbox is not None:
            await self.sandbox.stop()
        await self.recorder.close()

    # -- the sandbox's admin endpoints

    async def _admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        assert self.session is not None and self.sandbox is not None
        async with self.session.request(method, self.sandbox.url + path, json=body) as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def aep_stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in (await self._admin("GET", "/__demo/stats")).items()}

    async def reset_aep(self) -> None:
        """Zero the counters; the reset also clears the latency, so set it again."""
        await self._admin("POST", "/__demo/reset")
        await self._admin("POST", "/__demo/faults", {"latency_ms": self.options.latency_ms})

    # -- bot processes

    async def start_bots(
        self, count: int, *, module: str = "bot", cache_url: str = "memory://"
    ) -> list[ManagedProcess]:
        """Fresh bot processes (cold cache), started together, ready when /healthz answers."""
        assert self.sandbox is not None
        starts = []
        for _ in range(count):
            self._bots += 1
            name = f"{'naive' if module != 'bot' else 'bot'}-{self._bots}"
            env = bot_environment(
                port=free_port(),
                slack_api_url=self.recorder.api_url,
                aep_url=self.sandbox.url,
                signing_secret=SIGNING_SECRET,
                audit_file=self.workdir / f"{name}-audit.jsonl",
                audit_key=AUDIT_KEY,
                cache_url=cache_url,
                extra=self.options.bot_settings(),
            )
            starts.append(start_bot(env, workdir=self.workdir, name=name, module=module))
        return list(await asyncio.gather(*starts))

    async def stop_bots(self, bots: Sequence[ManagedProcess]) -> None:
        codes = await asyncio.gather(*(bot.stop() for bot in bots))
        for bot, code in zip(bots, codes, strict=True):
            if code != 0:
                print(f"   note: {bot.name} exited with {code}; see {bot.log_path}")

    async def warm_up(
        self, bots: Sequence[ManagedProcess]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wait for the start-up warm-up (IMS token, audience list), then one command each.

        Returns what AEP was asked while starting, and each bot's RSS (MB) idle after start
        and after the warm-up command.
        """
        give_up = time.monotonic() + 5
        while time.monotonic() < give_up:
            stats = await self.aep_stats()
            if stats.get("token", 0) >= 1 and stats.get("audiences", 0) >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        idle = {bot.name: bot.memory().rss_mb for bot in bots}
        for bot in bots:
            sample = await self.driver.command(bot, WARMUP_TEXT)
            if sample.outcome != "card":
                raise RuntimeError(f"warm-up command on {bot.name} answered {sample.outcome}")
        await asyncio.sleep(0.3)
        stats = await self.aep_stats()
        warm = {
            "IMS token": "yes" if stats.get("token", 0) >= 1 else "no",
            "audience list": "yes" if stats.get("audiences", 0) >= 1 else "no",
        }
        memory = {
            bot.name: {"idle_start": idle[bot.name], "idle_warm": bot.memory().rss_mb}
            for bot in bots
        }
        return warm, memory

    async def measure(
        self,
        key: str,
        title: str,
        bots: Sequence[ManagedProcess],
        texts: Sequence[str],
        *,
        concurrency: int,
        rate: float | None = None,
    ) -> Result:
        """Warm the bots up, then send `texts` and gather every figure of the phase."""
        warm, idle = await self.warm_up(bots)
        await self.reset_aep()
        traces: dict[str, list[float]] = {bot.name: [] for bot in bots}
        stop = asyncio.Event()

        async def sample_memory() -> None:
            while not stop.is_set():
                for bot in bots:
                    traces[bot.name].append(bot.memory().rss_mb)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _SAMPLE_EVERY_S)

        cpu = {bot.name: bot.cpu_seconds() for bot in bots}
        own_cpu = time.process_time()
        sampler = asyncio.create_task(sample_memory())
        samples = await self.driver.run(bots, texts, concurrency=concurrency, rate=rate)
        stop.set()
        await sampler
        for bot in bots:
            traces[bot.name].append(bot.memory().rss_mb)
        aep = await self.aep_stats()
        interim, self.watch.interim = self.watch.interim, 0
        outcomes: dict[str, int] = {}
        for sample in samples:
            outcomes[sample.outcome] = outcomes.get(sample.outcome, 0) + 1
        answered = [s for s in samples if s.answered is not None]
        first = min(s.sent for s in samples)
        last = max((s.answered for s in answered if s.answered is not None), default=first)
        memory = {}
        for bot in bots:
            trace = traces[bot.name]
            memory[bot.name] = MemoryTrace(
                start=trace[0],
                end=trace[-1],
                highest=max(trace),
                at_fifth=trace[len(trace) // 5],
                peak_hwm=bot.memory().peak_mb,
                deciles=[trace[(len(trace) - 1) * i // 10] for i in range(11)],
                **idle[bot.name],
            )
        result = Result(
            key=key,
            title=title,
            commands=len(samples),
            outcomes=outcomes,
            seconds=last - first,
            ack=Spread.of([s.ack_s for s in samples if s.ack_s is not None]),
            card=Spread.of([s.card_s for s in answered if s.card_s is not None]),
            latency_ms=self.options.latency_ms,
            aep=aep,
            memory=memory,
            cpu_s={bot.name: bot.cpu_seconds() - cpu[bot.name] for bot in bots},
            harness_cpu_s=time.process_time() - own_cpu,
            warm=warm,
            settings={"concurrency": concurrency, "rate": rate, "bots": [b.name for b in bots]},
            interim=interim,
        )
        self.results.append(result)
        print(render(result), flush=True)
        return result

    async def phase(
        self,
        key: str,
        title: str,
        texts: Sequence[str],
        *,
        concurrency: int,
        rate: float | None = None,
        instances: int = 1,
        module: str = "bot",
        cache_url: str = "memory://",
    ) -> Result:
        """Fresh processes, one measured phase, processes stopped."""
        bots = await self.start_bots(instances, module=module, cache_url=cache_url)
        try:
            result = await self.measure(key, title, bots, texts, concurrency=concurrency, rate=rate)
        finally:
            await self.stop_bots(bots)
        result.problems = logged_problems(bots)
        for line in result.problems:
            print(f"   logged: {line}", flush=True)
        return result

    # -- scenarios

    def mixed_texts(self, count: int, seed: int) -> list[str]:
        """`count` commands, REPEAT_RATE of them for a customer already asked for in the run."""
        chooser = random.Random(seed)
        texts: list[str] = []
        asked: list[str] = []
        for _ in range(count):
            if asked and chooser.random() < REPEAT_RATE:
                texts.append(chooser.choice(asked))
            else:
                text = next(self.identities)
                asked.append(text)
                texts.append(text)
        return texts

    async def cold(self, module: str, serial: list[str], distinct: list[str]) -> None:
        who = "naive baseline" if module != "bot" else "bot"
        await self.phase(
            f"a-serial{'-naive' if module != 'bot' else ''}",
            f"{who}, cold cache, {len(serial)} distinct customers one at a time",
            serial,
            concurrency=1,
            module=module,
        )
        await self.phase(
            f"a{'-naive' if module != 'bot' else ''}",
            f"{who}, cold cache, {len(distinct)} distinct customers, "
            f"concurrency {self.options.concurrency}",
            distinct,
            concurrency=self.options.concurrency,
            module=module,
        )

    async def one_customer(self, module: str) -> None:
        who = "naive baseline" if module != "bot" else "bot"
        count = self.options.concurrency
        await self.phase(
            f"b{'-naive' if module != 'bot' else ''}",
            f"{who}, {count} concurrent lookups of one customer (cold)",
            ["jane.doe@example.com"] * count,
            concurrency=count,
            module=module,
        )

    async def mixed(self, instances: int) -> None:
        rate = self.options.rate or DEFAULT_RATE
        count = max(1, round(rate * self.options.duration))
        # The same seed for c and d: the same pattern of new and repeated customers.
        texts = self.mixed_texts(count, seed=5)
        if instances == 1:
            await self.phase(
                "c",
                f"bot, mixed workload {self.options.duration:g} s at {rate:g}/s, "
                f"{REPEAT_RATE:.0%} repeats, concurrency cap {self.options.concurrency}",
                texts,
                concurrency=self.options.concurrency,
                rate=rate,
            )
            return
        url = self.options.redis_url
        problem = await asyncio.to_thread(_redis_problem, url)
        if problem:
            print(f"== d: skipped, Redis at {url} is not available ({problem})", flush=True)
            return
        await asyncio.to_thread(purge_demo_keys, url)
        try:
            await self.phase(
                "d",
                f"{instances} bots on Redis, mixed workload {self.options.duration:g} s at "
                f"{rate:g}/s, {REPEAT_RATE:.0%} repeats, commands alternate between them",
                texts,
                concurrency=self.options.concurrency,
                rate=rate,
                instances=instances,
                cache_url=url,
            )
        finally:
            await asyncio.to_thread(purge_demo_keys, url)

    async def run(self) -> None:
        wanted = set(self.options.scenarios)
        serial: list[str] = []
        distinct: list[str] = []
        if wanted & {"a", "naive"}:
            distinct = take(self.identities, self.options.customers)
            serial = take(self.identities, SERIAL_COMMANDS)
        if "a" in wanted:
            await self.cold("bot", serial, distinct)
        if "naive" in wanted:
            await self.cold("benchmarks.naive", serial, distinct)
        if "b" in wanted:
            await self.one_customer("bot")
        if "naive" in wanted:
            await self.one_customer("benchmarks.naive")
        if "c" in wanted:
            await self.mixed(1)
        if "d" in wanted:
            await self.mixed(2)
        if "e" in wanted:
            await self.late_events()

    async def late_events(self) -> None:
        """Scenario e: cold commands one at a time with events slower than the profile; time
        to the first card and to the card updated with the events."""
        latency, events = self.options.latency_ms, self.options.events_latency_ms
        title = (
            f"e: bot, {EVENTS_COMMANDS} cold commands one at a time, profile latency "
            f"{latency:g} ms, events latency {events:g} ms"
        )
        print(f"== {title}", flush=True)
        [bot] = await self.start_bots(1)
        try:
            await self.warm_up([bot])
            await self.reset_aep()
            await self._admin(
                "POST",
                "/__demo/faults",
                {"latency_ms": latency, "endpoint_latency_ms": {"events": events}},
            )
            firsts: list[float] = []
            fulls: list[float] = []
            updated = 0
            for text in take(self.identities, EVENTS_COMMANDS):
                first, full, was_update = await self.driver.command_with_events(bot, text)
                if first is not None and full is not None:
                    firsts.append(first * 1000)
                    fulls.append(full * 1000)
                    updated += was_update
        finally:
            await self.stop_bots([bot])
        for label, values in (("time to first card", firsts), ("time to events", fulls)):
            print(
                f"   {label}: median {percentile(values, 50):.0f} ms, p95 "
                f"{percentile(values, 95):.0f} ms, max {max(values, default=float('nan')):.0f} ms",
                flush=True,
            )
        print(
            f"   {len(firsts)} of {EVENTS_COMMANDS} answered; {updated} cards were updated "
            "in place with their events",
            flush=True,
        )


# Logged by every bot at start against the demo sandbox; not a problem of the run.
#: The start-up warnings every demo run prints (demo data, the more open demo policy).
_EXPECTED_WARNINGS = ("DEMO sandbox", "demo sandbox's organization", "DEMO policy")
_LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (.*)$")


def logged_problems(bots: Sequence[ManagedProcess], most: int = 5) -> list[str]:
    """Distinct warnings and errors in the bots' logs, with how often each occurred."""
    counts: dict[str, int] = {}
    for bot in bots:
        for line in bot.log_text().splitlines():
            found = _LOG_LINE.match(line)
            if found is None or any(known in line for known in _EXPECTED_WARNINGS):
                continue
            message = re.sub(r"\b[0-9a-f]{8,}\b", "…", f"{found.group(1)} {found.group(2)}")
            counts[message] = counts.get(message, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return [f"{count}x {message[:200]}" for message, count in ranked[:most]]


def _redis_problem(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()
    return None


def purge_demo_keys(url: str) -> int:
    """Delete the demo org's keys from the Redis database at `url` (only those)."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        for key in client.scan_iter(match=f"ccb:*:{DEMO_ORG_ID}:*", count=1000):
            deleted += int(client.delete(key))
    finally:
        client.close()
    return deleted


# -- summary ------------------------------------------------------------------------------------


def _find(results: Sequence[Result], key: str) -> Result | None:
    return next((r for r in results if r.key == key), None)


def comparisons(results: Sequence[Result]) -> list[str]:
    """The bot against the naive baseline, phase by phase, as ratios naive / bot."""
    lines = []
    for key in ("a-serial", "a", "b"):
        mine, naive = _find(results, key), _find(results, f"{key}-naive")
        if mine is None or naive is None:
            continue
        my_calls = mine.aep_total / max(mine.commands, 1)
        naive_calls = naive.aep_total / max(naive.commands, 1)
        median = f"{_ms(naive.card.median)} vs {_ms(mine.card.median)} ms"
        p95 = f"{_ms(naive.card.p95)} vs {_ms(mine.card.p95)} ms"
        lines.append(
            f"   {key:9} time to card median {median} ({naive.card.median / mine.card.median:.1f}x)"
            f", p95 {p95} ({naive.card.p95 / mine.card.p95:.1f}x); AEP calls per lookup "
            f"{naive_calls:.2f} vs {my_calls:.2f} ({naive_calls / max(my_calls, 1e-9):.1f}x)"
        )
    return lines


def targets(results: Sequence[Result]) -> list[str]:
    """Each target of issue 5 with the measured value and whether it is met."""
    lines: list[str] = []

    def verdict(name: str, value: str, met: bool) -> None:
        lines.append(f"   {'met    ' if met else 'NOT met'}  {name}: {value}")

    acks = [r for r in results if r.key in ("a", "b") and r.settings.get("concurrency", 0) >= 50]
    for phase in acks:
        p99 = phase.ack.p99
        verdict(f"ack p99 < 100 ms at 50 concurrent ({phase.key})", f"{_ms(p99)} ms", p99 < 100)
    for key in ("a-serial", "a"):
        cold = _find(results, key)
        if cold is not None:
            minus = cold.card.p95 - cold.latency_ms
            name = f"cold time to card p95 - latency < 50 ms ({key})"
            verdict(name, f"{_ms(minus)} ms", minus < 50)
    b = _find(results, "b")
    if b is not None:
        calls = f"profile {b.aep.get('profile', 0)}, events {b.aep.get('events', 0)}"
        verdict(
            "scenario b: 1 profile and 1 events call",
            calls,
            b.aep.get("profile") == 1 and b.aep.get("events") == 1,
        )
    idle = [m.idle_warm for r in results if not r.key.endswith("naive") for m in r.memory.values()]
    if idle:
        verdict(
            "idle RSS < 120 MB", f"{max(idle):.1f} MB (largest, after warm-up)", max(idle) < 120
        )
    for key in ("c", "d"):
        mixed = _find(results, key)
        if mixed is None:
            continue
        for name, m in mixed.memory.items():
            growth = (m.end - m.start) / m.start
            steady = (m.end - m.at_fifth) / m.at_fifth
            verdict(
                f"RSS flat within 10 % over the mixed workload ({key}, {name})",
                f"start {m.start:.1f} -> end {m.end:.1f} MB ({growth:+.1%}); "
                f"from 20 % of the run {m.at_fifth:.1f} MB ({steady:+.1%})",
                abs(growth) <= 0.10,
            )
    return lines


def machine() -> list[str]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1).strip() if found else cpu
    memory = "unknown"
    with contextlib.suppress(OSError):
        found = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        memory = f"{int(found.group(1)) / 1024 / 1024:.1f} GiB" if found else memory
    return [
        f"   CPU: {cpu}, {os.cpu_count()} cores; memory {memory}; "
        f"Python {platform.python_version()} ({sys.executable}); {platform.platform()}"
    ]


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness",
        description="Benchmark the bot (HTTP mode, demo sandbox with latency, recording Slack).",
    )
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="AEP answer delay")
    parser.add_argument("--concurrency", type=int, default=50, help="commands awaiting a card")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of the mixed workload (c, d)"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help=f"commands/s of c and d (default {DEFAULT_RATE:g})"
    )
    parser.add_argument("--customers", type=int, default=200, help="distinct customers of a")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis of scenario d")
    parser.add_argument(
        "--max-in-flight", type=int, default=None,
        help="AEP_MAX_IN_FLIGHT of the bot (default: the bot's own default, 5)",
    )  # fmt: skip
    parser.add_argument(
        "--events-latency-ms", type=float, default=600.0, help="events answer delay (scenario e)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep logs and audit files here (default: temp)"
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.customers < 1:
        parser.error("--concurrency, --duration and --customers must be positive")
    return Options(
        scenarios=SCENARIOS if args.scenario == "all" else (args.scenario,),
        latency_ms=args.latency_ms,
        concurrency=args.concurrency,
        duration=args.duration,
        rate=args.rate,
        redis_url=args.redis_url,
        customers=args.customers,
        json_path=args.json,
        max_in_flight=args.max_in_flight,
        workdir=args.workdir,
        events_latency_ms=args.events_latency_ms,
    )


async def _main(options: Options) -> int:
    started = time.monotonic()
    print("Machine:\n" + "\n".join(machine()), flush=True)
    with contextlib.ExitStack() as stack:
        workdir = options.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        )
        async with Bench(options, workdir) as bench:
            await bench.run()
        results = bench.results
    print("\nBot vs naive baseline (naive / bot):")
    print("\n".join(comparisons(results)) or "   (run scenario a or b and naive for the ratios)")
    print("\nTargets (measured, not asserted):")
    print("\n".join(targets(results)))
    print(f"\nWhole run: {time.monotonic() - started:.0f} s")
    if options.json_path is not None:
        payload = {"machine": machine(), "results": [r.as_json() for r in results]}
        options.json_path.write_text(json.dumps(payload, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.harness` (and `make bench ARGS=...`)."""
    return asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
