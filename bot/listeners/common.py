"""What every surface shares: who is asking, running a lookup, and turning failures into words."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackClientError

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
from bot.customer import Customer
from bot.identity import MAX_IDENTITIES, IdentityRef, Refusal, read_identities
from bot.layout import namespace_class
from bot.policy import Access, Grants, access_for, how_to_get_access, redact
from bot.services import Services
from bot.slack_web import SlackBusy, busy_seconds, why_post_failed

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass(frozen=True)
class Asker:
    """Who asked, and where: always taken from the signed payload, never from text or values."""

    team_id: str | None
    user_id: str
    channel_id: str | None


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
    message = services.cards.notice("incomplete_request")
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


async def access_of(services: Services, asker: Asker) -> Access:
    """The asker's own grants, from their roles in the policy."""
    person = await services.directory.person(asker.team_id or "", asker.user_id)
    return access_for(services.policy, person)


def error_notice(services: Services, exc: AepError, ref: IdentityRef, classes: Grants) -> Message:
    """A private message in words for a failed lookup. The identity's value is named only to
    someone who may see its class: after a button click it came from a token, not from them."""
    cards = services.cards
    may_see = namespace_class(ref.namespace) in classes
    query = f"{ref.namespace} {ref.value}" if may_see else ref.namespace
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


def post_failure_notice(services: Services, exc: SlackClientError) -> Message:
    """A private message in words for a card Slack did not take into a conversation."""
    if isinstance(exc, SlackBusy):
        return services.cards.notice("slack_busy", seconds=busy_seconds(exc))
    return services.cards.notice("post_failed", reason=why_post_failed(exc))


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


async def refuse_identities(
    services: Services, asker: Asker, refused: Iterable[Refusal], *, surface: str
) -> Message:
    """Audit each refused identity-like text as a refusal (its reason, never its text, which may
    be an attacker's or a customer's) and say in words why nothing was looked up for it."""
    refused = list(refused)
    await audit_identity_refusals(services, asker, refused, surface=surface)
    return identity_refusal(services, refused)


def identity_refusal(services: Services, refused: Iterable[Refusal]) -> Message:
    """The private message saying why each identity-like text was not looked up."""
    reasons = " ".join(str(refusal) for refusal in refused)
    return services.cards.notice("refused_identity", reasons=reasons)


async def audit_identity_refusals(
    services: Services, asker: Asker, refused: Iterable[Refusal], *, surface: str
) -> None:
    """One refusal record per refused identity-like text, with the reason as its outcome."""
    for refusal in refused:
        outcome = f"identity_refused:{refusal.reason}"
        await audit_refusal(services, asker, outcome=outcome, surface=surface)


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
    token = await services.buttons.remember(ref)
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
