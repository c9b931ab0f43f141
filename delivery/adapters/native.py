"""bouncewatch's own event: the JSON form of ``schemas.event.DeliveryEvent``.

Reference: ``schemas/event.py`` and its JSON Schema (``schemas/json/delivery-event.schema.json``).
Required: ``event_time`` (RFC 3339 with a zone) and ``recipient``; everything else optional.
Field names in errors are the event's own dotted paths (``reply.code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delivery.adapters.common import Converted, Draft, InputFormat

NAME = "bouncewatch"

ORIGIN: Mapping[str, str] = {}


def looks_like(record: Mapping[str, Any]) -> bool:
    return "event_time" in record and "recipient" in record


def convert(record: dict[str, Any]) -> Converted:
    return [Draft(record, ORIGIN)]


FORMAT = InputFormat(NAME, "json", "bouncewatch's own JSON events", looks_like, convert)
