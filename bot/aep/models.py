"""Frozen models for what AEP returns, parsed at the edge; unknown fields are tolerated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class ProfileIdentity(_Frozen):
    """One identity of a merged profile, from `identities[]` or `identityMap`."""

    namespace: str
    value: str
    primary: bool = False


class ProfileEntity(_Frozen):
    """One merged profile as the entities API returns it (the entry under its entity id)."""

    entity_id: str
    entity: dict[str, Any]
    last_modified_at: datetime | None = None
    sources: tuple[str, ...] = ()
    identities: tuple[ProfileIdentity, ...] = ()


class ExperienceEvent(_Frozen):
    """One experience event of a profile (`children[]` of an event lookup)."""

    event_id: str
    timestamp: datetime
    entity: dict[str, Any]


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


class Membership(_Frozen):
    """A profile's membership of one audience, from `segmentMembership`."""

    audience_id: str
    namespace: str = "ups"
    status: str
    last_qualification_time: datetime | None = None
