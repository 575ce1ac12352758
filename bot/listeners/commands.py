"""`/customer <text>`: acknowledge at once (with nothing to show), look up, answer privately with
one message per card; "Looking up…" only when the answer is slow."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.answers import (
    Asker,
    Found,
    audit_identity_refusals,
    find_identities,
    identity_refusal,
    refuse,
    refuse_identities,
    viewer_of,
)
from bot.button_tokens import Place
from bot.cards import identity_words
from bot.i18n import Reader
from bot.identity import USAGE, IdentityRef
from bot.listeners.common import Reply, answer_privately
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
        # An empty ack: Slack shows nothing, and the card (posted on the response_url) is the
        # only message of the answer. A slash command's response_url cannot replace what it
        # posted (replace_original is not honoured there), so a "Looking up…" said first would
        # stay above the card: it is said only when the answer is slow (BOT_SLOW_ANSWER_SECONDS).
        await ack()
        services.answer_in_progress()
        sending = asyncio.Lock()
        said: list[bool] = [False]
        reader_now: list[Reader] = [reader]

        async def say(**message: Any) -> None:
            """One post on the response_url, in order; marks the answer as begun."""
            async with sending:
                said[0] = True
                await respond(**message)

        answer = asyncio.ensure_future(_answer(services, asker, found, shown, say, reader_now))
        try:
            # Slack shows the empty ack as nothing at all: a slower answer says "Looking up…"
            # first, so nobody is left with silence.
            slow = services.settings.bot_slow_answer_seconds
            await asyncio.wait_for(asyncio.shield(answer), slow)
        except TimeoutError:
            # Posts the answer will need: its cards, a refusal, the "N of M" note; "Looking up…"
            # only when one is left of the response_url's five.
            noted = len(shown) < found.count or found.capped
            needed = len(shown) + bool(found.refused) + noted
            async with sending:
                if not said[0] and needed < RESPONSE_URL_POSTS:
                    looking_up = services.cards.notice(
                        "looking_up", reader=reader_now[0], query=query
                    )
                    await respond(**looking_up, response_type="ephemeral", replace_original=False)
            await answer


async def _answer(
    services: Services,
    asker: Asker,
    found: Found,
    shown: list[IdentityRef],
    say: Reply,
    reader_now: list[Reader],
) -> None:
    """The command's answer after its (empty) ack: a refusal, or a card per identity shown,
    each one message on the response_url (`say`)."""
    viewer = await viewer_of(services, asker)
    reader_now[0] = viewer.reader
    if not viewer.access.classes:
        # Refused once for the whole command, not once per identity.
        refusal = await refuse(services, viewer, surface="private", at="command")
        await say(**refusal, response_type="ephemeral")
        return
    if found.refused:
        refusal = await refuse_identities(
            services, asker, found.refused, surface="private", reader=viewer.reader
        )
        await say(**refusal, response_type="ephemeral", replace_original=False)
    note = found.note(services, len(shown), viewer.reader)
    # Each card waits for its events (soon=False): an update on this response_url would be a
    # second message, not a replacement. Share posts into the conversation the command ran in.
    place = Place(asker.channel_id, None) if asker.channel_id else None
    await asyncio.gather(
        *(
            answer_privately(services, viewer, ref, say, action="lookup", soon=False, place=place)
            for ref in shown
        )
    )
    if note is not None:
        await say(**note, response_type="ephemeral", replace_original=False)
