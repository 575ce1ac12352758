"""Slack Work Objects and links: a Work Object's flexpane (`entity_details_requested`), filled
for each viewer, and pasted Experience Platform profile links unfurled (`link_shared`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.answers import Asker, audit_card, flexpane, unfurl_cards, viewer_of
from bot.listeners.common import first_delivery
from bot.services import Services
from bot.slack_web import failure_code
from bot.vocabulary import PostFailed

log = logging.getLogger(__name__)

#: A conversation id the bot can size; a link still in the composer comes with "COMPOSER",
#: which has a conversation id's shape (C and capitals) and so is named to be excluded.
_CONVERSATION = re.compile(r"^(?!COMPOSER$)[CGD][A-Z0-9]{2,20}$")


def _external_token(event: dict[str, Any]) -> str:
    """The opaque lookup token a Work Object of ours carries as its external_ref; "" for
    anything else (then refused as a forged button is)."""
    ref = event.get("external_ref")
    if not isinstance(ref, dict) or ref.get("type") not in (None, ids.WORK_OBJECT_REF_TYPE):
        return ""
    token = ref.get("id")
    return token if isinstance(token, str) else ""


class LinkHandlers:
    """The flexpane and link unfurling listeners, one method each, with the services they
    answer with. Methods of a module-level class, so that mutation testing reaches them (mutmut 3
    skips functions nested in functions); Bolt injects a listener's arguments by parameter name
    and skips a bound method's leading `self`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_entity_details(
        self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Fill the flexpane with what this viewer's own grants allow, or say why not."""
        self.services.answer_in_progress()
        trigger_id, user_id = event.get("trigger_id"), event.get("user")
        if not isinstance(trigger_id, str) or not trigger_id or not isinstance(user_id, str):
            # No trigger: nothing can answer the flexpane. No user: no one to check grants for.
            log.warning("entity_details_requested without trigger_id or user ignored")
            return
        if not await first_delivery(self.services, body, names=f"trigger/{trigger_id}"):
            return
        channel = event.get("channel")
        asker = Asker(
            team_id=body.get("team_id"),
            user_id=user_id,
            channel_id=channel if isinstance(channel, str) else None,
        )
        pane = await flexpane(
            self.services, await viewer_of(self.services, asker), _external_token(event)
        )
        try:
            if pane.metadata is not None:
                await client.entity_presentDetails(trigger_id=trigger_id, metadata=pane.metadata)
            else:
                await client.entity_presentDetails(trigger_id=trigger_id, error=pane.error)
        except SlackClientError as exc:
            log.warning("could not fill a Work Object's flexpane: %s", failure_code(exc))

    async def on_link_shared(
        self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Unfurl pasted profile links into the channel-safe card (and Work Object)."""
        self.services.answer_in_progress()
        channel_id, user_id = event.get("channel"), event.get("user")
        links = event.get("links")
        links = links if isinstance(links, list) else []
        urls = [str(link["url"]) for link in links if isinstance(link, dict) and link.get("url")]
        if not urls or not isinstance(user_id, str) or not user_id:
            return
        if not isinstance(channel_id, str) or not _CONVERSATION.match(channel_id):
            # Still in the composer: the bot cannot tell who will read it, so nothing unfurls
            # until the message is posted (Slack sends link_shared again then).
            log.info("link_shared outside a conversation: not unfurled")
            return
        if not await first_delivery(
            self.services, body, names=f"links/{channel_id}/{event.get('message_ts')}"
        ):
            return
        asker = Asker(team_id=body.get("team_id"), user_id=user_id, channel_id=channel_id)
        answer = await unfurl_cards(self.services, await viewer_of(self.services, asker), urls)
        if not answer.cards:
            if answer.refused and answer.refused != "no_profile_links":
                log.info("profile links not unfurled: %s", answer.refused)
            return
        unfurls = {url: {"blocks": card.message["blocks"]} for url, card in answer.cards.items()}
        entities = [card.entity for card in answer.cards.values() if card.entity is not None]
        where: dict[str, Any] = (
            {"unfurl_id": event["unfurl_id"], "source": event["source"]}
            if event.get("unfurl_id") and event.get("source")
            else {"channel": channel_id, "ts": event.get("message_ts")}
        )
        outcome: PostFailed | None = None
        try:
            await client.chat_unfurl(
                **where,
                unfurls=unfurls,
                metadata={"entities": entities} if entities else None,
            )
        except SlackClientError as exc:
            outcome = PostFailed(failure_code(exc))
            log.warning("could not unfurl profile links: %s", outcome.code)
        for card in answer.cards.values():
            await audit_card(
                self.services,
                asker,
                card,
                action="unfurl",
                surface="unfurl",
                outcome=outcome or "posted",
            )


def register(app: AsyncApp, services: Services) -> None:
    """Register the flexpane and link unfurling listeners."""
    h = LinkHandlers(services)
    app.event("entity_details_requested")(h.on_entity_details)
    app.event("link_shared")(h.on_link_shared)
