"""The card layout: which profile fields a card shows, under which label, class and format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from bot.config_files import read_yaml, validation_problems

FieldClass = Literal[
    "basic", "contact", "identifiers", "activity", "audiences", "scores", "financial", "sensitive"
]
FieldFormat = Literal["text", "number", "percent", "currency", "date", "datetime", "boolean"]

#: The fixed vocabulary of field classes, in the order cards and policies list them.
FIELD_CLASSES: tuple[FieldClass, ...] = get_args(FieldClass)
FIELD_FORMATS: tuple[FieldFormat, ...] = get_args(FieldFormat)

#: Identity namespaces whose values are contact details; every other namespace is `identifiers`.
CONTACT_NAMESPACES = frozenset({"email", "phone", "phone_e.164"})


def namespace_class(namespace: str) -> FieldClass:
    """The field class of an identity's value by its namespace: the one place that decides."""
    return "contact" if namespace.lower() in CONTACT_NAMESPACES else "identifiers"


#: Section headings for fields that do not name one, by class.
DEFAULT_SECTIONS: dict[str, str] = {
    "basic": "Profile",
    "contact": "Contact",
    "identifiers": "Identifiers",
    "activity": "Activity",
    "audiences": "Audiences",
    "scores": "Scores",
    "financial": "Value",
    "sensitive": "Sensitive",
}

_PATH = re.compile(r"^_?[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class LayoutError(Exception):
    """The card layout file is wrong; the message says where."""


class LayoutField(BaseModel):
    """One field of the card: where it sits in the profile and how to show it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    label: str = Field(min_length=1, max_length=60)
    path: str
    field_class: FieldClass = Field(alias="class")
    format: FieldFormat = "text"
    section: str | None = Field(default=None, max_length=60)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    #: A computed attribute (Adobe's SystemComputedAttributes field group): asked for with
    #: `withCA`, and read as `{value, timestamp}` when the profile carries it that way.
    computed: bool = False

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError(f"{value!r} is not a dotted XDM path such as person.name.firstName")
        return value

    @property
    def heading(self) -> str:
        """The section this field is shown under."""
        return self.section or DEFAULT_SECTIONS[self.field_class]


class CardLayout(BaseModel):
    """The whole layout: the title paths (joined with spaces) and the fields in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: tuple[str, ...] = Field(min_length=1)
    fields: tuple[LayoutField, ...] = ()

    @field_validator("title")
    @classmethod
    def _valid_title(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not _PATH.match(path):
                raise ValueError(f"{path!r} is not a dotted XDM path such as person.name.firstName")
        return value

    @property
    def has_computed(self) -> bool:
        """True when any field is a computed attribute (the lookup then asks for them)."""
        return any(f.computed for f in self.fields)

    def profile_fields(self) -> tuple[str, ...]:
        """The `fields` filter for the entities call: everything the card can show, no more."""
        wanted = [
            "identities",
            "identityMap",
            "segmentMembership",
            *self.title,
            *(f.path for f in self.fields),
        ]
        kept: list[str] = []
        for path in sorted(set(wanted), key=lambda p: (p.count("."), p)):
            if not any(path == k or path.startswith(k + ".") for k in kept):
                kept.append(path)
        return tuple(sorted(kept))


def load_layout(path: Path | None = None) -> CardLayout:
    """Load the layout from `path`, or the default one for the standard XDM Individual Profile."""
    raw, where = read_yaml(
        path,
        builtin="default.yml",
        builtin_name="the default card layout",
        setting="BOT_CARD_FILE",
        error=LayoutError,
    )
    if not isinstance(raw, dict):
        raise LayoutError(f"{where} must be a mapping with `title` and `fields`")
    try:
        return CardLayout.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, hint=_layout_hint)
        raise LayoutError(f"{where} has problems:\n  " + "\n  ".join(problems)) from None


def _layout_hint(error: ErrorDetails, loc: str) -> str | None:
    if error["type"] == "literal_error" and loc.endswith("class"):
        return f"unknown class; use one of {', '.join(FIELD_CLASSES)}"
    if error["type"] == "literal_error" and loc.endswith("format"):
        return f"unknown format; use one of {', '.join(FIELD_FORMATS)}"
    return None
