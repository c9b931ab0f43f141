"""Sliding window sums equal summing the buckets, whatever merges, late counts and pruning
happen between two evaluations (aggregation/windows.py)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.buckets import AggregationConfig, Counts, KeyBuckets, PartialBuilder
from aggregation.frozen import BucketMap
from delivery.types import Classification
from schemas.vocabulary import BounceType, Category, Outcome

OK = Classification(Outcome.DELIVERED, BounceType.NONE, Category.DELIVERED, "ok")
THROTTLED = Classification(Outcome.DEFERRED, BounceType.SOFT, Category.THROTTLED, "rate")
FULL = Classification(Outcome.BOUNCED, BounceType.SOFT, Category.MAILBOX_FULL, "full")
KINDS = (OK, THROTTLED, FULL)
CONFIG = AggregationConfig(
    60,
    lateness_seconds=300,
    retention_seconds=1800,
    evaluation_delay_seconds=60,
    evidence_seconds=600,  # buckets packed well before they go
)
#: The same, but no bucket is ever packed: the reference the packed buckets must equal.
UNPACKED = dataclasses.replace(CONFIG, evidence_seconds=10**9)
#: Window lengths a rule set might read (minutes).
LENGTHS = (1, 5, 10, 15, 30)


def summed(kb: KeyBuckets, start: int, end: int) -> Counts:
    total = Counts()
    for s in range(start, end, 60):
        counts = kb.buckets.get(s)
        if counts is not None:
            total.merge(counts, with_replies=False)
    return total


def same(a: Counts, b: Counts) -> bool:
    return (a.attempts, a.delivered, a.deferred, a.bounced, a.soft, a.hard, a.categories) == (
        b.attempts,
        b.delivered,
        b.deferred,
        b.bounced,
        b.soft,
        b.hard,
        b.categories,
    )


step = st.tuples(
    # events this step, as (seconds before the step's time, kind) pairs
    st.lists(st.tuples(st.integers(0, 420), st.sampled_from(range(len(KINDS)))), max_size=6),
    st.integers(1, 4),  # minutes the evaluation moves on
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=60))
def test_sliding_sums_and_packed_buckets_equal_summing_and_unpacked_ones(
    steps: list[tuple[list[tuple[int, int]], int]],
) -> None:
    kb = KeyBuckets("isp=gmail", CONFIG)
    kb.buckets = BucketMap(60, pack_from=0)  # pack whatever is done, however few
    unpacked = KeyBuckets("isp=gmail", UNPACKED)
    now = 3600
    for events, minutes in steps:
        builder = PartialBuilder((), 60)
        for ago, kind in events:
            builder.add(float(now - ago), "gmail", KINDS[kind], code=421, text="t")
        for partial in builder.drain().values():
            kb.merge(partial, CONFIG.watermark_for(now))
            unpacked.merge(partial, CONFIG.watermark_for(now))
        now += 60 * minutes
        boundary = (CONFIG.watermark_for(now) // 60) * 60
        kb.advance(boundary)
        unpacked.advance(boundary)
        assert {s: c.copy(with_replies=False).to_dict() for s, c in kb.buckets.items()} == {
            s: c.copy(with_replies=False).to_dict() for s, c in unpacked.buckets.items()
        }
        for length in LENGTHS:
            for back in (0, 15):  # the window itself, and one a baseline reads
                end = boundary - back * 60
                start = end - length * 60
                assert same(kb.window(start, end), summed(kb, start, end)), (length, back)


def test_the_sum_handed_out_is_the_callers_own() -> None:
    kb = KeyBuckets("isp=gmail", CONFIG)
    builder = PartialBuilder((), 60)
    builder.add(3610.0, "gmail", THROTTLED, code=421, text="t")
    kb.merge(builder.drain()["isp=gmail"])
    first = kb.window(3600, 3660)
    first.merge(first)  # a caller adding to what it got
    assert kb.window(3600, 3660).attempts == 1


def test_subtract_and_copy_know_every_field_of_counts() -> None:
    """A field added to Counts and forgotten in ``subtract`` or ``copy`` would
    make sliding sums drift from summed ones."""
    counts = Counts()
    for n, f in enumerate(dataclasses.fields(Counts), start=2):
        if f.name == "replies":
            continue
        kind = str(f.type).replace(" ", "")
        assert kind in ("int", "dict[str,int]"), f"{f.name}: {kind}: teach Counts.subtract"
        setattr(counts, f.name, n if kind == "int" else {f.name: n})
    copy = counts.copy(with_replies=False)
    assert copy == counts and copy.categories is not counts.categories
    total = Counts()
    total.merge(counts, with_replies=False)
    total.merge(counts, with_replies=False)
    total.subtract(counts)
    assert total == counts
    total.subtract(counts)
    assert total == Counts()
