"""The fault proxy of the fault benchmark fails requests exactly as each mode promises."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from benchmarks.fault_proxy import Fault, FaultProxy


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server that echoes method, path, query and body, and lists what it saw."""
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(request.path_qs)
        return web.json_response(
            {"method": request.method, "path": request.path_qs, "body": body.decode()},
            status=201,
            headers={"X-Upstream": "yes"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


@pytest.fixture
async def proxy(upstream: tuple[str, list[str]]) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(upstream[0]) as running:
        yield running


async def test_requests_no_fault_matches_reach_the_upstream_on_one_kept_alive_connection(
    proxy: FaultProxy, upstream: tuple[str, list[str]]
) -> None:
    proxy.set_faults([Fault("status", ("/api/users.info",), status=429)])

    async def chunks() -> AsyncIterator[bytes]:
        yield b"text=jane"
        yield b"&more=1"

    async with httpx.AsyncClient(base_url=proxy.url, timeout=5) as client:
        first = await client.post("/api/auth.test?x=1", content=b"token=a")
        second = await client.post("/response/abc", content=chunks())

    assert first.status_code == 201 and first.headers["X-Upstream"] == "yes"
    assert first.json() == {"method": "POST", "path": "/api/auth.test?x=1", "body": "token=a"}
    assert second.json()["body"] == "text=jane&more=1"
    assert upstream[1] == ["/api/auth.test?x=1", "/response/abc"]
    assert proxy.counts == {"pass": 2}


async def test_a_status_fault_answers_for_the_upstream_with_its_headers_and_body(
    proxy: FaultProxy, upstream: tuple[str, list[str]]
) -> None:
    headers = (("Content-Type", "application/json"), ("Retry-After", "20"))
    body = b'{"ok": false, "error": "ratelimited"}'
    proxy.set_faults(
        [Fault("status", ("/api/users.info",), status=429, headers=headers, body=body)]
    )

    async with httpx.AsyncClient(base_url=proxy.url, timeout=5) as client:
        limited = await client.post("/api/users.info", content=b"user=U1")
        passed = await client.post("/api/auth.test")

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "20"
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    assert passed.status_code == 201
    assert upstream[1] == ["/api/auth.test"]


async def test_a_hang_fault_never_answers_and_never_asks_the_upstream(
    proxy: FaultProxy, upstream: tuple[str, list[str]]
) -> None:
    proxy.set_faults([Fault("hang")])

    async with httpx.AsyncClient(base_url=proxy.url, timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/data/core/ups/access/entities")

    assert upstream[1] == []
    assert proxy.counts == {"hang": 1}


async def test_a_reset_fault_drops_the_connection_without_an_answer(
    proxy: FaultProxy, upstream: tuple[str, list[str]]
) -> None:
    proxy.set_faults([Fault("reset", ("/data/",))])

    async with httpx.AsyncClient(base_url=proxy.url, timeout=5) as client:
        with pytest.raises(httpx.ReadError):
            await client.get("/data/core/ups/access/entities")
        # The next connection is served again.
        assert (await client.get("/ims/token/v3")).status_code == 201

    assert upstream[1] == ["/ims/token/v3"]


async def test_a_delay_fault_still_passes_the_request_on(
    proxy: FaultProxy, upstream: tuple[str, list[str]]
) -> None:
    proxy.set_faults([Fault("delay", delay_s=0.01)])

    async with httpx.AsyncClient(base_url=proxy.url, timeout=5) as client:
        answer = await client.get("/data/x")

    assert answer.status_code == 201
    assert upstream[1] == ["/data/x"]
    assert proxy.counts == {"delay": 1}


async def test_an_upstream_that_is_gone_is_a_502(upstream: tuple[str, list[str]]) -> None:
    proxy = FaultProxy("http://127.0.0.1:9")  # discard port: nothing listens on loopback
    async with proxy, httpx.AsyncClient(base_url=proxy.url, timeout=5) as client:
        assert (await client.get("/")).status_code == 502
