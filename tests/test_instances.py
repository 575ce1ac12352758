"""Two bot processes in HTTP mode sharing one Redis behave as one bot (issue 5, item 4)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis

from benchmarks.processes import ManagedProcess, bot_environment, free_port, start_bot
from bot import ids
from bot.demo import payloads as slack_payloads
from bot.demo.server import DemoServer, start_server
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from tests.redis_support import redis_url
from tests.support import AUDIT_KEY, SIGNING_SECRET, personal_values

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="module")]

# A database of its own: both instances share the demo org's fixed key prefix, so the test owns
# the whole database and empties it before and after.
REDIS_DB = 7
WAIT_S = 15.0


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[str]:
    """The URL of an emptied Redis database that only this module uses."""
    url = f"{redis_url().rsplit('/', 1)[0]}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
    finally:
        client.flushdb()
        client.close()


@dataclass
class Instances:
    """Bot processes A and B, the sandbox they share and the Slack recorder they answer to."""

    a: ManagedProcess
    b: ManagedProcess
    sim: AepSimulator
    slack: SlackRecorder
    http: httpx.AsyncClient
    audit_files: tuple[Path, ...]

    def reset(self) -> None:
        """Forget the sandbox's counters and latency and the recorded Slack calls."""
        self.sim.reset()
        self.slack.clear()

    async def send(
        self, bot: ManagedProcess, body: str, timestamp: int | None = None, **headers: str
    ) -> httpx.Response:
        """POST a signed Slack request body to one instance."""
        signed = slack_payloads.request_headers(body, secret=SIGNING_SECRET, timestamp=timestamp)
        return await self.http.post(
            f"{bot.url}/slack/events", content=body, headers={**signed, **headers}
        )

    async def command(self, bot: ManagedProcess, text: str) -> RecordedCall:
        """Send `/customer text` to `bot`; return what reached the command's response_url."""
        response_url = self.slack.response_url()
        body = slack_payloads.slash_command(
            text=text, user_id="U0AGENT", channel_id="C0SUPPORT", response_url=response_url
        )
        ack = await self.send(bot, body)
        assert ack.status_code == 200
        return await self.answer_at(response_url)

    async def answer_at(self, response_url: str) -> RecordedCall:
        """The first post to `response_url`, waiting for it."""
        path = response_url.removeprefix(self.slack.url)
        give_up = time.monotonic() + WAIT_S
        while time.monotonic() < give_up:
            for call in self.slack.calls_to("response_url"):
                if call.path == path:
                    return call
            await asyncio.sleep(0.01)
        raise AssertionError(f"nothing reached {path} within {WAIT_S:g} s")

    def warnings(self) -> str:
        """The instances' logged warnings and errors, to explain a failure (no customer data)."""
        lines = [
            f"{bot.name}: {line}"
            for bot in (self.a, self.b)
            for line in bot.log_text().splitlines()
            if " WARNING " in line or " ERROR " in line
        ]
        return "\n".join(lines) or "no warnings logged"

    def assert_no_customer_data_in_logs(self) -> None:
        """The instances' logs and audit trails hold no email, phone, name or token."""
        texts = [self.a.log_text(), self.b.log_text()]
        texts += [path.read_text() for path in self.audit_files if path.exists()]
        leaked = {value for value in personal_values() for text in texts if value in text}
        assert not leaked, f"customer data or tokens in logs or audit: {sorted(leaked)[:5]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def instances(
    shared_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Instances]:
    """Two `python -m bot` processes on different ports, one Redis, one sandbox, one Slack."""
    workdir = tmp_path_factory.mktemp("instances")
    sim = AepSimulator()
    sandbox: DemoServer = await start_server(sim, port=0)
    slack = SlackRecorder()
    await slack.start()
    audit_files = (workdir / "audit-a.jsonl", workdir / "audit-b.jsonl")
    envs = [
        {
            **bot_environment(
                port=free_port(),
                slack_api_url=slack.api_url,
                aep_url=sandbox.url,
                signing_secret=SIGNING_SECRET,
                audit_file=audit,
                audit_key=AUDIT_KEY,
                cache_url=shared_redis,
            ),
            # The first post to a command's response_url is its card, however loaded the machine.
            "BOT_SLOW_ANSWER_SECONDS": "60",
        }
        for audit in audit_files
    ]
    started = await asyncio.gather(
        start_bot(envs[0], workdir=workdir, name="bot-a"),
        start_bot(envs[1], workdir=workdir, name="bot-b"),
        return_exceptions=True,
    )
    bots = [bot for bot in started if isinstance(bot, ManagedProcess)]
    http = httpx.AsyncClient(timeout=WAIT_S, trust_env=False)
    exit_codes: list[int] = []
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield Instances(
            a=bots[0], b=bots[1], sim=sim, slack=slack, http=http, audit_files=audit_files
        )
    finally:
        exit_codes = list(await asyncio.gather(*(bot.stop() for bot in bots)))
        await http.aclose()
        await slack.close()
        await sandbox.close()
    # Both shut down gracefully on SIGTERM.
    assert exit_codes == [0] * len(bots)


async def test_a_customer_fetched_by_one_instance_is_a_cache_hit_on_the_other(
    instances: Instances,
) -> None:
    instances.reset()
    first = await instances.command(instances.a, "sanne.de.vries@example.nl")
    second = await instances.command(instances.b, "sanne.de.vries@example.nl")

    for card in (first, second):
        assert card.payload["text"].startswith("Customer profile: Sanne")
    assert instances.sim.stats["profile"] == 1, instances.warnings()
    assert instances.sim.stats["events"] == 1, instances.warnings()
    instances.assert_no_customer_data_in_logs()


async def test_concurrent_lookups_of_one_customer_on_both_instances_make_one_aep_call(
    instances: Instances,
) -> None:
    instances.reset()
    # Slow answers, so the ten lookups overlap on both instances.
    instances.sim.faults.latency_ms = 300
    bots = [instances.a, instances.b] * 5

    cards = await asyncio.gather(
        *(instances.command(bot, "hanako.yamada@example.jp") for bot in bots)
    )

    assert len(cards) == 10
    for card in cards:
        assert "山田" in card.payload["text"]
    assert instances.sim.stats["profile"] == 1, instances.warnings()
    assert instances.sim.stats["events"] == 1, instances.warnings()
    instances.assert_no_customer_data_in_logs()


async def test_an_event_retried_to_the_other_instance_is_answered_once(
    instances: Instances,
) -> None:
    instances.reset()
    event_id = f"Ev{uuid.uuid4().hex[:10].upper()}"
    body = slack_payloads.app_mention(
        text="<@U0BOT> who is CRM-000311?",
        user_id="U0MANAGER",
        channel_id="C0PRIVATE",
        event_id=event_id,
    )

    first = await instances.send(instances.a, body)
    [post] = await instances.slack.wait_for("chat.postMessage", timeout=WAIT_S)
    # A retry is a new delivery, signed with the time Slack sent it.
    retry = await instances.send(
        instances.b,
        body,
        timestamp=int(time.time()) + 1,
        **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    # B logs the event id when it drops the duplicate: wait for that (or for a second answer)
    # rather than for a guessed time.
    give_up = time.monotonic() + WAIT_S
    while time.monotonic() < give_up:
        if event_id in instances.b.log_text():
            break
        if len(instances.slack.calls_to("chat.postMessage")) > 1:
            break
        await asyncio.sleep(0.01)

    assert first.status_code == retry.status_code == 200
    assert post.payload["channel"] == "C0PRIVATE"
    assert len(instances.slack.calls_to("chat.postMessage")) == 1, instances.warnings()
    assert event_id in instances.b.log_text(), "instance B never logged the retried event"
    instances.assert_no_customer_data_in_logs()


async def test_a_lookup_on_one_instance_is_on_the_home_the_other_publishes(
    instances: Instances,
) -> None:
    instances.reset()
    await instances.command(instances.a, "CRM-000311")

    opened = await instances.send(instances.b, slack_payloads.app_home_opened(user_id="U0AGENT"))
    [published] = await instances.slack.wait_for("views.publish", timeout=WAIT_S)

    assert opened.status_code == 200
    assert published.payload["user_id"] == "U0AGENT"
    home = json.dumps(published.payload["view"]["blocks"])
    assert "CRM-000311" in home, instances.warnings()
    assert ids.HOME_REPLAY in home
    instances.assert_no_customer_data_in_logs()
