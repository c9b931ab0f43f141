"""The worker's ingest and aggregate logic, run without Kafka, against the scenarios.

``IngestBatch`` and ``Aggregator`` are what the Faust agents call; here plain dicts stand in
for the tables and the partials "topic" is a list per partition, in order. Whatever the
batch size (a worker catching up reads its whole backlog in few batches), the transitions
must be exactly those each scenario's ``*.expected.json`` lists, as for the offline replay.
"""

from __future__ import annotations

import gzip
import json
import random
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregation.aggregator import Aggregator
from aggregation.ingest import Chunk, Engine, IngestBatch
from aggregation.watermark import InputProgress
from alerts.catchup import KeyState
from alerts.replay import replay
from alerts.rules import load_default_rules
from schemas.alert import AlertTransition
from tests.support.transitions import transition_keys

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"
PARTITIONS = 4


def engine() -> Engine:
    return Engine.packaged()


def messages(name: str, per_message: int) -> list[bytes]:
    events = events_of(name)
    # In event-time order, as an MTA logs them (one scenario file is written IP by IP).
    events.sort(key=lambda e: datetime.fromisoformat(e["event_time"]))
    return [
        json.dumps(events[i : i + per_message]).encode() for i in range(0, len(events), per_message)
    ]


def events_of(name: str) -> list[dict[str, Any]]:
    with gzip.open(SCENARIOS / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def closing_event(*names: str) -> dict[str, Any]:
    """One event an evaluation delay past the last bucket's end, to an ISP of its own: the
    replay of a finished file evaluates through the end of the last bucket, a live worker
    once it has read an event that much later."""
    config = load_default_rules().aggregation_config()
    last = max(
        datetime.fromisoformat(e["event_time"]).timestamp() for n in names for e in events_of(n)
    )
    end = int(last) // config.bucket_seconds * config.bucket_seconds + config.bucket_seconds
    at = datetime.fromtimestamp(end + config.evaluation_delay_seconds, UTC)
    return {
        "event_time": at.isoformat(),
        "recipient": "closing@clock.invalid",
        "reply": {"code": 250, "text": "ok"},
    }


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


class Worker:
    """One worker owning every partials partition, fed in the order Kafka would keep.

    ``inputs`` input partitions are read by one ingest (``InputProgress``) on a clock that
    starts at the wall clock and moves one second per batch.
    """

    def __init__(self, inputs: int = 1) -> None:
        self.engine = engine()
        self.buckets: dict[str, dict[str, Any] | None] = {}
        self.states: dict[str, dict[str, Any] | None] = {}
        self.aggregator = Aggregator(self.engine, self.buckets, self.states)
        self.out: list[AlertTransition] = []
        self.late = 0
        self.now = time.time()
        self.inputs = InputProgress(self.engine.time_bounds)
        self.partitions = inputs
        self.inputs.assign([f"events:{i}" for i in range(inputs)], self.now)

    def clock(self) -> float:
        return self.now

    def deliver(self, chunk: Chunk) -> None:
        # Per partition: the chunk's partials for that partition, then its progress record.
        for p in range(PARTITIONS):
            for key, partial in chunk.partials.items():
                if partition_of(key) == p:
                    transitions, late = self.aggregator.merge(p, partial)
                    self.out.extend(transitions)
                    self.late += late
            if chunk.progress:
                self.aggregator.progress.update(p, chunk.progress)
                self.out.extend(self.aggregator.tick(p))

    def tick(self) -> None:
        for p in range(PARTITIONS):
            self.out.extend(self.aggregator.tick(p))

    def batch(self) -> IngestBatch:
        self.now += 1
        return IngestBatch(self.engine, self.inputs, self.partitions, self.clock)

    def read(self, messages: list[tuple[str, int, bytes]]) -> None:
        """One ingest batch of (source, offset, payload), then a tick."""
        reader = self.batch()
        for source, offset, payload in messages:
            _, chunk = reader.read(payload, source, offset)
            if chunk is not None:
                self.deliver(chunk)
        self.deliver(reader.flush())
        self.tick()

    def run(
        self, payloads: list[bytes], batch_messages: int, offset: int = 0
    ) -> list[AlertTransition]:
        """Feed ``payloads`` as input messages of partition 0 from ``offset`` on."""
        for i in range(0, len(payloads), batch_messages):
            part = payloads[i : i + batch_messages]
            self.read([("events:0", offset + n, p) for n, p in enumerate(part)])
            offset += len(part)
        return self.out

    def finish(self) -> None:
        """Every input read to its end and idle: evaluation runs through the latest event."""
        for source in self.inputs.owned():
            self.inputs.set_caught_up(source, True)
        self.now += self.inputs.idle_seconds
        self.deliver(self.batch().flush())
        self.tick()


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
    worker.read([("events:0", 10**6, json.dumps(closing_event(name)).encode())])
    worker.finish()
    assert transition_keys(published(worker.out)) == transition_keys(expected["transitions"]), (
        expected["why"]
    )
    assert worker.late == 0


def test_a_progress_record_that_moves_the_watermark_has_its_keys_judged_without_a_tick() -> None:
    name = "gmail_throttling_burst"
    with_ticks = Worker()
    with_ticks.run(messages(name, 100), 20)
    worker = Worker()
    worker.tick = lambda: None  # type: ignore[method-assign]  # progress records alone
    worker.run(messages(name, 100), 20)
    aggregator = worker.aggregator
    judged = 0
    for p in range(PARTITIONS):
        wm = aggregator.watermark(p)
        assert wm is not None
        for key in aggregator.keys_by_partition[p]:
            next_eval = aggregator.state(key).next_eval
            assert next_eval is not None and next_eval > wm, key  # judged through it
            judged += 1
    assert judged
    assert transition_keys(published(worker.out)) == transition_keys(published(with_ticks.out))
    # Nothing left to judge at the same watermark: another call evaluates nothing.
    evaluations = aggregator.evaluations
    assert all(aggregator.tick(p) == [] for p in range(PARTITIONS))
    assert aggregator.evaluations == evaluations


def test_a_new_key_with_buckets_behind_the_watermark_is_judged_at_its_merge() -> None:
    """Passes over a partition's keys run only when the watermark crosses a bucket boundary,
    which holds only if every key is judged through the watermark at all times: also a key
    whose first attempt arrives late, in a bucket the watermark has passed."""
    worker = Worker()
    worker.tick = lambda: None  # type: ignore[method-assign]  # progress records alone
    size = worker.engine.config.bucket_seconds
    t0 = int(worker.now) // size * size - 3600

    def event(at: int, domain: str) -> bytes:
        moment = datetime.fromtimestamp(at, UTC).isoformat()
        reply = {"code": 250, "text": "ok"}
        return json.dumps(
            {"event_time": moment, "recipient": f"a@{domain}", "reply": reply}
        ).encode()

    worker.now = t0 + 600
    on_time = [("events:0", n, event(t0 + n, "gmail.com")) for n in range(0, 601, 5)]
    worker.read(on_time)
    late = t0 + 400  # 200 s late, within the allowed lateness: counted
    worker.read([("events:0", 1000, event(late, "yahoo.com"))])
    aggregator = worker.aggregator
    [key] = [k for k in aggregator.aggregation_keys() if k.startswith("isp=yahoo")]
    p = partition_of(key)
    wm = aggregator.watermark(p)
    assert wm is not None and late // size * size + size <= wm  # its bucket ends before wm
    next_eval = aggregator.state(key).next_eval
    assert next_eval is not None and next_eval > wm
    assert worker.late == 0
    assert aggregator.unjudged() == []


def test_unjudged_names_the_partitions_whose_keys_wait_for_judgement() -> None:
    worker = Worker()
    aggregator = worker.aggregator
    reader = worker.batch()
    for offset, payload in enumerate(messages("gmail_throttling_burst", 100)):
        reader.read(payload, "events:0", offset)
    chunk = reader.flush()
    for key, partial in chunk.partials.items():
        aggregator.merge(partition_of(key), partial)
    for p in range(PARTITIONS):
        aggregator.progress.update(p, chunk.progress)
    waiting = sorted(aggregator.unjudged())
    assert waiting == [p for p in range(PARTITIONS) if aggregator.watermark(p) is not None]
    assert waiting
    for p in waiting[:1]:
        aggregator.tick(p)
    assert sorted(aggregator.unjudged()) == waiting[1:]
    for p in waiting[1:]:
        aggregator.tick(p)
    assert aggregator.unjudged() == []


def test_held_states_wait_for_their_transitions_to_be_published() -> None:
    """The worker holds evaluated states until their transitions are acknowledged: a crash
    before that recovers the states before them, which evaluate to the same transitions."""
    worker = Worker()
    aggregator = worker.aggregator = Aggregator(
        worker.engine, worker.buckets, worker.states, hold_states=True
    )
    first = list(worker.run(messages("gmail_throttling_burst", 100), 20))
    assert first, "the scenario fires"
    assert worker.states == {}, "nothing written before write_held"
    # Killed before the acknowledgement: what the tables hold is evaluated again.
    aggregator.reindex()
    again = [t for p in range(PARTITIONS) for t in aggregator.tick(p)]
    assert transition_keys(published(again)) == transition_keys(published(first))
    aggregator.write_held()
    assert worker.states
    aggregator.reindex()
    assert [t for p in range(PARTITIONS) for t in aggregator.tick(p)] == []


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
    before = dict(worker.buckets)
    worker.deliver(chunk)  # re-sent after a crash, before the input offsets were committed
    assert worker.buckets == before
    assert before  # bucket entries were written at all
    assert worker.aggregator.duplicates == len(chunk.partials)


def test_a_merge_whose_last_table_writes_were_lost_is_completed_once_read_again() -> None:
    """A crash keeps a prefix of a merge's table writes: the partial, read again after the
    restart, fills in the buckets that lost theirs and counts none of the others twice."""
    payloads = messages("gmail_throttling_burst", 100)
    whole = Worker()
    whole.run(payloads, 20)
    first = Worker()
    first.run(payloads[:60], 20)
    before = dict(first.buckets)
    reader = first.batch()
    for offset, payload in enumerate(payloads[60:80], start=60):
        reader.read(payload, "events:0", offset)
    chunk = reader.flush()
    first.deliver(chunk)
    written = [name for name in first.buckets if first.buckets[name] != before.get(name)]
    assert len(written) > 4, "the batch touches several buckets of several keys"
    # What reached the changelog: every write but the last three.
    restored = dict(first.buckets)
    for name in written[-3:]:
        if name in before:
            restored[name] = before[name]
        else:
            del restored[name]
    second = Worker()
    second.buckets.update(restored)
    second.states.update(first.states)
    second.aggregator.reindex()
    second.inputs, second.now, second.out = first.inputs, first.now, list(first.out)
    second.deliver(chunk)  # read again: the aggregate's offsets were not committed
    assert second.aggregator.repaired >= 1
    assert second.buckets == first.buckets
    second.deliver(chunk)  # and once more: nothing left to repair
    assert second.buckets == first.buckets
    second.run(payloads[80:], 20, offset=80)
    assert transition_keys(published(second.out)) == transition_keys(published(whole.out))


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


def keyless_partitions(
    events: list[dict[str, Any]], partitions: int, rng: random.Random
) -> list[list[bytes]]:
    """``events`` as a producer without keys writes them: in runs of a few to a few hundred
    messages per partition (a sticky partitioner's batches), one event per message."""
    out: list[list[bytes]] = [[] for _ in range(partitions)]
    i = 0
    while i < len(events):
        run = rng.randint(5, 300)
        target = out[rng.randrange(partitions)]
        target.extend(json.dumps(e).encode() for e in events[i : i + run])
        i += run
    return out


def jittered(
    events: list[dict[str, Any]], seconds: int, rng: random.Random
) -> list[dict[str, Any]]:
    """In time order within ``seconds`` of jitter, as several MTA hosts write one topic."""

    def when(e: dict[str, Any]) -> float:
        return datetime.fromisoformat(e["event_time"]).timestamp() + rng.uniform(0, seconds)

    return sorted(events, key=when)


ALL = [n for n in NAMES if n != "low_volume_isp"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_skewed_backlog_over_eight_partitions_counts_nothing_late_and_matches_replay(
    seed: int,
) -> None:
    """Eight input partitions written without keys, read as a worker catching up reads a
    backlog: partitions at very different speeds, some not at all for a while, batches of
    any size. Every event counts and the transitions are the offline replay's."""
    rng = random.Random(seed)
    events = jittered([e for n in ALL for e in events_of(n)], 40, rng)
    events.append(closing_event(*ALL))
    parts = keyless_partitions(events, 8, rng)
    want = replay_of(events)
    worker = Worker(inputs=8)
    positions = [0] * 8
    # Partition speeds differ tenfold; partition 7 is not read until the others are half done.
    speeds = [rng.randint(20, 400) for _ in range(8)]
    while any(positions[p] < len(parts[p]) for p in range(8)):
        batch: list[tuple[str, int, bytes]] = []
        half_done = sum(positions) >= sum(map(len, parts)) // 2
        for p in rng.sample(range(8), rng.randint(1, 8)):
            if p == 7 and not half_done:
                continue
            n = rng.randint(0, speeds[p])
            for offset in range(positions[p], min(positions[p] + n, len(parts[p]))):
                batch.append((f"events:{p}", offset, parts[p][offset]))
            positions[p] = min(positions[p] + n, len(parts[p]))
            worker.inputs.set_caught_up(f"events:{p}", positions[p] == len(parts[p]))
        worker.read(batch)
    worker.finish()
    assert worker.late == 0
    assert transition_keys(published(worker.out)) == want
    assert len(want) > 10  # the scenarios alert at all


def test_a_restart_in_the_middle_of_a_backlog_changes_nothing() -> None:
    """The first worker reads part of the backlog and stops; a second one, on the tables the
    first left (what the changelog restores) and from the committed offsets, reads the rest."""
    rng = random.Random(7)
    events = jittered([e for n in ALL for e in events_of(n)], 40, rng)
    events.append(closing_event(*ALL))
    parts = keyless_partitions(events, 8, rng)
    want = replay_of(events)
    first = Worker(inputs=8)
    cut = [len(part) * rng.randint(1, 9) // 10 for part in parts]
    for p in range(8):
        first.read([(f"events:{p}", o, parts[p][o]) for o in range(cut[p])])
    second = Worker(inputs=8)
    second.buckets.update(first.buckets)
    second.states.update(first.states)
    second.aggregator.reindex()
    second.out = list(first.out)
    second.late = first.late
    for p in reversed(range(8)):
        rest = range(cut[p], len(parts[p]))
        for start in range(rest.start, rest.stop, 500):
            stop = min(start + 500, rest.stop)
            second.inputs.set_caught_up(f"events:{p}", stop == rest.stop)
            second.read([(f"events:{p}", o, parts[p][o]) for o in range(start, stop)])
    second.finish()
    assert second.late == 0
    assert transition_keys(published(second.out)) == want


def replay_of(events: list[dict[str, Any]]) -> list[Any]:
    from delivery.adapters import decode_message
    from delivery.classify import default_classifier as classifier
    from delivery.isp import default_resolver

    decoded = [e for event in events for e in decode_message(json.dumps(event).encode()).events]
    result = replay(decoded, load_default_rules(), classifier(), default_resolver())
    return transition_keys(published(result.transitions))
