"""``suppression_rate``: new suppressions over attempts, counted by the hygiene core that
decides them, the same in the worker's path (ingest -> recipients stage -> aggregation) as
in ``replay``, once per decision even when a recipients message is read twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from aggregation.aggregator import Aggregator
from aggregation.buckets import Counts, KeyBuckets, PartialBuilder
from aggregation.ingest import Chunk, Engine, IngestBatch
from aggregation.metrics import SUPPRESSION_REASONS, parse_metric
from aggregation.watermark import InputProgress, Progress, relayed
from alerts.replay import Replay
from alerts.rules import load_default_rules
from bouncewatch.commands.replay import read_observations
from hygiene.bundles import apply_bundle, decision_partials
from hygiene.core import REASONS, HygieneRules
from hygiene.observe import Bundle
from schemas.alert import AlertTransition
from streams.ingest import partials_partition
from tests.support.list_source_feed import CLEAN, STALE, list_source_feed
from tests.support.transitions import transition_keys

RULE = "new-hard-bounces-per-domain"
PARTITIONS = 3
T0 = 1_780_000_020.0


def listed(observations: list[Any]) -> Bundle:
    """A recipients message holding ``observations`` (in the first format: one list)."""
    return Bundle.from_message({"obs": observations})


# ---- the metric


def test_suppression_metrics_read_new_suppressions_over_attempts() -> None:
    counts = Counts(attempts=400)
    counts.add_suppression("hard_bounce", 6)
    counts.add_suppression("complaint", 2)
    assert parse_metric("suppression_rate").value(counts) == pytest.approx(8 / 400)
    assert parse_metric("suppression_rate(hard_bounce)").value(counts) == pytest.approx(6 / 400)
    assert parse_metric("suppression_count(complaint)").value(counts) == 2
    assert parse_metric("suppression_count(soft_bounce_streak)").value(counts) == 0
    metric = parse_metric("suppression_rate(hard_bounce)")
    assert metric.text == "suppression_rate(hard_bounce)"
    assert metric.label == "new-suppression rate (hard bounce)"
    assert metric.definition == "new suppressions (hard bounce) / delivery attempts"
    assert parse_metric("suppression_rate").label == "new-suppression rate"


def test_a_suppression_metric_names_a_known_reason() -> None:
    assert set(SUPPRESSION_REASONS) == set(REASONS)  # one vocabulary, two homes
    with pytest.raises(ValueError, match="unknown suppression reason"):
        parse_metric("suppression_rate(bounced)")


def test_counts_carry_suppressions_through_storage_merge_and_subtract() -> None:
    counts = Counts(attempts=10)
    assert "sp" not in counts.to_dict()  # omitted when zero, as every tally
    counts.add_suppression("hard_bounce", 3)
    assert counts.to_dict()["sp"] == {"hard_bounce": 3}
    assert Counts.from_dict(counts.to_dict()) == counts
    total = Counts()
    total.merge(counts)
    total.merge(counts)
    assert total.suppressions == {"hard_bounce": 6}
    total.subtract(counts)
    total.subtract(counts)
    assert total == Counts()
    copy = counts.copy(with_replies=False)
    copy.add_suppression("hard_bounce")
    assert counts.suppressions == {"hard_bounce": 3}  # shares nothing


# ---- counting in the recipients stage


def hard(key: str, t: float, domain: str = "news.example") -> list[Any]:
    labels = [None, domain, None]
    return [key, "h", t, "gmail", "user_unknown", "550 5.1.1 no such user", "gmail.com", labels]


def test_only_addresses_not_on_the_list_count_and_a_message_read_again_counts_once() -> None:
    rules = HygieneRules()
    table: dict[str, Any] = {}
    kb = KeyBuckets("isp=gmail|sending_domain=news.example")
    messages = [
        [hard("a@gmail.com", T0), hard("b@gmail.com", T0 + 1)],
        [hard("a@gmail.com", T0 + 2), hard("c@gmail.com", T0 + 3)],  # a: on the list already
    ]
    new = [["a@gmail.com", "b@gmail.com"], ["c@gmail.com"]]
    builder = PartialBuilder(load_default_rules().key_specs())
    for offset, message in enumerate(messages):
        for _ in range(2):  # read again after a crash: the table holds its writes already
            counted: list[tuple[Any, str]] = []
            apply_bundle(table, offset, listed(message), rules, counted=counted)
            assert [(obs[0], reason) for obs, reason in counted] == [
                (key, "hard_bounce") for key in new[offset]
            ]
            partials = decision_partials(builder, counted, "recipients:0", offset)
            if kb.key in partials:
                kb.merge(partials[kb.key])
    assert kb.window(int(T0) // 60 * 60, int(T0) // 60 * 60 + 60).suppressions == {"hard_bounce": 3}
    assert kb.duplicates == 2


def test_a_decision_whose_write_was_lost_counts_under_the_same_offset() -> None:
    """The table lost the decision's write (the changelog kept less than was sent): the
    message decides again and its counts come again under the same offset."""
    rules = HygieneRules()
    message = [hard("a@gmail.com", T0)]
    sent = []
    for _ in range(2):
        counted: list[tuple[Any, str]] = []
        apply_bundle({}, 7, listed(message), rules, counted=counted)
        builder = PartialBuilder(load_default_rules().key_specs())
        sent.append(decision_partials(builder, counted, "recipients:1", 7))
    assert sent[0] == sent[1]
    (partial,) = [p for k, p in sent[0].items() if "sending_domain" in k]
    assert partial.sources == {"recipients:1": [7, 7]}


def test_counts_lost_after_the_table_kept_the_decision_come_again() -> None:
    """The table kept the decision but its counts never reached Kafka: the message read
    again finds the decision's stamp in the entry (``ds``) and counts it again."""
    rules = HygieneRules()
    table: dict[str, Any] = {}
    message = [hard("a@gmail.com", T0), ["b@gmail.com", "d", T0]]
    sent = []
    for _ in range(2):
        counted: list[tuple[Any, str]] = []
        apply_bundle(table, 3, listed(message), rules, counted=counted)
        builder = PartialBuilder(load_default_rules().key_specs())
        sent.append(decision_partials(builder, counted, "recipients:0", 3))
    assert sent[0] and sent[0] == sent[1]
    # A later message's bounce to the address changes nothing and counts nothing.
    counted = []
    apply_bundle(table, 4, listed([hard("a@gmail.com", T0 + 5)]), rules, counted=counted)
    assert counted == []


def test_progress_passed_on_by_relays_waits_for_the_slowest() -> None:
    record = {"of": 1, "sources": {"events:0": [T0 + 600, False]}}
    older = {"of": 1, "sources": {"events:0": [T0, False]}}
    progress = Progress()
    progress.update(0, relayed(record, "r0", 2))
    assert progress.event_time(0) is None  # r1 has not counted anything yet
    progress.update(0, relayed(older, "r1", 2))
    assert progress.event_time(0) == T0
    progress.update(0, relayed(record, "r1", 2))
    assert progress.event_time(0) == T0 + 600


# ---- live path against replay


def hygiene_engine(hygiene: bool = True) -> Engine:
    return Engine.packaged(
        hygiene=HygieneRules() if hygiene else None, recipient_partitions=PARTITIONS
    )


class Worker:
    """The worker's stages in-process, in the order Kafka keeps: ingest chunks, each
    recipients message applied (twice: read again after a crash) with its counts and its
    relayed progress, partials merged per partials partition."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.aggregator = Aggregator(engine, {}, {})
        self.tables: list[dict[str, Any]] = [{} for _ in range(PARTITIONS)]
        self.offsets = [0] * PARTITIONS
        self.out: list[AlertTransition] = []
        self.now = time.time()
        self.inputs = InputProgress(engine.time_bounds)
        self.inputs.assign(["events:0"], self.now)

    def merge(self, partials: dict[str, Any]) -> None:
        for key, partial in partials.items():
            transitions, late = self.aggregator.merge(partials_partition(key, PARTITIONS), partial)
            self.out.extend(transitions)
            assert late == 0

    def deliver(self, chunk: Chunk) -> None:
        self.merge(chunk.partials)
        for q in range(PARTITIONS):
            self.aggregator.progress.update(q, chunk.progress)
        for p in range(PARTITIONS if self.engine.hygiene is not None else 0):
            assert self.engine.hygiene is not None
            bundle = chunk.recipients.get(p) or Bundle()
            message = Bundle.from_message(json.loads(json.dumps(bundle.message())))
            offset = self.offsets[p]
            self.offsets[p] += 1
            for _ in range(2):
                counted: list[tuple[Any, str]] = []
                apply_bundle(self.tables[p], offset, message, self.engine.hygiene, counted=counted)
                source = f"recipients:{p}"
                self.merge(decision_partials(self.engine.builder(), counted, source, offset))
            for q in range(PARTITIONS):
                self.aggregator.hygiene_progress.update(
                    q, relayed(chunk.progress, f"r{p}", PARTITIONS)
                )
        for q in range(PARTITIONS):
            self.out.extend(self.aggregator.tick(q))

    def run(self, events: list[dict[str, Any]], per_batch: int = 500) -> list[AlertTransition]:
        for i in range(0, len(events), per_batch):
            self.now += 1
            reader = IngestBatch(self.engine, self.inputs, 1, lambda: self.now)
            reader.read(json.dumps(events[i : i + per_batch]).encode(), "events:0", i)
            self.deliver(reader.flush())
        self.inputs.set_caught_up("events:0", True)
        self.now += self.inputs.idle_seconds
        self.deliver(IngestBatch(self.engine, self.inputs, 1, lambda: self.now).flush())
        return self.out


def replayed(engine: Engine, events: list[dict[str, Any]], tmp_path: Path) -> Replay:
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    observations, names, errors = read_observations(str(path), "bouncewatch", "never", engine)
    assert errors == 0
    replay = Replay(engine.rules, names)
    replay.feed(sorted(observations, key=lambda o: o.t))
    replay.finish()
    return replay


def keys_of(transitions: list[Any]) -> list[tuple[Any, ...]]:
    return transition_keys([t.model_dump(mode="json") for t in transitions])


def fired(transitions: list[AlertTransition]) -> set[str]:
    return {
        t.group.get("sending_domain", "")
        for t in transitions
        if t.rule == RULE and t.kind.value == "firing"
    }


def test_a_stale_list_fires_a_clean_one_does_not_live_and_in_replay(tmp_path: Path) -> None:
    events = list_source_feed(start=T0 - 20)
    engine = hygiene_engine()
    replay = replayed(engine, events, tmp_path)
    live = Worker(hygiene_engine()).run(events)
    assert fired(replay.result.transitions) == {STALE}
    assert keys_of(live) == keys_of(replay.result.transitions)
    # Both domains hard-bounce alike: the old rule cannot tell them apart, the new one can.
    stale = replay.table[f"isp=gmail|sending_domain={STALE}"]
    clean = replay.table[f"isp=gmail|sending_domain={CLEAN}"]
    end = stale.closed_end()
    assert end is not None
    window = (end - 3600, end)
    assert abs(stale.window(*window).hard - clean.window(*window).hard) < 40
    assert clean.window(*window).suppressed == 0  # its five addresses were suppressed at once
    assert stale.window(*window).suppressed == stale.window(*window).hard
    live_stale = Worker(hygiene_engine())
    live_stale.run(events)
    kb = live_stale.aggregator.load(f"isp=gmail|sending_domain={STALE}")
    assert kb.window(*window).suppressions == stale.window(*window).suppressions


def test_with_hygiene_off_the_rule_sees_no_suppression(tmp_path: Path) -> None:
    events = list_source_feed(minutes=30, start=T0 - 20)
    replay = replayed(hygiene_engine(hygiene=False), events, tmp_path)
    assert fired(replay.result.transitions) == set()
    assert all(kb.window(*_span(kb)).suppressed == 0 for kb in replay.table.values())
    live = Worker(hygiene_engine(hygiene=False)).run(events)
    assert keys_of(live) == keys_of(replay.result.transitions)


def _span(kb: KeyBuckets) -> tuple[int, int]:
    end = kb.closed_end() or 0
    return end - 3600, end
