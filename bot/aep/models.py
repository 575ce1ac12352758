"""Frozen models for what AEP returns, parsed at the edge; unknown fields are tolerated.

Models built from raw XDM (`entity`) read it here, once, through `bot.aep.xdm`: a profile's
identities and audience memberships, an event's facts. Entries read back from the cache carry
those values already and are not read again.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.aep import xdm


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class ProfileIdentity(_Frozen):
    """One identity of a merged profile, from `identities[]` or `identityMap`."""

    namespace: str
    value: str
    primary: bool = False


class Membership(_Frozen):
    """A profile's membership of one audience, from `segmentMembership`."""

    audience_id: str
    namespace: str = "ups"
    status: str
    last_qualification_time: datetime | None = None
    valid_until: datetime | None = None
    """After this moment the membership is no longer to be assumed (`validUntil`)."""

    def lapsed(self, now: datetime) -> bool:
        """Whether `validUntil` has passed: the membership is then not current, whatever its
        status says (it is shown with the exited ones)."""
        return self.valid_until is not None and self.valid_until <= now

    def current(self, now: datetime) -> bool:
        """Whether the profile is in the audience at `now`: `realized` or `existing`, and not
        past `validUntil`."""
        return self.status in {"realized", "existing"} and not self.lapsed(now)


class ProfileEntity(_Frozen):
    """One merged profile as the entities API returns it (the entry under its entity id).

    `entity` stays raw XDM: the card layout picks its fields by path. Identities and
    memberships are read from it when not given.
    """

    entity_id: str
    entity: dict[str, Any]
    last_modified_at: datetime | None = None
    sources: tuple[str, ...] = ()
    identities: tuple[ProfileIdentity, ...] = ()
    memberships: tuple[Membership, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _read_entity(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("entity"), dict):
            return data
        entity = data["entity"]
        derived: dict[str, Any] = {}
        if "identities" not in data:
            derived["identities"] = xdm.identities(entity)
        if "memberships" not in data:
            derived["memberships"] = xdm.memberships(entity)
        return {**data, **derived} if derived else data

    def value_at(self, path: str) -> Any:
        """The raw XDM value at a dotted path of the profile; None when any step is missing."""
        return xdm.value_at(self.entity, path)

    def time_at(self, path: str) -> datetime | None:
        """The moment at a dotted XDM path of the profile, read as every AEP timestamp is;
        None when the path holds none."""
        return xdm.parse_timestamp(xdm.value_at(self.entity, path))

    def day_at(self, path: str) -> date | None:
        """The day at a dotted XDM path when the profile holds a day without a time (see
        `xdm.parse_day`); None otherwise."""
        return xdm.parse_day(xdm.value_at(self.entity, path))

    @property
    def audience_ids(self) -> tuple[str, ...]:
        """The ids of the audiences the profile has a membership of, each once, in order."""
        return tuple(dict.fromkeys(m.audience_id for m in self.memberships))


class ExperienceEvent(_Frozen):
    """One experience event of a profile (`children[]` of an event lookup), as the facts a card
    shows; built from the raw XDM `entity`, which is read once and not kept."""

    event_id: str
    timestamp: datetime
    event_type: str = ""
    products: tuple[str, ...] | None = None
    """Names (or SKUs) of `productListItems`; None when the event lists none."""
    price_total: float | None = None
    currency: str | None = None
    campaign: str | None = None
    page: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_entity(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "entity" not in data:
            return data
        entity = data["entity"]
        facts = xdm.event_facts(entity if isinstance(entity, dict) else {})
        return {k: v for k, v in data.items() if k != "entity"} | facts


class EventPage(_Frozen):
    """The newest events of a profile, newest first, and whether older ones exist."""

    events: tuple[ExperienceEvent, ...] = ()
    more: bool = False


class Audience(_Frozen):
    """An audience (segment) definition: enough to show its name."""

    id: str
    name: str
    description: str | None = None
    lifecycle_state: str | None = Field(default=None)
    type: str | None = None
    """`SegmentDefinition` (made in Platform) or `ExternalSegment` (imported)."""


class MergePolicy(_Frozen):
    """A merge policy of the sandbox: the one every lookup names explicitly."""

    id: str
    name: str
    schema_name: str | None = None
    default: bool = False
