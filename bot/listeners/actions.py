"""Buttons on cards (Refresh, More events, Share, View details, pick) and the share modal."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.answers import (
    Asker,
    CardRequest,
    audit_card,
    audit_refusal,
    events_view,
    reader_of,
    refuse,
    render_card,
    share_check,
    viewer_of,
)
from bot.button_tokens import Place, Recalled
from bot.i18n import Reader
from bot.listeners.common import (
    answer_privately,
    answerable_asker,
    interactive_asker,
    post_card,
    private_teller,
    refuse_incomplete,
    send_direct_message,
)
from bot.policy import share_access
from bot.services import Services
from bot.share_metadata import ShareMetadata
from bot.slack_web import SlackBusy, busy_seconds, failure_code, why_call_failed
from bot.vocabulary import PostFailed, PrivateAction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardButton:
    """A button answered with the clicker's own private card of the clicked customer."""

    action: PrivateAction
    #: fetch again from AEP, bypassing the cache
    refresh: bool = False
    #: the card replaces the message clicked on (the card refreshed, the picker answered)
    replace_original: bool = False


#: Refresh replaces the card with a fresh one; a pick replaces the picker with the card picked;
#: View details (on a shared card) answers the clicker privately with what their role grants.
CARD_BUTTONS: dict[str | re.Pattern[str], CardButton] = {
    ids.REFRESH: CardButton("refresh", refresh=True, replace_original=True),
    ids.PICK_IDENTITY_ACTION: CardButton("lookup", replace_original=True),
    ids.VIEW_DETAILS: CardButton("detail_view"),
}


def _click_place(body: dict[str, Any], asker: Asker) -> Place | None:
    """Where a click happened, as Slack's signed payload says: the conversation, and the thread
    of the message clicked on (a card in a thread)."""
    if not asker.channel_id:
        return None
    container = body.get("container") or {}
    message = body.get("message") or {}
    thread_ts = container.get("thread_ts") or message.get("thread_ts")
    return Place(asker.channel_id, str(thread_ts) if thread_ts else None)


def _answer_place(recalled: Recalled, body: dict[str, Any], asker: Asker) -> Place | None:
    """Where the card answering a click is answered: the place its token kept (a card from a
    message shortcut or a mention keeps that message's thread), with the click's thread when the
    token kept none. None for a card answered outside any conversation (a direct message from the
    bot, the App Home), or a token of another conversation than the one clicked in: its answer
    offers neither Share nor Send to my DMs."""
    place = recalled.place
    if place is None or place.channel_id != asker.channel_id:
        return None
    return place if place.thread_ts is not None else _click_place(body, asker)


def _token(body: dict[str, Any]) -> str:
    """The opaque lookup token of a click: a button's value, or a select menu's choice."""
    action = (body.get("actions") or [{}])[0]
    return str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")


async def open_modal(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    view: dict[str, Any],
    reader: Reader,
) -> str | None:
    """Open a modal on the click's trigger; when Slack refuses (the trigger lives about 3 s),
    say so privately instead of failing silently. Returns the view id."""
    try:
        opened = await client.views_open(trigger_id=body["trigger_id"], view=view)
    except SlackClientError as exc:
        log.warning("could not open a modal: %s", failure_code(exc))
        if isinstance(exc, SlackBusy):
            notice = services.cards.notice("slack_busy", reader=reader, seconds=busy_seconds(exc))
        else:
            notice = services.cards.notice("window_failed", reader=reader)
        await respond(
            **notice,
            response_type="ephemeral",
            replace_original=False,
        )
        return None
    return str(opened["view"]["id"])


class ActionHandlers:
    """The card buttons' and the share modal's listeners, one method each, with the services
    they answer with. Methods of a module-level class, so that mutation testing reaches them
    (mutmut 3 skips functions nested in functions); Bolt injects a listener's arguments by
    parameter name and skips a bound method's leading `self`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def clicked(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> tuple[Asker, Recalled] | None:
        """Acknowledge a click; then who clicked on which customer (and where its card was
        answered), or None when the click is refused (said in words): no one to answer, or a
        token that has expired."""
        await ack()
        self.services.answer_in_progress()
        # Every card button answers on the click's response_url: none, no answer.
        asker = await answerable_asker(self.services, body, surface="button")
        if asker is None:
            return None
        recalled = await self.services.buttons.recall_place(_token(body))
        if recalled is None:
            # Said at once, before the clicker is looked up: in BOT_DEFAULT_LOCALE.
            await respond(
                **self.services.cards.notice("expired", reader=self.services.default_reader),
                response_type="ephemeral",
                replace_original=False,
            )
            return None
        return asker, recalled

    async def open_in_aep(self, ack: AsyncAck) -> None:
        """A link button: Slack opens the URL; the click only needs acknowledging."""
        await ack()

    async def answer_card_button(
        self, button: CardButton, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Answer the click with the clicker's own card of the customer clicked on."""
        click = await self.clicked(ack, body, respond)
        if click is not None:
            asker, recalled = click
            await answer_privately(
                self.services,
                await viewer_of(self.services, asker),
                recalled.ref,
                respond,
                action=button.action,
                refresh=button.refresh,
                replace_original=button.replace_original,
                place=_answer_place(recalled, body, asker),
            )

    async def more_events(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Open a modal with the customer's recent events, as far as the clicker may see them."""
        click = await self.clicked(ack, body, respond)
        if click is None:
            return
        asker, recalled = click
        # trigger_id lives about 3 s: open a loading modal now (before the clicker is looked up,
        # so in BOT_DEFAULT_LOCALE), fill it in their language when the data arrives.
        reader = self.services.default_reader
        loading = self.services.cards.loading_modal(reader=reader)
        view_id = await open_modal(self.services, body, respond, client, loading, reader)
        if view_id is None:
            return
        viewer = await viewer_of(self.services, asker)
        view = await events_view(self.services, viewer, recalled.ref, _token(body))
        await client.views_update(view_id=view_id, view=view)

    async def send_to_dm(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Send the clicker's own card (their grants, as on the private card) to their direct
        messages with the bot, where it stays when Slack forgets the ephemeral card. Audited."""
        click = await self.clicked(ack, body, respond)
        if click is None:
            return
        asker, recalled = click
        viewer = await viewer_of(self.services, asker)
        if not viewer.access.classes:
            refusal = await refuse(self.services, viewer, surface="private", at="send_to_dm")
            await respond(**refusal, response_type="ephemeral", replace_original=False)
            return
        # Redacted for the clicker alone, as the private card was: the DM is theirs and the bot's.
        request = CardRequest(ref=recalled.ref, classes=viewer.access.classes, reader=viewer.reader)
        card = await render_card(self.services, request)
        if not card.ok:
            await audit_card(self.services, asker, card, action="send_to_dm", surface="private")
            await respond(**card.message, response_type="ephemeral", replace_original=False)
            return
        failed = await send_direct_message(self.services, asker, card.message)
        if failed is not None:
            await audit_card(
                self.services,
                asker,
                card,
                action="send_to_dm",
                surface="private",
                outcome=PostFailed(failure_code(failed)),
            )
            notice = self.services.cards.notice(
                "dm_failed", reader=viewer.reader, reason=why_call_failed(failed, viewer.reader)
            )
            await respond(**notice, response_type="ephemeral", replace_original=False)
            return
        await audit_card(
            self.services, asker, card, action="send_to_dm", surface="private", outcome="posted"
        )
        await respond(
            **self.services.cards.notice("dm_sent", reader=viewer.reader),
            response_type="ephemeral",
            replace_original=False,
        )

    async def share(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Check that Share can work here (the token, the share right, the conversation's
        audience) BEFORE any modal opens: a refusal is said privately, in words. Then ask for a
        short reason in a modal naming the conversation and what the posted card hides."""
        click = await self.clicked(ack, body, respond)
        if click is None:
            return
        asker, recalled = click
        viewer = await viewer_of(self.services, asker)
        if not viewer.access.can_share:
            await audit_refusal(self.services, asker, outcome="share_not_allowed", surface="share")
            await respond(
                **self.services.cards.notice("share_not_allowed", reader=viewer.reader),
                response_type="ephemeral",
                replace_original=False,
            )
            return
        # A card answered in one conversation is shared there (in its thread) or nowhere.
        check = await share_check(self.services, viewer, _answer_place(recalled, body, asker))
        if check.refused or check.place is None or check.channel is None:
            await audit_refusal(
                self.services, asker, outcome="channel_refused", surface="share", ref=recalled.ref
            )
            await respond(
                **self.services.cards.notice(
                    "share_refused", reader=viewer.reader, reason=check.decision.reason
                ),
                response_type="ephemeral",
                replace_original=False,
            )
            return
        view = self.services.cards.share_modal(
            token=_token(body),
            channel_id=check.place.channel_id,
            thread_ts=check.place.thread_ts,
            response_url=body.get("response_url"),
            channel_name=check.channel.name,
            channel_kind=check.channel.kind,
            hidden=check.hidden,
            reader=viewer.reader,
        )
        await open_modal(self.services, body, respond, client, view, viewer.reader)

    async def share_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Re-check everything at share time; the modal's metadata is not trusted for identity
        or place: both come from the token, and the sharer's right and the audience are asked
        again."""
        await ack()
        self.services.answer_in_progress()
        try:
            meta = ShareMetadata.parse(view.get("private_metadata") or "")
        except ValueError as exc:
            # Slack returns the metadata we set; anything else is not a share of ours.
            log.warning("share submission with unreadable metadata: %s", exc)
            return
        response_url = meta.response_url
        clicker = interactive_asker(body)
        if clicker is None:
            await refuse_incomplete(
                self.services,
                surface="share",
                missing="user",
                response_url=response_url,
                user_id=None,
                channel_id=None,
            )
            return
        team_id = clicker.team_id
        channel_id = meta.channel_id
        asker = Asker(team_id=team_id, user_id=clicker.user_id, channel_id=channel_id)
        values = view.get("state", {}).get("values", {})
        reason = (
            (values.get(ids.SHARE_REASON_BLOCK, {}).get(ids.SHARE_REASON_INPUT, {}) or {}).get(
                "value"
            )
            or ""
        ).strip()
        tell = private_teller(
            self.services,
            client,
            user_id=asker.user_id,
            channel_id=channel_id,
            response_url=response_url,
        )

        sharer = await self.services.directory.person(team_id or "", asker.user_id)
        # The card carries the sharer's words; its times are Slack date tokens for each reader.
        reader = reader_of(self.services, sharer)
        recalled = await self.services.buttons.recall_place(meta.token)
        if recalled is None:
            await tell(self.services.cards.notice("expired", reader=reader))
            return
        ref = recalled.ref
        place = recalled.place
        # The place comes from the token: metadata naming another conversation, or another
        # thread than the card's, is not a share of this card.
        if (
            place is None
            or place.channel_id != channel_id
            or (place.thread_ts is not None and place.thread_ts != meta.thread_ts)
        ):
            log.warning("share submission for another place than its card's refused")
            await audit_refusal(
                self.services, asker, outcome="channel_refused", surface="share", ref=ref
            )
            await tell(self.services.cards.notice("expired", reader=reader))
            return
        thread_ts = place.thread_ts or meta.thread_ts
        channel = await self.services.directory.channel(team_id or "", channel_id)
        # May this person share at all, and what may every reader of the channel see (never
        # more than the sharer sees)? Checked again now: the button is not trusted.
        decision = share_access(self.services.policy, sharer, channel, reader)
        if decision.refused or not decision.classes:
            await audit_refusal(
                self.services, asker, outcome="channel_refused", surface="share", ref=ref
            )
            await tell(
                self.services.cards.notice("refused_channel", reader=reader, reason=decision.reason)
            )
            return
        request = CardRequest(
            ref=ref,
            classes=decision.classes,
            reader=reader,
            surface="shared",
            shared_by=asker.user_id,
            share_reason=reason or None,
            place=Place(channel_id, thread_ts),
        )
        posted = await post_card(
            self.services,
            client,
            asker,
            request,
            channel_id=channel_id,
            thread_ts=thread_ts,
            action="share",
            surface="share",
            tell=tell,
        )
        if posted:
            await tell(self.services.cards.notice("share_done", reader=reader, channel=channel_id))


class CardButtonListener:
    """ActionHandlers.answer_card_button with one CardButton, registered as the bound method
    `answer_card_button` (the name Bolt gives the listener and its logger). Bolt injects a
    listener's arguments by the parameter names it reads from the callable, skipping a leading
    `self`: so not functools.partial (no such names), nor an object with `__call__` (under
    mutmut's trampoline Bolt reads no names from it, where it reads a bound method's through
    `__wrapped__`)."""

    def __init__(self, handlers: ActionHandlers, button: CardButton) -> None:
        self.handlers = handlers
        self.button = button

    async def answer_card_button(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Answer the click with the clicker's own card of the customer clicked on."""
        await self.handlers.answer_card_button(self.button, ack, body, respond)


def register(app: AsyncApp, services: Services) -> None:
    """Register the card buttons and the share modal."""
    h = ActionHandlers(services)
    app.action(ids.OPEN_IN_AEP)(h.open_in_aep)
    for action_id, button in CARD_BUTTONS.items():
        app.action(action_id)(CardButtonListener(h, button).answer_card_button)
    app.action(ids.MORE_EVENTS)(h.more_events)
    app.action(ids.SEND_TO_DM)(h.send_to_dm)
    app.action(ids.SHARE)(h.share)
    app.view(ids.SHARE_MODAL)(h.share_submitted)
