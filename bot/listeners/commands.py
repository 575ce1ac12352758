"""`/customer <text>`: acknowledge at once, look up in the background, answer privately."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.answers import (
    Asker,
    audit_identity_refusals,
    find_identities,
    identity_refusal,
    refuse,
    refuse_identities,
    viewer_of,
)
from bot.cards import identity_words
from bot.identity import USAGE
from bot.listeners.common import answer_privately
from bot.services import Services

log = logging.getLogger(__name__)

#: Posts one response_url takes (Slack: five uses within thirty minutes).
RESPONSE_URL_POSTS = 5

HELP_WORDS = frozenset({"", "help", "?", "-h", "--help"})


def register(app: AsyncApp, services: Services) -> None:
    """Register the /customer command."""

    @app.command(ids.COMMAND)
    async def customer_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """/customer jane@example.com | +31 6 1234 5678 | CRM-000123 | <ECID> | namespace:value"""
        text = (command.get("text") or "").strip()
        # The ack is due within 3 s, before the asker is known: it speaks BOT_DEFAULT_LOCALE.
        # Everything after it speaks the asker's own language.
        reader = services.default_reader
        usage = services.cards.notice("usage", reader=reader, usage=reader.gettext(USAGE))
        if text.lower() in HELP_WORDS:
            await ack(**usage, response_type="ephemeral")
            return
        found = find_identities(services, text)
        refs = found.refs
        if not refs and not found.refused:
            await ack(**usage, response_type="ephemeral")
            return
        user_id, response_url = command.get("user_id"), command.get("response_url")
        if not user_id or not response_url:
            # No one to check the policy for, or nowhere to send cards: say so in the ack.
            missing = "user_id" if not user_id else "response_url"
            log.warning("/customer request without %s refused", missing)
            notice = services.cards.notice("incomplete_request", reader=reader)
            await ack(**notice, response_type="ephemeral")
            return
        asker = Asker(
            team_id=command.get("team_id"),
            user_id=user_id,
            channel_id=command.get("channel_id"),
        )
        if not refs:
            # Look-alike or over-long text only: refused in words before any AEP call.
            refusal = identity_refusal(services, found.refused, reader)
            await ack(**refusal, response_type="ephemeral")
            await audit_identity_refusals(services, asker, found.refused, surface="private")
            return
        shown = refs[: services.settings.bot_max_cards]
        names = services.cards.namespace_names
        query = ", ".join(identity_words(r.namespace, r.value, reader, names=names) for r in shown)
        looking_up = services.cards.notice("looking_up", reader=reader, query=query)
        await ack(**looking_up, response_type="ephemeral")
        services.answer_in_progress()

        viewer = await viewer_of(services, asker)
        if not viewer.access.classes:
            # Refused once for the whole command, not once per identity.
            refusal = await refuse(services, viewer, surface="private", at="command")
            await respond(**refusal, response_type="ephemeral")
            return
        if found.refused:
            refusal = await refuse_identities(
                services, asker, found.refused, surface="private", reader=viewer.reader
            )
            await respond(**refusal, response_type="ephemeral", replace_original=False)
        note = found.note(services, len(shown), viewer.reader)
        # A response_url takes five posts: a card comes before its late events only when there
        # is a post left for every card's update; otherwise each card waits for its events.
        posts = len(shown) + bool(found.refused) + (note is not None)
        soon = RESPONSE_URL_POSTS - posts >= len(shown)
        await asyncio.gather(
            *(
                answer_privately(services, viewer, ref, respond, action="lookup", soon=soon)
                for ref in shown
            )
        )
        if note is not None:
            await respond(**note, response_type="ephemeral", replace_original=False)
