"""The card layout: which profile fields a card shows, under which label, class and format."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from bot.config_files import read_yaml, validation_problems
from bot.i18n import N_

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


#: Section headings for fields that do not name one, by class (English; cards show them in the
#: reader's language).
DEFAULT_SECTIONS: dict[str, str] = {
    "basic": N_("Profile"),
    "contact": N_("Contact"),
    "identifiers": N_("Identifiers"),
    "activity": N_("Activity"),
    "audiences": N_("Audiences"),
    "scores": N_("Scores"),
    "financial": N_("Value"),
    "sensitive": N_("Sensitive"),
}

#: A layout text: one string for every language, or a map of language (or locale: `en`,
#: `nl`, `nl-BE`) to text, e.g. `{en: Lifetime value, nl: Klantwaarde}`.
Label = str | dict[str, str]

_LANGUAGE_KEY = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")


def label_text(label: Label, locale: str) -> str:
    """The text of `label` for `locale` ("nl-BE"): the exact locale, then its language, then
    English, then the first text given."""
    if isinstance(label, str):
        return label
    wanted = locale.replace("_", "-")
    language = wanted.split("-")[0]
    for key in (wanted, language, "en"):
        if label.get(key):
            return label[key]
    return next(iter(label.values()))


def _valid_label(value: Label) -> Label:
    if isinstance(value, dict):
        if not value:
            raise ValueError("a label map needs at least one language, e.g. {en: Lifetime value}")
        for key, text in value.items():
            if not _LANGUAGE_KEY.match(key):
                raise ValueError(f"{key!r} is not a language such as en, nl or nl-BE")
            if not 1 <= len(text) <= 60:
                raise ValueError(f"the {key} text must be 1 to 60 characters")
    return value


_PATH = re.compile(r"^_?[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class LayoutError(Exception):
    """The card layout file is wrong; the message says where."""


class LayoutField(BaseModel):
    """One field of the card: where it sits in the profile and how to show it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    label: str | dict[str, str]
    path: str
    field_class: FieldClass = Field(alias="class")
    format: FieldFormat = "text"
    section: str | dict[str, str] | None = None
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    #: A computed attribute (Adobe's SystemComputedAttributes field group): asked for with
    #: `withCA`, and read as `{value, timestamp}` when the profile carries it that way.
    computed: bool = False
    #: shown in the card's summary line, under the customer's name (the customer's standing)
    summary: bool = False
    #: Words for a text field's coded values, e.g. `{gold: {en: Gold, nl: Goud}}` (matched
    #: without regard to case); values not listed follow formatting.value_words' rule.
    values: dict[str, str | dict[str, str]] | None = None

    @field_validator("values")
    @classmethod
    def _valid_values(
        cls, value: dict[str, str | dict[str, str]] | None
    ) -> dict[str, str | dict[str, str]] | None:
        for key, text in (value or {}).items():
            if isinstance(text, str) and not 1 <= len(text) <= 60:
                raise ValueError(f"the words for {key!r} must be 1 to 60 characters")
            _valid_label(text)
        return value

    @field_validator("label", "section")
    @classmethod
    def _valid_texts(cls, value: Label | None) -> Label | None:
        if isinstance(value, str) and not 1 <= len(value) <= 60:
            raise ValueError("must be 1 to 60 characters")
        return None if value is None else _valid_label(value)

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError(f"{value!r} is not a dotted XDM path such as person.name.firstName")
        return value

    @property
    def heading(self) -> Label:
        """The section this field is shown under."""
        return self.section or DEFAULT_SECTIONS[self.field_class]


#: A key fact that is not a layout field: the newest purchase among the customer's recent
#: events (what, when, amount), of class `activity` like every event.
LAST_ORDER = "last_order"
BUILTIN_FACTS = frozenset({LAST_ORDER})
#: The most key facts one card shows (a role's list, or several roles' lists joined).
KEY_FACTS_MOST = 6
#: The key facts list of viewers whose roles have none, and of every shared card.
DEFAULT_KEY_FACTS = "default"


class Topic(BaseModel):
    """Something a customer may be writing about, recognised in their recent events: an event
    of one of `event_types`, a page whose name holds one of `pages`, or a product whose name
    holds one of `products` (case-insensitive). At least `min_events` must match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | dict[str, str]
    event_types: tuple[str, ...] = ()
    pages: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    min_events: int = Field(default=2, ge=1, le=100)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: Label) -> Label:
        if isinstance(value, str) and not 1 <= len(value) <= 60:
            raise ValueError("must be 1 to 60 characters")
        return _valid_label(value)

    @field_validator("event_types", "pages", "products")
    @classmethod
    def _valid_words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            if not 1 <= len(word.strip()) <= 100:
                raise ValueError("each entry must be 1 to 100 characters")
        return value

    @model_validator(mode="after")
    def _matches_something(self) -> Topic:
        if not (self.event_types or self.pages or self.products):
            raise ValueError("a topic needs event_types, pages or products to recognise it by")
        return self

    def matches(self, event_type: str, page: str | None, products: tuple[str, ...]) -> bool:
        """True when an event of this type, on this page, about these products is about it."""
        if event_type in self.event_types:
            return True
        names = [n.casefold() for n in (page, *products) if n]
        return any(w.casefold() in n for w in (*self.pages, *self.products) for n in names)


class CardLayout(BaseModel):
    """The whole layout: the title paths (joined with spaces), the fields in order, the key
    facts shown first to each policy role, and the topics recent events may point to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: tuple[str, ...] = Field(min_length=1)
    fields: tuple[LayoutField, ...] = ()
    #: policy role name (or `default`) -> layout field paths or built-in facts (`last_order`)
    key_facts: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    topics: tuple[Topic, ...] = ()

    @model_validator(mode="after")
    def _valid_key_facts(self) -> CardLayout:
        known = {f.path for f in self.fields} | BUILTIN_FACTS
        problems = []
        for role, facts in self.key_facts.items():
            if len(facts) > KEY_FACTS_MOST:
                problems.append(
                    f"key_facts.{role}: at most {KEY_FACTS_MOST} facts, not {len(facts)}"
                )
            for n, fact in enumerate(facts):
                if fact not in known:
                    problems.append(
                        f"key_facts.{role}.{n}: {fact!r} is not a path in `fields` nor "
                        f"{', '.join(sorted(BUILTIN_FACTS))}"
                    )
            if len(set(facts)) != len(facts):
                problems.append(f"key_facts.{role}: names a fact twice")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def key_facts_for(self, roles: Sequence[str]) -> tuple[str, ...]:
        """The key facts for a viewer holding `roles` (policy order): their lists joined, or
        the `default` list when none of them has one; at most KEY_FACTS_MOST."""
        chosen: list[str] = []
        for role in roles:
            chosen += [f for f in self.key_facts.get(role, ()) if f not in chosen]
        if not any(role in self.key_facts for role in roles):
            chosen = list(self.key_facts.get(DEFAULT_KEY_FACTS, ()))
        return tuple(chosen[:KEY_FACTS_MOST])

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
