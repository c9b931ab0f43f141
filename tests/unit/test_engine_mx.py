"""The worker's ISP resolution with MX lookups on (``BOUNCEWATCH_MX_LOOKUP``)."""

from __future__ import annotations

import json
import time
from collections import Counter

from aggregation.ingest import Engine, IngestBatch
from delivery.mx_lookup import MxCache

OUTLOOK_MX = "example-corp-com.mail.protection.outlook.com"


def message(*recipients: str) -> bytes:
    return json.dumps(
        [
            {
                "event_time": "2026-03-02T08:00:00Z",
                "recipient": r,
                "reply": {"code": 250, "text": "ok"},
            }
            for r in recipients
        ]
    ).encode()


def counted_by_isp(engine: Engine, payload: bytes) -> Counter[str]:
    batch = IngestBatch(engine)
    batch.read(payload, "events:0", 0)
    return Counter({isp: n for (_, _, isp), n in batch.flush().tally.events.items()})


def test_an_unknown_domain_counts_under_its_mx_once_the_lookup_lands() -> None:
    asked: list[str] = []

    def lookup(domain: str) -> list[tuple[int, str]]:
        asked.append(domain)
        return [(10, OUTLOOK_MX)] if domain == "example-corp.com" else []

    with MxCache(lookup=lookup) as cache:
        engine = Engine.packaged(mx_cache=cache)
        # The lookup runs in the background: the first event does not wait for it.
        first = counted_by_isp(engine, message("a@example-corp.com", "b@gmail.com"))
        assert first == Counter({"other": 1, "gmail": 1})
        deadline = time.monotonic() + 5
        while cache.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        later = counted_by_isp(
            engine, message("c@example-corp.com", "d@Example-Corp.com.", "e@gmail.com")
        )
        assert later == Counter({"microsoft": 2, "gmail": 1})
        # Known domains are never looked up; the unknown one once.
        assert asked == ["example-corp.com"]


def test_without_mx_lookup_an_unknown_domain_stays_unknown() -> None:
    engine = Engine.packaged()
    assert counted_by_isp(engine, message("a@example-corp.com")) == Counter({"other": 1})
    assert counted_by_isp(engine, message("a@example-corp.com")) == Counter({"other": 1})
