"""The policy file: loading and validating it into a `Policy`, or the built-in default (the demo
one when the bot runs on demo data). Every problem is named with its place; nothing is guessed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from bot.config_files import UniqueKeyLoader, read_yaml, validation_problems
from bot.layout import FIELD_CLASSES, FieldClass

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


def usergroup_handle(text: str) -> str:
    """A user group handle as the policy compares it: no `@`, lower case."""
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
            handle = usergroup_handle(item)
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


def load_policy(path: Path | None, *, demo: bool) -> Policy:
    """Load and validate the policy file, or the built-in default (the demo one in demo mode).

    A key left out of the file grants nothing: no roles, `everyone: []`, and no card in public or
    Slack Connect channels. Raises PolicyError listing every problem found.
    """
    builtin = "demo" if demo else "default"
    raw, where = read_yaml(
        path,
        builtin=f"policy.{builtin}.yml",
        builtin_name=f"the built-in {builtin} policy",
        setting="BOT_POLICY_FILE",
        error=PolicyError,
        loader=UniqueKeyLoader,
    )
    source = builtin if path is None else str(path)
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
            problems.extend(validation_problems(exc, hint=_role_hint))
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
        problems.extend(validation_problems(exc, prefix=loc, hint=_role_hint))
        return None


def _role_hint(error: ErrorDetails, loc: str) -> str | None:
    if error["type"] == "missing" and error["loc"] == ("see",):
        return "missing; list the classes this role may see, such as [basic, contact]"
    return "missing" if error["type"] == "missing" else None
