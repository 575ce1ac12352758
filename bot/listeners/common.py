"""What every surface shares: who is asking, running a lookup, and turning failures into words."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from slack_bolt.async_app import AsyncRespond

from bot.aep.errors import (
    AepError,
    AepServerError,
    AepUnavailable,
    AepUnreachable,
    CredentialsProblem,
    ImsUnavailable,
    LookupRejected,
    MalformedResponse,
    ProfileNotFound,
    RateLimited,
    ResponseTooLarge,
    TooManyIdentities,
)
from bot.audit import AuditAction
from bot.cards import CardContext
from bot.customer import Customer, CustomerIdentity
from bot.identity import IdentityRef
from bot.policy import Access, Grants, access_for, how_to_get_access, redact
from bot.services import Services

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass(frozen=True)
class Asker:
    """Who asked, and where: always taken from the signed payload, never from text or values."""

    team_id: str | None
    user_id: str
    channel_id: str | None


def now() -> datetime:
    return datetime.now(UTC)


async def access_of(services: Services, asker: Asker) -> Access:
    """The asker's own grants, from their roles in the policy."""
    person = await services.directory.person(asker.team_id or "", asker.user_id)
    return access_for(services.policy, person)


def error_notice(services: Services, exc: AepError, ref: IdentityRef, classes: Grants) -> Message:
    """A private message in words for a failed lookup. The identity's value is named only to
    someone who may see its class: after a button click it came from a token, not from them."""
    cards = services.cards
    identity = CustomerIdentity(namespace=ref.namespace, value=ref.value)
    query = f"{ref.namespace} {ref.value}" if identity.field_class in classes else ref.namespace
    if isinstance(exc, ProfileNotFound):
        return cards.notice("not_found", query=query)
    if isinstance(exc, TooManyIdentities):
        return cards.notice("too_many_identities", query=query)
    if isinstance(exc, RateLimited):
        # A number only when it is small and plausible; else "in a few minutes".
        return cards.notice("rate_limited", seconds=exc.seconds_to_tell())
    # What happened decides the words: an error answer, no answer, no connection, no sign-in.
    if isinstance(exc, AepServerError):
        return cards.notice("server_error", status=exc.status)
    if isinstance(exc, AepUnreachable):
        return cards.notice("unreachable")
    if isinstance(exc, ImsUnavailable):
        return cards.notice("sign_in_failed")
    if isinstance(exc, AepUnavailable):
        return cards.notice("unavailable", seconds=round(services.settings.bot_lookup_deadline))
    if isinstance(exc, CredentialsProblem):
        return cards.notice("credentials")
    if isinstance(exc, LookupRejected):
        return cards.notice("rejected", message=exc.message)
    if isinstance(exc, ResponseTooLarge):
        return cards.notice("too_large")
    if isinstance(exc, MalformedResponse):
        return cards.notice("malformed")
    return cards.notice("internal_error", reference=exc.request_id or "none")


_OUTCOMES: tuple[tuple[type[AepError], str], ...] = (
    (ProfileNotFound, "not_found"),
    (TooManyIdentities, "too_many_identities"),
    (RateLimited, "rate_limited"),
    (AepUnavailable, "unavailable"),
    (CredentialsProblem, "credentials"),
    (LookupRejected, "rejected"),
    (MalformedResponse, "malformed"),
)


def outcome_of(exc: AepError) -> str:
    """The audit outcome word for a failed lookup (a subclass takes its family's word)."""
    return next((word for kind, word in _OUTCOMES if isinstance(exc, kind)), "error")


def aep_profile_url(services: Services, customer: Customer) -> str | None:
    """A link to the profile in the Experience Platform UI, when the org and sandbox are known."""
    if services.demo or not services.settings.aep_org_id:
        return None
    base = services.settings.aep_ui_url.rstrip("/")
    return (
        f"{base}/#/@{quote(services.settings.aep_org_id)}/sname:{quote(services.settings.aep_sandbox)}"
        f"/platform/profile/browse/{quote(customer.profile_id)}"
    )


async def audit(
    services: Services,
    asker: Asker,
    *,
    action: AuditAction,
    outcome: str,
    surface: str,
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
    outcome: str,
    surface: str,
    ref: IdentityRef | None = None,
) -> None:
    """One audit record for a refusal: no grants, a channel that may not see, no share right."""
    await audit(services, asker, action="refusal", outcome=outcome, surface=surface, ref=ref)


async def refuse(services: Services, asker: Asker, *, surface: str, action: str) -> Message:
    """Audit a refusal for lack of grants and say how to get access."""
    await audit_refusal(services, asker, outcome=f"no_grants:{action}", surface=surface)
    person = await services.directory.person(asker.team_id or "", asker.user_id)
    if not person.known:
        # users.info failed: often a passing Slack error, so no advice to join a group.
        how = (
            "Slack did not tell the bot who you are just now, so it shows no customer data. "
            "Try again in a minute; if it keeps happening, tell whoever runs the bot."
        )
    else:
        how = how_to_get_access(services.policy, person=person)
    return services.cards.notice("refused_no_grants", how=how)


async def answer_privately(
    services: Services,
    asker: Asker,
    ref: IdentityRef,
    respond: AsyncRespond,
    *,
    action: AuditAction,
    refresh: bool = False,
    replace_original: bool = False,
) -> None:
    """The card for `ref` as the asker's own grants allow, or a refusal, answered privately."""
    access = await access_of(services, asker)
    if not access.classes:
        refusal = await refuse(services, asker, surface="private", action=action)
        await respond(**refusal, response_type="ephemeral", replace_original=False)
        return
    card = await card_for(
        services,
        asker,
        ref,
        access.classes,
        surface="private",
        action=action,
        can_share=access.can_share,
        refresh=refresh,
    )
    await respond(**card.message, response_type="ephemeral", replace_original=replace_original)


@dataclass(frozen=True)
class Card:
    """A rendered card (or the message saying why there is none) and what it showed."""

    message: Message
    ok: bool
    ref: IdentityRef
    profile_id: str | None = None
    shown: Grants = frozenset()
    withheld: Grants = frozenset()


async def audit_card(
    services: Services,
    asker: Asker,
    card: Card,
    *,
    action: AuditAction,
    surface: str,
    outcome: str,
) -> None:
    """The audit record of a card, once it is known whether it reached Slack."""
    await audit(
        services,
        asker,
        action=action,
        outcome=outcome,
        surface=surface,
        ref=card.ref,
        profile_id=card.profile_id,
        shown=card.shown,
        withheld=card.withheld,
    )


async def card_for(
    services: Services,
    asker: Asker,
    ref: IdentityRef,
    classes: Grants,
    *,
    surface: str,
    action: AuditAction,
    can_share: bool = False,
    refresh: bool = False,
    shared_by: str | None = None,
    share_reason: str | None = None,
    audit_surface: str | None = None,
    audit_success: bool = True,
) -> Card:
    """Look the customer up, redact to `classes`, render. A failure is audited here; a card is
    audited here too unless `audit_success` is False (a post into a channel is audited by its
    caller once Slack has taken it)."""
    try:
        customer = await services.lookup.lookup(ref, refresh=refresh)
    except AepError as exc:
        log.info("lookup failed: %s (status %s)", type(exc).__name__, exc.status)
        await audit(
            services,
            asker,
            action=action,
            outcome=outcome_of(exc),
            surface=audit_surface or surface,
            ref=ref,
        )
        return Card(message=error_notice(services, exc, ref, classes), ok=False, ref=ref)
    redacted = redact(customer, classes)
    token = await services.lookup.remember(ref)
    context = CardContext(
        surface="shared" if surface == "shared" else "private",
        now=now(),
        token=token,
        withheld=frozenset(redacted.withheld),
        can_share=can_share and surface != "shared",
        aep_url=aep_profile_url(services, customer),
        max_events=5,
        shared_by=shared_by,
        share_reason=share_reason,
        granted=frozenset(classes),
    )
    card = Card(
        message=services.cards.customer_card(redacted.customer, context),
        ok=True,
        ref=ref,
        profile_id=customer.profile_id,
        shown=redacted.shown,
        withheld=redacted.withheld,
    )
    if audit_success:
        await audit_card(
            services, asker, card, action=action, surface=audit_surface or surface, outcome="shown"
        )
    return card
