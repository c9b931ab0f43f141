"""Feeds as real MTAs write them: KumoMTA records, several hosts' clocks, no message keys."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

_TYPES = {"delivered": "Delivery", "deferred": "TransientFailure", "bounced": "Bounce"}


def _enhanced(code: str | None) -> dict[str, int] | None:
    if not code:
        return None
    cls, subject, detail = (int(p) for p in code.split("."))
    return {"class": cls, "subject": subject, "detail": detail}


def kumomta_record(event: dict[str, Any]) -> dict[str, Any]:
    """A scenario event (our own format) as the KumoMTA log record that would carry it."""
    reply = event["reply"]
    when = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp()
    status = event.get("status") or (
        "delivered" if reply["code"] < 400 else "deferred" if reply["code"] < 500 else "bounced"
    )
    record: dict[str, Any] = {
        "type": _TYPES[status],
        "id": (event.get("message_id") or "").strip("<>").split("@")[0] or "0",
        "sender": event.get("sender"),
        "recipient": event["recipient"],
        "queue": event["recipient"].rpartition("@")[2],
        "response": {
            "code": reply["code"],
            "enhanced_code": _enhanced(reply.get("enhanced")),
            "content": reply.get("text", ""),
        },
        "timestamp": when,
        "num_attempts": 1,
    }
    if event.get("source_ip"):
        record["source_address"] = {"address": f"{event['source_ip']}:25000"}
    return record


def jittered(events: list[dict[str, Any]], seconds: float, seed: int) -> list[dict[str, Any]]:
    """``events`` in time order within ``seconds`` of jitter, as several hosts log them."""
    rng = random.Random(seed)

    def when(event: dict[str, Any]) -> float:
        t = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp()
        return t + rng.uniform(0, seconds)

    return sorted(events, key=when)


def produce_keyless(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    """One message per payload, no key: the client's sticky partitioner spreads batches of
    them over every partition, as an MTA's log shipper does."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=16_384)
    try:
        for payload in payloads:
            producer.send(topic, payload)
        producer.flush()
    finally:
        producer.close()


def produce_in_slices(
    bootstrap: str, topic: str, payloads: list[bytes], pause: float, slices: int = 20
) -> None:
    """``produce_keyless`` in ``slices`` parts, ``pause`` seconds apart: a feed that arrives
    while a test kills and restarts the worker."""
    step = max(1, len(payloads) // slices)
    for start in range(0, len(payloads), step):
        produce_keyless(bootstrap, topic, payloads[start : start + step])
        time.sleep(pause)


def as_messages(records: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r).encode() for r in records]


SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"


def kumomta_feed(names: list[str], seed: int) -> list[dict[str, Any]]:
    """The named scenarios as KumoMTA records, jittered by 40 s, and a closing record.

    The offline replay evaluates through the end of the last bucket of a finished file; a
    live worker gets there once every partition is idle and the latest event is that far
    on: the closing record, to an ISP of its own, is that far on.
    """
    from alerts.rules import load_default_rules
    from tests.support.kafka_io import read_jsonl

    config = load_default_rules().aggregation_config()
    events = [e for name in names for e in read_jsonl(SCENARIOS / f"{name}.jsonl.gz")]
    records = [kumomta_record(e) for e in jittered(events, 40, seed=seed)]
    last = max(r["timestamp"] for r in records)
    size = config.bucket_seconds
    closing = {**records[-1], "recipient": "closing@clock.invalid", "type": "Delivery"}
    closing["timestamp"] = (int(last) // size + 1) * size + config.evaluation_delay_seconds
    closing["response"] = {"code": 250, "enhanced_code": None, "content": "ok"}
    return [*records, closing]
