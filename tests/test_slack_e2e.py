"""End to end: signed Slack requests over loopback HTTP to the app in HTTP mode, AEP answered by
the demo sandbox, the Web API and response_url by the recording server: what a person reads when
AEP fails, and what an unsigned request gets. Each handler's own tests are in tests/listeners/."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support import JANE, RunningBot, all_text, command, notice_text, settle, start_bot


async def test_unknown_customer_is_said_in_words(bot: RunningBot) -> None:
    await bot.send(command(bot, "nobody.at.all@example.com"))
    [answer] = await bot.slack.wait_for("response_url")
    assert answer.payload["text"] == notice_text(
        bot, "not_found", query="Email nobody.at.all@example.com"
    )


async def test_graph_too_large_is_explained(bot: RunningBot) -> None:
    await bot.send(command(bot, "big.graph@example.com"))
    [answer] = await bot.slack.wait_for("response_url")
    assert answer.payload["text"] == notice_text(
        bot, "too_many_identities", query="Email big.graph@example.com"
    )


async def test_aep_down_is_explained_not_silent(bot: RunningBot) -> None:
    bot.sim.faults.add("500", endpoint="profile", count=50)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url", timeout=15)
    # Platform answered, with an error every time: a server error, not "cannot reach".
    assert answer.payload["text"] == notice_text(bot, "server_error", status=500)


async def test_rate_limit_longer_than_the_deadline_is_explained(bot: RunningBot) -> None:
    bot.sim.faults.add("429", endpoint="profile", count=50, retry_after_ms=60_000)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url", timeout=15)
    assert (
        "busy" in answer.payload["text"].lower()
        or "rate" in answer.payload["text"].lower()
        or "60" in answer.payload["text"]
    )


async def test_hostile_profile_renders_literally_and_pings_nobody(bot: RunningBot) -> None:
    await bot.send(command(bot, "hostile@example.com"))
    [card] = await bot.slack.wait_for("response_url")
    raw = all_text(card)
    assert "&lt;!channel&gt;" in raw
    for dangerous in ("<!channel>", "<!here>", "<https://evil.example|click>", "<@U0ADMIN>"):
        assert dangerous not in raw


async def test_bad_signature_is_rejected_with_no_aep_call(bot: RunningBot) -> None:
    response = await bot.send(command(bot, JANE), secret="not-the-secret")
    assert response.status_code == 401
    await settle()
    assert sum(bot.sim.stats.values()) == 0
    assert bot.slack.calls_to("response_url") == []


async def test_stale_timestamp_is_rejected_with_no_aep_call(bot: RunningBot) -> None:
    response = await bot.send(command(bot, JANE), timestamp=int(time.time()) - 600)
    assert response.status_code == 401
    await settle()
    assert sum(bot.sim.stats.values()) == 0


async def test_aep_hanging_is_cut_off_by_the_deadline_and_explained(
    sandbox: Any, slack: Any, tmp_path: Any
) -> None:
    sim, aep_url = sandbox
    running, runner = await start_bot(sim, aep_url, slack, tmp_path, bot_lookup_deadline=1.0)
    try:
        sim.faults.add("hang", endpoint="profile", count=5)
        await running.send(command(running, JANE))
        [answer] = await slack.wait_for("response_url", timeout=10)
        assert (
            "did not answer" in answer.payload["text"]
            or "try again" in answer.payload["text"].lower()
        )
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def test_refused_adobe_credentials_are_explained_without_blaming_the_customer(
    sandbox: Any, slack: Any, tmp_path: Any
) -> None:
    sim, aep_url = sandbox
    running, runner = await start_bot(
        sim, aep_url, slack, tmp_path, aep_client_secret="not-the-demo-secret"
    )
    try:
        await running.send(command(running, JANE))
        [answer] = await slack.wait_for("response_url")
        text = answer.payload["text"].lower()
        assert "credentials" in text
        assert answer.payload["text"] == notice_text(running, "credentials")
    finally:
        await running.http.aclose()
        await runner.cleanup()
        await running.services.aclose()


async def test_a_malformed_aep_answer_is_explained(bot: RunningBot) -> None:
    bot.sim.faults.add("malformed", endpoint="profile", count=5)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url")
    assert "adobe" in answer.payload["text"].lower()


async def test_an_unexpected_failure_still_ends_in_a_message(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.services.lookup, "lookup", broken)
    monkeypatch.setattr(bot.services.lookup, "lookup_soon", broken)
    await bot.send(command(bot, JANE))
    [answer] = await bot.slack.wait_for("response_url")
    assert "reference" in answer.payload["text"].lower()
