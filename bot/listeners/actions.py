"""Buttons on cards (Refresh, More events, Share, View details, pick) and the share modal."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import ids
from bot.aep.errors import AepError
from bot.cards import MODAL_EVENTS, CardContext, ShareMetadata
from bot.identity import IdentityRef
from bot.listeners.common import (
    Asker,
    access_of,
    answer_privately,
    audit,
    audit_card,
    audit_refusal,
    card_for,
    error_notice,
    interactive_asker,
    now,
    post_failure_notice,
    refuse,
    refuse_incomplete,
)
from bot.policy import redact, share_access
from bot.services import Services
from bot.slack_web import SlackBusy, busy_seconds, failure_code

log = logging.getLogger(__name__)


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
) -> str | None:
    """Open a modal on the click's trigger; when Slack refuses (the trigger lives about 3 s),
    say so privately instead of failing silently. Returns the view id."""
    try:
        opened = await client.views_open(trigger_id=body["trigger_id"], view=view)
    except SlackClientError as exc:
        log.warning("could not open a modal: %s", failure_code(exc))
        if isinstance(exc, SlackBusy):
            notice = services.cards.notice("slack_busy", seconds=busy_seconds(exc))
        else:
            notice = services.cards.notice("window_failed")
        await respond(
            **notice,
            response_type="ephemeral",
            replace_original=False,
        )
        return None
    return str(opened["view"]["id"])


def register(app: AsyncApp, services: Services) -> None:
    """Register the card buttons and the share modal."""

    async def asker_of(body: dict[str, Any]) -> Asker | None:
        """Who clicked; None (and the click refused in words) when Slack did not say who, or
        gave no response_url to answer on: every card button answers there."""
        asker = interactive_asker(body)
        if asker is None or not body.get("response_url"):
            await refuse_incomplete(
                services,
                surface="button",
                missing="user" if asker is None else "response_url",
                response_url=body.get("response_url"),
                user_id=asker.user_id if asker else None,
                channel_id=asker.channel_id if asker else None,
            )
            return None
        return asker

    async def recall(body: dict[str, Any], respond: AsyncRespond) -> IdentityRef | None:
        ref = await services.buttons.recall(_token(body))
        if ref is None:
            await respond(
                **services.cards.notice("expired"),
                response_type="ephemeral",
                replace_original=False,
            )
        return ref

    @app.action(ids.OPEN_IN_AEP)
    async def open_in_aep(ack: AsyncAck) -> None:
        """A link button: Slack opens the URL; the click only needs acknowledging."""
        await ack()

    @app.action(ids.REFRESH)
    async def refresh(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Fetch the customer again from AEP, bypassing the cache, and replace the card."""
        await ack()
        services.answer_in_progress()
        asker = await asker_of(body)
        if asker is None:
            return
        ref = await recall(body, respond)
        if ref is None:
            return
        await answer_privately(
            services, asker, ref, respond, action="refresh", refresh=True, replace_original=True
        )

    @app.action(re.compile(rf"^{ids.PICK_IDENTITY}"))
    async def pick(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """One of several identities found in a message was picked: show its card."""
        await ack()
        services.answer_in_progress()
        asker = await asker_of(body)
        if asker is None:
            return
        ref = await recall(body, respond)
        if ref is None:
            return
        await answer_privately(
            services, asker, ref, respond, action="lookup", replace_original=True
        )

    @app.action(ids.VIEW_DETAILS)
    async def view_details(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """On a shared card: answer the clicker privately with what their own role grants."""
        await ack()
        services.answer_in_progress()
        asker = await asker_of(body)
        if asker is None:
            return
        ref = await recall(body, respond)
        if ref is None:
            return
        await answer_privately(services, asker, ref, respond, action="detail_view")

    @app.action(ids.MORE_EVENTS)
    async def more_events(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Open a modal with the customer's recent events, as far as the clicker may see them."""
        await ack()
        services.answer_in_progress()
        asker = await asker_of(body)
        if asker is None:
            return
        ref = await recall(body, respond)
        if ref is None:
            return
        # trigger_id lives about 3 s: open a loading modal now, fill it when the data arrives.
        view_id = await open_modal(services, body, respond, client, services.cards.loading_modal())
        if view_id is None:
            return
        access = await access_of(services, asker)
        if "activity" not in access.classes:
            await audit_refusal(
                services, asker, outcome="events_not_granted", surface="modal", ref=ref
            )
            if access.classes:
                refusal = services.cards.notice("events_not_granted")
            else:
                refusal = await refuse(services, asker, surface="modal", action="more_events")
            await client.views_update(
                view_id=view_id, view=services.cards.modal_from_notice(refusal)
            )
            return
        try:
            customer = await services.lookup.lookup(ref, events_limit=MODAL_EVENTS)
        except AepError as exc:
            await client.views_update(
                view_id=view_id,
                view=services.cards.modal_from_notice(
                    error_notice(services, exc, ref, access.classes)
                ),
            )
            return
        redacted = redact(customer, access.classes)
        context = CardContext(
            surface="private",
            now=now(),
            token=_token(body),
            withheld=frozenset(redacted.withheld),
            max_events=MODAL_EVENTS,
            granted=frozenset(access.classes),
        )
        view = services.cards.events_modal(redacted.customer, context)
        await audit(
            services,
            asker,
            action="more_events",
            outcome="shown",
            surface="modal",
            ref=ref,
            profile_id=customer.profile_id,
            shown=redacted.shown,
            withheld=redacted.withheld,
        )
        await client.views_update(view_id=view_id, view=view)

    @app.action(ids.SHARE)
    async def share(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Ask for a short reason before sharing the card where the lookup happened."""
        await ack()
        services.answer_in_progress()
        asker = await asker_of(body)
        if asker is None:
            return
        access = await access_of(services, asker)
        if not access.can_share:
            await audit_refusal(services, asker, outcome="share_not_allowed", surface="share")
            await respond(
                **services.cards.notice("share_not_allowed"),
                response_type="ephemeral",
                replace_original=False,
            )
            return
        container = body.get("container") or {}
        message = body.get("message") or {}
        thread_ts = container.get("thread_ts") or message.get("thread_ts")
        view = services.cards.share_modal(
            token=_token(body),
            channel_id=asker.channel_id or "",
            thread_ts=thread_ts,
            response_url=body.get("response_url"),
            audience_note=(
                "The card posted will show only what everyone who can read this "
                "conversation may see; anyone allowed more can click View details."
            ),
        )
        await open_modal(services, body, respond, client, view)

    @app.view(ids.SHARE_MODAL)
    async def share_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Re-check everything at share time; the modal's metadata is not trusted for identity."""
        await ack()
        services.answer_in_progress()
        try:
            meta = ShareMetadata.parse(view.get("private_metadata") or "")
        except ValueError as exc:
            # Slack returns the metadata we set; anything else is not a share of ours.
            log.warning("share submission with unreadable metadata: %s", exc)
            return
        channel_id, thread_ts, response_url = meta.channel_id, meta.thread_ts, meta.response_url
        clicker = interactive_asker(body)
        if clicker is None:
            await refuse_incomplete(
                services,
                surface="share",
                missing="user",
                response_url=response_url,
                user_id=None,
                channel_id=None,
            )
            return
        team_id = clicker.team_id
        asker = Asker(team_id=team_id, user_id=clicker.user_id, channel_id=channel_id)
        values = view.get("state", {}).get("values", {})
        reason = (
            (values.get(ids.SHARE_REASON_BLOCK, {}).get(ids.SHARE_REASON_INPUT, {}) or {}).get(
                "value"
            )
            or ""
        ).strip()

        async def tell(message: dict[str, Any]) -> None:
            if response_url:
                reply = {**message, "response_type": "ephemeral", "replace_original": False}
                await services.send_reply(response_url, reply)
            elif channel_id:
                try:
                    await client.chat_postEphemeral(
                        channel=channel_id, user=asker.user_id, **message
                    )
                except SlackClientError as exc:
                    log.warning("could not answer privately: %s", failure_code(exc))

        ref = await services.buttons.recall(meta.token)
        if ref is None:
            await tell(services.cards.notice("expired"))
            return
        sharer = await services.directory.person(team_id or "", asker.user_id)
        channel = await services.directory.channel(team_id or "", channel_id)
        # May this person share at all, and what may every reader of the channel see (never
        # more than the sharer sees)? Checked again now: the button is not trusted.
        decision = share_access(services.policy, sharer, channel)
        if decision.refused or not decision.classes:
            await audit_refusal(
                services, asker, outcome="channel_refused", surface="share", ref=ref
            )
            await tell(services.cards.notice("refused_channel", reason=decision.reason))
            return
        card = await card_for(
            services,
            asker,
            ref,
            decision.classes,
            surface="shared",
            action="share",
            shared_by=asker.user_id,
            share_reason=reason or None,
            audit_success=False,
        )
        if not card.ok:
            await tell(card.message)
            return
        try:
            await client.chat_postMessage(channel=channel_id, thread_ts=thread_ts, **card.message)
        except SlackClientError as exc:
            error = failure_code(exc)
            log.warning("share post failed: %s", error)
            await audit_card(
                services,
                asker,
                card,
                action="share",
                surface="share",
                outcome=f"post_failed:{error}",
            )
            await tell(post_failure_notice(services, exc))
            return
        await audit_card(services, asker, card, action="share", surface="share", outcome="posted")
        await tell(services.cards.notice("share_done", channel=channel_id))
