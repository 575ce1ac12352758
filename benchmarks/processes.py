"""Start `python -m bot` (or the naive baseline) and the demo sandbox as subprocesses, stop them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx

from bot.demo.dataset import (
    DEFAULT_MERGE_POLICY_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_ORG_ID,
)

__all__ = [
    "ManagedProcess",
    "Memory",
    "ProcessError",
    "bot_environment",
    "free_port",
    "start_bot",
    "start_process",
    "start_sandbox",
]

REPO = Path(__file__).resolve().parents[1]
#: The bot token every benchmark and test bot uses; the recording Slack server accepts any.
BOT_TOKEN = "xoxb-test"
#: The BOT_CACHE_KEY of the benchmark and test instances (a Redis cache needs one).
BENCH_CACHE_KEY = "bench-cache-key-Yq7Tn2Vd9Lw4Hs8Kp1Zx"
# The parent's own bot settings must never leak into a child configured here.
_BOT_PREFIXES = ("SLACK_", "AEP_", "BOT_")
_POLL_S = 0.05
_LOG_TAIL_CHARS = 2000


class ProcessError(RuntimeError):
    """A subprocess did not start, or did not stop when asked."""


def free_port() -> int:
    """A loopback TCP port nothing listens on (the OS just handed it out and it was closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(
    *,
    port: int,
    slack_api_url: str,
    aep_url: str,
    signing_secret: str,
    audit_file: Path,
    audit_key: str,
    cache_url: str = "memory://",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a bot in HTTP mode against the demo sandbox served at `aep_url`."""
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": slack_api_url,
        "AEP_CLIENT_ID": DEMO_CLIENT_ID,
        "AEP_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "AEP_ORG_ID": DEMO_ORG_ID,
        "AEP_API_URL": aep_url,
        "AEP_IMS_URL": aep_url,
        "AEP_MERGE_POLICY_ID": DEFAULT_MERGE_POLICY_ID,
        "BOT_CACHE_URL": cache_url,
        # Every instance on one Redis seals and opens its values with the same key.
        "BOT_CACHE_KEY": BENCH_CACHE_KEY,
        "BOT_AUDIT_FILE": str(audit_file),
        "BOT_AUDIT_KEY": audit_key,
        "PORT": str(port),
    }
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process from /proc/<pid>/status: now (VmRSS) and peak (VmHWM)."""

    rss_kb: int
    peak_kb: int

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


@dataclass
class ManagedProcess:
    """One subprocess serving HTTP on `url`; its stdout and stderr go to `log_path`."""

    name: str
    url: str
    port: int
    log_path: Path
    process: asyncio.subprocess.Process = field(repr=False)
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def memory(self) -> Memory:
        """Current and peak resident set size (Linux /proc)."""
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
        return Memory(rss_kb=values["VmRSS"], peak_kb=values["VmHWM"])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used (Linux /proc)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name may hold spaces; the fields after it are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    async def wait_ready(self, path: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Poll `GET path` until it answers 200; ProcessError if the process exits or times out."""
        give_up = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if not self.running:
                    raise ProcessError(
                        f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                        + self.log_text()[-_LOG_TAIL_CHARS:]
                    )
                try:
                    response = await client.get(self.url + path)
                except httpx.HTTPError:
                    pass
                else:
                    if response.status_code == 200:
                        return
                if time.monotonic() >= give_up:
                    raise ProcessError(
                        f"{self.name} did not answer GET {path} within {timeout:g} s:\n"
                        + self.log_text()[-_LOG_TAIL_CHARS:]
                    )
                await asyncio.sleep(_POLL_S)

    async def stop(self, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        """Ask the process to stop (its graceful signal) and wait; kill it after `timeout`.

        Returns the exit code (negative: the signal that ended it).
        """
        if self.running:
            self.process.send_signal(self.stop_signal)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                await self.kill()
        return int(await self.process.wait())

    async def kill(self) -> None:
        """End the process at once (SIGKILL) and reap it."""
        if self.running:
            self.process.kill()
        await self.process.wait()


def _open_log(workdir: Path, name: str) -> tuple[Path, BinaryIO]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.log"
    return path, path.open("wb")


def _child_environment(env: Mapping[str, str]) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_BOT_PREFIXES) and name != "PORT"
    }
    python_path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    inherited.update(PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(python_path))
    inherited.update(env)
    return inherited


async def start_process(
    name: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: Path,
    port: int,
    ready_path: str,
    stop_signal: signal.Signals = signal.SIGTERM,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> ManagedProcess:
    """Run `python <args>` in `workdir` and wait until it answers `GET ready_path` on `port`.

    The child runs with this interpreter, the repository on PYTHONPATH, no SLACK_/AEP_/BOT_
    variables but those in `env`, and `workdir` as its working directory (so no `.env` file of
    the checkout is read).
    """
    log_path, log = _open_log(workdir, name)
    with log:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            env=_child_environment(env),
            cwd=workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    process = ManagedProcess(
        name=name,
        url=f"http://127.0.0.1:{port}",
        port=port,
        log_path=log_path,
        process=child,
        stop_signal=stop_signal,
    )
    try:
        await process.wait_ready(ready_path, timeout)
    except BaseException:
        await process.kill()
        raise
    return process


async def start_bot(
    env: Mapping[str, str],
    *,
    workdir: Path,
    name: str = "bot",
    module: str = "bot",
    timeout: float = 30.0,  # noqa: ASYNC109
) -> ManagedProcess:
    """`python -m <module>` in HTTP mode on env["PORT"], ready once `GET /healthz` answers.

    `module` is `bot` (the product, exactly as a user runs it) or `benchmarks.naive`.
    """
    return await start_process(
        name,
        ["-m", module],
        env=env,
        workdir=workdir,
        port=int(env["PORT"]),
        ready_path="/healthz",
        timeout=timeout,
    )


async def start_sandbox(
    *,
    workdir: Path,
    latency_ms: float = 0.0,
    port: int | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> ManagedProcess:
    """`python -m bot demo-aep` on `port` (a free one by default), ready once it serves stats.

    The sandbox stops on SIGINT (Ctrl-C), so that is its stop signal.
    """
    port = port or free_port()
    args = ["-m", "bot", "demo-aep", "--port", str(port), "--latency-ms", f"{latency_ms:g}"]
    return await start_process(
        "sandbox",
        args,
        env={},
        workdir=workdir,
        port=port,
        ready_path="/__demo/stats",
        stop_signal=signal.SIGINT,
        timeout=timeout,
    )
