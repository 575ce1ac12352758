"""`/customer <text>`: acknowledge at once (with nothing to show), look up, answer privately with
one message per card; "Looking up…" only when the answer is slow."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids, request_id
from bot.answers import (
    Asker,
    Found,
    Viewer,
    audit_identity_refusals,
    diagnosis_notice,
    find_identities,
    identity_refusal,
    refuse,
    refuse_identities,
    viewer_of,
)
from bot.button_tokens import Place
from bot.cards import identity_words
from bot.i18n import Reader
from bot.identity import USAGE, IdentityRef, diagnose
from bot.listeners.common import Reply, answer_privately
from bot.services import Services

log = logging.getLogger(__name__)

#: Posts one response_url takes (Slack: five uses within thirty minutes).
RESPONSE_URL_POSTS = 5

HELP_WORDS = frozenset({"", "help", "?", "-h", "--help"})

#: Seconds after a request's arrival the acknowledgement waits for the asker's grants, so that a
#: person without any is refused in it (no "Looking up…" first). Slack allows 3 s for the ack;
#: past this the ack goes out and the decision follows it, as before.
DECISION_BEFORE_ACK = 1.5


class ResponseUrlPosts:
    """The posts of one command's answer on its response_url: one at a time, in order, and
    whether the answer has begun (a "Looking up…" is then not said). A module-level class, not a
    closure in the handler, so that mutation testing reaches `say`."""

    def __init__(self, respond: AsyncRespond) -> None:
        self.respond = respond
        self.sending = asyncio.Lock()
        self.said = False

    async def say(self, **message: Any) -> None:
        """One post on the response_url, in order; marks the answer as begun."""
        async with self.sending:
            self.said = True
            await self.respond(**message)


class CommandHandlers:
    """The /customer command's listener, a method with the services it answers with: a method
    of a module-level class, so that mutation testing reaches it (mutmut 3 skips functions nested
    in functions); Bolt injects a listener's arguments by parameter name and skips a bound
    method's leading `self`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def customer_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """/customer jane@example.com | +31 6 1234 5678 | CRM-000123 | <ECID> | namespace:value"""
        text = (command.get("text") or "").strip()
        # The ack is due within 3 s, before the asker is known: it speaks BOT_DEFAULT_LOCALE.
        # Everything after it speaks the asker's own language.
        reader = self.services.default_reader
        usage = self.services.cards.notice("usage", reader=reader, usage=reader.gettext(USAGE))
        if text.lower() in HELP_WORDS:
            await ack(**usage, response_type="ephemeral")
            return
        found = find_identities(self.services, text)
        refs = found.refs
        if not refs and not found.refused:
            # Say what was wrong with this text when a common slip explains it.
            diagnosis = found.unknown[0] if found.unknown else diagnose(text, self.services.rules)
            if diagnosis is not None:
                notice = diagnosis_notice(self.services, diagnosis, reader)
                await ack(**notice, response_type="ephemeral")
            else:
                await ack(**usage, response_type="ephemeral")
            return
        user_id, response_url = command.get("user_id"), command.get("response_url")
        if not user_id or not response_url:
            # No one to check the policy for, or nowhere to send cards: say so in the ack.
            missing = "user_id" if not user_id else "response_url"
            log.warning("/customer request without %s refused", missing)
            notice = self.services.cards.notice("incomplete_request", reader=reader)
            await ack(**notice, response_type="ephemeral")
            return
        asker = Asker(
            team_id=command.get("team_id"),
            user_id=user_id,
            channel_id=command.get("channel_id"),
        )
        if not refs:
            # Look-alike or over-long text only: refused in words before any AEP call.
            refusal = identity_refusal(self.services, found.refused, reader)
            await ack(**refusal, response_type="ephemeral")
            await audit_identity_refusals(self.services, asker, found.refused, surface="private")
            return
        # Who asks and what they may see is decided before the ack when it can be in time, so a
        # person without grants is refused at once, not after a "Looking up…".
        deciding = asyncio.ensure_future(viewer_of(self.services, asker))
        decided = await _decided_in_time(deciding)
        if decided is not None and not decided.access.classes:
            # Refused once for the whole command, not once per identity.
            refusal = await refuse(self.services, decided, surface="private", at="command")
            await ack(**refusal, response_type="ephemeral")
            return
        shown = refs[: self.services.settings.bot_max_cards]
        names = self.services.cards.namespace_names
        query = ", ".join(identity_words(r.namespace, r.value, reader, names=names) for r in shown)
        # An empty ack: Slack shows nothing, and the card (posted on the response_url) is the
        # only message of the answer. A slash command's response_url cannot replace what it
        # posted (replace_original is not honoured there), so a "Looking up…" said first would
        # stay above the card: it is said only when the answer is slow (BOT_SLOW_ANSWER_SECONDS).
        await ack()
        self.services.answer_in_progress()
        posts = ResponseUrlPosts(respond)
        reader_now: list[Reader] = [reader]
        answer = asyncio.ensure_future(
            _answer(self.services, asker, deciding, found, shown, posts.say, reader_now)
        )
        try:
            # Slack shows the empty ack as nothing at all: a slower answer says "Looking up…"
            # first, so nobody is left with silence.
            slow = self.services.settings.bot_slow_answer_seconds
            await asyncio.wait_for(asyncio.shield(answer), slow)
        except TimeoutError:
            # Posts the answer will need: its cards, a refusal, the "N of M" note; "Looking up…"
            # only when one is left of the response_url's five.
            noted = len(shown) < found.count or found.capped
            needed = len(shown) + bool(found.refused) + bool(found.unknown) + noted
            async with posts.sending:
                if not posts.said and needed < RESPONSE_URL_POSTS:
                    looking_up = self.services.cards.notice(
                        "looking_up", reader=reader_now[0], query=query
                    )
                    await respond(**looking_up, response_type="ephemeral", replace_original=False)
            await answer


async def _answer(
    services: Services,
    asker: Asker,
    deciding: asyncio.Future[Viewer],
    found: Found,
    shown: list[IdentityRef],
    say: Reply,
    reader_now: list[Reader],
) -> None:
    """The command's answer after its (empty) ack: a refusal, or a card per identity shown,
    each one message on the response_url (`say`)."""
    viewer = await deciding
    reader_now[0] = viewer.reader
    if not viewer.access.classes:
        # Refused once for the whole command, not once per identity.
        refusal = await refuse(services, viewer, surface="private", at="command")
        await say(**refusal, response_type="ephemeral")
        return
    if found.unknown:
        # The first only: a response_url takes five posts, and the cards come first.
        notice = diagnosis_notice(services, found.unknown[0], viewer.reader)
        await say(**notice, response_type="ephemeral", replace_original=False)
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


def register(app: AsyncApp, services: Services) -> None:
    """Register the /customer command."""
    h = CommandHandlers(services)
    app.command(ids.COMMAND)(h.customer_command)
