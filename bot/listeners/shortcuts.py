"""The "Look up customer" message shortcut: every identity in a message, answered privately."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.identity import read_identities
from bot.listeners.common import Asker, access_of, answer_privately, refuse, refuse_identities
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Register the message shortcut."""

    @app.message_shortcut(ids.LOOKUP_SHORTCUT)
    async def lookup_shortcut(
        ack: AsyncAck, shortcut: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Finds the emails, phones, CRM ids and ECIDs in a message and shows their customers."""
        await ack()
        services.answer_in_progress()
        asker = Asker(
            team_id=(shortcut.get("team") or {}).get("id") or shortcut["user"].get("team_id"),
            user_id=shortcut["user"]["id"],
            channel_id=(shortcut.get("channel") or {}).get("id"),
        )
        text = (shortcut.get("message") or {}).get("text") or ""
        reading = read_identities(text, services.rules)
        refs = reading.refs
        if reading.refused:
            # Said first and on its own: the rest of the message is still answered below.
            refusal = await refuse_identities(services, asker, reading.refused, surface="private")
            await respond(**refusal, response_type="ephemeral", replace_original=False)
            if not refs:
                return
        if not refs:
            await respond(**services.cards.notice("no_identity"), response_type="ephemeral")
            return
        if len(refs) == 1:
            await answer_privately(services, asker, refs[0], respond, action="lookup")
            return
        access = await access_of(services, asker)
        if not access.classes:
            refusal = await refuse(services, asker, surface="private", action="shortcut")
            await respond(**refusal, response_type="ephemeral")
            return
        # Several identities: let the person pick; the buttons carry opaque tokens, not values.
        choices = [
            (f"{ref.namespace}: {ref.value}", await services.lookup.remember(ref)) for ref in refs
        ]
        await respond(**services.cards.picker(choices), response_type="ephemeral")
