"""`@bot jane@example.com` in a channel: a channel-safe card in the thread of the mention."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.answers import (
    Asker,
    CardRequest,
    audit_refusal,
    find_identities,
    refuse,
    refuse_identities,
    viewer_of,
)
from bot.button_tokens import Place
from bot.identity import USAGE
from bot.listeners.common import first_delivery, post_card, private_teller
from bot.policy import audience_access
from bot.services import Services

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


class MentionHandlers:
    """The app_mention listener, a method with the services it answers with: a method of a
    module-level class, so that mutation testing reaches it (mutmut 3 skips functions nested in
    functions); Bolt injects a listener's arguments by parameter name and skips a bound method's
    leading `self`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_mention(
        self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Answers in the thread with what everyone in the channel may see."""
        self.services.answer_in_progress()
        if event.get("bot_id"):
            return
        channel_id, ts, user_id = event.get("channel"), event.get("ts"), event.get("user")
        if not channel_id or not ts or not user_id:
            # Nowhere to answer, or no one to check the policy for: nothing can be said.
            log.warning("app_mention event without channel, ts or user ignored")
            return
        if not await first_delivery(self.services, body, names=f"message/{channel_id}/{ts}"):
            return
        thread_ts = event.get("thread_ts") or ts
        asker = Asker(
            team_id=body.get("team_id") or event.get("team"),
            user_id=user_id,
            channel_id=channel_id,
        )

        tell_privately = private_teller(
            self.services, client, user_id=user_id, channel_id=channel_id, thread_ts=thread_ts
        )

        text = _MENTION.sub(" ", event.get("text") or "")
        found = find_identities(self.services, text)
        refs = found.refs
        viewer = await viewer_of(self.services, asker)
        reader = viewer.reader
        if not refs and found.refused:
            await tell_privately(
                await refuse_identities(
                    self.services, asker, found.refused, surface="mention", reader=reader
                )
            )
            return
        if not refs:
            usage = reader.gettext(USAGE)
            await tell_privately(self.services.cards.notice("usage", reader=reader, usage=usage))
            return
        if not viewer.access.classes:
            await tell_privately(
                await refuse(self.services, viewer, surface="mention", at="mention")
            )
            return
        if found.refused:
            await tell_privately(
                await refuse_identities(
                    self.services, asker, found.refused, surface="mention", reader=reader
                )
            )
        channel = await self.services.directory.channel(asker.team_id or "", channel_id)
        decision = audience_access(self.services.policy, channel, reader)
        # Channel-safe by construction, and never more than the person who asked may see.
        classes = decision.classes & viewer.access.classes
        if decision.refused or not classes:
            await audit_refusal(
                self.services, asker, outcome="channel_refused", surface="mention", ref=refs[0]
            )
            refusal = self.services.cards.notice(
                "refused_channel", reader=reader, reason=decision.reason
            )
            await tell_privately(refusal)
            return
        shown = refs[: self.services.settings.bot_max_cards]
        note = found.note(self.services, len(shown), reader)
        if note is not None:
            await tell_privately(note)
        for ref in shown:
            await post_card(
                self.services,
                client,
                asker,
                CardRequest(
                    ref=ref,
                    classes=classes,
                    reader=reader,
                    surface="shared",
                    place=Place(channel_id, thread_ts),
                ),
                channel_id=channel_id,
                thread_ts=thread_ts,
                action="lookup",
                surface="mention",
                tell=tell_privately,
            )


def register(app: AsyncApp, services: Services) -> None:
    """Register the app_mention listener."""
    h = MentionHandlers(services)
    app.event("app_mention")(h.on_mention)
