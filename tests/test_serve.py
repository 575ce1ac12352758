"""`python -m bot run`: the mode follows the credentials, and shutdown closes everything."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import __main__ as entry
from bot.demo import payloads as slack_payloads
from bot.demo.slack import SlackRecorder
from bot.settings import load_settings


class FakeSocketModeHandler:
    """Stands in for Slack's Socket Mode connection, which cannot be reached from here."""

    instances: list[FakeSocketModeHandler] = []

    def __init__(self, app: Any, app_token: str) -> None:
        self.app, self.app_token = app, app_token
        self.connected = self.closed = False
        FakeSocketModeHandler.instances.append(self)

    async def connect_async(self) -> None:
        self.connected = True

    async def close_async(self) -> None:
        self.closed = True


async def test_an_app_token_starts_socket_mode_and_stop_closes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        "slack_bolt.adapter.socket_mode.async_handler.AsyncSocketModeHandler",
        FakeSocketModeHandler,
    )
    settings = load_settings(
        _env_file=None,
        slack_app_token="xapp-test",
        slack_bot_token="xoxb-test",
        bot_audit_file=str(tmp_path / "audit.jsonl"),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(entry.serve(settings, stop=stop))
    for _ in range(200):
        if FakeSocketModeHandler.instances and FakeSocketModeHandler.instances[-1].connected:
            break
        await asyncio.sleep(0.01)
    handler = FakeSocketModeHandler.instances[-1]
    assert handler.connected and handler.app_token == "xapp-test"
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert handler.closed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServedBot:
    """`serve()` in HTTP mode on a free port, and how to talk to it."""

    url: str
    stop: asyncio.Event
    task: asyncio.Task[int]
    http: httpx.AsyncClient

    async def command(self, slack: SlackRecorder, text: str) -> httpx.Response:
        body = slack_payloads.slash_command(
            text=text,
            user_id="U0MANAGER",
            channel_id="C0PRIVATE",
            response_url=slack.response_url(),
        )
        headers = {
            "Content-Type": slack_payloads.content_type(body),
            **slack_payloads.sign(body, secret="secret"),
        }
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    async def shut_down(self) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, 15)


@asynccontextmanager
async def served(slack: SlackRecorder, tmp_path: Path) -> AsyncIterator[ServedBot]:
    port = _free_port()
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
    async with httpx.AsyncClient(timeout=5) as http:
        bot = ServedBot(url=f"http://127.0.0.1:{port}", stop=stop, task=task, http=http)
        for _ in range(300):
            try:
                await http.get(f"{bot.url}/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.02)
        yield bot
    if not task.done():
        await bot.shut_down()


async def test_http_mode_serves_slack_events_and_healthz(tmp_path: Path) -> None:
    async with SlackRecorder() as slack, served(slack, tmp_path) as bot:
        health = await bot.http.get(f"{bot.url}/healthz")
        assert health.json() == {"ok": True, "demo": True}
        answer = await bot.command(slack, "jane.doe@example.com")
        assert answer.status_code == 200
        [card] = await slack.wait_for("response_url")
        assert "Jane Doe" in card.payload["text"]
        assert await bot.shut_down() == 0


async def test_a_stop_lets_the_answers_in_progress_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while a lookup waits for AEP: the card still arrives before the bot exits."""
    from bot import services as services_module

    built: list[Any] = []
    real_build = services_module.build_services

    def build(*args: Any, **kwargs: Any) -> Any:
        services = real_build(*args, **kwargs)
        services.simulator.faults.latency_ms = 600  # the in-process demo sandbox
        built.append(services)
        return services

    monkeypatch.setattr(services_module, "build_services", build)
    async with SlackRecorder() as slack, served(slack, tmp_path) as bot:
        answer = await bot.command(slack, "jane.doe@example.com")
        assert answer.status_code == 200  # acked; the lookup now waits for AEP
        assert await bot.shut_down() == 0
        [card] = slack.calls_to("response_url")
        assert "Jane Doe" in card.payload["text"]
        assert built[0].closed
