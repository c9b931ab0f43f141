"""Buckets, partials, watermarks, lateness and merge idempotence (table-driven and property-based).

Time arithmetic in the lateness tests: bucket 60s, allowed lateness 300s, evaluation delay 60s,
so with latest event time M the watermark is M - 60 and the late cut-off is M - 300.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.buckets import (
    AggregationConfig,
    Counts,
    KeyBuckets,
    KeySpec,
    Partial,
    PartialBuilder,
    make_key,
    parse_key,
)
from aggregation.metrics import parse_metric, wilson_lower_bound
from aggregation.topk import TopK, normalize_reply
from alerts.evaluate import Evaluator
from alerts.rules import parse_rules
from alerts.state import AlertStateRecord
from delivery.types import Classification
from schemas.vocabulary import BounceType, Category, Outcome

OK = Classification(Outcome.DELIVERED, BounceType.NONE, Category.DELIVERED, "ok")
THROTTLED = Classification(Outcome.DEFERRED, BounceType.SOFT, Category.THROTTLED, "rate")
UNKNOWN_USER = Classification(Outcome.BOUNCED, BounceType.HARD, Category.USER_UNKNOWN, "gone")
CONFIG = AggregationConfig(bucket_seconds=60, lateness_seconds=120, retention_seconds=1800)


def test_key_strings_round_trip_and_escape() -> None:
    key = make_key("microsoft", {"tenant": "a|b=c", "source_ip": "1.2.3.4"})
    assert key == "isp=microsoft|source_ip=1.2.3.4|tenant=a%7Cb%3Dc"
    assert parse_key(key) == ("microsoft", {"source_ip": "1.2.3.4", "tenant": "a|b=c"})
    with pytest.raises(ValueError):
        KeySpec(("colour",))


def test_builder_feeds_isp_and_group_keys_only_with_the_dimension() -> None:
    builder = PartialBuilder([KeySpec(("source_ip",))], 60)
    builder.add(61.0, "gmail", OK, source_ip="1.2.3.4", partition="events:0", offset=5)
    builder.add(
        62.0, "gmail", THROTTLED, code=421, text="slow down", partition="events:0", offset=6
    )
    partials = builder.drain()
    assert set(partials) == {"isp=gmail", "isp=gmail|source_ip=1.2.3.4"}
    counts = partials["isp=gmail"].buckets[60]
    assert (counts.attempts, counts.delivered, counts.deferred, counts.soft) == (2, 1, 1, 1)
    assert partials["isp=gmail|source_ip=1.2.3.4"].buckets[60].attempts == 1
    assert partials["isp=gmail"].sources == {"events:0": [5, 6]}
    assert builder.drain() == {}


def _one(t: float, n: int, first: int, last: int) -> Partial:
    builder = PartialBuilder((), 60)
    for _ in range(n):
        builder.add(t, "gmail", THROTTLED, code=421, text="try later")
    builder.note_offset("p0", first)
    builder.note_offset("p0", last)
    return builder.drain()["isp=gmail"]


def test_merge_is_idempotent_per_offset_range_and_counts_late() -> None:
    kb = KeyBuckets("isp=gmail", CONFIG)
    first = _one(1000.0, 3, 0, 9)
    assert kb.merge(first) == 0
    assert kb.merge(first) == 0
    assert kb.window(960, 1020).attempts == 3 and kb.duplicates == 1
    # Advance the watermark well past the bucket: a later partial for it is late.
    kb.merge(_one(2000.0, 1, 10, 19))
    kb.advance(CONFIG.watermark_for(2000.0))  # the inputs' watermark, not the key's own
    assert kb.watermark == 2000 - 60  # the default evaluation delay
    assert kb.late_cutoff() == 2000 - 120
    assert kb.merge(_one(1000.0, 4, 20, 29)) == 4
    assert kb.late == 4 and kb.window(960, 1020).attempts == 3


def test_pruning_and_reply_stripping_follow_the_watermark() -> None:
    kb = KeyBuckets("isp=gmail", AggregationConfig(60, 0, 600, 120, evaluation_delay_seconds=0))
    kb.merge(_one(0.0, 1, 0, 0))
    kb.merge(_one(300.0, 1, 1, 1))
    kb.advance(300)
    assert kb.buckets[0].replies == {} and kb.buckets[300].replies
    kb.advance(700)
    assert 0 not in kb.buckets and 300 in kb.buckets


def test_key_buckets_survive_json() -> None:
    kb = KeyBuckets("isp=gmail", CONFIG)
    kb.merge(_one(1000.0, 2, 0, 1))
    restored = KeyBuckets.from_dict(json.loads(json.dumps(kb.to_dict())))
    assert restored.to_dict() == kb.to_dict()
    with pytest.raises(ValueError):
        KeyBuckets.from_dict(kb.to_dict(), AggregationConfig(bucket_seconds=300))


def test_values_stored_before_the_evaluation_delay_still_load() -> None:
    kb = KeyBuckets("isp=gmail", CONFIG)
    kb.merge(_one(1000.0, 2, 0, 1))
    old = kb.to_dict()
    old["config"] = old["config"][:5]  # bucket, lateness, retention, evidence, replies
    restored = KeyBuckets.from_dict(old)
    assert restored.config == CONFIG and restored.window(960, 1020).attempts == 2
    short = {**old, "config": [60, 30, 1800, 3600, 10]}
    # Under 1m of lateness the delay follows it, as a rules file without the setting does.
    assert KeyBuckets.from_dict(short).config.evaluation_delay_seconds == 30


def test_evaluation_delay_must_fit_in_the_lateness() -> None:
    with pytest.raises(ValueError, match="evaluation_delay_seconds"):
        AggregationConfig(60, 120, 1800, evaluation_delay_seconds=180)
    with pytest.raises(ValueError, match="evaluation_delay_seconds"):
        AggregationConfig(60, 120, 1800, evaluation_delay_seconds=-1)


# --------------------------------------------------------------------------- lateness

LATE_CONFIG = AggregationConfig(60, lateness_seconds=300, evaluation_delay_seconds=60)


def _at(t: float, partition: str, offset: int, n: int = 1) -> Partial:
    builder = PartialBuilder((), 60)
    for _ in range(n):
        builder.add(t, "gmail", THROTTLED, code=421, text="try later")
    builder.note_offset(partition, offset)
    return builder.drain()["isp=gmail"]


def test_a_bucket_is_evaluated_one_minute_after_its_end() -> None:
    kb = KeyBuckets("isp=gmail", LATE_CONFIG)
    kb.merge(_at(1000.0, "p0", 0))  # bucket [960, 1020)
    kb.merge(_at(1079.0, "p0", 1))
    kb.advance(LATE_CONFIG.watermark_for(1079.0))
    assert kb.watermark == 1019 and kb.closed_end() == 960  # 59s after its end: not yet
    kb.merge(_at(1080.0, "p0", 2))
    kb.advance(LATE_CONFIG.watermark_for(1080.0))
    assert kb.watermark == 1020 and kb.closed_end() == 1020  # 60s after: evaluated
    # The allowed lateness is still 300s: buckets from 720 on accept counts.
    assert kb.late_cutoff() == 1080 - 300


def test_counts_for_a_judged_bucket_within_the_lateness_are_merged_and_counted_reopened() -> None:
    kb = KeyBuckets("isp=gmail", LATE_CONFIG)
    kb.merge(_at(1000.0, "p0", 0), LATE_CONFIG.watermark_for(1080.0))  # judged through 1020
    assert (kb.late, kb.reopened) == (0, 1)
    kb.merge(_at(1030.0, "p0", 1, n=2))  # [1020, 1080) is not judged yet
    kb.merge(_at(800.0, "p0", 2, n=3))  # ended before the cut-off (780 + 300 > 1080 - 300)
    assert (kb.late, kb.reopened) == (0, 4)
    kb.merge(_at(700.0, "p0", 3, n=5))  # [660, 720) ended before the cut-off 780: late
    assert (kb.late, kb.reopened) == (5, 4)
    assert kb.window(960, 1020).attempts == 1 and kb.window(780, 840).attempts == 3


RULES_AT_LEAST_3 = """settings: {bucket: 1m, allowed_lateness: 5m, evaluation_delay: 1m}
rules:
  - name: busy
    type: threshold
    metric: attempts
    window: 5m
    min_attempts: 0
    value: 3
"""


def test_an_event_three_minutes_late_counts_in_the_next_evaluation() -> None:
    ruleset = parse_rules(RULES_AT_LEAST_3)
    config = ruleset.aggregation_config()
    assert (config.lateness_seconds, config.evaluation_delay_seconds) == (300, 60)
    evaluator = Evaluator(ruleset)
    kb = KeyBuckets("isp=gmail", ruleset.aggregation_config())
    states: dict[str, AlertStateRecord] = {}
    kb.merge(_at(1030.0, "p0", 0))  # bucket [1020, 1080)
    kb.merge(_at(1100.0, "p0", 1))  # bucket [1080, 1140)
    kb.merge(_at(1200.0, "p0", 2))
    kb.advance(config.watermark_for(1200.0))  # 1140
    transitions, states = evaluator.evaluate(kb, states, 1140)
    assert transitions == []  # window [840, 1140) holds 2 attempts
    # Three minutes behind the latest event: its bucket [1020, 1080) was evaluated at 1140
    # already, but ends after the cut-off (1200 - 300 = 900), so the event counts there.
    assert kb.merge(_at(1020.0, "p1", 0)) == 0
    assert kb.window(1020, 1080).attempts == 2 and kb.late == 0
    kb.merge(_at(1260.0, "p0", 3))
    kb.advance(config.watermark_for(1260.0))  # 1200
    transitions, states = evaluator.evaluate(kb, states, 1200)
    # Window [900, 1200): 1020 (the late one), 1030 and 1100; without the late event, 2.
    assert [(t.kind.value, t.attempts) for t in transitions] == [("firing", 3)]


def test_an_event_six_minutes_late_is_counted_as_late_and_in_no_bucket() -> None:
    kb = KeyBuckets("isp=gmail", LATE_CONFIG)
    kb.merge(_at(1200.0, "p0", 0))
    kb.advance(LATE_CONFIG.watermark_for(1200.0))
    assert kb.late_cutoff() == 900
    # 1200 - 360 = 840: its bucket [840, 900) ended at the cut-off.
    assert kb.merge(_at(840.0, "p1", 0, n=2)) == 2
    assert kb.late == 2 and 840 not in kb.buckets
    assert kb.window(0, 1260).attempts == 1
    # Exactly five minutes behind is still in time: bucket [900, 960) ends after the cut-off.
    assert kb.merge(_at(900.0, "p1", 1)) == 0 and kb.window(900, 960).attempts == 1


def test_a_worker_watermark_moves_the_cut_off_of_a_quiet_key() -> None:
    kb = KeyBuckets("isp=apple", LATE_CONFIG)
    builder = PartialBuilder((), 60)
    builder.add(1000.0, "apple", OK)
    kb.merge(builder.drain()["isp=apple"])
    # The worker has seen events up to 5000 (other keys): its watermark is 5000 - 60, and a
    # late event for this key is judged against 5000 - 300, as it would be for a busy key.
    kb.advance(LATE_CONFIG.watermark_for(5000.0))
    assert kb.late_cutoff() == 4700
    builder.add(4600.0, "apple", OK)  # bucket [4560, 4620): ended before 4700, late
    builder.add(4700.0, "apple", OK)  # bucket [4680, 4740): still open
    assert kb.merge(builder.drain()["isp=apple"]) == 1
    assert kb.window(4560, 4740).attempts == 1 and kb.watermark == 4940


events_strategy = st.lists(
    st.tuples(st.integers(0, 3600), st.sampled_from([OK, THROTTLED, UNKNOWN_USER])),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, cuts=st.lists(st.integers(1, 80), max_size=6), data=st.data())
def test_any_batching_and_resending_gives_the_same_buckets(
    events: list[tuple[int, Classification]], cuts: list[int], data: st.DataObject
) -> None:
    """Events sorted by time, cut into batches anyhow, some batches re-sent: same counts."""
    events = sorted(events, key=lambda e: e[0])
    config = AggregationConfig(60, 10_000, 100_000)  # nothing late: only batching varies
    bounds = sorted({0, len(events), *[c for c in cuts if c < len(events)]})
    kb = KeyBuckets("isp=gmail", config)
    for start, end in itertools.pairwise(bounds):
        builder = PartialBuilder((), 60)
        for offset in range(start, end):
            t, cls = events[offset]
            builder.add(float(t), "gmail", cls, text="x", partition="p0", offset=offset)
        partial = builder.drain()["isp=gmail"]
        kb.merge(partial)
        if data.draw(st.booleans()):
            kb.merge(partial)  # a re-send after a crash
    total = kb.window(0, 3660)
    assert total.attempts == len(events)
    assert total.hard == sum(1 for _, c in events if c is UNKNOWN_USER)
    for start in range(0, 3660, 60):
        expected = sum(1 for t, _ in events if start <= t < start + 60)
        assert kb.window(start, start + 60).attempts == expected


def test_metrics_parse_and_wilson_separates_small_from_large_samples() -> None:
    assert parse_metric("category_rate( throttled )").text == "category_rate(throttled)"
    for bad in ("category_rate", "nonsense", "category_rate(nope)", "attempts(throttled)"):
        with pytest.raises(ValueError):
            parse_metric(bad)
    assert wilson_lower_bound(3, 10) == pytest.approx(0.1078, abs=1e-3)
    assert wilson_lower_bound(300, 1000) == pytest.approx(0.2723, abs=1e-3)


def test_topk_keeps_frequent_replies_under_variable_text() -> None:
    topk = TopK(3)
    for i in range(50):
        topk.add(421, "4.7.0", f"[10.0.0.{i}] try again later id ab12cd34ef{i}")
    for i in range(5):
        topk.add(550, "5.1.1", f"user{i}@example.com unknown")
    assert normalize_reply("[10.0.0.1] x") == "[<ip>] x"
    top = topk.top(2)
    assert top[0].count == 50 and top[1].count == 5


def test_merge_stays_idempotent_for_late_and_too_late_partials() -> None:
    kb = KeyBuckets("isp=gmail", LATE_CONFIG)
    kb.merge(_at(1200.0, "p0", 0))
    kb.advance(LATE_CONFIG.watermark_for(1200.0))
    in_time, too_late = _at(1020.0, "p1", 0, n=3), _at(840.0, "p2", 0, n=2)
    assert kb.merge(in_time) == 0 and kb.merge(too_late) == 2
    before = kb.to_dict()
    # Re-sent after a crash: skipped before any counting, so neither counted nor late again.
    assert kb.merge(in_time) == 0 and kb.merge(too_late) == 0
    assert kb.duplicates == 2
    assert kb.window(1020, 1080).attempts == 3 and kb.late == 2
    assert {**kb.to_dict(), "duplicates": 0} == {**before, "duplicates": 0}


# Events in [0, 500), lateness 600: every bucket ends after any cut-off reached below, so no
# merge order makes a partial late. Retention and evidence (one bucket) are far shorter than
# the lateness, so pruning by the watermark alone would drop buckets that a partial merged
# later re-creates, and the counts would depend on the order.
ORDER_CONFIG = AggregationConfig(
    60, lateness_seconds=600, retention_seconds=60, evidence_seconds=60, evaluation_delay_seconds=60
)
partials_strategy = st.lists(
    st.lists(
        st.tuples(st.integers(0, 499), st.sampled_from([OK, THROTTLED, UNKNOWN_USER])),
        min_size=1,
        max_size=10,
    ),
    min_size=1,
    max_size=8,
)


def _counts_of(kb: KeyBuckets) -> dict[int, dict[str, Any]]:
    # Reply samples are left out: a bounded top-k may keep different texts in another order.
    return {s: {k: v for k, v in c.to_dict().items() if k != "r"} for s, c in kb.buckets.items()}


@settings(max_examples=80, deadline=None)
@given(batches=partials_strategy, data=st.data())
def test_any_merge_order_within_the_lateness_gives_the_same_buckets(
    batches: list[list[tuple[int, Classification]]], data: st.DataObject
) -> None:
    partials = []
    for index, batch in enumerate(batches):
        builder = PartialBuilder((), 60)
        for offset, (t, cls) in enumerate(batch):
            builder.add(float(t), "gmail", cls, text="x", partition=f"p{index}", offset=offset)
        partials.append(builder.drain()["isp=gmail"])
    latest = max(t for batch in batches for t, _ in batch)
    first_end = (min(t for batch in batches for t, _ in batch) // 60 + 1) * 60
    # The largest watermark whose cut-off (watermark - 540) is still before the first end.
    highest = first_end + 540 - 1
    final = data.draw(st.integers(latest - 60, highest), label="final watermark")
    results = []
    for _ in range(2):
        order = data.draw(st.permutations(partials), label="order")
        kb = KeyBuckets("isp=gmail", ORDER_CONFIG)
        for partial in order:
            # Worker-wide watermarks in between, as a live aggregator passes them.
            passed = data.draw(st.none() | st.integers(final - 600, final), label="watermark")
            assert kb.merge(partial, passed) == 0
        kb.advance(final)
        assert kb.watermark == final and kb.late == 0
        results.append(_counts_of(kb))
    assert results[0] == results[1]
    assert sum(c["a"] for c in results[0].values()) == sum(len(b) for b in batches)


def test_a_copy_of_counts_is_equal_and_shares_nothing() -> None:
    """A new bucket of a key starts as a copy of the partial's counts: merging more into
    the key must never change the partial (which a caller may still hold)."""
    throttled = Classification(
        Outcome.DEFERRED, BounceType.SOFT, Category.THROTTLED, "rate", isp_code="TSS04"
    )
    counts = Counts()
    counts.add(throttled, 421, "4.7.0", "[TSS04] Messages deferred", reply_capacity=2)
    counts.add_feedback(True, "news.example", "192.0.2.1", "spring")
    counts.add_suppression("hard_bounce", 2)
    copied = counts.copy()
    assert copied.to_dict() == counts.to_dict()
    before = json.loads(json.dumps(counts.to_dict()))
    copied.merge(counts)
    copied.add_feedback(True, "other.example")
    copied.add_suppression("complaint")
    copied.add(throttled, 421, "4.7.0", "[TSS04] other text", reply_capacity=2)
    assert counts.to_dict() == before
    assert copied.to_dict() != before
