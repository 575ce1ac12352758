"""`python -m benchmarks.cpu`: the bot's CPU time per command, with and without operations extras.

Each variant is a real `python -m bot` process in HTTP mode against the demo sandbox (its own
process). The harness sends `--commands` signed /customer commands one after another (a mix of
cold lookups and cache hits, the same texts for every variant), scraping /metrics once a second
where the variant has it, and reads the bot's utime + stime from /proc/<pid>/stat before and
after. Variants:

- `baseline`: the bot from `--baseline-src` (a checkout without metrics or JSON logs), if given
- `text`: this checkout, BOT_LOG_FORMAT=text, /metrics scraped
- `json`: this checkout, BOT_LOG_FORMAT=json, /metrics scraped
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from benchmarks.harness import AUDIT_KEY, SIGNING_SECRET, CardWatch, Driver, distinct_identities
from benchmarks.processes import bot_environment, free_port, start_bot, start_sandbox
from bot.demo.slack import SlackRecorder

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid`, from /proc/<pid>/stat (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def measure(
    name: str,
    *,
    texts: Sequence[str],
    aep_url: str,
    recorder: SlackRecorder,
    driver: Driver,
    workdir: Path,
    log_format: str | None,
    source: Path | None,
) -> float:
    """CPU milliseconds per command of one variant."""
    port = free_port()
    extra = {"BOT_LOG_FORMAT": log_format} if log_format else {}
    env = bot_environment(
        port=port,
        slack_api_url=recorder.api_url,
        aep_url=aep_url,
        signing_secret=SIGNING_SECRET,
        audit_file=workdir / f"{name}-audit.jsonl",
        audit_key=AUDIT_KEY,
        extra=extra,
    )
    if source is not None:
        env["PYTHONPATH"] = str(source)
    bot = await start_bot(env, workdir=workdir / name, name=name)
    scraping = log_format is not None
    try:
        # Warm up: the IMS token, the audience names, imports on first use.
        for text in texts[:5]:
            await driver.command(bot, text)
        async with aiohttp.ClientSession() as session:
            scraper = asyncio.create_task(_scrape(session, f"{bot.url}/metrics", scraping))
            before = cpu_seconds(bot.pid)
            failed = 0
            for text in texts:
                sample = await driver.command(bot, text)
                failed += sample.ack_status != 200
            after = cpu_seconds(bot.pid)
            scraper.cancel()
        if failed:
            print(f"{name}: {failed} commands not acked", file=sys.stderr)
        return (after - before) * 1000 / len(texts)
    finally:
        await bot.stop()


async def _scrape(session: aiohttp.ClientSession, url: str, enabled: bool) -> None:
    """Scrape /metrics once a second, as Prometheus would (more often than usual)."""
    while enabled:
        async with session.get(url) as response:
            await response.read()
        await asyncio.sleep(1.0)


async def run(commands: int, baseline: Path | None, repeat: float) -> list[tuple[str, float]]:
    identities = distinct_identities()
    fresh = [next(identities) for _ in range(commands)]
    # Every third command asks again for a customer already looked up: a cache hit.
    texts = [fresh[i // 3] if i % 3 == 2 and repeat else fresh[i] for i in range(commands)]
    results: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        workdir = Path(tmp)
        sandbox = await start_sandbox(workdir=workdir / "sandbox", latency_ms=0)
        recorder = SlackRecorder()
        watch = CardWatch(recorder)
        await recorder.start()
        try:
            async with aiohttp.ClientSession() as session:
                driver = Driver(recorder, watch, session)
                variants: list[tuple[str, str | None, Path | None]] = []
                if baseline is not None:
                    variants.append(("baseline", None, baseline))
                variants += [("text", "text", None), ("json", "json", None)]
                for name, log_format, source in variants:
                    ms = await measure(
                        name,
                        texts=texts,
                        aep_url=sandbox.url,
                        recorder=recorder,
                        driver=driver,
                        workdir=workdir,
                        log_format=log_format,
                        source=source,
                    )
                    results.append((name, ms))
        finally:
            await recorder.close()
            await sandbox.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu", description=__doc__)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--baseline-src", type=Path, default=None, help="checkout to compare")
    parser.add_argument("--no-repeats", action="store_true", help="every command a cold lookup")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.commands, args.baseline_src, 0.0 if args.no_repeats else 1.0))
    print(f"bot CPU per command, {args.commands} serial signed /customer commands:")
    for name, ms in results:
        print(f"  {name:9s} {ms:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
