"""The demo AEP sandbox over HTTP (aiohttp), for `python -m bot demo-aep` and other processes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.demo.dataset import (
    DEFAULT_MERGE_POLICY_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_ORG_ID,
    DEMO_SANDBOX,
)
from bot.demo.simulator import (
    EDITIONS,
    FLOOD_BYTES,
    AepSimulator,
    Edition,
    Faults,
    SimResponse,
    flood_pieces,
)
from bot.demo.transport import DRIP_INTERVAL_S

DEFAULT_PORT = 8787
_SHUTDOWN_TIMEOUT_S = 1.0


@dataclass
class DemoServer:
    """A running sandbox server; `url` is the base URL for both AEP_IMS_URL and AEP_API_URL."""

    url: str
    port: int
    _runner: web.AppRunner = field(repr=False)
    _closing: asyncio.Event = field(repr=False)

    async def close(self) -> None:
        """Stop serving; requests held by 'hang', 'drip' or 'flood' faults end at once."""
        self._closing.set()
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def start_server(
    sim: AepSimulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    drip_interval: float = DRIP_INTERVAL_S,
) -> DemoServer:
    """Serve `sim` on host:port (0 picks a free port) until `close()`.

    Besides the AEP paths it serves the admin endpoints `POST /__demo/faults`
    (`{"latency_ms": 200}`, `{"endpoint_latency_ms": {"events": 600}}` and/or
    `{"add": {"kind": "429", "endpoint": "profile", "count": 1}}`,
    `add` may also be a list; a 429 takes `retry_after_ms`, a flood `flood_bytes`),
    `GET /__demo/stats` (the counters plus `max_in_flight` and `flood_sent`) and
    `POST /__demo/reset`.
    """
    closing = asyncio.Event()

    async def faults(request: web.Request) -> web.Response:
        try:
            _apply_faults(sim.faults, await request.json())
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(
            {
                "latency_ms": sim.faults.latency_ms,
                "endpoint_latency_ms": sim.faults.endpoint_latency_ms,
                "pending": sim.faults.pending,
            }
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {**sim.stats, "max_in_flight": sim.max_in_flight, "flood_sent": sim.flood_sent}
        )

    async def reset(request: web.Request) -> web.Response:
        sim.reset()
        return web.json_response({"reset": True})

    async def answer(request: web.Request) -> web.StreamResponse:
        reply = await sim.handle(
            request.method,
            request.path,
            list(request.query.items()),
            request.headers,
            await request.read(),
        )
        if reply.hang:
            # Never answer: wait until the client goes away (the handler is cancelled) or the
            # server closes.
            await closing.wait()
            return web.Response(status=503)
        if reply.flood:
            return await _flood(request, reply)
        if not reply.drip:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_length = len(reply.body)
        await response.prepare(request)
        for index in range(len(reply.body)):
            if closing.is_set():
                break
            await asyncio.sleep(drip_interval)
            await response.write(reply.body[index : index + 1])
        return response

    async def _flood(request: web.Request, reply: SimResponse) -> web.StreamResponse:
        # Chunked, with no Content-Length, as a server that streams its answer would send it;
        # each write waits for the socket, so a client that stops reading stops the flood.
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        await response.prepare(request)
        try:
            await response.write(reply.body)
            for piece in flood_pieces(reply.flood):
                if closing.is_set():
                    break
                await response.write(piece)
                sim.flood_sent += len(piece)
        except ConnectionError:
            pass  # the client hung up: the point of the fault
        return response

    app = web.Application()
    app.router.add_post("/__demo/faults", faults)
    app.router.add_get("/__demo/stats", stats)
    app.router.add_post("/__demo/reset", reset)
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - reading, not binding
    return DemoServer(
        url=f"http://{url_host}:{bound_port}", port=bound_port, _runner=runner, _closing=closing
    )


def _apply_faults(faults: Faults, settings: Any) -> None:
    """Apply admin settings all or nothing: a bad entry changes nothing."""
    if not isinstance(settings, dict):
        raise ValueError('send a JSON object, e.g. {"latency_ms": 200}')
    staged = Faults(latency_ms=float(settings.get("latency_ms", faults.latency_ms)))
    if staged.latency_ms < 0:
        raise ValueError("latency_ms must not be negative")
    per_endpoint = settings.get("endpoint_latency_ms", {})
    if not isinstance(per_endpoint, dict):
        raise ValueError('"endpoint_latency_ms" takes an object like {"events": 600}')
    for endpoint, ms in {**faults.endpoint_latency_ms, **per_endpoint}.items():
        staged.set_latency(str(endpoint), float(ms))
    additions = settings.get("add", [])
    for addition in additions if isinstance(additions, list) else [additions]:
        if not isinstance(addition, dict):
            raise ValueError('"add" takes an object like {"kind": "429"} or a list of them')
        staged.add(
            addition["kind"],
            endpoint=addition.get("endpoint", "any"),
            count=int(addition.get("count", 1)),
            retry_after_ms=int(addition.get("retry_after_ms", 500)),
            flood_bytes=int(addition.get("flood_bytes", FLOOD_BYTES)),
        )
    faults.latency_ms = staged.latency_ms
    faults.endpoint_latency_ms = dict(staged.endpoint_latency_ms)
    faults.extend(staged)


def environment_line(url: str) -> str:
    """The settings that point the bot at a sandbox served at `url`, as one shell-ready line."""
    settings = {
        "AEP_IMS_URL": url,
        "AEP_API_URL": url,
        "AEP_CLIENT_ID": DEMO_CLIENT_ID,
        "AEP_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "AEP_ORG_ID": DEMO_ORG_ID,
        "AEP_SANDBOX": DEMO_SANDBOX,
        "AEP_MERGE_POLICY_ID": DEFAULT_MERGE_POLICY_ID,
    }
    return " ".join(f"{name}={value}" for name, value in settings.items())


async def _serve(
    host: str, port: int, latency_ms: float, events_latency_ms: float | None, edition: Edition
) -> None:
    per_endpoint = {} if events_latency_ms is None else {"events": events_latency_ms}
    sim = AepSimulator(faults=Faults(latency_ms, per_endpoint), edition=edition)
    async with await start_server(sim, host=host, port=port) as server:
        line = f"Demo AEP sandbox ({edition}) at {server.url} (Ctrl-C stops it); use: "
        print(line + environment_line(server.url), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """`python -m bot demo-aep --port N [--latency-ms X] [--events-latency-ms Y]
    [--edition ultimate|prime]`: serve the demo sandbox until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m bot demo-aep",
        description="Serve the demo Adobe Experience Platform sandbox (public demo data).",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added before every answer"
    )
    parser.add_argument(
        "--events-latency-ms",
        type=float,
        default=None,
        help="delay before experience-event answers instead (default: --latency-ms)",
    )
    parser.add_argument(
        "--edition",
        choices=EDITIONS,
        default="ultimate",
        help="Real-Time CDP edition to play: prime refuses experience-event lookups",
    )
    args = parser.parse_args(argv)
    if args.latency_ms < 0 or (args.events_latency_ms or 0) < 0 or not 0 <= args.port <= 65535:
        parser.error("latencies must not be negative and --port must be 0-65535")
    try:
        asyncio.run(
            _serve(args.host, args.port, args.latency_ms, args.events_latency_ms, args.edition)
        )
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"Cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
