"""The worker's ingest and aggregate logic, run without Kafka, against the scenarios.

``IngestBatch`` and ``Aggregator`` are what the Faust agents call; here plain dicts stand in
for the tables and the partials "topic" is a list per partition, in order. Whatever the
batch size (a worker catching up reads its whole backlog in few batches), the transitions
must be exactly those each scenario's ``*.expected.json`` lists, as for the offline replay.
"""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.rules import load_default_rules
from delivery.classify import default_classifier
from delivery.isp import load_resolver
from schemas.alert import AlertTransition
from streams.engine import Aggregator, BatchTally, Chunk, Engine, IngestBatch, KeyState
from tests.support.transitions import transition_keys

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"
PARTITIONS = 4


def engine() -> Engine:
    return Engine(
        rules=load_default_rules(), classifier=default_classifier(), resolver=load_resolver(None)
    )


def messages(name: str, per_message: int) -> list[bytes]:
    with gzip.open(SCENARIOS / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    # In event-time order, as an MTA logs them (one scenario file is written IP by IP).
    events.sort(key=lambda e: datetime.fromisoformat(e["event_time"]))
    return [
        json.dumps(events[i : i + per_message]).encode() for i in range(0, len(events), per_message)
    ]


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


class Worker:
    """One worker owning every partials partition, fed in the order Kafka would keep."""

    def __init__(self) -> None:
        self.engine = engine()
        self.buckets: dict[str, dict[str, Any] | None] = {}
        self.states: dict[str, dict[str, Any] | None] = {}
        self.aggregator = Aggregator(self.engine, self.buckets, self.states)
        self.out: list[AlertTransition] = []

    def deliver(self, chunk: Chunk) -> None:
        # Per partition: the chunk's partials for that partition, then its progress record.
        for p in range(PARTITIONS):
            for key, partial in chunk.partials.items():
                if partition_of(key) == p:
                    transitions, _ = self.aggregator.merge(p, partial)
                    self.out.extend(transitions)
            if chunk.progress:
                self.aggregator.progress.update(p, chunk.progress)

    def tick(self) -> None:
        for p in range(PARTITIONS):
            self.out.extend(self.aggregator.tick(p))

    def run(
        self, payloads: list[bytes], batch_messages: int, offset: int = 0
    ) -> list[AlertTransition]:
        """Feed ``payloads`` as input messages from ``offset`` on."""
        for i in range(0, len(payloads), batch_messages):
            reader = IngestBatch(self.engine)
            for payload in payloads[i : i + batch_messages]:
                _, chunk = reader.read(payload, "events:0", offset)
                offset += 1
                if chunk is not None:
                    self.deliver(chunk)
            self.deliver(reader.flush())
            self.tick()
        return self.out


def published(transitions: list[AlertTransition]) -> list[dict[str, Any]]:
    out = []
    for t in transitions:
        d = t.model_dump(mode="json")
        d["event_time"] = t.event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(d)
    return out


NAMES = sorted(p.name.split(".")[0] for p in SCENARIOS.glob("*.expected.json"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("per_message", "batch_messages"), [(1, 2000), (200, 2000), (100, 10)])
def test_worker_logic_matches_the_scenario(
    name: str, per_message: int, batch_messages: int
) -> None:
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    worker = Worker()
    worker.run(messages(name, per_message), batch_messages)
    # The live worker evaluates through the end of the last bucket once an event one
    # evaluation delay later arrives; here a last progress record says the same.
    last = max(t for t in worker.aggregator.progress._sources[0].values())
    size = worker.engine.config.bucket_seconds
    delay = worker.engine.config.evaluation_delay_seconds
    closing = {"events:0": float((int(last) // size + 1) * size + delay)}
    worker.deliver(Chunk({}, closing, BatchTally()))
    worker.tick()
    assert transition_keys(published(worker.out)) == transition_keys(expected["transitions"]), (
        expected["why"]
    )


def test_a_recovered_worker_continues_as_if_it_had_never_stopped() -> None:
    """Tables alone (what the changelog restores) carry the state: a fresh aggregator
    over them, fed the rest, finds exactly the transitions of one that never stopped."""
    payloads = messages("gmail_throttling_burst", 100)
    whole = Worker().run(payloads, 20)
    first = Worker()
    first.run(payloads[:90], 20)
    second = Worker()
    second.buckets.update(first.buckets)
    second.states.update(first.states)
    second.aggregator.reindex()
    second.out = list(first.out)
    second.run(payloads[90:], 20, offset=90)  # Kafka offsets go on across a restart
    assert transition_keys(published(second.out)) == transition_keys(published(whole))


def test_a_partial_sent_twice_is_merged_once() -> None:
    worker = Worker()
    reader = IngestBatch(worker.engine)
    for offset, payload in enumerate(messages("low_volume_isp", 100)[:5]):
        reader.read(payload, "events:0", offset)
    chunk = reader.flush()
    worker.deliver(chunk)
    before = {k: v for k, v in worker.buckets.items() if not k.endswith("@meta")}
    worker.deliver(chunk)  # re-sent after a crash, before the input offsets were committed
    assert {k: v for k, v in worker.buckets.items() if not k.endswith("@meta")} == before
    assert before  # bucket entries were written at all
    assert worker.aggregator.duplicates == len(chunk.partials)


def firing_in(states: dict[str, dict[str, Any] | None]) -> dict[tuple[str, str], int]:
    """Firing alerts by (rule, severity), read from every stored state."""
    counts: dict[tuple[str, str], int] = {}
    for value in states.values():
        for r in KeyState.from_dict(value).active():
            labels = (r.rule, str(r.severity or ""))
            counts[labels] = counts.get(labels, 0) + 1
    return counts


def test_the_firing_count_follows_the_states_through_firing_resolving_and_recovery() -> None:
    payloads = messages("incident_recovers", 100)
    worker = Worker()
    seen_firing = False
    for i in range(0, len(payloads), 20):
        worker.run(payloads[i : i + 20], 20, offset=i)
        assert worker.aggregator.firing_counts() == firing_in(worker.states)
        seen_firing = seen_firing or bool(worker.aggregator.firing_counts())
        recovered = Worker()
        recovered.states.update(worker.states)
        recovered.aggregator.reindex()
        assert recovered.aggregator.firing_counts() == firing_in(worker.states)
    assert seen_firing
    assert worker.aggregator.firing_counts() == {}  # the incident resolved
