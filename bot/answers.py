"""The use case behind every surface: who asks, what they may see, the card or the words why not,
and the audit record of it. Knows no Slack: listeners parse a request, ask here, and reply."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, assert_never
from urllib.parse import quote, unquote, urlsplit

from babel import lists

from bot.aep.errors import AepError, RateLimited
from bot.button_tokens import Place
from bot.cards import (
    MODAL_EVENTS,
    CardContext,
    HomeContext,
    HomeEntry,
    HomeNotice,
    MoreAccess,
    SearchError,
    identity_words,
    namespace_label,
)
from bot.customer import Customer
from bot.i18n import N_, Reader, reader_for
from bot.identity import (
    MAX_IDENTITIES,
    Diagnosis,
    IdentityRef,
    Refusal,
    misspelt_email_domain,
    profile_entity,
    read_identities,
    unknown_namespace,
)
from bot.layout import namespace_class
from bot.lookup import Looked
from bot.policy import (
    Access,
    AudienceDecision,
    Channel,
    Grants,
    Person,
    access_for,
    audience_access,
    how_to_get_access,
    more_access,
    redact,
    share_access,
)
from bot.services import Services
from bot.slack_web import SlackBusy
from bot.vocabulary import (
    AuditAction,
    AuditOutcome,
    AuditSurface,
    CardSurface,
    IdentityRefused,
    NoGrants,
    NoticeKind,
    PrivateAction,
    RefusedAt,
)

log = logging.getLogger(__name__)

Message = dict[str, Any]

#: A card shows this many events.
CARD_EVENTS = 5


@dataclass(frozen=True)
class Asker:
    """Who asked, and where: always taken from the signed payload, never from text or values."""

    team_id: str | None
    user_id: str
    channel_id: str | None


@dataclass(frozen=True)
class Viewer:
    """The asker as the directory describes them, and what their roles grant: fetched once per
    request, so a refusal explains the same person the decision was made for."""

    asker: Asker
    person: Person
    access: Access
    #: the language and time zone of everything said to them (their Slack locale and tz)
    reader: Reader


async def viewer_of(services: Services, asker: Asker) -> Viewer:
    """The asker's own grants, from their roles in the policy, and their language."""
    person = await services.directory.person(asker.team_id or "", asker.user_id)
    return Viewer(
        asker=asker,
        person=person,
        access=access_for(services.policy, person),
        reader=reader_of(services, person),
    )


def reader_of(services: Services, person: Person) -> Reader:
    """Who `person` reads as: their Slack locale (else BOT_DEFAULT_LOCALE, else English) and
    their Slack time zone (else UTC)."""
    return reader_for(person.locale, person.tz, default_locale=services.settings.bot_default_locale)


@dataclass(frozen=True)
class Found:
    """The identities found in a person's text, counted once: every message that says how many
    (the "Showing 3 of 20" note, the picker) takes `count` and `capped` from here."""

    refs: list[IdentityRef]
    #: identity-like text that was not read (look-alikes, invisible characters, too long)
    refused: list[Refusal]
    #: `namespace:value` in a namespace the org does not have: not looked up (see
    #: identity.unknown_namespace)
    unknown: list[Diagnosis] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many distinct identities were found."""
        return len(self.refs)

    @property
    def capped(self) -> bool:
        """True when the parser stopped at its limit: the text may hold more than `count`."""
        return len(self.refs) >= MAX_IDENTITIES

    def note(self, services: Services, shown: int, reader: Reader) -> Message | None:
        """The "Showing N of M identities found" note, or None when every one was shown."""
        if shown >= self.count and not self.capped:
            return None
        return services.cards.notice(
            "more_identities", reader=reader, shown=shown, total=self.count, capped=self.capped
        )


def find_identities(services: Services, text: str) -> Found:
    """Every identity in `text`, de-duplicated, in order (at most MAX_IDENTITIES), and the
    identity-like text refused with its reason."""
    reading = read_identities(text, services.rules)
    refs: list[IdentityRef] = []
    unknown: list[Diagnosis] = []
    for ref in reading.refs:
        diagnosis = unknown_namespace(ref, services.rules)
        if diagnosis is None:
            refs.append(ref)
        elif diagnosis not in unknown:
            unknown.append(diagnosis)
    return Found(refs=refs, refused=reading.refused, unknown=unknown)


def _domain_cut_short(diagnosis: Diagnosis) -> bool:
    """True when the typed address's domain is the suggested one without its end (`example`
    for example.com), False when it is misspelt."""
    typed = diagnosis.typed.rpartition("@")[2].lower().rstrip(".")
    return bool(typed) and diagnosis.domain.startswith(typed + ".")


def diagnosis_notice(services: Services, diagnosis: Diagnosis, reader: Reader) -> Message:
    """What was wrong with text typed as one identity, and how to write it, in words."""
    territories = reader.locale.territories
    return services.cards.notice(
        "not_an_identity",
        reader=reader,
        problem=diagnosis.reason,
        # In a code span a backtick would end it early.
        typed=diagnosis.typed.replace("`", "'"),
        suggestion=diagnosis.suggestion.replace("`", "'"),
        domain=diagnosis.domain,
        missing=int(_domain_cut_short(diagnosis)),
        region=diagnosis.region,
        region_name=territories.get(diagnosis.region, diagnosis.region),
        example_region=territories.get(diagnosis.example_region, diagnosis.example_region),
        known=lists.format_list(list(diagnosis.known), locale=reader.locale),
    )


def now() -> datetime:
    return datetime.now(UTC)


# --- failures in words -----------------------------------------------------------------------


def error_notice(
    services: Services, exc: AepError, ref: IdentityRef, classes: Grants, reader: Reader
) -> Message:
    """A private message in words for a failed lookup, chosen by the error's cause. The
    identity's value is named only to someone who may see its class: after a button click it
    came from a token, not from them."""

    def notice(kind: NoticeKind, **values: str | int | None) -> Message:
        return services.cards.notice(kind, reader=reader, **values)

    shown = namespace_class(ref.namespace) in classes
    value = ref.value if shown else None
    query = identity_words(ref.namespace, value, reader, names=services.cards.namespace_names)
    cause = exc.cause
    match cause:
        case "not_found" if shown and ref.namespace == "Email":
            # No one under the address as typed: a near miss of a known domain is worth a word.
            slip = misspelt_email_domain(ref.value, services.rules)
            if slip is None:
                return notice(cause, query=query)
            return notice(cause, query=query, domain=slip.domain, suggestion=slip.suggestion)
        case "not_found" | "too_many_identities":
            return notice(cause, query=query)
        case "rate_limited":
            # A number only when it is small and plausible; else "in a few minutes".
            seconds = exc.seconds_to_tell() if isinstance(exc, RateLimited) else None
            return notice("rate_limited", seconds=seconds)
        # What happened decides the words: an error answer, no answer, no connection, no sign-in.
        case "server_error":
            return notice("server_error", status=exc.status)
        case "unavailable":
            deadline = round(services.settings.bot_lookup_deadline)
            return notice("unavailable", seconds=deadline)
        case (
            "unreachable"
            | "sign_in_failed"
            | "credentials"
            | "misconfigured"
            | "too_large"
            | "malformed"
        ):
            return notice(cause)
        case "rejected":
            return notice("rejected", message=exc.message)
        case "error":
            return notice("internal_error", reference=exc.request_id or "none")
        case _:
            assert_never(cause)


def _profile_fragment(services: Services) -> str:
    """The part of a profile link before the profile's id: org and sandbox, URL-quoted."""
    org, sandbox = quote(services.settings.org_id), quote(services.settings.aep_sandbox)
    return f"/@{org}/sname:{sandbox}/platform/profile/browse/"


def profile_link(services: Services, profile_id: str) -> str:
    """The profile's page in the Experience Platform UI (AEP_UI_URL): the card's Open in AEP
    link, the link that unfurls, and the `url` of the customer's Work Object."""
    base = services.settings.aep_ui_url.rstrip("/")
    return f"{base}/#{_profile_fragment(services)}{quote(profile_id)}"


def aep_profile_url(services: Services, customer: Customer) -> str | None:
    """The Open in AEP link, when the org and sandbox are real (the demo sandbox has no UI)."""
    if services.demo or not services.settings.aep_org_id:
        return None
    return profile_link(services, customer.profile_id)


#: A profile's entity id (an XID) as it may appear in a link; anything else is not looked up.
_PROFILE_ID = re.compile(r"^[A-Za-z0-9_=+/-]{1,256}$")


def profile_in_link(services: Services, url: str) -> str | None:
    """The profile entity id a pasted link names, when it is a profile link of this bot's org
    and sandbox on the AEP_UI_URL host (the form `profile_link` makes); else None."""
    base = urlsplit(services.settings.aep_ui_url)
    try:
        link = urlsplit(url.strip())
    except ValueError:
        return None
    if (link.scheme, link.netloc.lower()) != (base.scheme, base.netloc.lower()):
        return None
    if link.path not in ("", "/") or link.query:
        return None
    prefix = _profile_fragment(services)
    if not link.fragment.startswith(prefix):
        return None
    profile_id = unquote(link.fragment.removeprefix(prefix).removesuffix("/"))
    return profile_id if _PROFILE_ID.match(profile_id) else None


# --- the audit trail -------------------------------------------------------------------------


async def audit(
    services: Services,
    asker: Asker,
    *,
    action: AuditAction,
    outcome: AuditOutcome,
    surface: AuditSurface,
    ref: IdentityRef | None = None,
    profile_id: str | None = None,
    shown: Iterable[str] = (),
    withheld: Iterable[str] = (),
) -> None:
    """One audit record of what `asker` did, from the signed payload's team, user and channel."""
    await services.audit.record(
        action=action,
        team_id=asker.team_id,
        actor=asker.user_id,
        channel_id=asker.channel_id,
        ref=ref,
        profile_id=profile_id,
        shown=sorted(shown),
        withheld=sorted(withheld),
        outcome=outcome,
        surface=surface,
    )


async def audit_refusal(
    services: Services,
    asker: Asker,
    *,
    outcome: AuditOutcome,
    surface: AuditSurface,
    ref: IdentityRef | None = None,
) -> None:
    """One audit record for a refusal: no grants, a channel that may not see, no share right."""
    await audit(services, asker, action="refusal", outcome=outcome, surface=surface, ref=ref)


# --- refusals --------------------------------------------------------------------------------


async def refuse(
    services: Services, viewer: Viewer, *, surface: AuditSurface, at: RefusedAt
) -> Message:
    """Audit a refusal for lack of grants and say how to get access."""
    await audit_refusal(services, viewer.asker, outcome=NoGrants(at), surface=surface)
    return services.cards.notice(
        "refused_no_grants", reader=viewer.reader, how=_how_to_get_access(services, viewer)
    )


def _how_to_get_access(services: Services, viewer: Viewer) -> str:
    reader = viewer.reader
    if not viewer.person.known:
        # users.info failed: often a passing Slack error, so no advice to join a group.
        return reader.gettext(
            "Slack did not tell the bot who you are just now, so it shows no customer data. "
            "Try again in a minute; if it keeps happening, tell whoever runs the bot."
        )
    return how_to_get_access(services.policy, reader, person=viewer.person)


def identity_refusal(services: Services, refused: Iterable[Refusal], reader: Reader) -> Message:
    """The private message saying why each identity-like text was not looked up."""
    reasons = " ".join(refusal.words(reader) for refusal in refused)
    return services.cards.notice("refused_identity", reader=reader, reasons=reasons)


async def audit_identity_refusals(
    services: Services, asker: Asker, refused: Iterable[Refusal], *, surface: AuditSurface
) -> None:
    """One refusal record per refused identity-like text, with the reason as its outcome."""
    for refusal in refused:
        await audit_refusal(
            services, asker, outcome=IdentityRefused(refusal.reason), surface=surface
        )


async def refuse_identities(
    services: Services,
    asker: Asker,
    refused: Iterable[Refusal],
    *,
    surface: AuditSurface,
    reader: Reader,
) -> Message:
    """Audit each refused identity-like text as a refusal (its reason, never its text, which may
    be an attacker's or a customer's) and say in words why nothing was looked up for it."""
    refused = list(refused)
    await audit_identity_refusals(services, asker, refused, surface=surface)
    return identity_refusal(services, refused, reader)


# --- cards -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardRequest:
    """What card to make: whose profile, redacted to which classes, for which surface."""

    ref: IdentityRef
    classes: Grants
    #: who reads the card: the asker; on a shared card the sharer, whose words it carries
    #: (its times are Slack date tokens, which every reader sees in their own zone)
    reader: Reader
    surface: CardSurface = "private"
    #: offer the Share button (never on a shared card)
    can_share: bool = False
    #: bypass the cache (the Refresh button)
    refresh: bool = False
    shared_by: str | None = None
    share_reason: str | None = None
    #: the link a person pasted, when the card answers it as an unfurl
    app_unfurl_url: str | None = None
    #: answer as soon as the profile is ready; events still on their way come in `Card.later`
    soon: bool = False
    #: the viewer's policy roles, which choose a private card's key facts (a shared card reads
    #: the layout's default ones: its readers' roles differ)
    roles: tuple[str, ...] = ()
    #: where the card is answered (its buttons' token keeps it: Share posts there)
    place: Place | None = None
    #: offer "Send to my DMs" (a private card answered in a conversation, which Slack forgets)
    offer_dm: bool = False


@dataclass(frozen=True)
class Card:
    """A rendered card, or the message saying in words why there is none, and what it showed.

    `later`, when set, waits for the customer's events and gives the card again with them (or
    saying they could not be read): the caller updates the message it sent in place."""

    message: Message
    ref: IdentityRef
    failure: AepError | None = None
    profile_id: str | None = None
    shown: Grants = frozenset()
    withheld: Grants = frozenset()
    #: the card as a Slack Work Object entity (shared cards, when BOT_WORK_OBJECTS is on)
    entity: Message | None = None
    #: the same card with its events, when they were still on their way (`soon`)
    later: Callable[[], Awaitable[Card]] | None = None

    @property
    def ok(self) -> bool:
        """True when `message` is the card; False when it says why the lookup failed."""
        return self.failure is None

    @property
    def outcome(self) -> AuditOutcome:
        """The audit outcome of showing `message`: "shown", or the failure's kind."""
        return "shown" if self.failure is None else self.failure.kind


async def render_card(services: Services, request: CardRequest) -> Card:
    """Look the customer up, redact to the request's classes, render. Nothing is audited here:
    the caller knows where the card went (see audit_card). With `request.soon` the card comes
    as soon as the profile is ready, and `Card.later` brings the events when they were late
    (only to a viewer who may see them: others have nothing to wait for)."""
    ref, classes = request.ref, request.classes
    try:
        if request.soon and "activity" in classes:
            looked = await services.lookup.lookup_soon(ref, refresh=request.refresh)
        else:
            looked = Looked(await services.lookup.lookup(ref, refresh=request.refresh))
    except AepError as exc:
        log.info("lookup failed: %s (status %s)", type(exc).__name__, exc.status)
        message = error_notice(services, exc, ref, classes, request.reader)
        return Card(message=message, ref=ref, failure=exc)
    card = await _card_for(services, request, looked.customer)
    if looked.later is None:
        return card
    later = looked.later

    async def with_events() -> Card:
        return await _card_for(services, request, await later())

    return Card(
        message=card.message,
        ref=ref,
        profile_id=card.profile_id,
        shown=card.shown,
        withheld=card.withheld,
        entity=card.entity,
        later=with_events,
    )


async def _card_for(services: Services, request: CardRequest, customer: Customer) -> Card:
    """The card of `customer` as `request` asks for it (the rendering half of render_card)."""
    ref, classes = request.ref, request.classes
    redacted = redact(customer, classes)
    token = await services.buttons.remember(ref, place=request.place)
    context = CardContext(
        surface=request.surface,
        now=now(),
        token=token,
        reader=request.reader,
        withheld=frozenset(redacted.withheld),
        can_share=request.can_share and request.surface != "shared",
        can_send_to_dm=request.offer_dm and request.surface != "shared",
        aep_url=aep_profile_url(services, customer),
        max_events=CARD_EVENTS,
        shared_by=request.shared_by,
        share_reason=request.share_reason,
        granted=frozenset(classes),
        key_facts=services.layout.key_facts_for(
            request.roles if request.surface == "private" else ()
        ),
        topics=services.layout.topics,
    )
    entity = None
    if request.surface == "shared" and services.settings.bot_work_objects:
        # The same redacted customer as the blocks: the Work Object shows no more than the card.
        entity = services.cards.work_object(
            redacted.customer,
            context,
            url=profile_link(services, customer.profile_id),
            app_unfurl_url=request.app_unfurl_url,
        )
    return Card(
        message=services.cards.customer_card(redacted.customer, context),
        ref=ref,
        profile_id=customer.profile_id,
        shown=redacted.shown,
        withheld=redacted.withheld,
        entity=entity,
    )


async def audit_card(
    services: Services,
    asker: Asker,
    card: Card,
    *,
    action: AuditAction,
    surface: AuditSurface,
    outcome: AuditOutcome | None = None,
) -> None:
    """The audit record of a card (or of its failed lookup); `outcome` defaults to the card's
    own, and a post into a conversation passes what Slack did with it. A lookup that showed a
    card also goes into the asker's history, for their App Home."""
    if action == "lookup" and card.ok and outcome in (None, "posted"):
        await services.history.record(asker.team_id or "", asker.user_id, card.ref, surface=surface)
    await audit(
        services,
        asker,
        action=action,
        outcome=card.outcome if outcome is None else outcome,
        surface=surface,
        ref=card.ref,
        profile_id=card.profile_id,
        shown=card.shown,
        withheld=card.withheld,
    )


@dataclass(frozen=True)
class ShareCheck:
    """Whether the viewer may share a card answered in `place`, and what the posted card would
    show (`decision.classes`) and hide of what the viewer sees (`hidden`)."""

    place: Place | None
    channel: Channel | None
    decision: AudienceDecision
    hidden: Grants = frozenset()

    @property
    def refused(self) -> bool:
        """True when Share cannot work there (said in `decision.reason`)."""
        return self.decision.refused or not self.decision.classes


async def share_check(services: Services, viewer: Viewer, place: Place | None) -> ShareCheck:
    """May the viewer share a card answered in `place` into it: the policy's share right and
    the audience decision for that conversation (Slack Connect and public caps, a conversation
    the bot cannot see into). Asked when the card is rendered (no Share button otherwise), when
    Share is clicked (before any modal) and when the modal is submitted."""
    reader = viewer.reader
    if place is None:
        reason = reader.gettext(
            "This card was not answered in a conversation, so it has nowhere to be shared. "
            "Look the customer up in the conversation where you want to share the card."
        )
        return ShareCheck(
            place=None,
            channel=None,
            decision=AudienceDecision(classes=frozenset(), refused=True, reason=reason),
        )
    channel = await services.directory.channel(viewer.asker.team_id or "", place.channel_id)
    decision = share_access(services.policy, viewer.person, channel, reader)
    hidden = frozenset(viewer.access.classes - decision.classes)
    return ShareCheck(place=place, channel=channel, decision=decision, hidden=hidden)


async def may_offer_share(services: Services, viewer: Viewer, place: Place | None) -> bool:
    """Whether the viewer's private card answered in `place` carries a Share button. Slack
    being busy answers no: the button is offered only where sharing is known to work."""
    if not viewer.access.can_share or place is None:
        return False
    try:
        return not (await share_check(services, viewer, place)).refused
    except SlackBusy:
        return False


async def private_card(
    services: Services,
    viewer: Viewer,
    ref: IdentityRef,
    *,
    action: PrivateAction,
    refresh: bool,
    surface: AuditSurface = "private",
    soon: bool = False,
    place: Place | None = None,
    in_dm: bool = False,
) -> Card:
    """The card for `ref` as the viewer's own grants allow, audited as a private answer on
    `surface`. The caller has checked that the viewer is granted something (else `refuse`).
    With `soon` it comes before late events (see render_card); the audit records what the first
    card showed, and the update adds no record: it shows the same classes to the same person.
    `place` is the conversation (and thread) it is answered in: Share is offered only where it
    can work, and "Send to my DMs" on every private card answered in a conversation (`in_dm`:
    the card goes into the viewer's DM with the bot, which keeps it: neither is offered)."""
    request = CardRequest(
        ref=ref,
        classes=viewer.access.classes,
        reader=viewer.reader,
        can_share=not in_dm and await may_offer_share(services, viewer, place),
        refresh=refresh,
        soon=soon,
        roles=viewer.access.roles,
        place=None if in_dm else place,
        offer_dm=place is not None and not in_dm,
    )
    card = await render_card(services, request)
    await audit_card(services, viewer.asker, card, action=action, surface=surface)
    return card


async def events_view(services: Services, viewer: Viewer, ref: IdentityRef, token: str) -> Message:
    """The More events modal: the customer's recent events as far as the viewer may see them,
    or a refusal or failure in words."""
    access = viewer.access
    if "activity" not in access.classes:
        await audit_refusal(
            services, viewer.asker, outcome="events_not_granted", surface="modal", ref=ref
        )
        if access.classes:
            refusal = services.cards.notice("events_not_granted", reader=viewer.reader)
        else:
            refusal = await refuse(services, viewer, surface="modal", at="more_events")
        return services.cards.modal_from_notice(refusal, reader=viewer.reader)
    try:
        customer = await services.lookup.lookup(ref, events_limit=MODAL_EVENTS)
    except AepError as exc:
        await audit(
            services, viewer.asker, action="more_events", outcome=exc.kind, surface="modal", ref=ref
        )
        notice = error_notice(services, exc, ref, access.classes, viewer.reader)
        return services.cards.modal_from_notice(notice, reader=viewer.reader)
    redacted = redact(customer, access.classes)
    context = CardContext(
        surface="private",
        now=now(),
        token=token,
        reader=viewer.reader,
        withheld=frozenset(redacted.withheld),
        max_events=MODAL_EVENTS,
        granted=frozenset(access.classes),
    )
    view = services.cards.events_modal(redacted.customer, context)
    await audit(
        services,
        viewer.asker,
        action="more_events",
        outcome="shown",
        surface="modal",
        ref=ref,
        profile_id=customer.profile_id,
        shown=redacted.shown,
        withheld=redacted.withheld,
    )
    return view


# --- Work Objects: the flexpane, and unfurled profile links ---------------------------------


@dataclass(frozen=True)
class Flexpane:
    """What entity.presentDetails carries: the customer as the viewer may see them, or the
    documented `error` with the reason in words (never an empty panel)."""

    metadata: Message | None = None
    error: Message | None = None


async def flexpane(services: Services, viewer: Viewer, token: str) -> Flexpane:
    """A Work Object's flexpane for one viewer, exactly as View details answers them: the
    `external_ref` token must lead back to a customer (a forged or expired one is refused as a
    forged button is), the viewer's own grants redact the customer, and it is audited as a detail
    view. The entity keeps `token` as its external_ref, as Slack requires."""
    cards, reader = services.cards, viewer.reader
    ref = await services.buttons.recall(token)
    if ref is None:
        await audit_refusal(services, viewer.asker, outcome="token_refused", surface="flexpane")
        expired = cards.notice("expired", reader=reader)
        return Flexpane(error=cards.flexpane_error("expired", expired, reader=reader))
    if not viewer.access.classes:
        refusal = await refuse(services, viewer, surface="flexpane", at="detail_view")
        return Flexpane(error=cards.flexpane_error("no_grants", refusal, reader=reader))
    classes = viewer.access.classes
    try:
        customer = await services.lookup.lookup(ref)
    except AepError as exc:
        log.info("lookup failed: %s (status %s)", type(exc).__name__, exc.status)
        await audit(
            services,
            viewer.asker,
            action="detail_view",
            outcome=exc.kind,
            surface="flexpane",
            ref=ref,
        )
        failed = error_notice(services, exc, ref, classes, reader)
        return Flexpane(error=cards.flexpane_error("failed", failed, reader=reader))
    redacted = redact(customer, classes)
    context = CardContext(
        surface="private",
        now=now(),
        token=token,
        reader=reader,
        withheld=frozenset(redacted.withheld),
        max_events=CARD_EVENTS,
        granted=frozenset(classes),
    )
    entity = cards.work_object(
        redacted.customer, context, url=profile_link(services, customer.profile_id)
    )
    await audit(
        services,
        viewer.asker,
        action="detail_view",
        outcome="shown",
        surface="flexpane",
        ref=ref,
        profile_id=customer.profile_id,
        shown=redacted.shown,
        withheld=redacted.withheld,
    )
    return Flexpane(metadata=entity)


UnfurlRefusal = Literal["no_profile_links", "no_grants", "channel_refused"]


@dataclass(frozen=True)
class Unfurls:
    """The cards that answer pasted profile links, by the exact URL pasted; none when nothing
    may unfurl (`refused` says why, for the log)."""

    cards: dict[str, Card]
    refused: UnfurlRefusal | None = None


async def unfurl_cards(services: Services, viewer: Viewer, urls: Iterable[str]) -> Unfurls:
    """Channel-safe cards for the profile links among `urls`, pasted by `viewer` in the
    conversation `viewer.asker.channel_id`: the same audience rule as a share (what every reader
    may see, never more than the poster may see), so a Slack Connect channel or one the bot
    cannot size unfurls nothing, and neither does a link pasted by someone without grants.
    Refusals and failed lookups are audited here; the caller audits what Slack did with the rest
    (`audit_card`)."""
    links = [(url, pid) for url in dict.fromkeys(urls) if (pid := profile_in_link(services, url))]
    if not links:
        return Unfurls(cards={}, refused="no_profile_links")
    asker = viewer.asker
    if not viewer.access.classes:
        await audit_refusal(services, asker, outcome=NoGrants("unfurl"), surface="unfurl")
        return Unfurls(cards={}, refused="no_grants")
    channel = await services.directory.channel(asker.team_id or "", asker.channel_id or "")
    decision = audience_access(services.policy, channel)
    classes = decision.classes & viewer.access.classes
    if decision.refused or not classes:
        await audit_refusal(services, asker, outcome="channel_refused", surface="unfurl")
        return Unfurls(cards={}, refused="channel_refused")
    cards: dict[str, Card] = {}
    for url, profile_id in links[: services.settings.bot_max_cards]:
        # The card speaks the poster's language, as a shared card speaks the sharer's.
        request = CardRequest(
            ref=profile_entity(profile_id),
            classes=classes,
            reader=viewer.reader,
            surface="shared",
            app_unfurl_url=url,
            place=Place(asker.channel_id, None) if asker.channel_id else None,
        )
        card = await render_card(services, request)
        if card.ok:
            cards[url] = card
        else:
            # Nobody is waiting on an unfurl: the link simply stays a link.
            await audit_card(services, asker, card, action="unfurl", surface="unfurl")
    return Unfurls(cards=cards)


# --- the App Home and the search modal ------------------------------------------------------

#: What the search modal's kind-of-identity choices read as (the namespace put before the text).
_SEARCH_KINDS: dict[str, tuple[str, str]] = {
    "email": ("email", N_("an email address")),
    "phone": ("phone", N_("a phone number")),
    "crm": ("", N_("a CRM id")),  # the deployment's CRM namespace (AEP_CRM_NAMESPACE)
    "ecid": ("ecid", N_("an ECID")),
}


@dataclass(frozen=True)
class SearchProblem:
    """Why the search modal's text is not looked up: shown inline, under the identity input."""

    kind: SearchError
    #: the identity-like text refused, for "refused" (its reasons are said in the reader's words)
    refused: tuple[Refusal, ...] = ()
    #: the kind of identity chosen, for "wrong_kind" (a label marked for the catalogue)
    expected: str = ""

    def words(self, services: Services, reader: Reader) -> str:
        """The plain-text words the modal shows, in the reader's language."""
        reasons = " ".join(refusal.words(reader) for refusal in self.refused)
        return services.cards.search_error(
            self.kind, reader=reader, reasons=reasons, expected=self.expected
        )


def search_reader(services: Services, private_metadata: str) -> Reader:
    """Who reads the search modal's inline errors: the locale the modal was shown in (its
    `private_metadata`, see CardRenderer.search_modal), so no call to Slack is made before the
    submission is acknowledged; anything unreadable reads the default."""
    try:
        data = json.loads(private_metadata)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        data = {}
    return reader_for(data.get("locale"), default_locale=services.settings.bot_default_locale)


def read_search(services: Services, text: str, kind: str | None) -> IdentityRef | SearchProblem:
    """The one identity the search modal's text names, read as the chosen kind (email, phone,
    crm, ecid; "other" means `namespace:value`; none: whatever the text is), or why not. Pure:
    it runs before the submission is acknowledged, within Slack's 3 seconds."""
    text = text.strip()
    if not text:
        return SearchProblem("empty")
    if kind == "other" and ":" not in text:
        return SearchProblem("need_namespace")
    reading = read_identities(text, services.rules)
    if reading.refused:
        return SearchProblem("refused", refused=tuple(reading.refused))
    if len(reading.refs) > 1:
        return SearchProblem("several")
    if kind not in _SEARCH_KINDS:
        return reading.refs[0] if reading.refs else SearchProblem("no_identity")
    namespace, expected = _SEARCH_KINDS[kind]
    namespace = namespace or services.rules.crm_namespace
    if reading.refs:
        # Text the bot reads by itself must be of the kind chosen.
        ref = reading.refs[0]
        if _same_kind(ref.namespace, namespace):
            return ref
        return SearchProblem("wrong_kind", expected=expected)
    # Text the bot does not recognise by itself (a CRM id of another shape, say) is taken as
    # the kind chosen, whole: AEP then says whether such a customer exists. Text with a space
    # is not one value: read so, it would be looked up by a part of it ("jane doe" as
    # `crmid:jane`; "44 20 7946 0958" as +1 207-946-0958), someone else. A phone number the bot
    # reads by itself (with its spaces) was answered above.
    if any(char.isspace() for char in text):
        return SearchProblem("wrong_kind", expected=expected)
    prefixed = read_identities(f"{namespace}:{text}", services.rules)
    if prefixed.refused:
        return SearchProblem("refused", refused=tuple(prefixed.refused))
    if len(prefixed.refs) != 1:
        return SearchProblem("wrong_kind", expected=expected)
    return prefixed.refs[0]


def _same_kind(found: str, chosen: str) -> bool:
    """Whether a namespace read from text is the one chosen (phones have two codes)."""
    found, chosen = found.lower(), chosen.lower()
    return found == chosen or (found.startswith("phone") and chosen.startswith("phone"))


def _history_days(services: Services) -> int:
    return max(1, round(services.history.ttl / 86400))


async def home_view(
    services: Services, viewer: Viewer, *, notice: HomeNotice | None = None
) -> Message:
    """The viewer's App Home: the Find button, their recent lookups (values their current
    grants no longer cover are withheld), what they see and which groups grant more, and the
    data source; someone without grants is told how to get access and shown no history.
    `notice` (at the top) says what could not reach them and what to do."""
    access, asker, person = viewer.access, viewer.asker, viewer.person
    granted = bool(access.classes)
    entries: list[HomeEntry] = []
    if granted:
        for entry in await services.history.recent(asker.team_id or "", asker.user_id):
            covered = namespace_class(entry.namespace) in access.classes
            entries.append(
                HomeEntry(
                    id=entry.id,
                    label=namespace_label(entry.namespace, services.cards.namespace_names),
                    value=entry.value if covered else None,
                    at=entry.at,
                    surface=entry.surface,
                )
            )
    # Guests and other orgs' people get nothing through groups (bot.policy.access_for).
    by_group = person.known and not (
        person.is_restricted or person.is_ultra_restricted or person.external or person.is_bot
    )
    offers = more_access(services.policy, access) if by_group else []
    settings = services.settings
    home = HomeContext(
        now=now(),
        granted=granted,
        classes=frozenset(access.classes),
        roles=access.roles,
        can_share=access.can_share,
        how=None if granted else _how_to_get_access(services, viewer),
        more=tuple(MoreAccess(o.name, o.usergroups, frozenset(o.adds)) for o in offers),
        history_on=services.history.enabled,
        history_days=_history_days(services),
        entries=tuple(entries),
        demo=services.demo,
        sandbox=settings.aep_sandbox,
        merge_policy=_merge_policy_name(services),
        notice=notice,
    )
    return services.cards.home(home, reader=viewer.reader)


def _merge_policy_name(services: Services) -> str | None:
    """The merge policy lookups name, as the Home shows it: the configured id, or the sandbox
    default resolved at start with its name; None before it is known."""
    policy = services.aep.merge_policy_in_use
    if policy is None:
        return services.settings.aep_merge_policy_id
    return f"{policy.name} ({policy.id})" if policy.name else policy.id


async def lookup_card(
    services: Services, viewer: Viewer, ref: IdentityRef, *, surface: AuditSurface
) -> Message:
    """The viewer's private card of `ref` for the Home or the search modal (sent as a direct
    message), or the words why not; audited as a lookup on `surface`."""
    if not viewer.access.classes:
        return await refuse(services, viewer, surface=surface, at="lookup")
    card = await private_card(
        services, viewer, ref, action="lookup", refresh=False, surface=surface
    )
    return card.message


async def replay(services: Services, viewer: Viewer, entry_id: str) -> Message:
    """A lookup from the viewer's history run again with their grants now: a role removed
    since sees a refusal, not the card, and not whether the entry still exists."""
    if not viewer.access.classes:
        return await refuse(services, viewer, surface="home", at="lookup")
    asker = viewer.asker
    entry = await services.history.find(asker.team_id or "", asker.user_id, entry_id)
    if entry is None:
        return services.cards.notice("history_gone", reader=viewer.reader)
    return await lookup_card(services, viewer, entry.ref, surface="home")


async def clear_history(services: Services, asker: Asker) -> None:
    """Forget the asker's recent lookups. Audited (with no identity): whoever reads the trail
    can then tell an emptied Home from one that never had lookups."""
    await services.history.clear(asker.team_id or "", asker.user_id)
    await audit(services, asker, action="clear_history", outcome="cleared", surface="home")
