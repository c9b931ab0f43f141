"""``evaluate_through`` jumps over quiet stretches and finds what stepping through every
bucket boundary finds; a file with a wrong clock replays as quickly as one without."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.buckets import KeyBuckets, PartialBuilder
from alerts.catchup import KeyState, evaluate_through
from alerts.evaluate import Evaluator
from alerts.rules import load_default_rules, parse_rules
from bouncewatch.cli import main
from delivery.types import Classification
from schemas.alert import AlertTransition
from schemas.vocabulary import BounceType, Category, Outcome

OK = Classification(Outcome.DELIVERED, BounceType.NONE, Category.DELIVERED, "ok")
DEFER = Classification(Outcome.DEFERRED, BounceType.SOFT, Category.THROTTLED, "rate", "TS01")
#: Two rules on one metric; the late variant below gives the spike rule a longer window and a
#: higher guard than the threshold rule, so that they fall asleep at different volumes.
RULES_YAML = """\
settings: {{bucket: 1m, allowed_lateness: {lateness}, repeat_interval: 10m}}
rules:
  - name: defer
    type: threshold
    metric: deferral_rate
    window: 5m
    min_attempts: 20
    for: 2m
    severities: {{warning: 0.1, critical: 0.3}}
  - name: defer-spike
    type: spike
    metric: deferral_rate
    window: {spike_window}
    baseline: {{period: 30m, aggregate: median}}
    factor: 2
    severity: warning
    min_delta: 0.05
    min_attempts: {spike_min}
    min_baseline_attempts: 20
"""
RULES = parse_rules(RULES_YAML.format(lateness=0, spike_window="5m", spike_min=20))
SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"


def stepping(evaluator: Evaluator, kb: KeyBuckets, watermark: int) -> list[AlertTransition]:
    """The reference: every boundary from the first bucket's end, one by one."""
    size = kb.config.bucket_seconds
    records: dict[str, Any] = {}
    out: list[AlertTransition] = []
    boundary = min(kb.buckets) + size
    while boundary <= watermark:
        kb.advance(boundary)
        found, records = evaluator.evaluate(kb, records, boundary)
        out.extend(found)
        boundary += size
    return out


def buckets(minutes: dict[int, tuple[int, int]]) -> KeyBuckets:
    kb = KeyBuckets("isp=gmail", RULES.aggregation_config())
    builder = PartialBuilder(RULES.key_specs(), 60)
    for minute, (ok, deferred) in minutes.items():
        for i in range(ok + deferred):
            cls = DEFER if i < deferred else OK
            builder.add(minute * 60 + 1.0, "gmail", cls, code=421, text="try later")
    kb.merge(builder.drain()["isp=gmail"])
    return kb


# Bursts of traffic separated by quiet stretches of any length, some far longer than any
# window the rules read.
bursts = st.lists(
    st.tuples(
        st.integers(1, 2000),  # quiet minutes before the burst
        st.lists(st.tuples(st.integers(1, 60), st.integers(0, 40)), min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(bursts=bursts, tail=st.integers(0, 300), cuts=st.lists(st.integers(1, 9), max_size=4))
def test_jumping_finds_what_stepping_finds(
    bursts: list[tuple[int, list[tuple[int, int]]]], tail: int, cuts: list[int]
) -> None:
    minutes: dict[int, tuple[int, int]] = {}
    minute = 0
    for quiet, burst in bursts:
        minute += quiet
        for counts in burst:
            minutes[minute] = counts
            minute += 1
    watermark = (minute + tail) * 60
    evaluator = Evaluator(RULES)
    want = stepping(evaluator, buckets(minutes), watermark)
    # Evaluated through in a few calls, as ticks would, with jumps inside each.
    kb, state = buckets(minutes), KeyState()
    got: list[AlertTransition] = []
    for cut in sorted(cuts):
        got += evaluate_through(evaluator, kb, state, watermark * cut // 10 // 60 * 60)
    got += evaluate_through(evaluator, kb, state, watermark)
    assert [t.model_dump() for t in got] == [t.model_dump() for t in want]
    assert state.next_eval == watermark + 60
    assert evaluate_through(evaluator, kb, state, watermark) == []


def test_a_century_of_silence_costs_one_step() -> None:
    kb = buckets({0: (50, 0), 60 * 24 * 365 * 100: (50, 40)})
    state = KeyState()
    evaluate_through(Evaluator(RULES), kb, state, 60 * 24 * 365 * 100 * 60 + 600)
    assert state.next_eval == 60 * 24 * 365 * 100 * 60 + 660


def replay_lines(path: Path, capsys: Any) -> tuple[list[Any], str]:
    assert main(["replay", str(path), "--output", "jsonl", "--progress", "never"]) == 0
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_replay_refuses_wrong_clocks_and_keeps_its_transitions(tmp_path: Path, capsys: Any) -> None:
    with gzip.open(SCENARIOS / "gmail_throttling_burst.jsonl.gz", "rt") as fh:
        lines = fh.read().splitlines()
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(lines) + "\n")
    want, _ = replay_lines(clean, capsys)
    assert want
    event = json.loads(lines[len(lines) // 2])
    future = json.dumps({**event, "event_time": "2100-01-01T00:00:00+00:00"})
    past = json.dumps({**event, "event_time": "1970-01-01T00:00:00+00:00"})
    middle = len(lines) // 2
    # One record from a host whose clock is decades off, in the middle; one at the start.
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("\n".join([past, *lines[:middle], future, past, *lines[middle:]]) + "\n")
    got, err = replay_lines(wrong, capsys)
    assert "ahead of the clock" in err and "behind its input's progress" in err
    assert got == want
    assert load_default_rules()  # the default rules are what both runs used


LATE_RULES = parse_rules(RULES_YAML.format(lateness="5m", spike_window="10m", spike_min=30))

# Each tick: counts arriving (minutes before the tick's event time, ok, deferred), some late
# (older than the watermark), some ahead of it, then the watermark moving on.
ticks = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(-2, 9), st.integers(0, 30), st.integers(0, 30)), max_size=4),
        st.integers(1, 40),  # minutes the event time moves on
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=120, deadline=None)
@given(ticks=ticks)
def test_sleeping_keys_find_what_evaluating_every_boundary_finds_as_counts_arrive(
    ticks: list[tuple[list[tuple[int, int, int]], int]],
) -> None:
    """Counts merged between evaluations, late ones among them and ones ahead of the
    watermark, wake a sleeping key at the right boundary: the same transitions as a key
    evaluated at every boundary."""
    config = LATE_RULES.aggregation_config()
    evaluator = Evaluator(LATE_RULES)
    sleeper, stepped = (KeyBuckets("isp=gmail", config) for _ in range(2))
    state = KeyState()
    records: dict[str, Any] = {}
    got: list[AlertTransition] = []
    want: list[AlertTransition] = []
    next_step: int | None = None
    now = 600 * 60
    for arrivals, minutes in ticks:
        watermark = config.watermark_for(now)
        builder = PartialBuilder(LATE_RULES.key_specs(), 60)
        for ago, ok, deferred in arrivals:
            for i in range(ok + deferred):
                cls = DEFER if i < deferred else OK
                builder.add(now - ago * 60 - 30.0, "gmail", cls, code=421, text="try later")
        for partial in builder.drain().values():
            sleeper.merge(partial, watermark)
            stepped.merge(partial, watermark)
        now += minutes * 60
        watermark = config.watermark_for(now)
        got += evaluate_through(evaluator, sleeper, state, watermark)
        if next_step is None and stepped.buckets:
            next_step = min(stepped.buckets) + 60
        while next_step is not None and next_step <= watermark:
            stepped.advance(next_step)
            found, records = evaluator.evaluate(stepped, records, next_step)
            want += found
            next_step += 60
        # Asleep or not, the key is judged through the watermark (what /status reads).
        assert sleeper.watermark == stepped.watermark
    assert [t.model_dump() for t in got] == [t.model_dump() for t in want]


def test_a_sleeping_key_lets_its_buckets_go() -> None:
    kb = buckets({0: (5, 1)})
    state = KeyState()
    evaluate_through(Evaluator(RULES), kb, state, 60 * 60 * 24 * 7)
    assert state.sleep is not None
    assert not kb.buckets
