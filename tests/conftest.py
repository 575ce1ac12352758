"""Shared fixtures: the demo AEP sandbox, the recording Slack server and the app in HTTP mode."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo.server import start_server
from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from bot.logs import quiet_libraries
from bot.services import Services, build_services
from tests.support import (
    AUDIT_FILES,
    RunningBot,
    bot_settings,
    personal_values,
    running_bot,
)

# --- the whole run's logs and audit records are scanned for customer data --------------------

_SESSION_LOG: list[str] = []


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
    for path in AUDIT_FILES:
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


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """The bot's services with nothing behind them (AEP and Slack at unroutable addresses): for
    the use case's and the listeners' rules that need no network."""
    built = build_services(bot_settings("http://aep.invalid", "http://slack.invalid", tmp_path))
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def bot(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    """The whole bot: HTTP mode, AEP answered by the sandbox, Slack by the recorder."""
    sim, aep_url = sandbox
    async with running_bot(sim, aep_url, slack, tmp_path) as running:
        yield running
