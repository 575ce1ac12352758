"""A loopback HTTP/1.1 proxy in front of one upstream that passes requests on or fails them.

`benchmarks/faults.py` puts one in front of the demo AEP sandbox and one in front of the
recording Slack server, and sets per phase what matching requests suffer: added latency, a
canned status (5xx, 429 with Retry-After), a hang (the request is read and never answered) or a
reset (the connection is closed with a TCP RST). Requests no fault matches pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

__all__ = ["Fault", "FaultProxy", "Mode"]

Mode = Literal["pass", "delay", "status", "hang", "reset"]

# Headers that describe one hop, not the message; the proxy sets its own framing.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
_MAX_HEAD = 64 * 1024
_UPSTREAM_TIMEOUT_S = 60.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Fault:
    """What requests whose path starts with one of `paths` (every request when empty) suffer.

    `delay` waits `delay_s` and then passes the request on; `status` answers `status` with
    `headers` and `body` without asking the upstream; `hang` reads the request and never
    answers (the connection stays open until the client gives up); `reset` reads the request
    and closes the connection with a TCP RST.
    """

    mode: Mode
    paths: tuple[str, ...] = ()
    delay_s: float = 0.0
    status: int = 503
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: bytes = b""

    def matches(self, path: str) -> bool:
        return not self.paths or path.startswith(self.paths)


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class FaultProxy:
    """Serves on a free loopback port and forwards to `upstream` (`http://host:port`).

    `faults` is read for every request, first match wins; `counts` tells how many requests
    met each mode since the last `reset_counts()`.
    """

    def __init__(self, upstream: str, *, name: str = "proxy") -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1":
            raise ValueError("the proxy forwards to plain http on 127.0.0.1 only")
        self.name = name
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._port = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=_UPSTREAM_TIMEOUT_S),
            auto_decompress=False,
        )
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_MAX_HEAD)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop serving and drop every open connection (hanging ones included)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def open_connections(self) -> int:
        """Client connections open now (hanging ones included)."""
        return len(self._writers)

    def set_faults(self, faults: Sequence[Fault]) -> None:
        self.faults = list(faults)

    def reset_counts(self) -> None:
        self.counts.clear()

    def _fault_for(self, path: str) -> Fault | None:
        return next((fault for fault in self.faults if fault.matches(path)), None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                fault = self._fault_for(request.path)
                mode: Mode = fault.mode if fault is not None else "pass"
                self.counts[mode] += 1
                if fault is not None and fault.mode == "reset":
                    _reset(writer)
                    return
                if fault is not None and fault.mode == "hang":
                    # Read until the client closes (or the proxy drops the connection).
                    while await reader.read(65536):
                        pass
                    return
                if fault is not None and fault.mode == "status":
                    status, headers, body = fault.status, list(fault.headers), fault.body
                else:
                    if fault is not None and fault.mode == "delay":
                        await asyncio.sleep(fault.delay_s)
                    status, headers, body = await self._forward(request)
                writer.write(_response_bytes(status, headers, body, keep_alive=request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except ValueError:
            # Not HTTP we understand: answer 400 and close.
            with contextlib.suppress(ConnectionError):
                writer.write(_response_bytes(400, [], b"", keep_alive=False))
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _forward(self, request: _Request) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self._session is not None
        headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.target,
                headers=headers,
                data=request.body or None,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            ) as response:
                body = await response.read()
                kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
                return response.status, kept, body
        except (aiohttp.ClientError, TimeoutError):
            return 502, [], b""


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on a connection, or None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(fields.get("content-length", "0")))
    connection = fields.get("connection", "").lower()
    keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
    return _Request(method, target, headers, body, keep_alive)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _response_bytes(
    status: int, headers: Sequence[tuple[str, str]], body: bytes, *, keep_alive: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with an RST (linger 0) instead of an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
