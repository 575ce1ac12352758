"""The use case behind every surface: who asks, what they may see, the card or the words why not,
and the audit record of it. Knows no Slack: listeners parse a request, ask here, and reply."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, assert_never
from urllib.parse import quote

from bot.aep.errors import AepError, RateLimited
from bot.cards import MODAL_EVENTS, CardContext
from bot.customer import Customer
from bot.identity import MAX_IDENTITIES, IdentityRef, Refusal, read_identities
from bot.layout import namespace_class
from bot.policy import Access, Grants, Person, access_for, how_to_get_access, redact
from bot.services import Services
from bot.vocabulary import (
    AuditAction,
    AuditOutcome,
    AuditSurface,
    CardSurface,
    IdentityRefused,
    NoGrants,
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


async def viewer_of(services: Services, asker: Asker) -> Viewer:
    """The asker's own grants, from their roles in the policy."""
    person = await services.directory.person(asker.team_id or "", asker.user_id)
    return Viewer(asker=asker, person=person, access=access_for(services.policy, person))


@dataclass(frozen=True)
class Found:
    """The identities found in a person's text, counted once: every message that says how many
    (the "Showing 3 of 20" note, the picker) takes `count` and `capped` from here."""

    refs: list[IdentityRef]
    #: identity-like text that was not read (look-alikes, invisible characters, too long)
    refused: list[Refusal]

    @property
    def count(self) -> int:
        """How many distinct identities were found."""
        return len(self.refs)

    @property
    def capped(self) -> bool:
        """True when the parser stopped at its limit: the text may hold more than `count`."""
        return len(self.refs) >= MAX_IDENTITIES

    def note(self, services: Services, shown: int) -> Message | None:
        """The "Showing N of M identities found" note, or None when every one was shown."""
        if shown >= self.count and not self.capped:
            return None
        return services.cards.notice(
            "more_identities", shown=shown, total=self.count, capped=self.capped
        )


def find_identities(services: Services, text: str) -> Found:
    """Every identity in `text`, de-duplicated, in order (at most MAX_IDENTITIES), and the
    identity-like text refused with its reason."""
    reading = read_identities(text, services.rules)
    return Found(refs=reading.refs, refused=reading.refused)


def now() -> datetime:
    return datetime.now(UTC)


# --- failures in words -----------------------------------------------------------------------


def error_notice(services: Services, exc: AepError, ref: IdentityRef, classes: Grants) -> Message:
    """A private message in words for a failed lookup, chosen by the error's cause. The
    identity's value is named only to someone who may see its class: after a button click it
    came from a token, not from them."""
    cards = services.cards
    shown = namespace_class(ref.namespace) in classes
    query = f"{ref.namespace} {ref.value}" if shown else ref.namespace
    cause = exc.cause
    match cause:
        case "not_found" | "too_many_identities":
            return cards.notice(cause, query=query)
        case "rate_limited":
            # A number only when it is small and plausible; else "in a few minutes".
            seconds = exc.seconds_to_tell() if isinstance(exc, RateLimited) else None
            return cards.notice("rate_limited", seconds=seconds)
        # What happened decides the words: an error answer, no answer, no connection, no sign-in.
        case "server_error":
            return cards.notice("server_error", status=exc.status)
        case "unavailable":
            deadline = round(services.settings.bot_lookup_deadline)
            return cards.notice("unavailable", seconds=deadline)
        case "unreachable" | "sign_in_failed" | "credentials" | "too_large" | "malformed":
            return cards.notice(cause)
        case "rejected":
            return cards.notice("rejected", message=exc.message)
        case "error":
            return cards.notice("internal_error", reference=exc.request_id or "none")
        case _:
            assert_never(cause)


def aep_profile_url(services: Services, customer: Customer) -> str | None:
    """A link to the profile in the Experience Platform UI, when the org and sandbox are known."""
    if services.demo or not services.settings.aep_org_id:
        return None
    base = services.settings.aep_ui_url.rstrip("/")
    return (
        f"{base}/#/@{quote(services.settings.aep_org_id)}/sname:{quote(services.settings.aep_sandbox)}"
        f"/platform/profile/browse/{quote(customer.profile_id)}"
    )


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
    if not viewer.person.known:
        # users.info failed: often a passing Slack error, so no advice to join a group.
        how = (
            "Slack did not tell the bot who you are just now, so it shows no customer data. "
            "Try again in a minute; if it keeps happening, tell whoever runs the bot."
        )
    else:
        how = how_to_get_access(services.policy, person=viewer.person)
    return services.cards.notice("refused_no_grants", how=how)


def identity_refusal(services: Services, refused: Iterable[Refusal]) -> Message:
    """The private message saying why each identity-like text was not looked up."""
    reasons = " ".join(str(refusal) for refusal in refused)
    return services.cards.notice("refused_identity", reasons=reasons)


async def audit_identity_refusals(
    services: Services, asker: Asker, refused: Iterable[Refusal], *, surface: AuditSurface
) -> None:
    """One refusal record per refused identity-like text, with the reason as its outcome."""
    for refusal in refused:
        await audit_refusal(
            services, asker, outcome=IdentityRefused(refusal.reason), surface=surface
        )


async def refuse_identities(
    services: Services, asker: Asker, refused: Iterable[Refusal], *, surface: AuditSurface
) -> Message:
    """Audit each refused identity-like text as a refusal (its reason, never its text, which may
    be an attacker's or a customer's) and say in words why nothing was looked up for it."""
    refused = list(refused)
    await audit_identity_refusals(services, asker, refused, surface=surface)
    return identity_refusal(services, refused)


# --- cards -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardRequest:
    """What card to make: whose profile, redacted to which classes, for which surface."""

    ref: IdentityRef
    classes: Grants
    surface: CardSurface = "private"
    #: offer the Share button (never on a shared card)
    can_share: bool = False
    #: bypass the cache (the Refresh button)
    refresh: bool = False
    shared_by: str | None = None
    share_reason: str | None = None


@dataclass(frozen=True)
class Card:
    """A rendered card, or the message saying in words why there is none, and what it showed."""

    message: Message
    ref: IdentityRef
    failure: AepError | None = None
    profile_id: str | None = None
    shown: Grants = frozenset()
    withheld: Grants = frozenset()

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
    the caller knows where the card went (see audit_card)."""
    ref, classes = request.ref, request.classes
    try:
        customer = await services.lookup.lookup(ref, refresh=request.refresh)
    except AepError as exc:
        log.info("lookup failed: %s (status %s)", type(exc).__name__, exc.status)
        return Card(message=error_notice(services, exc, ref, classes), ref=ref, failure=exc)
    redacted = redact(customer, classes)
    token = await services.buttons.remember(ref)
    context = CardContext(
        surface=request.surface,
        now=now(),
        token=token,
        withheld=frozenset(redacted.withheld),
        can_share=request.can_share and request.surface != "shared",
        aep_url=aep_profile_url(services, customer),
        max_events=CARD_EVENTS,
        shared_by=request.shared_by,
        share_reason=request.share_reason,
        granted=frozenset(classes),
    )
    return Card(
        message=services.cards.customer_card(redacted.customer, context),
        ref=ref,
        profile_id=customer.profile_id,
        shown=redacted.shown,
        withheld=redacted.withheld,
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
    own, and a post into a conversation passes what Slack did with it."""
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


async def private_card(
    services: Services, viewer: Viewer, ref: IdentityRef, *, action: PrivateAction, refresh: bool
) -> Card:
    """The card for `ref` as the viewer's own grants allow, audited as a private answer. The
    caller has checked that the viewer is granted something (else see `refuse`)."""
    request = CardRequest(
        ref=ref,
        classes=viewer.access.classes,
        can_share=viewer.access.can_share,
        refresh=refresh,
    )
    card = await render_card(services, request)
    await audit_card(services, viewer.asker, card, action=action, surface="private")
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
            refusal = services.cards.notice("events_not_granted")
        else:
            refusal = await refuse(services, viewer, surface="modal", at="more_events")
        return services.cards.modal_from_notice(refusal)
    try:
        customer = await services.lookup.lookup(ref, events_limit=MODAL_EVENTS)
    except AepError as exc:
        await audit(
            services, viewer.asker, action="more_events", outcome=exc.kind, surface="modal", ref=ref
        )
        notice = error_notice(services, exc, ref, access.classes)
        return services.cards.modal_from_notice(notice)
    redacted = redact(customer, access.classes)
    context = CardContext(
        surface="private",
        now=now(),
        token=token,
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
