"""The Customer a card shows, mapped from parsed AEP data through the card layout. Pure: no I/O.

The inputs are described by protocols, so this module knows no AEP JSON and imports nothing
from `bot.aep`: its models (`bot.aep.models`) satisfy them, and so can a test's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bot.i18n import N_
from bot.identity import IdentityRef
from bot.layout import CardLayout, FieldClass, FieldFormat, Label, namespace_class


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CustomerIdentity(_Frozen):
    """One identity of the customer, and whether it is the one the query matched."""

    namespace: str
    value: str
    primary: bool = False
    matched: bool = False

    @property
    def field_class(self) -> FieldClass:
        return namespace_class(self.namespace)


#: Where a card's recent events stand: read (`shown`, possibly none), still on their way
#: (`loading`), asked for and not read (`failed`: an error, a timeout, a 404), or not asked for
#: because the organisation may not look events up (`off`: Prime, or not enabled by Adobe).
EventsStatus = Literal["shown", "loading", "failed", "off"]


class CustomerField(_Frozen):
    """One layout field present in the profile: its value and how to show it. Date and
    date-time fields hold a `date` when the profile gives a day without a time (or the layout
    says `format: date`), a datetime when it gives a moment. A computed
    attribute carries `as_of`, the time its value was computed, when the profile says it."""

    #: one text for every language, or texts by language ("en", "nl"); see bot.layout.Label
    label: Label
    path: str
    field_class: FieldClass
    format: FieldFormat
    section: Label
    currency: str = "USD"
    value: Any
    computed: bool = False
    as_of: datetime | None = None
    #: part of the summary line under the customer's name (the layout's `summary: true`)
    summary: bool = False
    #: the layout's words for coded values (see bot.layout.LayoutField.values)
    values: dict[str, Label] | None = None


class CustomerEvent(_Frozen):
    """One recent experience event, summarised for a person."""

    event_id: str
    timestamp: datetime
    event_type: str
    title: str
    detail: str | None = None
    #: a purchase's total, shown in the reader's currency format after `detail`
    amount: float | None = None
    currency: str | None = None
    #: the page viewed and the products concerned, as AEP named them (for the layout's topics)
    page: str | None = None
    products: tuple[str, ...] = ()


#: Event types a customer's marketing journey makes (views, opens, clicks): a card counts them
#: rather than listing them, so the service-relevant events (orders, checkouts) come first.
MARKETING_EVENTS = frozenset(
    {
        "commerce.productViews",
        "web.webpagedetails.pageViews",
        "web.webinteraction.linkClicks",
        "directMarketing.emailSent",
        "directMarketing.emailOpened",
        "directMarketing.emailClicked",
        "pushTracking.applicationOpened",
        "application.launch",
    }
)
#: The event type of an order.
PURCHASE_EVENT = "commerce.purchases"


class AudienceMembership(_Frozen):
    """Membership of one audience, with its name when the audience is known."""

    audience_id: str
    name: str | None
    """None: the name is unknown (Platform does not know the id, or could not say just now)."""
    status: str
    last_qualification_time: datetime | None = None
    valid_until: datetime | None = None
    lapsed: bool = False
    """`validUntil` had passed when the profile was read: not current, shown with the exited."""

    @property
    def active(self) -> bool:
        return self.status in {"realized", "existing"} and not self.lapsed

    @property
    def left(self) -> bool:
        """Listed under "Left these audiences": exited, or past its `validUntil`."""
        return self.status == "exited" or self.lapsed


class Customer(_Frozen):
    """Everything a card may show about one customer, before any permission check."""

    profile_id: str
    name: str | None
    query: IdentityRef
    identities: tuple[CustomerIdentity, ...] = ()
    fields: tuple[CustomerField, ...] = ()
    events: tuple[CustomerEvent, ...] = ()
    more_events: bool = False
    events_available: bool = True
    events_status: EventsStatus = "shown"
    audiences: tuple[AudienceMembership, ...] = ()
    last_modified_at: datetime | None = None
    fetched_at: datetime
    demo: bool = False

    def fields_of(self, field_class: FieldClass) -> tuple[CustomerField, ...]:
        return tuple(f for f in self.fields if f.field_class == field_class)


# --- what the mapping reads (bot.aep.models satisfies these) ------------------------------------


class IdentityFacts(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def primary(self) -> bool: ...


class MembershipFacts(Protocol):
    @property
    def audience_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def last_qualification_time(self) -> datetime | None: ...
    @property
    def valid_until(self) -> datetime | None: ...
    def lapsed(self, now: datetime) -> bool: ...


class ProfileFacts(Protocol):
    @property
    def entity_id(self) -> str: ...
    def value_at(self, path: str) -> Any: ...
    @property
    def last_modified_at(self) -> datetime | None: ...
    @property
    def identities(self) -> Sequence[IdentityFacts]: ...
    @property
    def memberships(self) -> Sequence[MembershipFacts]: ...
    def time_at(self, path: str) -> datetime | None: ...
    def day_at(self, path: str) -> date | None: ...


class EventFacts(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def event_type(self) -> str: ...
    @property
    def products(self) -> tuple[str, ...] | None: ...
    @property
    def price_total(self) -> float | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def campaign(self) -> str | None: ...
    @property
    def page(self) -> str | None: ...


class EventsFacts(Protocol):
    @property
    def events(self) -> Sequence[EventFacts]: ...
    @property
    def more(self) -> bool: ...


class AudienceFacts(Protocol):
    @property
    def name(self) -> str: ...


# --- the mapping --------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


#: Event types in words (English; cards show them in the reader's language).
EVENT_TITLES: dict[str, str] = {
    "commerce.purchases": N_("Purchase"),
    "commerce.productViews": N_("Product view"),
    "commerce.productListAdds": N_("Added to cart"),
    "commerce.productListRemovals": N_("Removed from cart"),
    "commerce.checkouts": N_("Checkout"),
    "web.webpagedetails.pageViews": N_("Page view"),
    "web.webinteraction.linkClicks": N_("Link click"),
    "directMarketing.emailSent": N_("Email sent"),
    "directMarketing.emailOpened": N_("Email opened"),
    "directMarketing.emailClicked": N_("Email clicked"),
    "directMarketing.emailUnsubscribed": N_("Unsubscribed"),
    "pushTracking.applicationOpened": N_("Push opened"),
    "application.launch": N_("App launch"),
}
#: The title of an event of no type.
UNTYPED_EVENT = N_("Event")


def summarise_event(event: EventFacts) -> CustomerEvent:
    """An experience event as a type, a title and a short detail line."""
    event_type = event.event_type
    title = EVENT_TITLES.get(event_type) or (event_type or UNTYPED_EVENT)
    detail: str | None
    amount: float | None = None
    if event_type.startswith("commerce.") and event.products is not None:
        detail = ", ".join(event.products)
        amount = event.price_total
    elif event_type.startswith("directMarketing."):
        detail = event.campaign
    else:
        detail = event.page
    return CustomerEvent(
        event_id=event.event_id,
        timestamp=event.timestamp,
        event_type=event_type or "unknown",
        title=title,
        detail=detail,
        amount=amount,
        currency=event.currency if amount is not None else None,
        page=event.page,
        products=tuple(event.products or ()),
    )


def _computed(profile: ProfileFacts, path: str) -> tuple[str, datetime | None]:
    """Where a computed attribute's value is, and when it was computed. [U] Adobe documents the
    SystemComputedAttributes field group and that MOST_RECENT gives "both the value as well as
    the timestamp", not the exact shape: `{value, timestamp}` is read when present, else the
    path's own value (and no time)."""
    if profile.value_at(f"{path}.value") is not None:
        return f"{path}.value", profile.time_at(f"{path}.timestamp")
    return path, None


def _field_value(profile: ProfileFacts, path: str, fmt: FieldFormat) -> Any:
    value = profile.value_at(path)
    if fmt in ("date", "datetime") and _present(value):
        # A day without a time stays a day (a `date`): a date-time field holding a date, or
        # midnight UTC, is never shown as a made-up midnight in the reader's zone. Otherwise
        # read as every AEP timestamp is; a value that is no moment is shown as it is.
        day = profile.day_at(path)
        if day is not None:
            return day
        moment = profile.time_at(path)
        if moment is not None and fmt == "date":
            return moment.astimezone(UTC).date()
        return moment if moment is not None else value
    return value


#: XDM's given and family name paths: the two a name's order is decided between.
GIVEN_NAME, FAMILY_NAME = "person.name.firstName", "person.name.lastName"
# Scripts whose writers put the family name first, with no space between the parts: Han
# (Chinese, Japanese kanji), Hiragana, Katakana and Hangul.
_FAMILY_FIRST_SCRIPT = re.compile(
    r"^[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\u30fb\u30fc\u3005]+$"
)


def display_name(parts: Sequence[tuple[str, str]]) -> str | None:
    """The customer's name as their culture writes it, from the layout's title parts (path,
    text) in layout order, joined with spaces. When every part is written in Chinese,
    Japanese or Korean script (山田, 花子), the family name (`person.name.lastName`) goes
    before the given name (`person.name.firstName`) and the parts join without a space:
    山田花子 is how the customer writes it. A name in Latin script keeps the layout's order,
    whatever the customer's language (Hanako Yamada is how a Japanese customer writes their
    name in Latin letters)."""
    texts = [text for _, text in parts if text]
    if not texts:
        return None
    paths = [path for path, text in parts if text]
    if all(_FAMILY_FIRST_SCRIPT.match(t) for t in texts):
        if GIVEN_NAME in paths and FAMILY_NAME in paths:
            given, family = paths.index(GIVEN_NAME), paths.index(FAMILY_NAME)
            if given < family:
                texts[given], texts[family] = texts[family], texts[given]
        return "".join(texts)
    return " ".join(texts)


def build_customer(
    *,
    profile: ProfileFacts,
    query: IdentityRef,
    layout: CardLayout,
    events: EventsFacts | None,
    audiences: Mapping[str, AudienceFacts],
    fetched_at: datetime,
    demo: bool,
    events_status: EventsStatus | None = None,
) -> Customer:
    """Assemble the Customer from a profile, its events and the audience names.

    `events_status` says why `events` is None (default: "shown" with events, else "failed")."""
    name = display_name(
        [(p, str(v).strip()) for p in layout.title if _present(v := profile.value_at(p))]
    )
    fields = []
    for f in layout.fields:
        path, as_of = _computed(profile, f.path) if f.computed else (f.path, None)
        value = _field_value(profile, path, f.format)
        if not _present(value):
            continue
        fields.append(
            CustomerField(
                label=f.label,
                path=f.path,
                field_class=f.field_class,
                format=f.format,
                section=f.heading,
                currency=f.currency,
                value=value,
                computed=f.computed,
                as_of=as_of,
                summary=f.summary,
                values=f.values,
            )
        )
    members = sorted(
        profile.memberships,
        key=lambda m: m.last_qualification_time or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    return Customer(
        profile_id=profile.entity_id,
        name=name,
        query=query,
        identities=tuple(_identities(profile.identities, query)),
        fields=tuple(fields),
        events=tuple(summarise_event(e) for e in events.events) if events else (),
        more_events=events.more if events else False,
        events_available=events is not None,
        events_status=events_status or ("shown" if events is not None else "failed"),
        audiences=tuple(
            AudienceMembership(
                audience_id=m.audience_id,
                name=audiences[m.audience_id].name if m.audience_id in audiences else None,
                status=m.status,
                last_qualification_time=m.last_qualification_time,
                valid_until=m.valid_until,
                lapsed=m.lapsed(fetched_at),
            )
            for m in members
        ),
        last_modified_at=profile.last_modified_at,
        fetched_at=fetched_at,
        demo=demo,
    )


def _identities(
    identities: Iterable[IdentityFacts], query: IdentityRef
) -> Iterable[CustomerIdentity]:
    seen: set[tuple[str, str]] = set()
    for identity in identities:
        key = (identity.namespace.lower(), identity.value)
        if key in seen:
            continue
        seen.add(key)
        yield CustomerIdentity(
            namespace=identity.namespace,
            value=identity.value,
            primary=identity.primary,
            matched=identity.namespace.lower() == query.namespace.lower()
            and _same_value(identity.value, query.value, identity.namespace),
        )


def _same_value(a: str, b: str, namespace: str) -> bool:
    if namespace.lower() == "email":
        return a.strip().lower() == b.strip().lower()
    return a == b
