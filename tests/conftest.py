"""Shared fixtures: the demo AEP sandbox, the recording Slack server and the app in HTTP mode."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.app import create_app
from bot.demo import payloads as slack_payloads
from bot.demo.dataset import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORG_ID, load_dataset
from bot.demo.server import start_server
from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from bot.logs import quiet_libraries
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from bot.verify import create_web_app

SIGNING_SECRET = "test-signing-secret"
AUDIT_KEY = "test-audit-key"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "bot" / "layouts" / "policy.default.yml"


# --- the whole run's logs and audit records are scanned for customer data --------------------

_SESSION_LOG: list[str] = []
_AUDIT_FILES: list[Path] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _SESSION_LOG.append(self.format(record))
        except Exception:
            _SESSION_LOG.append(str(record.msg))


def pytest_configure(config: pytest.Config) -> None:
    """Collect every log line of the run, at DEBUG, for the scan at the end."""
    handler = _Collect(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # As the bot does before anything else: payload-logging libraries held at their safe level
    # (tests that talk to the recording Slack server without an app would otherwise log bodies).
    quiet_libraries()


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any log line or audit record holds a customer's email, phone or name,
    or a token (issue 4: nothing personal leaks into logs)."""
    if exitstatus not in (0, 1):
        return
    secrets_ = personal_values()
    found: list[str] = []
    for line in _SESSION_LOG:
        hits = [v for v in secrets_ if v in line] + (["Bearer"] if "Bearer " in line else [])
        if hits:
            found.append(f"log: {hits[0]!r} in {line[:300]!r}")
    for path in _AUDIT_FILES:
        if path.exists():
            text = path.read_text()
            found += [f"audit {path.name}: {v!r}" for v in secrets_ if v in text]
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(found[:20])
        message = f"\nCustomer data or tokens leaked into logs or audit records:\n{lines}\n"
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    web_app = create_web_app(app, settings, services)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    _AUDIT_FILES.append(Path(settings.bot_audit_file))
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
