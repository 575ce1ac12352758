"""A deployment pointed at the wrong Platform address, seen from Slack: a gateway 404 is a
configuration problem said in words, never "no such customer", and never remembered."""

from __future__ import annotations

from pathlib import Path

from bot.demo.simulator import AepSimulator
from bot.demo.slack import SlackRecorder
from tests.support import JANE, command, start_bot


async def test_a_gateway_404_is_told_as_misconfigured_and_never_remembered(
    sandbox: tuple[AepSimulator, str], slack: SlackRecorder, tmp_path: Path
) -> None:
    """Through signed /customer commands: a wrong Platform path (a gateway 404 with an
    `error_code` body) is a configuration problem in words, and the next command asks again
    instead of answering "no such customer" from the cache."""
    sim, aep_url = sandbox
    running, runner = await start_bot(
        sim,
        aep_url + "/wrong/prefix",
        slack,
        tmp_path,
        aep_ims_url=aep_url,
        aep_merge_policy_id="any-policy",
    )
    try:
        for n in (1, 2):
            await running.send(command(running, JANE))
            calls = await slack.wait_for("response_url", count=n)
            text = calls[-1].payload["text"].lower()
            assert "misconfigured" in text and "not found" not in text
        assert sim.stats["unknown"] >= 2  # each command reached the gateway again
        outcomes = [r["outcome"] for r in running.audit()]
        assert outcomes == ["misconfigured", "misconfigured"]
    finally:
        await running.http.aclose()
        await running.services.aclose()
        await runner.cleanup()
