"""Helpers shared by several test files: the bot on a loopback port, signed requests to it, and
what Slack received. Fixtures live in conftest.py; import helpers from here, never from conftest."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot import ids
from bot.app import create_app
from bot.demo import payloads as slack_payloads
from bot.demo.dataset import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORG_ID, load_dataset
from bot.demo.simulator import AepSimulator
from bot.demo.slack import RecordedCall, SlackRecorder
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from bot.verify import create_web_app

SIGNING_SECRET = "test-signing-secret"
AUDIT_KEY = "test-audit-key"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "bot" / "layouts" / "policy.default.yml"
JANE = "jane.doe@example.com"

#: Every audit file a test bot wrote: scanned for customer data at the end of the run.
AUDIT_FILES: list[Path] = []


def personal_values() -> set[str]:
    """The demo dataset's emails, phones and names, and the tokens the tests use."""
    values = {"xoxb-test", SIGNING_SECRET, AUDIT_KEY, DEMO_CLIENT_SECRET}
    for customer in load_dataset().customers:
        for namespace, value in customer.identities:
            if namespace.lower() in {"email", "phone"}:
                values.add(value)
        name = customer.entity.get("person", {}).get("name", {})
        full = " ".join(str(name.get(k, "")) for k in ("firstName", "lastName")).strip()
        if len(full) >= 5:
            values.add(full)
    return values


def bot_settings(aep_url: str, slack_api_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "slack_bot_token": "xoxb-test",
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack_api_url,
        "aep_client_id": DEMO_CLIENT_ID,
        "aep_client_secret": DEMO_CLIENT_SECRET,
        "aep_org_id": DEMO_ORG_ID,
        "aep_api_url": aep_url,
        "aep_ims_url": aep_url,
        "bot_audit_file": str(tmp_path / "audit.jsonl"),
        "bot_audit_key": AUDIT_KEY,
        "bot_policy_file": DEFAULT_POLICY,
        "port": 3000,
        # A test reads the card as the command's one message; on this busy machine a lookup may
        # pass 1.5 s, and the "Looking up…" said then is tested on its own (set to 0).
        "bot_slow_answer_seconds": 60,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class RunningBot:
    """The app in HTTP mode on a loopback port, and how to send it signed Slack requests."""

    url: str
    services: Services
    settings: Settings
    slack: SlackRecorder
    sim: AepSimulator
    audit_path: Path
    http: httpx.AsyncClient

    async def send(
        self,
        body: str,
        *,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        signed = slack_payloads.sign(body, secret=secret, timestamp=timestamp)
        all_headers = {
            "Content-Type": slack_payloads.content_type(body),
            **signed,
            **(headers or {}),
        }
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=all_headers)

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]


async def start_bot(
    sim: AepSimulator, aep_url: str, slack: SlackRecorder, tmp_path: Path, **overrides: Any
) -> tuple[RunningBot, web.AppRunner]:
    settings = bot_settings(aep_url, slack.api_url, tmp_path, **overrides)
    services = build_services(settings)
    app = create_app(settings, services)
    web_app = create_web_app(app, settings, services)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    AUDIT_FILES.append(Path(settings.bot_audit_file))
    bot = RunningBot(
        url=f"http://127.0.0.1:{port}",
        services=services,
        settings=settings,
        slack=slack,
        sim=sim,
        audit_path=Path(settings.bot_audit_file),
        http=httpx.AsyncClient(timeout=10),
    )
    return bot, runner


@contextlib.asynccontextmanager
async def running_bot(
    sim: AepSimulator, aep_url: str, slack: SlackRecorder, tmp_path: Path, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """`start_bot` for the length of a `with` block, everything closed afterwards."""
    running, runner = await start_bot(sim, aep_url, slack, tmp_path, **overrides)
    try:
        yield running
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def settle(seconds: float = 0.05) -> None:
    """Let background listener tasks run (used only where nothing is expected to happen)."""
    await asyncio.sleep(seconds)


async def logged(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    """The messages `logger` logged, once it logged any (a listener runs after its ack)."""
    for _ in range(100):
        messages = [r.getMessage() for r in caplog.records if r.name == logger]
        if messages:
            return messages
        await settle(0.02)
    return []


def all_text(call: RecordedCall) -> str:
    """Everything a recorded call carried, as one string to search."""
    return json.dumps(call.payload, ensure_ascii=False)


def notice_text(bot: RunningBot, kind: str, **values: Any) -> str:
    """The text of the notice `kind` with `values`, as the bot renders it: a test that names
    which notice a case must produce, whatever its words are in the bot's language."""
    reader = bot.services.default_reader
    return str(bot.services.cards.notice(kind, reader=reader, **values)["text"])  # type: ignore[arg-type]


def command(bot: RunningBot, text: str, user: str = "U0MANAGER", channel: str = "C0PRIVATE") -> str:
    """A signed-to-be /customer request whose answers go to the recording server."""
    return slack_payloads.slash_command(
        text=text,
        user_id=user,
        channel_id=channel,
        response_url=bot.slack.response_url(),
        trigger_id="trigger-1",
    )


def button(call: RecordedCall, action_id: str) -> dict[str, Any]:
    """The button `action_id` on a recorded message; fails the test when there is none."""
    for block in call.payload.get("blocks", []):
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action_id:
                return element
    raise AssertionError(f"no {action_id} button in {call.payload}")


async def click(
    bot: RunningBot,
    action_id: str,
    value: str,
    *,
    user: str = "U0MANAGER",
    channel: str = "C0PRIVATE",
    **more: Any,
) -> httpx.Response:
    """A signed click on a button (`value` is its opaque token), answered on a fresh
    response_url of the recording server."""
    body = slack_payloads.block_action(
        action_id=action_id,
        value=value,
        user_id=user,
        channel_id=channel,
        response_url=bot.slack.response_url(),
        **more,
    )
    return await bot.send(body)


async def click_on(
    bot: RunningBot,
    post: RecordedCall,
    action_id: str,
    *,
    user: str,
    **more: Any,
) -> httpx.Response:
    """A signed click by `user` on the button `action_id` of a message the bot posted
    (`chat.postMessage`), sent as Slack sends it: the message whole, as Slack keeps it, blocks,
    `ts` and `thread_ts` included, and the container naming its channel and `ts`."""
    message = post.response["message"]
    body = slack_payloads.block_action(
        action_id=action_id,
        value=button(post, action_id)["value"],
        user_id=user,
        channel_id=post.response["channel"],
        response_url=bot.slack.response_url(),
        is_ephemeral=False,
        message=message,
        **more,
    )
    return await bot.send(body)


async def private_card(bot: RunningBot, user: str, channel: str = "C0PRIVATE") -> RecordedCall:
    """Jane's card as `user` sees it privately, asked for with /customer."""
    body = slack_payloads.slash_command(
        text=JANE, user_id=user, channel_id=channel, response_url=bot.slack.response_url()
    )
    response = await bot.send(body)
    assert response.status_code == 200
    [answer] = await bot.slack.wait_for("response_url")
    return answer


async def share(bot: RunningBot, sharer: str, channel: str, reason: str = "escalation") -> None:
    """The whole share flow: private card, Share button, modal, submission."""
    card = await private_card(bot, sharer, channel)
    share_button = button(card, ids.SHARE)
    await bot.send(
        slack_payloads.block_action(
            action_id=ids.SHARE,
            value=share_button["value"],
            user_id=sharer,
            channel_id=channel,
            response_url=bot.slack.response_url(),
            thread_ts="1700000000.000001",
        )
    )
    [opened] = await bot.slack.wait_for("views.open")
    await submit_share(bot, opened.payload["view"], sharer, reason)


async def submit_share(
    bot: RunningBot, view: dict[str, Any], user: str = "U0MANAGER", reason: str | None = None
) -> httpx.Response:
    """A signed submission of the share modal `view` (as opened by the bot), with `reason`."""
    values = (
        {}
        if reason is None
        else {
            ids.SHARE_REASON_BLOCK: {
                ids.SHARE_REASON_INPUT: {"type": "plain_text_input", "value": reason}
            }
        }
    )
    body = slack_payloads.view_submission(
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        values=values,
        user_id=user,
    )
    return await bot.send(body)
