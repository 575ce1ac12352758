"""What operators ask of a running bot: GET /healthz, /readyz and /metrics.

`/healthz` says the process answers. `/readyz` says whether it can serve: 200 only when the
settings are loaded, the cache answers (or runs on memory while Redis is down, said in the body),
an IMS token is held or can be had (the demo sandbox counts), the audit sink can take a record,
and in Socket Mode the connection to Slack is up; otherwise 503 with a JSON body naming what is
not ready. From the moment a stop begins it answers 503, while the answers in progress finish.
`/metrics` is the Prometheus text format of the bot's own registry (bot.metrics).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.aep.errors import AepError
from bot.metrics import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

#: How long /readyz waits for the cache or IMS before it counts them as not answering.
CHECK_SECONDS = 2.0
#: After IMS gave no token, /readyz reports that failure for this long without asking IMS again:
#: the endpoint answers anyone who can reach the port, and must not turn probes into IMS traffic.
IMS_RECHECK_SECONDS = 30.0


@dataclass
class Readiness:
    """What the process knows about itself beyond its services: a stop under way, and in Socket
    Mode whether the connection to Slack is up (set by bot.__main__.serve)."""

    stopping: bool = False
    socket_connected: Callable[[], Awaitable[bool]] | None = None
    #: The last time /readyz found IMS giving no token (loop time), and what it said.
    ims_failed_at: float | None = None
    ims_problem: str = ""


async def readiness(services: Services) -> tuple[bool, dict[str, Any]]:
    """Whether the bot can serve, and a body naming each check (no secrets, no customer data)."""
    state = services.readiness
    checks: dict[str, str] = {"settings": "loaded"}
    problems: dict[str, str] = {}
    if state.stopping:
        problems["stopping"] = "the bot is stopping; answers in progress are finishing"
    cache = services.cache
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            answers = await cache.ping()
    except TimeoutError:
        answers = False
    if cache.kind == "memory":
        checks["cache"] = "memory"
    elif answers:
        checks["cache"] = "redis"
    else:
        # Lookups go on (straight to AEP on a miss), so the bot still serves: ready, degraded.
        checks["cache"] = "degraded: Redis does not answer; answering from this process's memory"
    now = asyncio.get_running_loop().time()
    if state.ims_failed_at is not None and now - state.ims_failed_at < IMS_RECHECK_SECONDS:
        problems["ims"] = state.ims_problem
    else:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await services.tokens.token()
            checks["ims"] = "demo sandbox" if services.settings.demo_sandbox else "token held"
            state.ims_failed_at = None
        except TimeoutError:
            problems["ims"] = "Adobe IMS did not give an access token in time"
        except AepError as exc:
            problems["ims"] = f"no IMS access token ({exc.cause})"
        if "ims" in problems:
            state.ims_failed_at, state.ims_problem = now, problems["ims"]
    audit_problem = services.audit.problem()
    if audit_problem is None:
        checks["audit"] = "writable"
    else:
        problems["audit"] = audit_problem
    if state.socket_connected is not None:
        try:
            connected = await state.socket_connected()
        except Exception:  # the check must answer whatever the client does
            connected = False
        if connected:
            checks["slack"] = "Socket Mode connected"
        else:
            problems["slack"] = "the Socket Mode connection to Slack is not open"
    ready = not problems
    return ready, {"ready": ready, "checks": checks, "not_ready": problems, "demo": services.demo}


def add_routes(web_app: web.Application, services: Services) -> None:
    """GET /metrics, /healthz and /readyz of `services` on `web_app`."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "demo": services.demo})

    async def readyz(_: web.Request) -> web.Response:
        ready, body = await readiness(services)
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=services.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)


async def start_metrics_server(services: Services, host: str, port: int) -> web.AppRunner:
    """The operators' endpoints on their own port (METRICS_PORT, bound to METRICS_HOST)."""
    web_app = web.Application()
    add_routes(web_app, services)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("serving /metrics, /healthz and /readyz on %s:%s", host, port)
    return runner
