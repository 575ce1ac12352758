"""`/customer <text>`: acknowledge at once, look up in the background, answer privately."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids, request_id
from bot.answers import (
    Asker,
    Viewer,
    audit_identity_refusals,
    diagnosis_notice,
    find_identities,
    identity_refusal,
    refuse,
    refuse_identities,
    viewer_of,
)
from bot.identity import USAGE, diagnose
from bot.listeners.common import answer_privately
from bot.services import Services

log = logging.getLogger(__name__)

#: Posts one response_url takes (Slack: five uses within thirty minutes).
RESPONSE_URL_POSTS = 5

HELP_WORDS = frozenset({"", "help", "?", "-h", "--help"})

#: Seconds after a request's arrival the acknowledgement waits for the asker's grants, so that a
#: person without any is refused in it (no "Looking up…" first). Slack allows 3 s for the ack;
#: past this the ack goes out and the decision follows it, as before.
DECISION_BEFORE_ACK = 1.5


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
            # Say what was wrong with this text when a common slip explains it.
            diagnosis = found.unknown[0] if found.unknown else diagnose(text, services.rules)
            if diagnosis is not None:
                notice = diagnosis_notice(services, diagnosis, reader)
                await ack(**notice, response_type="ephemeral")
            else:
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
        # Who asks and what they may see is decided before the ack when it can be in time, so a
        # person without grants is refused at once, not after a "Looking up…".
        deciding = asyncio.ensure_future(viewer_of(services, asker))
        decided = await _decided_in_time(deciding)
        if decided is not None and not decided.access.classes:
            # Refused once for the whole command, not once per identity.
            refusal = await refuse(services, decided, surface="private", at="command")
            await ack(**refusal, response_type="ephemeral")
            return
        shown = refs[: services.settings.bot_max_cards]
        query = ", ".join(f"{r.namespace} {r.value}" for r in shown)
        looking_up = services.cards.notice("looking_up", reader=reader, query=query)
        await ack(**looking_up, response_type="ephemeral")
        services.answer_in_progress()

        viewer = await deciding
        if not viewer.access.classes:
            refusal = await refuse(services, viewer, surface="private", at="command")
            await respond(**refusal, response_type="ephemeral")
            return
        if found.unknown:
            # The first only: a response_url takes five posts, and the cards come first.
            notice = diagnosis_notice(services, found.unknown[0], viewer.reader)
            await respond(**notice, response_type="ephemeral", replace_original=False)
        if found.refused:
            refusal = await refuse_identities(
                services, asker, found.refused, surface="private", reader=viewer.reader
            )
            await respond(**refusal, response_type="ephemeral", replace_original=False)
        note = found.note(services, len(shown), viewer.reader)
        # A response_url takes five posts: a card comes before its late events only when there
        # is a post left for every card's update; otherwise each card waits for its events.
        posts = len(shown) + bool(found.refused) + bool(found.unknown) + (note is not None)
        soon = RESPONSE_URL_POSTS - posts >= len(shown)
        await asyncio.gather(
            *(
                answer_privately(services, viewer, ref, respond, action="lookup", soon=soon)
                for ref in shown
            )
        )
        if note is not None:
            await respond(**note, response_type="ephemeral", replace_original=False)


async def _decided_in_time(deciding: asyncio.Future[Viewer]) -> Viewer | None:
    """The asker's viewer when it is known within DECISION_BEFORE_ACK of the request's arrival;
    None when it is not (or failed: the failure is met again after the ack, as before)."""
    scope = request_id.current()
    elapsed = time.monotonic() - scope.started if scope is not None else 0.0
    budget = DECISION_BEFORE_ACK - elapsed
    if budget > 0:
        await asyncio.wait({deciding}, timeout=budget)
    if not deciding.done() or deciding.cancelled() or deciding.exception() is not None:
        return None
    return deciding.result()
