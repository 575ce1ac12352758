"""`python -m bot [run|console|demo-aep|lookup|policy check|doctor]`: parse args, start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.logs import configure_logging
from bot.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("bot")

DESCRIPTION = """usage: python -m bot [COMMAND] [--help]

Customer context for Slack, live from Adobe Experience Platform.

commands:
  run (default)  start the bot: Socket Mode, HTTP mode or, without Slack credentials, the console
  console        the offline console: type Slack actions, see the bot's answers (console --help)
  demo-aep       serve the demo AEP sandbox over HTTP (demo-aep --port 8080)
  lookup         print what the bot sees for one identity (lookup jane.doe@example.com)
  policy check   validate BOT_POLICY_FILE and explain what a user or channel would see
  doctor         check the configuration against IMS, Platform, Slack, Redis and the audit file
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bot` and the `customer-bot` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and not args[0].startswith("-") else "run"
    rest = args[1:] if args and args[0] == command else args
    if command in {"-h", "--help", "help"} or (command == "run" and {"-h", "--help"} & set(rest)):
        # `run` starts the console when there are no Slack credentials, but its help is this
        # list of commands; the console's own options are under `console --help`.
        print(DESCRIPTION)
        return 0
    if command == "demo-aep":
        from bot.demo.server import main as demo_main

        return demo_main(rest)
    if command == "doctor":
        # Before the settings are loaded: a setting that does not parse is the first FAIL.
        configure_logging("ERROR")
        from bot.doctor import doctor_main

        return asyncio.run(doctor_main(rest))
    if command not in {"run", "console", "lookup", "policy"}:
        print(f"unknown command {command!r}\n\n{DESCRIPTION}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if command == "lookup":
        configure_logging("WARNING")
        from bot.cli import lookup_main

        return asyncio.run(lookup_main(settings, rest))
    if command == "policy":
        configure_logging("WARNING")
        from bot.cli import policy_main

        return asyncio.run(policy_main(settings, rest))
    if command == "console" or settings.slack_mode == "console":
        if command == "run":
            print(
                "No Slack credentials are set (SLACK_APP_TOKEN for Socket Mode, or "
                "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET for HTTP mode): starting the offline "
                "console instead.",
                file=sys.stderr,
            )
        configure_logging("WARNING")
        from bot.console import console_main

        return asyncio.run(console_main(settings, rest))
    configure_logging(settings.bot_log_level, log_format=settings.bot_log_format)
    return asyncio.run(serve(settings))


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the bot in Socket Mode or HTTP mode until SIGINT/SIGTERM (or `stop` is set), then
    shut down cleanly: the Slack connection or HTTP server first, then the clients and cache."""
    from aiohttp import web

    from bot.aep.errors import Misconfigured
    from bot.app import create_app
    from bot.policy import class_names
    from bot.services import build_services

    services = build_services(settings)
    try:
        await services.start()
    except Misconfigured as exc:
        log.error("Not starting: %s", exc.message)
        await services.aclose()
        return 2
    app = create_app(settings, services)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # The audience list and the namespace names are read in the background, and kept fresh.
    warm = asyncio.create_task(_warm(services))
    if settings.demo_sandbox:
        log.warning("No AEP credentials: answering from the bundled DEMO sandbox (demo data)")
    elif services.demo:
        log.warning("AEP_ORG_ID is the demo sandbox's organization: cards say they show demo data")
    if services.policy.source == "demo":
        log.warning(
            "Using the built-in DEMO policy, more open than the default: everyone in the "
            "workspace sees %s. Set BOT_POLICY_FILE before using real customer data.",
            class_names(services.policy.everyone),
        )
    metrics_runner = None
    try:
        if settings.metrics_port is not None:
            from bot.ops import start_metrics_server

            metrics_runner = await start_metrics_server(
                services, settings.metrics_host, settings.metrics_port
            )
        if settings.slack_mode == "socket":
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert settings.slack_app_token is not None
            handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())

            async def connected() -> bool:
                client = getattr(handler, "client", None)
                check = getattr(client, "is_connected", None)
                return bool(await check()) if check is not None else False

            services.readiness.socket_connected = connected
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("connected to Slack in Socket Mode")
            await stop.wait()
            services.readiness.stopping = True
            await handler.close_async()  # type: ignore[no-untyped-call]
            await finish_answers(services, warm, settings.bot_lookup_deadline + 2)
        else:
            from bot.verify import create_web_app

            web_app = create_web_app(app, settings, services)
            runner = web.AppRunner(web_app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "0.0.0.0", settings.port)  # noqa: S104 - a server
            await site.start()
            log.info(
                "listening for Slack on port %s (POST /slack/events, GET /healthz, /readyz, "
                "/metrics)",
                settings.port,
            )
            await stop.wait()
            # /readyz says 503 from now on, so a load balancer sends no more requests, while
            # the server stays up for the answers in progress to finish; then it closes.
            services.readiness.stopping = True
            await finish_answers(services, warm, settings.bot_lookup_deadline + 2)
            await runner.cleanup()
    finally:
        warm.cancel()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await services.aclose()
        log.info("stopped")
    return 0


async def _warm(services: Services) -> None:
    await asyncio.gather(services.lookup.warm(), services.namespaces.keep_loaded())


async def finish_answers(services: Services, warm: asyncio.Task[None], within: float) -> None:
    """Let the answers in progress finish before the clients close: Bolt acks a request and
    runs its listener as a task of its own, so a stop would otherwise leave someone looking at
    "Looking up..." forever. Bounded by one lookup's deadline."""
    warm.cancel()
    pending = {task for task in services.answering if not task.done()}
    if pending:
        log.info("finishing %d answer(s) in progress (at most %.0f s)", len(pending), within)
        await asyncio.wait(pending, timeout=within)


if __name__ == "__main__":
    sys.exit(main())
