"""Redis for tests: 127.0.0.1:6379, else a private redis-server, else skip (fail when CI=true)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

_LOCAL = ("127.0.0.1", 6379)

#: The BOT_CACHE_KEY of the tests' Redis caches (the bot refuses to use Redis without one).
CACHE_KEY = "test-cache-key-3Ni8Qv0Zb6XkRr2LmT9sWq"
_found: tuple[str | None, str] | None = None


def _answers(host: str, port: int) -> bool:
    client = redis.Redis(host=host, port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def free_port() -> int:
    """A loopback TCP port nothing listens on (the OS just handed it out and it was closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_private_server(binary: str) -> tuple[str | None, str]:
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, process)
    give_up = time.monotonic() + 5
    while time.monotonic() < give_up:
        if _answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0", ""
        if process.poll() is not None:
            break
        time.sleep(0.05)
    _stop(process)
    return None, f"{binary} did not start on port {port}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def redis_url() -> str:
    """The URL of a Redis for tests; skips the calling test when none can be had.

    Uses 127.0.0.1:6379 if it answers PING, else starts `redis-server` on a free port once per
    session (stopped at exit). With CI=true a missing Redis fails the test instead.
    """
    global _found
    if _found is None:
        if _answers(*_LOCAL):
            _found = (f"redis://{_LOCAL[0]}:{_LOCAL[1]}/0", "")
        elif (binary := shutil.which("redis-server")) is not None:
            _found = _start_private_server(binary)
        else:
            _found = (None, "nothing answers on 127.0.0.1:6379 and redis-server is not installed")
    url, problem = _found
    if url is None:
        message = f"Redis not available: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@dataclass(frozen=True)
class RedisTarget:
    """A Redis URL and an org id unique to one test: every key the test writes contains `marker`."""

    url: str
    marker: str = field(default_factory=lambda: f"test{uuid.uuid4().hex[:16]}")

    @property
    def org(self) -> str:
        return f"{self.marker}@AdobeOrg"

    def client(self) -> redis.Redis:
        """A plain synchronous client, for arranging and inspecting keys directly."""
        return redis.Redis.from_url(self.url, decode_responses=True)

    def raw_client(self) -> redis.Redis:
        """A synchronous client that reads and writes bytes as they are (as an attacker would)."""
        return redis.Redis.from_url(self.url)

    def purge(self) -> None:
        """Delete every key of this test (never the whole database: it may be a shared one)."""
        client = self.client()
        try:
            for key in client.scan_iter(match=f"*{self.marker}*", count=500):
                client.delete(key)
        finally:
            client.close()


@contextlib.contextmanager
def isolated_redis() -> Iterator[RedisTarget]:
    """A RedisTarget for one test, its keys deleted afterwards."""
    target = RedisTarget(url=redis_url())
    try:
        yield target
    finally:
        target.purge()


class RedisProxy:
    """A TCP relay in front of a Redis that a test can stop, restart or stall (never answer).

    Stands for a Redis that goes away and comes back on the same address, without touching the
    real server.
    """

    def __init__(self, target_url: str) -> None:
        options = redis.connection.parse_url(target_url)
        self._target = (options.get("host", "127.0.0.1"), int(options.get("port", 6379)))
        self._db = int(options.get("db", 0))
        self.port = 0
        self.stalled = False
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection, as a Redis that went down would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._streams):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._streams.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._streams.add(writer)
        if self.stalled:
            # Read and never answer, like a Redis stuck in a long command.
            with contextlib.suppress(ConnectionError):
                while await reader.read(4096):
                    pass
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._streams.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()
