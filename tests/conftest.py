"""Shared fixtures: the demo AEP sandbox, the recording Slack server and the app in HTTP mode."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot import slack_payloads
from bot.app import create_app
from bot.demo.dataset import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORG_ID
from bot.demo.server import start_server
from bot.demo.simulator import AepSimulator
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from bot.slack_recorder import SlackRecorder

SIGNING_SECRET = "test-signing-secret"
AUDIT_KEY = "test-audit-key"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "bot" / "layouts" / "policy.default.yml"


@pytest.fixture(autouse=True)
def _no_env_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; the developer's environment must not leak in."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "AEP_", "BOT_")) or name == "PORT":
            monkeypatch.delenv(name)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[AepSimulator, str]]:
    """The demo AEP sandbox over real loopback HTTP."""
    sim = AepSimulator()
    server = await start_server(sim, port=0)
    try:
        yield sim, server.url
    finally:
        await server.close()


@pytest.fixture
async def slack() -> AsyncIterator[SlackRecorder]:
    """The local recording Slack Web API server (also the response_url receiver)."""
    recorder = SlackRecorder()
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.close()


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
    web_app = app.web_app(path="/slack/events", port=0)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
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


@pytest.fixture
async def bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The whole bot: HTTP mode, AEP answered by the sandbox, Slack by the recorder."""
    sim, aep_url = sandbox
    running, runner = await start_bot(sim, aep_url, slack, tmp_path)
    try:
        yield running
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def settle(seconds: float = 0.05) -> None:
    """Let background listener tasks run (used only where nothing is expected to happen)."""
    await asyncio.sleep(seconds)
