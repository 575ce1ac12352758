"""Who may see which field classes, and where a card may be posted. Pure functions over data.

The policy names roles (bound to Slack user groups and user ids) and the field classes each role
may see. A person's grants are the union of `everyone` and the `see` lists of all their roles;
guests, external accounts, bots, deactivated and unknown accounts get nothing from `everyone` or
user groups. A card posted where others can read it shows only what every reader may see.
Redaction works on the Customer data itself, before any rendering.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bot.customer import Customer
from bot.identity import IdentityRef
from bot.layout import FIELD_CLASSES, FieldClass, namespace_class

Grants = frozenset[FieldClass]

NOTHING: Grants = frozenset()

_POLICY_KEYS = ("roles", "everyone", "public_channels", "external_channels")
_ROLE_KEYS = ("usergroups", "users", "see", "share")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_USERGROUP_ID = re.compile(r"^S[A-Z0-9]{6,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PolicyError(Exception):
    """The policy file is wrong; the message names the file, the place and the problem."""


def _class_list(value: Any) -> Any:
    """Check a list of class names, so a typo is named instead of silently granting nothing."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"must be a list of classes such as [basic, contact], not {value!r}")
    for item in value:
        if item not in FIELD_CLASSES:
            raise ValueError(f"unknown class {item!r}; use one of {', '.join(FIELD_CLASSES)}")
    return value


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of {what}, not {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not text; list {what}")
    return list(value)


def _handle(text: str) -> str:
    return text.strip().removeprefix("@").lower()


class Role(BaseModel):
    """A named role: who holds it (user group handles, user ids) and what it may see."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    usergroups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    see: Grants
    share: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _ROLE_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a role name: use letters, digits, '-', '_' or '.', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("usergroups", mode="before")
    @classmethod
    def _valid_usergroups(cls, value: Any) -> tuple[str, ...]:
        handles: list[str] = []
        for item in _string_list(value, "user group handles such as [support-team]"):
            if _USERGROUP_ID.match(item.strip()):
                raise ValueError(
                    f"{item!r} looks like a user group id; give the group's handle "
                    "(the name after @, such as support-team)"
                )
            handle = _handle(item)
            if not _HANDLE.match(handle):
                raise ValueError(
                    f"{item!r} is not a user group handle (lower-case letters, digits, "
                    "'-', '_' or '.', such as support-team)"
                )
            handles.append(handle)
        return tuple(dict.fromkeys(handles))

    @field_validator("users", mode="before")
    @classmethod
    def _valid_users(cls, value: Any) -> tuple[str, ...]:
        ids: list[str] = []
        for item in _string_list(value, "Slack user ids such as [U012AB3CD]"):
            if not _USER_ID.match(item.strip()):
                raise ValueError(
                    f"{item!r} is not a Slack user id (such as U012AB3CD: in Slack, open the "
                    "person's profile, then More > Copy member ID)"
                )
            ids.append(item.strip())
        return tuple(dict.fromkeys(ids))

    @field_validator("see", mode="before")
    @classmethod
    def _valid_see(cls, value: Any) -> Any:
        return _class_list(value)

    @field_validator("share", mode="before")
    @classmethod
    def _valid_share(cls, value: Any) -> Any:
        # YAML's `share: "yes"` or `share: 1` would pass a lax bool; say what is meant instead.
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value

    @model_validator(mode="after")
    def _assignable(self) -> Role:
        if not self.usergroups and not self.users:
            raise ValueError(
                "no way to be assigned: give usergroups (Slack user group handles) "
                "or users (Slack user ids)"
            )
        return self


class Policy(BaseModel):
    """The whole policy: roles, what everyone may see, and the caps for public and shared channels.

    `source` is "default", "demo" or the path of the policy file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: tuple[Role, ...] = ()
    everyone: Grants = NOTHING
    public_channels: Grants = NOTHING
    external_channels: Grants = NOTHING
    source: str

    @field_validator("everyone", "public_channels", "external_channels", mode="before")
    @classmethod
    def _valid_classes(cls, value: Any) -> Any:
        return _class_list(value)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        names = [r.name for r in self.roles]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"role {', '.join(duplicates)} is defined twice")
        if not self.everyone and not any(r.see for r in self.roles):
            raise ValueError(
                "the policy grants nothing to anyone: add a role with `see`, or classes "
                "under `everyone`"
            )
        return self


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, so a second `support:` cannot hide the first."""


def _mapping_without_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_policy(path: Path | None, *, demo: bool) -> Policy:
    """Load and validate the policy file, or the built-in default (the demo one in demo mode).

    A key left out of the file grants nothing: no roles, `everyone: []`, and no card in public or
    Slack Connect channels. Raises PolicyError listing every problem found.
    """
    if path is None:
        name = "policy.demo.yml" if demo else "policy.default.yml"
        text = resources.files("bot").joinpath(f"layouts/{name}").read_text("utf-8")
        where = f"the built-in {'demo' if demo else 'default'} policy"
        source = "demo" if demo else "default"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"BOT_POLICY_FILE: cannot read {path}: {exc.strerror}") from None
        where = f"BOT_POLICY_FILE {path}"
        source = str(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError(
            f"{where} must be a mapping with the keys {', '.join(_POLICY_KEYS)}, "
            f"not {type(raw).__name__}"
        )
    problems: list[str] = []
    for key in raw:
        if key not in _POLICY_KEYS:
            problems.append(f"{key}: unknown key; a policy has {', '.join(_POLICY_KEYS)}")
    roles: list[Role] = []
    raw_roles = raw.get("roles") or {}
    if not isinstance(raw_roles, dict):
        problems.append("roles: must be a mapping from a role name to its usergroups, users, see")
        raw_roles = {}
    for name, body in raw_roles.items():
        role = _parse_role(name, body, problems)
        if role is not None:
            roles.append(role)
    fields: dict[str, Any] = {}
    for key in ("everyone", "public_channels", "external_channels"):
        try:
            fields[key] = frozenset(_class_list(raw.get(key)))
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    if not problems:
        try:
            return Policy(roles=tuple(roles), source=source, **fields)
        except ValidationError as exc:
            problems.extend(_describe(exc, ""))
    raise PolicyError(f"{where} has problems:\n  " + "\n  ".join(problems))


def _parse_role(name: Any, body: Any, problems: list[str]) -> Role | None:
    loc = f"roles.{name}"
    if not isinstance(name, str):
        problems.append(f"{loc}: a role name must be text, not {name!r}")
        return None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        problems.append(f"{loc}: must be a mapping with {', '.join(_ROLE_KEYS)}")
        return None
    unknown = [k for k in body if k not in _ROLE_KEYS]
    for key in unknown:
        problems.append(f"{loc}.{key}: unknown key; a role has {', '.join(_ROLE_KEYS)}")
    if unknown:
        return None
    try:
        return Role.model_validate({**body, "name": name})
    except ValidationError as exc:
        problems.extend(_describe(exc, loc))
        return None


def _describe(exc: ValidationError, prefix: str) -> list[str]:
    lines = []
    for error in exc.errors():
        parts = [prefix, *(str(p) for p in error["loc"])]
        loc = ".".join(p for p in parts if p)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing" and error["loc"] == ("see",):
            message = "missing; list the classes this role may see, such as [basic, contact]"
        elif error["type"] == "missing":
            message = "missing"
        lines.append(f"{loc}: {message}" if loc else message)
    return lines


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
    groups = {_handle(g) for g in person.usergroups}
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


def how_to_get_access(policy: Policy, *, person: Person | None = None) -> str:
    """One sentence telling someone without access how to get it (the user groups to join)."""
    if person is not None and (
        person.is_restricted or person.is_ultra_restricted or person.external
    ):
        return (
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
        sentences.append(f"Ask to be added to {_or(options)}.")
    if by_id_only:
        plural = "s" if len(by_id_only) > 1 else ""
        sentences.append(
            f"Role{plural} {_or(by_id_only)} {'are' if plural else 'is'} given by user id in the "
            "bot's policy: ask whoever runs the bot."
        )
    return " ".join(sentences) or "Ask whoever runs the bot for access."


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


def describe_policy(policy: Policy) -> str:
    """A summary of the policy for the startup log and `policy check`."""
    origin = {
        "default": "the built-in default policy",
        "demo": "the built-in demo policy (more open than the default: everyone sees a card)",
    }.get(policy.source, f"policy file {policy.source}")
    lines = [f"Policy: {origin}"]
    for role in policy.roles:
        holders = [*(f"@{g}" for g in role.usergroups), *role.users]
        share = "; may share" if role.share else ""
        lines.append(f"  role {role.name} ({', '.join(holders)}): {class_names(role.see)}{share}")
    lines.append(f"  everyone: {class_names(policy.everyone)}")
    lines.append(f"  public channels: at most {class_names(policy.public_channels)}")
    external = class_names(policy.external_channels) if policy.external_channels else None
    lines.append(f"  Slack Connect channels: {f'at most {external}' if external else 'never'}")
    return "\n".join(lines)
