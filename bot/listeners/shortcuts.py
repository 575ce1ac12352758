"""The "Look up customer" message shortcut: every identity in a message, answered privately."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import ids
from bot.answers import find_identities, refuse, refuse_identities, viewer_of
from bot.button_tokens import Place
from bot.cards import PICKER_CHOICES, identity_words
from bot.listeners.common import answer_privately, answerable_asker
from bot.services import Services


class ShortcutHandlers:
    """The message shortcut's listener, a method with the services it answers with: a method
    of a module-level class, so that mutation testing reaches it (mutmut 3 skips functions nested
    in functions); Bolt injects a listener's arguments by parameter name and skips a bound
    method's leading `self`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def lookup_shortcut(
        self, ack: AsyncAck, shortcut: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Finds the emails, phones, CRM ids and ECIDs in a message and shows their customers."""
        await ack()
        self.services.answer_in_progress()
        asker = await answerable_asker(self.services, shortcut, surface="shortcut")
        if asker is None:
            return
        message = shortcut.get("message") or {}
        text = message.get("text") or ""
        # The card answers this message: Share posts into its thread (the thread it is in, or
        # the one it starts), kept with the buttons' token.
        thread_ts = message.get("thread_ts") or message.get("ts") or shortcut.get("message_ts")
        place = (
            Place(asker.channel_id, str(thread_ts) if thread_ts else None)
            if asker.channel_id
            else None
        )
        found = find_identities(self.services, text)
        refs = found.refs
        viewer = await viewer_of(self.services, asker)
        if found.refused:
            # Said first and on its own: the rest of the message is still answered below.
            refusal = await refuse_identities(
                self.services, asker, found.refused, surface="private", reader=viewer.reader
            )
            await respond(**refusal, response_type="ephemeral", replace_original=False)
            if not refs:
                return
        if not refs:
            notice = self.services.cards.notice("no_identity", reader=viewer.reader)
            await respond(**notice, response_type="ephemeral")
            return
        if len(refs) == 1:
            await answer_privately(
                self.services, viewer, refs[0], respond, action="lookup", place=place
            )
            return
        if not viewer.access.classes:
            refusal = await refuse(self.services, viewer, surface="private", at="shortcut")
            await respond(**refusal, response_type="ephemeral")
            return
        # Several identities: let the person pick; the buttons carry opaque tokens, not values.
        choices = [
            (
                identity_words(
                    ref.namespace,
                    ref.value,
                    viewer.reader,
                    names=self.services.cards.namespace_names,
                    sep=": ",
                ),
                await self.services.buttons.remember(ref, place=place),
            )
            for ref in refs[:PICKER_CHOICES]
        ]
        picker = self.services.cards.picker(
            choices, reader=viewer.reader, found=found.count, capped=found.capped
        )
        await respond(**picker, response_type="ephemeral")


def register(app: AsyncApp, services: Services) -> None:
    """Register the message shortcut."""
    h = ShortcutHandlers(services)
    app.message_shortcut(ids.LOOKUP_SHORTCUT)(h.lookup_shortcut)
