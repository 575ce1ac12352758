"""`@bot jane@example.com` in a channel: a channel-safe card in the thread of the mention."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.identity import USAGE, read_identities
from bot.listeners.common import (
    Asker,
    access_of,
    audit_card,
    audit_refusal,
    card_for,
    refuse,
    refuse_identities,
)
from bot.policy import audience_access
from bot.services import Services

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def register(app: AsyncApp, services: Services) -> None:
    """Register the app_mention listener."""

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Answers in the thread with what everyone in the channel may see."""
        services.answer_in_progress()
        event_id = body.get("event_id")
        # Slack retries an event it thinks failed; the first delivery may still be running,
        # so de-duplicate on event_id (shared across instances when the cache is Redis).
        if event_id and not await services.cache.first_time(services.keys.event(event_id)):
            log.info("duplicate delivery of event %s ignored", event_id)
            return
        if event.get("bot_id") or not event.get("user"):
            return
        channel_id = event["channel"]
        thread_ts = event.get("thread_ts") or event["ts"]
        asker = Asker(
            team_id=body.get("team_id") or event.get("team"),
            user_id=event["user"],
            channel_id=channel_id,
        )

        async def tell_privately(message: dict[str, Any]) -> None:
            try:
                await client.chat_postEphemeral(
                    channel=channel_id, user=asker.user_id, thread_ts=thread_ts, **message
                )
            except SlackApiError as exc:
                log.warning("could not answer privately: %s", exc.response.get("error"))

        text = _MENTION.sub(" ", event.get("text") or "")
        reading = read_identities(text, services.rules)
        refs = reading.refs
        if not refs and reading.refused:
            await tell_privately(
                await refuse_identities(services, asker, reading.refused, surface="mention")
            )
            return
        if not refs:
            await tell_privately(services.cards.notice("usage", usage=USAGE))
            return
        access = await access_of(services, asker)
        if not access.classes:
            await tell_privately(await refuse(services, asker, surface="mention", action="mention"))
            return
        if reading.refused:
            await tell_privately(
                await refuse_identities(services, asker, reading.refused, surface="mention")
            )
        channel = await services.directory.channel(asker.team_id or "", channel_id)
        decision = audience_access(services.policy, channel)
        # Channel-safe by construction, and never more than the person who asked may see.
        classes = decision.classes & access.classes
        if decision.refused or not classes:
            await audit_refusal(
                services, asker, outcome="channel_refused", surface="mention", ref=refs[0]
            )
            await tell_privately(services.cards.notice("refused_channel", reason=decision.reason))
            return
        shown = refs[: services.settings.bot_max_cards]
        if len(refs) > len(shown):
            note = services.cards.notice("more_identities", shown=len(shown), total=len(refs))
            await tell_privately(note)
        for ref in shown:
            card = await card_for(
                services,
                asker,
                ref,
                classes,
                surface="shared",
                action="lookup",
                audit_surface="mention",
                audit_success=False,
            )
            if not card.ok:
                await tell_privately(card.message)
                continue
            try:
                await client.chat_postMessage(
                    channel=channel_id, thread_ts=thread_ts, **card.message
                )
            except SlackApiError as exc:
                error = exc.response.get("error")
                log.warning("could not post in thread: %s", error)
                await audit_card(
                    services,
                    asker,
                    card,
                    action="lookup",
                    surface="mention",
                    outcome=f"post_failed:{error}",
                )
                await tell_privately(
                    services.cards.notice("refused_channel", reason=_post_error(exc))
                )
                continue
            await audit_card(
                services, asker, card, action="lookup", surface="mention", outcome="posted"
            )


def _post_error(exc: SlackApiError) -> str:
    error = exc.response.get("error")
    if error == "not_in_channel":
        return "I am not a member of this channel. Invite me with /invite and try again."
    return f"Slack refused the post ({error}). Try again, or ask in a channel I am a member of."
