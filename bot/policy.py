"""Access decisions: who may see which field classes, and where a card may be posted. Pure
functions over data; the policy they read is loaded by `bot.policy_file`.

The policy names roles (bound to Slack user groups and user ids) and the field classes each role
may see. A person's grants are the union of `everyone` and the `see` lists of all their roles;
guests, external accounts, bots, deactivated and unknown accounts get nothing from `everyone` or
user groups. A card posted where others can read it shows only what every reader may see.
Redaction works on the Customer data itself, before any rendering.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from babel import lists

from bot.customer import Customer
from bot.i18n import FALLBACK_LOCALE, Reader, reader_for
from bot.identity import IdentityRef
from bot.layout import FIELD_CLASSES, FieldClass, namespace_class
from bot.policy_file import NOTHING, Role, usergroup_handle
from bot.policy_file import Grants as Grants
from bot.policy_file import Policy as Policy

# --- people ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A Slack account as the policy needs it: id, user group handles and account flags.

    `known` is False when Slack would not describe the account (`users.info` failed);
    `external` is True for an account of another organization (Slack Connect).
    """

    user_id: str
    usergroups: frozenset[str]
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    is_bot: bool = False
    deleted: bool = False
    known: bool = True
    external: bool = False
    #: Slack's `locale` ("nl-NL") and `tz` ("Europe/Amsterdam"), as users.info gave them; the
    #: policy ignores them, answers read them (bot.i18n.reader_for)
    locale: str | None = None
    tz: str | None = None


@dataclass(frozen=True)
class Access:
    """What one person may see, through which roles, whether they may share, and why in words."""

    classes: Grants
    roles: tuple[str, ...]
    can_share: bool
    why: str


def class_names(classes: Iterable[FieldClass | str]) -> str:
    """Classes in the policy's canonical order, comma separated; "nothing" when empty."""
    wanted = set(classes)
    ordered = [c for c in FIELD_CLASSES if c in wanted]
    return ", ".join(ordered) if ordered else "nothing"


def access_for(policy: Policy, person: Person) -> Access:
    """The person's grants: `everyone` plus every matching role's `see`, with the reason."""
    if person.deleted:
        return Access(NOTHING, (), False, "deactivated account: no access")
    if person.is_bot:
        return Access(NOTHING, (), False, "bots and apps get no customer data")
    if not person.known:
        return Access(
            NOTHING, (), False, "Slack would not describe this account to the bot: no access"
        )
    restricted = person.is_restricted or person.is_ultra_restricted or person.external
    groups = {usergroup_handle(g) for g in person.usergroups}
    matched: list[tuple[Role, list[str]]] = []
    for role in policy.roles:
        via = [f"user id {person.user_id}"] if person.user_id in role.users else []
        if not restricted:
            via += [f"user group @{h}" for h in role.usergroups if h in groups]
        if via:
            matched.append((role, via))
    classes: set[FieldClass] = set()
    for role, _ in matched:
        classes |= role.see
    reasons = [f"role {role.name} ({', '.join(via)})" for role, via in matched]
    if not restricted:
        classes |= policy.everyone
        if policy.everyone:
            reasons.append(f"everyone may see {class_names(policy.everyone)}")
    if not reasons:
        if person.external:
            reasons.append(
                "account of another organization: such accounts see customer data only when "
                "the policy names them by user id"
            )
        elif restricted:
            reasons.append(
                "guest account: guests see customer data only when the policy names them by user id"
            )
        else:
            reasons.append("no role, and this policy gives people without a role nothing")
    return Access(
        classes=frozenset(classes),
        roles=tuple(role.name for role, _ in matched),
        can_share=any(role.share for role, _ in matched),
        why="; ".join(reasons),
    )


@dataclass(frozen=True)
class RoleOffer:
    """A role held through user groups that would show someone more than they see now."""

    name: str
    usergroups: tuple[str, ...]
    adds: Grants


def more_access(policy: Policy, access: Access) -> list[RoleOffer]:
    """The roles given by user group that `access` does not hold and that would add classes, in
    the policy's order (roles given only by user id are named by how_to_get_access)."""
    offers = []
    for role in policy.roles:
        adds = frozenset(role.see) - access.classes
        if role.usergroups and role.name not in access.roles and adds:
            offers.append(RoleOffer(name=role.name, usergroups=role.usergroups, adds=adds))
    return offers


def how_to_get_access(
    policy: Policy, reader: Reader | None = None, *, person: Person | None = None
) -> str:
    """One sentence telling someone without access how to get it (the user groups to join), in
    the reader's language (English when none is given: the policy check CLI)."""
    reader = reader or reader_for(FALLBACK_LOCALE)
    if person is not None and (
        person.is_restricted or person.is_ultra_restricted or person.external
    ):
        return reader.gettext(
            "Guests and people from other organizations get access only when the bot's policy "
            "names them by user id: ask whoever runs the bot."
        )
    by_group: dict[str, list[str]] = {}
    by_id_only: list[str] = []
    for role in policy.roles:
        for handle in role.usergroups:
            by_group.setdefault(handle, []).append(role.name)
        if not role.usergroups:
            by_id_only.append(role.name)
    options = [f"@{handle} ({', '.join(roles)})" for handle, roles in by_group.items()]
    sentences = []
    if options:
        groups = lists.format_list(options, style="or", locale=reader.locale)
        sentences.append(reader.gettext("Ask to be added to %(groups)s.", groups=groups))
    if by_id_only:
        roles = lists.format_list(by_id_only, style="or", locale=reader.locale)
        sentences.append(
            reader.ngettext(
                "Role %(roles)s is given by user id in the bot's policy: ask whoever runs the bot.",
                "Roles %(roles)s are given by user id in the bot's policy: ask whoever runs the "
                "bot.",
                len(by_id_only),
                roles=roles,
            )
        )
    return " ".join(sentences) or reader.gettext("Ask whoever runs the bot for access.")


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# --- channels -------------------------------------------------------------------------------

ChannelKind = Literal["public", "private", "im", "mpim"]

_KIND_LABEL: dict[str, str] = {
    "public": "public channel",
    "private": "private channel",
    "im": "direct message",
    "mpim": "group DM",
}

_WHAT_TO_DO: dict[str, str] = {
    "channel_not_found": "Invite the bot to the conversation (/invite), or ask for the card "
    "privately.",
    "not_in_channel": "Invite the bot to the conversation (/invite), or ask for the card "
    "privately.",
    "missing_scope": "The app lacks a Slack permission for this kind of conversation; ask "
    "whoever runs the bot to reinstall it with the scopes in its manifest.",
    "too_many_members": "The bot does not size cards for conversations that large; ask for the "
    "card privately.",
}


@dataclass(frozen=True)
class Channel:
    """A conversation a card might be posted in: its kind, whether it is shared with other
    organizations, and its human members (bots and deactivated accounts left out).

    `inspectable` is False when Slack would not describe it; `error` then holds Slack's error code.
    """

    channel_id: str
    kind: ChannelKind
    external: bool
    inspectable: bool = True
    members: tuple[Person, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class AudienceDecision:
    """What a card posted in a channel may show; when refused, `reason` says why and what to do."""

    classes: Grants
    refused: bool
    reason: str


def _refuse(reason: str) -> AudienceDecision:
    return AudienceDecision(classes=NOTHING, refused=True, reason=reason)


def _ids(user_ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(user_ids[:limit])
    more = len(user_ids) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def audience_access(policy: Policy, channel: Channel) -> AudienceDecision:
    """The classes every possible reader of `channel` may see, capped for public and Slack
    Connect channels; refused when that is nothing or the channel cannot be inspected."""
    if not channel.inspectable:
        code = channel.error or "unknown error"
        todo = _WHAT_TO_DO.get(code, "Ask for the card privately instead.")
        return _refuse(
            f"The bot cannot see who is in this conversation ({code}), so it posts no customer "
            f"data there. {todo}"
        )
    label = _KIND_LABEL[channel.kind]
    if channel.external:
        label = f"Slack Connect {label}"
        if not policy.external_channels:
            return _refuse(
                f"{label}: people from other organizations can read it, and this bot's policy "
                "never posts customer data there. Ask for the card privately instead."
            )
    if not channel.members:
        return _refuse(
            f"{label}: the bot found no people in it to size a card for. Ask for the card "
            "privately instead."
        )
    accesses = [(member, access_for(policy, member)) for member in channel.members]
    common: set[FieldClass] = set(FIELD_CLASSES)
    for _, access in accesses:
        common &= access.classes
    caps: list[tuple[str, Grants]] = []
    if channel.kind == "public":
        caps.append(("public channels", policy.public_channels))
    if channel.external:
        caps.append(("Slack Connect channels", policy.external_channels))
    capped = set(common)
    for _, cap in caps:
        capped &= cap
    count = f"{len(channel.members)} {'person' if len(channel.members) == 1 else 'people'}"
    if capped:
        reason = f"{label}, {count}: what every reader may see: {class_names(capped)}"
        if capped != common:
            limits = "; ".join(f"{what} capped at {class_names(cap)}" for what, cap in caps)
            reason += f" ({limits})"
        return AudienceDecision(classes=frozenset(capped), refused=False, reason=reason)
    without = [m.user_id for m, a in accesses if not a.classes]
    if without:
        why = f"{len(without)} of {count} may not see customer data ({_ids(without)})"
        todo = (
            "Share it where everyone has access, or ask them to get access. "
            f"{how_to_get_access(policy)}"
        )
    elif not common:
        why = "its people may see customer data, but no class that all of them may see"
        todo = "Share it in a conversation with people who have the same access."
    else:
        empty = [what for what, cap in caps if not cap]
        if empty:
            why = f"this bot's policy posts no customer data in {' or '.join(empty)}"
        else:
            limits = "; ".join(f"{what} capped at {class_names(cap)}" for what, cap in caps)
            why = f"everyone may see {class_names(common)}, but {limits}"
        todo = "Ask for the card privately, or share it in a private channel."
    return _refuse(f"{label}: {why}. {todo}")


def share_access(policy: Policy, sharer: Person, channel: Channel) -> AudienceDecision:
    """Whether `sharer` may post a card in `channel`, and what it may show: the audience's
    classes, never more than the sharer may see, and only for roles with `share: true`."""
    access = access_for(policy, sharer)
    if not access.can_share:
        sharers = [r for r in policy.roles if r.share]
        if not sharers:
            return _refuse("This bot's policy lets no one share cards into conversations.")
        names = _or(
            [
                f"{r.name} ({', '.join(f'@{g}' for g in r.usergroups) or 'named by user id'})"
                for r in sharers
            ]
        )
        return _refuse(f"Only role {names} may share cards into conversations.")
    decision = audience_access(policy, channel)
    if decision.refused:
        return decision
    classes = decision.classes & access.classes
    if not classes:
        return _refuse("The readers of this conversation may see nothing you may see.")
    if classes != decision.classes:
        return AudienceDecision(
            classes=classes,
            refused=False,
            reason=f"{decision.reason}; limited to what you may see: {class_names(classes)}",
        )
    return decision


# --- redaction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redacted:
    """A Customer cut down to the granted classes; `shown`/`withheld` list the classes that had
    data and were kept/removed."""

    customer: Customer
    shown: Grants
    withheld: Grants


def data_classes(customer: Customer) -> Grants:
    """The classes for which `customer` holds any data."""
    present: set[FieldClass] = {f.field_class for f in customer.fields}
    present |= {i.field_class for i in customer.identities}
    if customer.name is not None:
        present.add("basic")
    if customer.events or customer.more_events:
        present.add("activity")
    if customer.audiences:
        present.add("audiences")
    return frozenset(present)


def redact(customer: Customer, classes: Grants) -> Redacted:
    """Remove every field, identity, event and audience whose class is not in `classes`.

    The name needs `basic`; events need `activity` (else `events_available` and `more_events`
    are false); audiences need `audiences`. The query's value is blanked when its class
    (`contact` for email/phone, else `identifiers`) is not granted, since a shared card must not
    repeat an email its readers may not see.
    """
    present = data_classes(customer)
    activity = "activity" in classes
    query = customer.query
    if namespace_class(query.namespace) not in classes:
        query = IdentityRef(namespace=query.namespace, value="")
    kept = customer.model_copy(
        update={
            "name": customer.name if "basic" in classes else None,
            "query": query,
            "identities": tuple(i for i in customer.identities if i.field_class in classes),
            "fields": tuple(f for f in customer.fields if f.field_class in classes),
            "events": customer.events if activity else (),
            "more_events": customer.more_events if activity else False,
            "events_available": customer.events_available if activity else False,
            "audiences": customer.audiences if "audiences" in classes else (),
        }
    )
    return Redacted(customer=kept, shown=present & classes, withheld=present - classes)


# --- explanations (for `python -m bot policy check`) ----------------------------------------


def explain_person(policy: Policy, person: Person) -> str:
    """What `person` may see and why, in a few lines."""
    access = access_for(policy, person)
    lines = [f"{person.user_id}: {access.why}"]
    if access.classes:
        lines.append(f"sees: {class_names(access.classes)}")
        lines.append(f"may share cards into conversations: {'yes' if access.can_share else 'no'}")
    else:
        lines.append("sees: nothing; asking for a customer gets a refusal")
        how = how_to_get_access(policy, person=person)
        if how and person.known and not person.is_bot and not person.deleted:
            lines.append(how)
    return "\n  ".join(lines)


def explain_channel(policy: Policy, channel: Channel) -> str:
    """What a card posted in `channel` would show, and what each member may see."""
    decision = audience_access(policy, channel)
    head = "refused" if decision.refused else f"cards show {class_names(decision.classes)}"
    lines = [f"{channel.channel_id}: {head}", decision.reason]
    for member in channel.members:
        access = access_for(policy, member)
        lines.append(f"  {member.user_id}: {class_names(access.classes)} ({access.why})")
    return "\n  ".join(lines)
