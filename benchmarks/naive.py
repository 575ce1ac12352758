"""The naive baseline: /customer with no cache and no coalescing, profile then events in turn.

Run as `python -m benchmarks.naive` with the same environment as the bot in HTTP mode. It uses
the product's AEP client, Customer builder and card renderer, so what differs from the bot is
only how a lookup reaches AEP: every command makes its own calls, one after the other. It also
skips the permission check and the audit trail (each lookup shows the whole card), which only
makes it cheaper than the bot: the measured gain is, if anything, understated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.aep.auth import ImsTokenSource
from bot.aep.client import AepClient, create_http_client
from bot.aep.errors import AepError, ProfileNotFound
from bot.aep.models import Audience, EventPage
from bot.cards import CardContext, CardRenderer
from bot.customer import build_customer
from bot.i18n import reader_for
from bot.identity import USAGE, IdentityRules, extract_identities
from bot.layout import load_layout
from bot.logs import bolt_logger, configure_logging
from bot.services import slack_client
from bot.settings import ConfigError, Settings, load_settings

#: English in UTC: what these tests read.
EN = reader_for("en-US")

log = logging.getLogger("benchmarks.naive")


class NaiveBot:
    """The baseline's state: one AEP client, the card renderer, and the audience names."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = load_layout(settings.bot_card_file)
        self.cards = CardRenderer()
        self.rules = IdentityRules(
            default_region=settings.bot_default_region,
            crm_namespace=settings.aep_crm_namespace,
            crm_pattern=settings.bot_crm_id_pattern,
        )
        self.http = create_http_client()
        client_secret = settings.aep_client_secret
        self.aep = AepClient(
            http=self.http,
            tokens=ImsTokenSource(
                http=self.http,
                ims_url=settings.aep_ims_url,
                client_id=settings.aep_client_id or "",
                client_secret=client_secret or SecretStr(""),
                scopes=settings.aep_scopes,
            ),
            api_url=settings.aep_api_url,
            org_id=settings.aep_org_id or "",
            client_id=settings.aep_client_id or "",
            sandbox=settings.aep_sandbox,
            merge_policy_id=settings.aep_merge_policy_id,
        )
        # Read once at start, like the bot's warm-up: names are not what the baseline measures.
        self.audiences: dict[str, Audience] = {}

    async def load_audiences(self) -> None:
        """Read the sandbox's audience names once."""
        deadline = time.monotonic() + self.settings.bot_lookup_deadline
        listed = await self.aep.list_audiences(deadline=deadline)
        self.audiences = {audience.id: audience for audience in listed}

    async def card(self, text: str) -> dict[str, Any]:
        """The card for the first identity in `text`: profile, then events, then render."""
        refs = extract_identities(text, self.rules)
        if not refs:
            return self.cards.notice("usage", reader=EN, usage=USAGE)
        ref = refs[0]
        deadline = time.monotonic() + self.settings.bot_lookup_deadline
        try:
            profile = await self.aep.get_profile(
                ref, fields=self.layout.profile_fields(), deadline=deadline
            )
            try:
                events = await self.aep.get_events(
                    ref, limit=self.settings.bot_events_limit, deadline=deadline
                )
            except ProfileNotFound:
                events = EventPage()
        except ProfileNotFound:
            return self.cards.notice("not_found", reader=EN, query=f"{ref.namespace} {ref.value}")
        except AepError as exc:
            return self.cards.notice(
                "internal_error", reader=EN, reference=exc.request_id or "none"
            )
        customer = build_customer(
            profile=profile,
            query=ref,
            layout=self.layout,
            events=events,
            audiences=self.audiences,
            fetched_at=datetime.now(UTC),
            demo=True,
        )
        context = CardContext(
            surface="private", now=datetime.now(UTC), token=secrets.token_urlsafe(16)
        )
        return self.cards.customer_card(customer, context)


def create_naive_app(naive: NaiveBot) -> AsyncApp:
    """A Bolt app with one listener: /customer, answered the naive way."""
    settings = naive.settings
    secret = settings.slack_signing_secret
    app = AsyncApp(
        logger=bolt_logger(),
        client=slack_client(settings),
        signing_secret=secret.get_secret_value() if secret else None,
    )

    @app.command(ids.COMMAND)
    async def customer(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """Ack, then look up and answer."""
        text = (command.get("text") or "").strip()
        await ack(
            **naive.cards.notice("looking_up", reader=EN, query=text[:100]),
            response_type="ephemeral",
        )
        message = await naive.card(text)
        await respond(**message, response_type="ephemeral", replace_original=False)

    return app


async def serve(settings: Settings) -> int:
    """Serve the naive baseline on PORT until SIGINT/SIGTERM."""
    naive = NaiveBot(settings)
    app = create_naive_app(naive)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await naive.load_audiences()
    except AepError as exc:
        log.warning("audience names not loaded (%s)", type(exc).__name__)
    web_app = app.web_app(path="/slack/events", port=settings.port)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "naive": True})

    web_app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    log.info("naive baseline listening on port %s", settings.port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await naive.http.aclose()
    return 0


def main() -> int:
    """`python -m benchmarks.naive`, configured like the bot in HTTP mode with AEP credentials."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if settings.slack_mode != "http" or settings.demo:
        print(
            "the naive baseline needs HTTP mode (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET) and "
            "AEP credentials (AEP_CLIENT_ID, ...)",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.bot_log_level)
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
