"""Packed buckets read back exactly what was packed (aggregation/frozen.py)."""

from __future__ import annotations

import pytest

from aggregation.buckets import AggregationConfig, Counts, KeyBuckets, PartialBuilder
from aggregation.frozen import BucketMap, FrozenRun
from aggregation.topk import TopK
from delivery.types import Classification
from schemas.vocabulary import BounceType, Category, Outcome

THROTTLED = Classification(Outcome.DEFERRED, BounceType.SOFT, Category.THROTTLED, "rate")


def counts(n: int, *, complaints: int = 0) -> Counts:
    c = Counts(
        attempts=n,
        delivered=n - 3,
        deferred=2,
        bounced=1,
        soft=2,
        hard=1,
        categories={"delivered": n - 3, "throttled": 2, "user_unknown": 1},
    )
    if complaints:
        c.add_feedback(True, "news.example.com", "192.0.2.7", "spring", count=complaints)
    return c


def test_a_packed_bucket_reads_back_every_field() -> None:
    run = FrozenRun()
    tiny, small, large = counts(200, complaints=2), counts(60_000), counts(3_000_000_000)
    assert run.append(540, tiny) and run.append(600, small) and run.append(660, large)
    for start, packed in ((540, tiny), (600, small), (660, large)):  # 8-, 16- and 32-bit
        read = run.get(start)
        assert read is not None and read.to_dict() == packed.to_dict()
    assert len(run) == 3 and list(run) == [540, 600, 660]


def test_what_cannot_be_packed_exactly_is_refused() -> None:
    run = FrozenRun()
    with_replies = counts(10)
    with_replies.replies = {"throttled": TopK(3)}
    negative = counts(10)
    negative.soft = -1
    assert not run.append(0, with_replies)
    assert not run.append(0, negative)
    assert not run.append(0, counts(2**32))
    assert run.append(120, counts(5))
    assert not run.append(60, counts(5))  # before the newest packed one
    assert list(run) == [120]


def test_gaps_are_no_buckets_and_dropping_lets_go_of_the_old_end() -> None:
    run = FrozenRun()
    for minute in range(0, 300, 3):  # a bucket every third minute
        assert run.append(minute * 60, counts(minute + 10))
    assert 60 not in run and run.get(60) is None and 180 in run
    leaving = run.ending_by(200 * 60, 60)
    assert run.drop_ending_by(200 * 60, 60) == sorted(leaving)  # past half: the run compacts
    assert sorted(leaving) == [m * 60 for m in range(0, 200, 3)]
    assert leaving[180].to_dict() == counts(13).to_dict()
    assert list(run) == [m * 60 for m in range(201, 300, 3)]
    for minute in range(201, 300, 3):
        read = run.get(minute * 60)
        assert read is not None and read.to_dict() == counts(minute + 10).to_dict()
    assert run.append(300 * 60, counts(10))  # and it still takes new buckets at its end
    assert run.first_from(201 * 60 + 1) == 204 * 60 and run.first_from(10**9) is None
    assert [s for s, _ in run.between(210 * 60, 220 * 60)] == [
        210 * 60,
        213 * 60,
        216 * 60,
        219 * 60,
    ]
    assert set(run.drop_ending_by(10**9, 60)) == {m * 60 for m in range(201, 301, 3)} | {18000}
    assert len(run) == 0 and run.last_start() is None


def test_removing_from_the_middle_keeps_the_rest() -> None:
    run = FrozenRun()
    for i in range(5):
        assert run.append(i * 60, counts(i + 10, complaints=i))
    removed = run.remove(120)
    assert removed is not None and removed.to_dict() == counts(12, complaints=2).to_dict()
    assert list(run) == [0, 60, 180, 240] and len(run) == 4
    for i in (0, 1, 3, 4):
        read = run.get(i * 60)
        assert read is not None and read.to_dict() == counts(i + 10, complaints=i).to_dict()
    assert run.remove(120) is None


def test_the_map_packs_what_is_done_and_keeps_the_rest_open() -> None:
    buckets = BucketMap(60, pack_from=0)
    for i in range(6):
        c = counts(i + 10)
        c.replies = {"throttled": TopK(3)}
        buckets[i * 60] = c
    buckets[120].soft = -1  # cannot be packed: stays open, and the later ones still pack
    buckets.freeze_ending_by(240)  # the buckets at 0, 60, 120, 180
    assert buckets.packed == 3 and len(buckets) == 6
    assert all(buckets[s].replies == {} for s in (0, 60, 120, 180))
    assert buckets[240].replies and buckets[300].replies
    assert sorted(buckets) == [0, 60, 120, 180, 240, 300] and 180 in buckets
    with pytest.raises(ValueError, match="packed"):
        buckets[60] = counts(1)
    assert buckets.first_from(61) == 120 and buckets.first_from(241) == 300
    assert [s for s, _ in buckets.between(60, 241)] == [60, 180, 120, 240]  # packed, then open
    leaving = buckets.ending_by(180)
    assert sorted(buckets.drop_ending_by(180)) == sorted(leaving) == [0, 60, 120]
    assert leaving[120].soft == -1 and sorted(buckets) == [180, 240, 300]
    del buckets[180]
    assert 180 not in buckets and buckets.packed == 0


def test_a_day_of_buckets_is_packed_and_its_windows_are_unchanged() -> None:
    config = AggregationConfig(60, 300, retention_seconds=86400 + 60, evaluation_delay_seconds=60)
    kb = KeyBuckets("isp=gmail", config)
    for minute in range(26 * 60):
        builder = PartialBuilder((), 60)
        builder.add(minute * 60 + 30.0, "gmail", THROTTLED, code=421, text="slow", count=3)
        kb.merge(builder.drain()["isp=gmail"], config.watermark_for(minute * 60 + 60))
        kb.advance(config.watermark_for(minute * 60 + 60) // 60 * 60)
    assert kb.buckets.packed > 23 * 60  # all but the open hour or so
    end = kb.closed_end()
    assert end is not None
    day = kb.window(end - 86400, end)
    assert day.attempts == 3 * 1440 and day.categories == {"throttled": 3 * 1440}


def test_a_key_grown_dense_packs_what_it_left_unpacked_while_sparse() -> None:
    buckets = BucketMap(60, pack_from=4)
    for i in range(4):
        buckets[i * 60] = counts(i + 10)
    buckets.freeze_ending_by(4 * 60)  # four buckets: not more than pack_from, none packed
    assert buckets.packed == 0
    buckets[4 * 60] = counts(14)
    buckets[5 * 60] = counts(15)
    buckets.freeze_ending_by(5 * 60)  # five now: the four left open and the new one pack
    assert buckets.packed == 5 and sorted(buckets) == [0, 60, 120, 180, 240, 300]
    assert all(buckets[i * 60].to_dict() == counts(i + 10).to_dict() for i in range(6))
