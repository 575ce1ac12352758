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
from bot.i18n import FALLBACK_LOCALE, N_, Reader, reader_for
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


def class_names(classes: Iterable[FieldClass | str], reader: Reader | None = None) -> str:
    """Classes (the policy's own codes) in canonical order, comma separated; "nothing" (in the
    reader's language) when empty."""
    wanted = set(classes)
    ordered = [c for c in FIELD_CLASSES if c in wanted]
    return ", ".join(ordered) if ordered else _english(reader).gettext("nothing")


def _english(reader: Reader | None) -> Reader:
    # No reader: the operator's commands (`policy check`), which stay English.
    return reader or reader_for(FALLBACK_LOCALE)


def access_for(policy: Policy, person: Person, reader: Reader | None = None) -> Access:
    """The person's grants: `everyone` plus every matching role's `see`, with the reason in the
    reader's language (English when none is given)."""
    r = _english(reader)
    if person.deleted:
        return Access(NOTHING, (), False, r.gettext("deactivated account: no access"))
    if person.is_bot:
        return Access(NOTHING, (), False, r.gettext("bots and apps get no customer data"))
    if not person.known:
        return Access(
            NOTHING,
            (),
            False,
            r.gettext("Slack would not describe this account to the bot: no access"),
        )
    restricted = person.is_restricted or person.is_ultra_restricted or person.external
    groups = {usergroup_handle(g) for g in person.usergroups}
    matched: list[tuple[Role, list[str]]] = []
    for role in policy.roles:
        via = []
        if person.user_id in role.users:
            via.append(r.gettext("user id %(user)s", user=person.user_id))
        if not restricted:
            via += [
                r.gettext("user group @%(group)s", group=h) for h in role.usergroups if h in groups
            ]
        if via:
            matched.append((role, via))
    classes: set[FieldClass] = set()
    for role, _ in matched:
        classes |= role.see
    reasons = [
        r.gettext("role %(role)s (%(via)s)", role=role.name, via=", ".join(via))
        for role, via in matched
    ]
    if not restricted:
        classes |= policy.everyone
        if policy.everyone:
            reasons.append(
                r.gettext("everyone may see %(classes)s", classes=class_names(policy.everyone, r))
            )
    if not reasons:
        if person.external:
            reasons.append(
                r.gettext(
                    "account of another organization: such accounts see customer data only "
                    "when the policy names them by user id"
                )
            )
        elif restricted:
            reasons.append(
                r.gettext(
                    "guest account: guests see customer data only when the policy names them by "
                    "user id"
                )
            )
        else:
            reasons.append(
                r.gettext("no role, and this policy gives people without a role nothing")
            )
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


# --- channels -------------------------------------------------------------------------------

ChannelKind = Literal["public", "private", "im", "mpim"]

_KIND_LABEL: dict[str, str] = {
    "public": N_("public channel"),
    "private": N_("private channel"),
    "im": N_("direct message"),
    "mpim": N_("group DM"),
}

#: Where and how to ask instead, when a card may not go into a conversation.
_ASK_PRIVATELY = N_(
    "Ask for the card privately instead: /customer with the identity, typed anywhere, answers "
    "only you."
)
_INVITE = N_(
    "Invite the bot with /invite and try again, or ask for the card privately: /customer with "
    "the identity answers only you."
)

#: Why the bot cannot see who is in a conversation, by Slack's error code (never shown itself),
#: and what to do.
_UNSEEN: dict[str, tuple[str, str]] = {
    "channel_not_found": (N_("The bot is not in this conversation"), _INVITE),
    "not_in_channel": (N_("The bot is not in this conversation"), _INVITE),
    "missing_scope": (
        N_("The bot lacks the Slack permission to see who is in this kind of conversation"),
        N_(
            "Ask whoever runs the bot to reinstall it with the scopes in its manifest; until "
            "then, ask for the card privately: /customer with the identity answers only you."
        ),
    ),
    "too_many_members": (
        N_("This conversation is too large for the bot to size a card for"),
        _ASK_PRIVATELY,
    ),
}
_UNSEEN_OTHER = (N_("Slack would not tell the bot who is in this conversation"), _ASK_PRIVATELY)

#: The conversations a policy caps, as its reasons name them.
_PUBLIC_CHANNELS = N_("public channels")
_CONNECT_CHANNELS = N_("Slack Connect channels")


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
    #: its name as Slack gives it (channels have one; direct messages do not), untrusted text
    name: str | None = None


@dataclass(frozen=True)
class AudienceDecision:
    """What a card posted in a channel may show; when refused, `reason` says why and what to do
    (in the language of the reader the decision was made for)."""

    classes: Grants
    refused: bool
    reason: str


def _refuse(reason: str) -> AudienceDecision:
    return AudienceDecision(classes=NOTHING, refused=True, reason=reason)


def _ids(user_ids: list[str], reader: Reader, limit: int = 5) -> str:
    shown = ", ".join(user_ids[:limit])
    more = len(user_ids) - limit
    if more > 0:
        return reader.gettext("%(shown)s and %(more)s more", shown=shown, more=more)
    return shown


def audience_access(
    policy: Policy, channel: Channel, reader: Reader | None = None
) -> AudienceDecision:
    """The classes every possible reader of `channel` may see, capped for public and Slack
    Connect channels; refused when that is nothing or the channel cannot be inspected. The
    reason is in the reader's language (English when none is given: `policy check`)."""
    r = _english(reader)
    if not channel.inspectable:
        # Slack's code goes to the log (directory.py), never into the words.
        why, todo = _UNSEEN.get(channel.error or "", _UNSEEN_OTHER)
        return _refuse(
            r.gettext(
                "%(why)s, so it cannot tell who would read a card there and posts no customer "
                "data. %(todo)s",
                why=r.gettext(why),
                todo=r.gettext(todo),
            )
        )
    label = r.gettext(_KIND_LABEL[channel.kind])
    if channel.external:
        label = r.gettext("Slack Connect %(kind)s", kind=label)
        if not policy.external_channels:
            return _refuse(
                r.gettext(
                    "This is a %(label)s, so people from other organizations can read it, and this "
                    "bot's policy never posts customer data there. %(todo)s",
                    label=label,
                    todo=r.gettext(_ASK_PRIVATELY),
                )
            )
    if not channel.members:
        return _refuse(
            r.gettext(
                "The bot found no people in this %(label)s to size a card for. %(todo)s",
                label=label,
                todo=r.gettext(_ASK_PRIVATELY),
            )
        )
    accesses = [(member, access_for(policy, member, r)) for member in channel.members]
    common: set[FieldClass] = set(FIELD_CLASSES)
    for _, access in accesses:
        common &= access.classes
    caps: list[tuple[str, Grants]] = []
    if channel.kind == "public":
        caps.append((r.gettext(_PUBLIC_CHANNELS), policy.public_channels))
    if channel.external:
        caps.append((r.gettext(_CONNECT_CHANNELS), policy.external_channels))
    capped = set(common)
    for _, cap in caps:
        capped &= cap
    count = r.ngettext(
        "%(num)s person", "%(num)s people", len(channel.members), num=len(channel.members)
    )

    def limits() -> str:
        return "; ".join(
            r.gettext("%(what)s capped at %(classes)s", what=what, classes=class_names(cap, r))
            for what, cap in caps
        )

    if capped:
        reason = r.gettext(
            "%(label)s, %(count)s: what every reader may see: %(classes)s",
            label=label,
            count=count,
            classes=class_names(capped, r),
        )
        if capped != common:
            reason += f" ({limits()})"
        return AudienceDecision(classes=frozenset(capped), refused=False, reason=reason)
    without = [m.user_id for m, a in accesses if not a.classes]
    if without:
        why = r.gettext(
            "%(without)s of %(count)s may not see customer data (%(ids)s)",
            without=len(without),
            count=count,
            ids=_ids(without, r),
        )
        todo = r.gettext(
            "Share it where everyone has access, or ask them to get access. %(how)s",
            how=how_to_get_access(policy, r),
        )
    elif not common:
        why = r.gettext("its people may see customer data, but no class that all of them may see")
        todo = r.gettext("Share it in a conversation with people who have the same access.")
    else:
        empty = [what for what, cap in caps if not cap]
        if empty:
            why = r.gettext(
                "this bot's policy posts no customer data in %(where)s",
                where=lists.format_list(empty, style="or", locale=r.locale),
            )
        else:
            why = r.gettext(
                "everyone may see %(classes)s, but %(limits)s",
                classes=class_names(common, r),
                limits=limits(),
            )
        todo = r.gettext(
            "Ask for the card privately (/customer with the identity answers only you), or "
            "share it in a private channel."
        )
    return _refuse(
        r.gettext("In this %(label)s, %(why)s. %(todo)s", label=label, why=why, todo=todo)
    )


def share_access(
    policy: Policy, sharer: Person, channel: Channel, reader: Reader | None = None
) -> AudienceDecision:
    """Whether `sharer` may post a card in `channel`, and what it may show: the audience's
    classes, never more than the sharer may see, and only for roles with `share: true`. The
    reason is in the reader's language (the sharer's; English when none is given)."""
    r = _english(reader)
    access = access_for(policy, sharer, r)
    if not access.can_share:
        sharers = [role for role in policy.roles if role.share]
        if not sharers:
            return _refuse(
                r.gettext("This bot's policy lets no one share cards into conversations.")
            )
        names = lists.format_list(
            [
                r.gettext(
                    "%(role)s (%(groups)s)",
                    role=role.name,
                    groups=", ".join(f"@{g}" for g in role.usergroups)
                    or r.gettext("named by user id"),
                )
                for role in sharers
            ],
            style="or",
            locale=r.locale,
        )
        return _refuse(
            r.ngettext(
                "Only role %(names)s may share cards into conversations.",
                "Only roles %(names)s may share cards into conversations.",
                len(sharers),
                names=names,
            )
        )
    decision = audience_access(policy, channel, r)
    if decision.refused:
        return decision
    classes = decision.classes & access.classes
    if not classes:
        return _refuse(r.gettext("The readers of this conversation may see nothing you may see."))
    if classes != decision.classes:
        return AudienceDecision(
            classes=classes,
            refused=False,
            reason=r.gettext(
                "%(reason)s; limited to what you may see: %(classes)s",
                reason=decision.reason,
                classes=class_names(classes, r),
            ),
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
