"""Buckets, partials, watermarks and merge idempotence (table-driven and property-based)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.buckets import (
    AggregationConfig,
    KeyBuckets,
    KeySpec,
    Partial,
    PartialBuilder,
    make_key,
    parse_key,
)
from aggregation.metrics import parse_metric, wilson_lower_bound
from aggregation.topk import TopK, normalize_reply
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
    assert kb.watermark == 2000 - 120
    assert kb.merge(_one(1000.0, 4, 20, 29)) == 4
    assert kb.late == 4 and kb.window(960, 1020).attempts == 3


def test_pruning_and_reply_stripping_follow_the_watermark() -> None:
    kb = KeyBuckets("isp=gmail", AggregationConfig(60, 0, 600, 120))
    kb.merge(_one(0.0, 1, 0, 0))
    kb.merge(_one(300.0, 1, 1, 1))
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
