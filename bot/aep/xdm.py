"""Readers of the XDM values inside Platform's answers: timestamps, identities, audience
memberships and the facts of an experience event. Pure: values in, plain values out, never raises.

Every AEP timestamp is read here, by one rule taken from Adobe's Profile API docs and spec:
epoch numbers are **milliseconds** (`children[].timestamp` of an event lookup, "epoch ms"; the
spec's `startTime`/`endTime` "at millisecond granularity"), and every other timestamp
(`lastModifiedAt`, `lastQualificationTime`, an event's XDM `timestamp`, date-time fields of a
profile) is an ISO 8601 / RFC 3339 string in one of several spellings (`Z`, `+0000`, a space for
the `T`, no zone at all, which is read as UTC). A number sent as a string is still milliseconds.

A day without a time is read by `parse_day`: an XDM `date` ("2025-11-28"), or a date-time at
exactly midnight UTC, which is how a source that knows only the day fills a date-time field
(a card shows such a value as that day, never as a made-up midnight moved into a time zone).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_timestamp(value: Any) -> datetime | None:
    """A UTC-aware datetime from epoch milliseconds (a number or numeric string) or ISO 8601;
    None for anything else, and for a moment outside what a datetime can hold."""
    if isinstance(value, bool) or value is None:
        return None
    millis = number_of(value)
    if millis is not None:
        try:
            # timedelta, not fromtimestamp(millis / 1000): the division loses the last digit.
            return _EPOCH + timedelta(milliseconds=millis)
        except OverflowError:
            return None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_day(value: Any) -> date | None:
    """The calendar day of a value that holds a day and no time: an ISO 8601 date
    ("2025-11-28"), or a timestamp at exactly 00:00:00.000 UTC; None for anything else."""
    if isinstance(value, str) and _DAY_ONLY.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    moment = parse_timestamp(value)
    if moment is None or moment.utcoffset() != timedelta(0):
        # A time given in another zone was a moment someone meant, not a day.
        return None
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return None
    return moment.date()


def value_at(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted XDM path, or None when any step is missing or not an object."""
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def present(value: Any) -> bool:
    """Whether an XDM value says anything: not null, not empty text, list or object."""
    return value is not None and value != "" and value != [] and value != {}


def text_of(value: Any) -> str | None:
    """Text from a JSON string or number, stripped; None for empty text and anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def number_of(value: Any) -> float | None:
    """A finite number from a JSON number or numeric string; `inf`, `nan`, `1e400` give None."""
    if isinstance(value, bool):
        return None
    number: float
    if isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def truthy(value: Any) -> bool:
    """`true` as JSON writes it, or as the spec's examples write it: the string "true"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def identities(entity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Identities of a merged profile from `identities[]` and `identityMap`, without duplicates,
    as `{namespace, value, primary}`.

    `primary` may be a boolean or the string "true"; namespace codes are compared
    case-insensitively since Platform answers `email` where the request said `Email`.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def add(namespace: Any, value: Any, primary: Any) -> None:
        if not isinstance(namespace, str) or not namespace or value is None or value == "":
            return
        if not isinstance(value, str | int):
            return
        key = (namespace.lower(), str(value))
        seen = found.get(key)
        found[key] = {
            "namespace": seen["namespace"] if seen else namespace,
            "value": str(value),
            "primary": truthy(primary) or (seen is not None and seen["primary"]),
        }

    listed = entity.get("identities")
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, dict):
                namespace = item.get("namespace")
                code = namespace.get("code") if isinstance(namespace, dict) else namespace
                add(code, item.get("id"), item.get("primary"))
    identity_map = entity.get("identityMap")
    if isinstance(identity_map, dict):
        for code, items in identity_map.items():
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict):
                    add(code, item.get("id"), item.get("primary"))
    return list(found.values())


def memberships(entity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Audience memberships from the `segmentMembership` map (Platform audiences under `ups`),
    as `{audience_id, namespace, status, last_qualification_time, valid_until}`."""
    result: list[dict[str, Any]] = []
    segment_map = entity.get("segmentMembership")
    if not isinstance(segment_map, Mapping):
        return result
    for namespace, members in segment_map.items():
        if not isinstance(members, Mapping):
            continue
        for audience_id, info in members.items():
            if not isinstance(info, Mapping):
                continue
            status = str(info.get("status") or info.get("xdm:status") or "").lower()
            when = info.get("lastQualificationTime") or info.get("xdm:lastQualificationTime")
            until = info.get("validUntil") or info.get("xdm:validUntil")
            result.append(
                {
                    "audience_id": str(audience_id),
                    "namespace": str(namespace),
                    "status": status or "unknown",
                    "last_qualification_time": parse_timestamp(when),
                    "valid_until": parse_timestamp(until),
                }
            )
    return result


def event_facts(entity: Mapping[str, Any]) -> dict[str, Any]:
    """What a card says about one experience event, read from its XDM: the type, the products
    (None when it lists none), the order total and currency, the campaign and the page name."""
    items = entity.get("productListItems")
    products: tuple[str, ...] | None = None
    if isinstance(items, list) and items:
        products = tuple(
            str(i.get("name") or i.get("SKU") or "item") for i in items if isinstance(i, dict)
        )
    total = value_at(entity, "commerce.order.priceTotal")
    currency = value_at(entity, "commerce.order.currencyCode")
    campaign = value_at(entity, "marketing.campaignName") or value_at(
        entity, "_experience.customerJourneyManagement.messageExecution.campaignName"
    )
    page = value_at(entity, "web.webPageDetails.name")
    return {
        "event_type": str(entity.get("eventType") or ""),
        "products": products,
        "price_total": number_of(total) if isinstance(total, int | float) else None,
        "currency": str(currency) if currency else None,
        "campaign": str(campaign) if present(campaign) else None,
        "page": str(page) if present(page) else None,
    }
