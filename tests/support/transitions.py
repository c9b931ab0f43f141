"""Alert transitions reduced to what a scenario's expectation names, for comparing them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

#: (event time to the second, rule, ISP, group as sorted JSON, kind, severity).
Key = tuple[str, str, str, str, str, str]


def transition_key(t: dict[str, Any]) -> Key:
    """The key of one transition as published (JSON) or expected in a scenario file."""
    when = datetime.fromisoformat(t["event_time"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    group = json.dumps(t.get("group", {}), sort_keys=True)
    return (when, t["rule"], t["isp"], group, t["kind"], t["severity"])


def transition_keys(transitions: Iterable[dict[str, Any]]) -> list[Key]:
    """The keys of ``transitions``, sorted: equal lists mean the same transitions."""
    return sorted(transition_key(t) for t in transitions)
