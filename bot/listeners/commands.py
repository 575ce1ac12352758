"""`/customer <text>`: acknowledge at once, look up in the background, answer privately."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.identity import USAGE, read_identities
from bot.listeners.common import (
    Asker,
    access_of,
    audit_identity_refusals,
    card_for,
    identity_refusal,
    refuse,
    refuse_identities,
)
from bot.services import Services

HELP_WORDS = frozenset({"", "help", "?", "-h", "--help"})


def register(app: AsyncApp, services: Services) -> None:
    """Register the /customer command."""

    @app.command(ids.COMMAND)
    async def customer_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """/customer jane@example.com | +31 6 1234 5678 | CRM-000123 | <ECID> | namespace:value"""
        text = (command.get("text") or "").strip()
        if text.lower() in HELP_WORDS:
            await ack(**services.cards.notice("usage", usage=USAGE), response_type="ephemeral")
            return
        reading = read_identities(text, services.rules)
        refs = reading.refs
        asker = Asker(
            team_id=command.get("team_id"),
            user_id=command["user_id"],
            channel_id=command.get("channel_id"),
        )
        if not refs and reading.refused:
            # Look-alike or over-long text: refused in words before any AEP call.
            refusal = identity_refusal(services, reading.refused)
            await ack(**refusal, response_type="ephemeral")
            await audit_identity_refusals(services, asker, reading.refused, surface="private")
            return
        if not refs:
            await ack(**services.cards.notice("usage", usage=USAGE), response_type="ephemeral")
            return
        shown = refs[: services.settings.bot_max_cards]
        query = ", ".join(f"{r.namespace} {r.value}" for r in shown)
        await ack(**services.cards.notice("looking_up", query=query), response_type="ephemeral")
        services.answer_in_progress()

        access = await access_of(services, asker)
        if not access.classes:
            refusal = await refuse(services, asker, surface="private", action="command")
            await respond(**refusal, response_type="ephemeral")
            return
        if reading.refused:
            refusal = await refuse_identities(services, asker, reading.refused, surface="private")
            await respond(**refusal, response_type="ephemeral", replace_original=False)

        async def answer(ref: Any) -> None:
            card = await card_for(
                services,
                asker,
                ref,
                access.classes,
                surface="private",
                action="lookup",
                can_share=access.can_share,
            )
            await respond(**card.message, response_type="ephemeral", replace_original=False)

        await asyncio.gather(*(answer(ref) for ref in shown))
        if len(refs) > len(shown):
            note = services.cards.notice("more_identities", shown=len(shown), total=len(refs))
            await respond(**note, response_type="ephemeral", replace_original=False)
