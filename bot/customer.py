"""The Customer a card shows, built from AEP data through the card layout. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.aep.models import Audience, EventPage, ExperienceEvent, Membership, ProfileEntity
from bot.identity import IdentityRef
from bot.layout import CONTACT_NAMESPACES, CardLayout, FieldClass, FieldFormat


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
        return "contact" if self.namespace.lower() in CONTACT_NAMESPACES else "identifiers"


class CustomerField(_Frozen):
    """One layout field present in the profile: its raw value and how to show it."""

    label: str
    path: str
    field_class: FieldClass
    format: FieldFormat
    section: str
    currency: str = "USD"
    value: Any


class CustomerEvent(_Frozen):
    """One recent experience event, summarised for a person."""

    event_id: str
    timestamp: datetime
    event_type: str
    title: str
    detail: str | None = None


class AudienceMembership(_Frozen):
    """Membership of one audience, with its name when the audience is known."""

    audience_id: str
    name: str
    status: str
    last_qualification_time: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in {"realized", "existing"}


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
    audiences: tuple[AudienceMembership, ...] = ()
    last_modified_at: datetime | None = None
    fetched_at: datetime
    demo: bool = False

    def fields_of(self, field_class: FieldClass) -> tuple[CustomerField, ...]:
        return tuple(f for f in self.fields if f.field_class == field_class)


def value_at(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None when any step is missing or not an object."""
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


EVENT_TITLES: dict[str, str] = {
    "commerce.purchases": "Purchase",
    "commerce.productViews": "Product view",
    "commerce.productListAdds": "Added to cart",
    "commerce.productListRemovals": "Removed from cart",
    "commerce.checkouts": "Checkout",
    "web.webpagedetails.pageViews": "Page view",
    "web.webinteraction.linkClicks": "Link click",
    "directMarketing.emailSent": "Email sent",
    "directMarketing.emailOpened": "Email opened",
    "directMarketing.emailClicked": "Email clicked",
    "directMarketing.emailUnsubscribed": "Unsubscribed",
    "pushTracking.applicationOpened": "Push opened",
    "application.launch": "App launch",
}


def summarise_event(event: ExperienceEvent) -> CustomerEvent:
    """Turn an XDM experience event into a type, a title and a short detail line."""
    data = event.entity
    event_type = str(data.get("eventType") or "")
    title = EVENT_TITLES.get(event_type) or (event_type or "Event")
    detail: str | None = None
    items = data.get("productListItems")
    if event_type.startswith("commerce.") and isinstance(items, list) and items:
        names = [str(i.get("name") or i.get("SKU") or "item") for i in items if isinstance(i, dict)]
        detail = ", ".join(names)
        total = value_at(data, "commerce.order.priceTotal")
        currency = value_at(data, "commerce.order.currencyCode")
        if isinstance(total, int | float) and not isinstance(total, bool):
            detail += f" ({total:,.2f} {currency or ''})".replace(" )", ")")
    elif event_type.startswith("directMarketing."):
        campaign = value_at(data, "marketing.campaignName") or value_at(
            data, "_experience.customerJourneyManagement.messageExecution.campaignName"
        )
        detail = str(campaign) if _present(campaign) else None
    else:
        page = value_at(data, "web.webPageDetails.name")
        detail = str(page) if _present(page) else None
    return CustomerEvent(
        event_id=event.event_id,
        timestamp=event.timestamp,
        event_type=event_type or "unknown",
        title=title,
        detail=detail,
    )


def memberships(entity: Mapping[str, Any]) -> tuple[Membership, ...]:
    """Audience memberships from the `segmentMembership` map (Platform audiences under `ups`)."""
    result: list[Membership] = []
    segment_map = entity.get("segmentMembership")
    if not isinstance(segment_map, Mapping):
        return ()
    for namespace, members in segment_map.items():
        if not isinstance(members, Mapping):
            continue
        for audience_id, info in members.items():
            if not isinstance(info, Mapping):
                continue
            status = str(info.get("status") or info.get("xdm:status") or "").lower()
            when = info.get("lastQualificationTime") or info.get("xdm:lastQualificationTime")
            result.append(
                Membership(
                    audience_id=str(audience_id),
                    namespace=str(namespace),
                    status=status or "unknown",
                    last_qualification_time=parse_time(when),
                )
            )
    return tuple(result)


def parse_time(value: Any) -> datetime | None:
    """Parse AEP's several timestamp spellings (ISO with Z, offsets without colon, space)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_customer(
    *,
    profile: ProfileEntity,
    query: IdentityRef,
    layout: CardLayout,
    events: EventPage | None,
    audiences: Mapping[str, Audience],
    fetched_at: datetime,
    demo: bool,
) -> Customer:
    """Assemble the Customer from a profile, its events and the audience names."""
    entity = profile.entity
    name_parts = [value_at(entity, p) for p in layout.title]
    name = " ".join(str(p).strip() for p in name_parts if _present(p)) or None
    identities = tuple(_identities(profile, query))
    fields = tuple(
        CustomerField(
            label=f.label,
            path=f.path,
            field_class=f.field_class,
            format=f.format,
            section=f.heading,
            currency=f.currency,
            value=value,
        )
        for f in layout.fields
        if _present(value := value_at(entity, f.path))
    )
    members = sorted(
        memberships(entity),
        key=lambda m: m.last_qualification_time or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    return Customer(
        profile_id=profile.entity_id,
        name=name,
        query=query,
        identities=identities,
        fields=fields,
        events=tuple(summarise_event(e) for e in events.events) if events else (),
        more_events=events.more if events else False,
        events_available=events is not None,
        audiences=tuple(
            AudienceMembership(
                audience_id=m.audience_id,
                name=audiences[m.audience_id].name if m.audience_id in audiences else m.audience_id,
                status=m.status,
                last_qualification_time=m.last_qualification_time,
            )
            for m in members
        ),
        last_modified_at=profile.last_modified_at,
        fetched_at=fetched_at,
        demo=demo,
    )


def _identities(profile: ProfileEntity, query: IdentityRef) -> Iterable[CustomerIdentity]:
    seen: set[tuple[str, str]] = set()
    for identity in profile.identities:
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
