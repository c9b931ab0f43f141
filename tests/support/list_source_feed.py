"""Two sending domains mailing Gmail at the same volume and the same hard-bounce rate: one
from a stale list whose unknown users are all new, one from a list whose hard bounces come
from a handful of addresses that bounce at every send (suppressed after the first). The
new-hard-bounce rule (``suppression_rate(hard_bounce)`` by sending domain) must fire for the
first only."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

STALE = "stale-list.example"
CLEAN = "clean-list.example"
UNKNOWN = (550, "5.1.1 The email account that you tried to reach does not exist.")
DELIVERED = (250, "2.0.0 OK")
#: Per domain and minute: 1,800 attempts an hour, above the rule's 500.
PER_MINUTE = 30
#: Share of attempts that hard-bounce, for both domains.
HARD_SHARE = 0.06


def _event(t: float, recipient: str, domain: str, reply: tuple[int, str]) -> dict[str, Any]:
    return {
        "event_time": datetime.fromtimestamp(t, UTC).isoformat(),
        "recipient": recipient,
        "sender": f"news@{domain}",
        "sending_domain": domain,
        "reply": {"code": reply[0], "text": reply[1]},
    }


def list_source_feed(minutes: int = 80, seed: int = 5, start: float | None = None) -> list[Any]:
    """The events of both domains in event-time order (``start``: a recent hour by default,
    within the worker's time bounds)."""
    rng = random.Random(seed)
    if start is None:
        start = (time.time() // 3600 - 3) * 3600
    events: list[tuple[float, dict[str, Any]]] = []
    for minute in range(minutes):
        for n in range(PER_MINUTE):
            for domain in (STALE, CLEAN):
                t = start + minute * 60 + rng.uniform(0, 59)
                if rng.random() < HARD_SHARE:
                    # stale: an address never seen; clean: one of five that always bounce
                    who = f"gone.{minute}.{n}" if domain == STALE else f"old.{n % 5}"
                    events.append((t, _event(t, f"{who}@gmail.com", domain, UNKNOWN)))
                else:
                    who = f"reader.{rng.randrange(5000)}"
                    events.append((t, _event(t, f"{who}@gmail.com", domain, DELIVERED)))
    events.sort(key=lambda e: e[0])
    return [e for _, e in events]
