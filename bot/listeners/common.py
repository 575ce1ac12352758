"""What every listener shares: who is asking (from Slack's payload), and the two ways a card
reaches Slack: answered privately, or posted into a conversation and audited."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.answers import (
    Asker,
    Card,
    CardRequest,
    Message,
    Viewer,
    audit_card,
    home_view,
    private_card,
    refuse,
    render_card,
    viewer_of,
)
from bot.button_tokens import Place
from bot.cards import HomeNotice
from bot.i18n import Reader
from bot.identity import IdentityRef
from bot.services import Services
from bot.slack_web import (
    SlackBusy,
    SlackNoAnswer,
    busy_seconds,
    failure_code,
    why_call_failed,
    why_post_failed,
)
from bot.vocabulary import AuditAction, AuditSurface, HomeProblem, PostFailed, PrivateAction

log = logging.getLogger(__name__)

#: Says a message privately to the asker, by whichever path the surface has.
Tell = Callable[[Message], Awaitable[None]]

#: Answers on a response_url (Bolt's `respond`, or the command's ordered wrapper of it).
Reply = Callable[..., Awaitable[Any]]


def interactive_asker(body: dict[str, Any]) -> Asker | None:
    """Who clicked or used a shortcut, from an interactivity payload; None when Slack did not
    say (then nothing may be shown: the policy needs a person)."""
    user = body.get("user") or {}
    if not isinstance(user, dict) or not user.get("id"):
        return None
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    team = (body.get("team") or {}).get("id") or user.get("team_id")
    return Asker(team_id=team, user_id=str(user["id"]), channel_id=channel)


async def refuse_incomplete(
    services: Services,
    *,
    surface: str,
    missing: str,
    response_url: str | None,
    user_id: str | None,
    channel_id: str | None,
) -> None:
    """A request Slack sent without something its answer needs: one log line, and the person is
    told in words by whichever path still works (response_url, else an ephemeral message)."""
    log.warning("%s request without %s refused", surface, missing)
    message = services.cards.notice("incomplete_request", reader=services.default_reader)
    reply = {**message, "response_type": "ephemeral", "replace_original": False}
    if response_url and await services.send_reply(response_url, reply):
        return
    if user_id and channel_id:
        try:
            await services.slack.chat_postEphemeral(channel=channel_id, user=user_id, **message)
        except SlackClientError as exc:
            log.warning(
                "could not say that the %s request was refused: %s", surface, type(exc).__name__
            )


async def first_delivery(services: Services, body: dict[str, Any], *, names: str) -> bool:
    """False for Slack's repeat of an event already handled (or in hand). Slack retries an
    event it thinks failed while the first delivery may still be running, so events are
    de-duplicated on event_id (across instances when the cache is Redis); an event without one
    is still answered once, by `names`, what it is about (its message, its trigger)."""
    event_id = body.get("event_id")
    key = services.keys.event(str(event_id) if event_id else names)
    if await services.cache.first_time(key):
        return True
    log.info("repeated delivery of event %s ignored", event_id or "(without event_id)")
    return False


async def answerable_asker(
    services: Services, body: dict[str, Any], *, surface: str
) -> Asker | None:
    """Who used a shortcut or clicked a button, when the click can be answered: None (and the
    request refused in words by whatever path works) when Slack did not say who, or gave no
    response_url to answer on."""
    asker = interactive_asker(body)
    response_url = body.get("response_url")
    if asker is not None and response_url:
        return asker
    await refuse_incomplete(
        services,
        surface=surface,
        missing="user" if asker is None else "response_url",
        response_url=response_url,
        user_id=asker.user_id if asker else None,
        channel_id=asker.channel_id if asker else None,
    )
    return None


@dataclasses.dataclass(frozen=True)
class PrivateTeller:
    """Says something privately to `user_id`: on the response_url when Slack gave one, else as
    an ephemeral message in the conversation (in `thread_ts`); a failure is logged. A class (not
    a closure) so that mutation testing reaches `tell`."""

    services: Services
    client: AsyncWebClient
    user_id: str
    channel_id: str | None
    thread_ts: str | None
    response_url: str | None

    async def tell(self, message: Message) -> None:
        if self.response_url:
            reply = {**message, "response_type": "ephemeral", "replace_original": False}
            await self.services.send_reply(self.response_url, reply)
        elif self.channel_id:
            try:
                await self.client.chat_postEphemeral(
                    channel=self.channel_id, user=self.user_id, thread_ts=self.thread_ts, **message
                )
            except SlackClientError as exc:
                log.warning("could not answer privately: %s", failure_code(exc))


def private_teller(
    services: Services,
    client: AsyncWebClient,
    *,
    user_id: str,
    channel_id: str | None,
    thread_ts: str | None = None,
    response_url: str | None = None,
) -> Tell:
    """How to say something privately to `user_id` (see PrivateTeller)."""
    return PrivateTeller(services, client, user_id, channel_id, thread_ts, response_url).tell


def post_failure_notice(services: Services, exc: SlackClientError, reader: Reader) -> Message:
    """A private message in words for a card Slack did not take into a conversation."""
    if isinstance(exc, SlackBusy):
        return services.cards.notice("slack_busy", reader=reader, seconds=busy_seconds(exc))
    return services.cards.notice("post_failed", reader=reader, reason=why_post_failed(exc, reader))


async def answer_privately(
    services: Services,
    viewer: Viewer,
    ref: IdentityRef,
    respond: Reply,
    *,
    action: PrivateAction,
    refresh: bool = False,
    replace_original: bool = False,
    soon: bool = True,
    place: Place | None = None,
) -> None:
    """The card for `ref` as the viewer's own grants allow, or a refusal, answered privately.

    With `soon` the card goes as soon as the profile is ready; when its events were late, the
    card says so and is replaced on the same response_url once they arrive (or fail). Slack
    honours `replace_original` on the response_url of an interaction with a message; on a slash
    command's it posts the update as a new message (bolt-python #1268), so the command passes
    `soon=False` so that its answer stays one message. `place` is the conversation (and thread)
    the card is answered in: its Share button posts there."""
    if not viewer.access.classes:
        refusal = await refuse(services, viewer, surface="private", at=action)
        await respond(**refusal, response_type="ephemeral", replace_original=False)
        return
    card = await private_card(
        services, viewer, ref, action=action, refresh=refresh, soon=soon, place=place
    )
    await respond(**card.message, response_type="ephemeral", replace_original=replace_original)
    if card.later is not None:
        updated = await card.later()
        await respond(**updated.message, response_type="ephemeral", replace_original=True)
    if action == "lookup" and card.ok:
        await refresh_home(services, viewer)


async def post_card(
    services: Services,
    client: AsyncWebClient,
    asker: Asker,
    request: CardRequest,
    *,
    channel_id: str,
    thread_ts: str | None,
    action: AuditAction,
    surface: AuditSurface,
    tell: Tell,
) -> bool:
    """Post the card for `request` into a conversation and audit what became of it: posted,
    refused by Slack, or never made (the lookup failed); each failure is told privately with
    `tell`. True when Slack took the card. A card posted before its events arrived is updated
    in place (chat.update) when they do."""
    card = await render_card(services, dataclasses.replace(request, soon=True))
    if not card.ok:
        await audit_card(services, asker, card, action=action, surface=surface)
        await tell(card.message)
        return False
    # With Work Objects on, the message also describes the customer as an entity; its blocks stay
    # the card, for clients that show no Work Objects.
    metadata = {"entities": [card.entity]} if card.entity is not None else None
    try:
        posted = await client.chat_postMessage(
            channel=channel_id, thread_ts=thread_ts, metadata=metadata, **card.message
        )
    except SlackClientError as exc:
        error = failure_code(exc)
        log.warning("could not post a card into a conversation (%s): %s", surface, error)
        await audit_card(
            services, asker, card, action=action, surface=surface, outcome=PostFailed(error)
        )
        await tell(post_failure_notice(services, exc, request.reader))
        return False
    await audit_card(services, asker, card, action=action, surface=surface, outcome="posted")
    if card.later is not None:
        await _update_posted(
            client, card, channel=str(posted.get("channel") or channel_id), ts=posted.get("ts")
        )
    if action == "lookup":
        await refresh_home(services, None, asker=asker)
    return True


async def publish_home(
    services: Services, viewer: Viewer, *, notice: HomeNotice | None = None
) -> None:
    """Publish the viewer's App Home (views.publish), with `notice` at the top when something
    could not reach them; a failure is logged, never raised (there is nowhere left to say it)."""
    view = await home_view(services, viewer, notice=notice)
    try:
        await services.slack.for_team(viewer.asker.team_id).views_publish(
            user_id=viewer.asker.user_id, view=view
        )
    except SlackClientError as exc:
        log.warning("could not publish the App Home: %s", failure_code(exc))


async def refresh_home(
    services: Services, viewer: Viewer | None, *, asker: Asker | None = None
) -> None:
    """After a lookup, re-publish the person's Home only when they opened it recently (see
    bot.history.HOME_RECENT_SECONDS): everyone else sees the new entry at their next open, so
    lookups cost no views.publish for people who do not use the Home."""
    asker = viewer.asker if viewer is not None else asker
    if asker is None or not services.history.enabled:
        return
    if not await services.history.home_open_recently(asker.team_id or "", asker.user_id):
        return
    await publish_home(services, viewer or await viewer_of(services, asker))


async def say_on_home(
    services: Services, viewer: Viewer, problem: HomeProblem, exc: BaseException
) -> None:
    """Tell the viewer on their App Home what did not reach them (`problem`), why in words
    (from Slack's failure `exc`) and what to do: for a Home click, a search or the find_customer
    shortcut there is no conversation and no response_url to say it in."""
    notice = HomeNotice(problem=problem, why=why_call_failed(exc, viewer.reader))
    await publish_home(services, viewer, notice=notice)


async def send_direct_message(
    services: Services, asker: Asker, message: Message
) -> SlackClientError | None:
    """Send `message` to the asker as a direct message from the bot: conversations.open (the
    im:write scope) names the DM, chat.postMessage posts into it. None when Slack took it, else
    why not (logged)."""
    client = services.slack.for_team(asker.team_id)
    try:
        opened = await client.conversations_open(users=asker.user_id)
        channel = (opened.get("channel") or {}).get("id")
        if not isinstance(channel, str) or not channel:
            log.warning("conversations.open named no conversation")
            return SlackNoAnswer(method="conversations.open", cause="no conversation named")
        await client.chat_postMessage(channel=channel, **message)
    except SlackClientError as exc:
        log.warning("could not send a direct message: %s", failure_code(exc))
        return exc
    return None


async def send_or_say_on_home(services: Services, viewer: Viewer, message: Message) -> bool:
    """Send `message` to the viewer as a direct message; when Slack does not take it, their
    App Home is published again saying so (say_on_home). True when the message went."""
    failed = await send_direct_message(services, viewer.asker, message)
    if failed is None:
        return True
    await say_on_home(services, viewer, "dm_failed", failed)
    return False


async def _update_posted(client: AsyncWebClient, card: Card, *, channel: str, ts: object) -> None:
    """Replace a posted card with its version holding the events (same redaction, same
    readers: nothing more to audit). A failure leaves the card saying events are loading, and
    a log line says why."""
    if card.later is None or not isinstance(ts, str) or not ts:
        return
    updated = await card.later()
    try:
        await client.chat_update(channel=channel, ts=ts, **updated.message)
    except SlackClientError as exc:
        log.warning("could not update a posted card with its events: %s", failure_code(exc))
