"""The numbers behind the report's charts, computed from the replayed observations.

The replay (``alerts.replay``) says when alerts changed state; it keeps no history of the
metric itself. This module counts the same observations again, per aggregation key and
bucket, with the core's own definitions (``aggregation.buckets.Counts`` for what one reply
adds, ``aggregation.metrics.Metric`` for what a metric is, the rule's window, overrides and
baseline as ``alerts.rules`` defines them), and gives, per rule and key, the metric over the
rule's window at every bucket boundary, the baseline of a spike rule, and the attempts per
bucket.

For display a long run is cut into at most ``max_points`` bins: each bin shows the highest
value of the metric in it (an alert's peak stays visible) and the sum of its attempts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aggregation.buckets import GROUP_DIMENSIONS, Counts, KeySpec, make_key
from aggregation.metrics import Metric
from alerts.replay import Observation
from alerts.rules import RuleSet, SpikeRule, ThresholdRule
from delivery.types import Classification
from schemas.alert import AlertTransition

AnyRule = ThresholdRule | SpikeRule

#: Default cap on the points of one chart: a month of one-minute buckets is 43,200.
DEFAULT_MAX_POINTS = 1500


@dataclass
class KeyCounts:
    """Per-bucket counts of one aggregation key: attempts and each metric's numerator."""

    isp: str
    group: dict[str, str]
    #: bucket index (start // bucket seconds) -> [attempts, delivered, numerator of metric 0, ...]
    buckets: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class Counted:
    """Every key's bucket counts over the run, for the metrics the rules name."""

    bucket_seconds: int
    metrics: list[Metric]
    keys: dict[str, KeyCounts]
    first_bucket: int
    last_bucket: int


def _numerators(obs: Observation, metrics: Sequence[Metric]) -> list[int]:
    """[attempts, delivered, each metric's numerator] that one observation adds."""
    counts = Counts()
    if obs.suppression is not None:
        counts.add_suppression(obs.suppression)
    elif obs.complaint is None:
        counts.add(obs.classification, None, None, "")
    else:
        counts.add_feedback(obs.complaint)
    return [counts.attempts, counts.delivered, *(m.numerator(counts) for m in metrics)]


def count(
    observations: Iterable[Observation],
    rulesets: Sequence[RuleSet],
    group_keys: Iterable[str] = (),
) -> Counted:
    """Count ``observations`` per ISP key, and per the group keys named (``make_key`` form),
    in the buckets of the first rule set (every rule set of a comparison must agree)."""
    bucket = rulesets[0].settings.bucket
    metrics: list[Metric] = []
    for ruleset in rulesets:
        for rule in ruleset.rules:
            for isp in ["", *rule.overrides]:
                metric = (rule.for_isp(isp) if isp else rule).parsed_metric
                if metric not in metrics:
                    metrics.append(metric)
    wanted = set(group_keys)
    specs = sorted(
        {rule.key_spec for ruleset in rulesets for rule in ruleset.rules} - {KeySpec(())},
        key=lambda s: s.dims,
    )
    keys: dict[str, KeyCounts] = {}
    cache: dict[tuple[Classification, bool | None, str | None], list[int]] = {}
    first = last = None
    width = len(metrics) + 2
    for obs in observations:
        index = math.floor(obs.t) // bucket
        first = index if first is None or index < first else first
        last = index if last is None or index > last else last
        kind = (obs.classification, obs.complaint, obs.suppression)
        adds = cache.get(kind)
        if adds is None:
            adds = cache[kind] = _numerators(obs, metrics)
        names: list[tuple[str, str, dict[str, str]]] = [(make_key(obs.isp), obs.isp, {})]
        if wanted:
            values = dict(
                zip(GROUP_DIMENSIONS, (obs.source_ip, obs.sending_domain, obs.tenant), strict=True)
            )
            for spec in specs:
                group = {d: values[d] or "" for d in spec.dims}
                if all(group.values()):
                    name = make_key(obs.isp, group)
                    if name in wanted:
                        names.append((name, obs.isp, group))
        for name, isp, group in names:
            key = keys.get(name)
            if key is None:
                key = keys[name] = KeyCounts(isp, dict(group))
            row = key.buckets.get(index)
            if row is None:
                row = key.buckets[index] = [0] * width
            for i, n in enumerate(adds):
                if n:
                    row[i] += n
    return Counted(bucket, metrics, keys, first or 0, last or 0)


@dataclass
class RuleSeries:
    """What one chart shows: one rule (overrides applied) on one key."""

    rule: str
    rule_type: str
    key: str
    isp: str
    group: dict[str, str]
    metric: str
    metric_label: str
    is_rate: bool
    window_seconds: int
    min_attempts: int
    #: Severity -> level: a threshold (threshold rules) or a factor of the baseline (spikes).
    levels: dict[str, float]
    comparison: str
    confidence: str
    #: Seconds of one display bin (a multiple of the bucket).
    step_seconds: int
    times: list[int] = field(default_factory=list)  # bin ends, epoch seconds
    values: list[float | None] = field(default_factory=list)  # highest value in the bin
    baselines: list[float | None] = field(default_factory=list)  # spike rules
    attempts: list[int] = field(default_factory=list)  # attempts in the bin
    #: What the volume (``min_attempts``, ``attempts``) counts: attempts, or delivered.
    volume_label: str = "attempts"


def _prefix(values: Sequence[int]) -> list[int]:
    out = [0]
    for v in values:
        out.append(out[-1] + v)
    return out


def rule_series(
    counted: Counted,
    rule: AnyRule,
    key: str,
    max_points: int = DEFAULT_MAX_POINTS,
) -> RuleSeries | None:
    """The chart of ``rule`` on ``key``; None when the key had no attempts."""
    counts = counted.keys.get(key)
    if counts is None or not counts.buckets:
        return None
    rule = rule.for_isp(counts.isp)
    metric = rule.parsed_metric
    m = counted.metrics.index(metric) + 2
    # the rate's denominator: delivery attempts, or delivered ones for complaints
    volume_column = 1 if metric.info.denominator == "delivered" else 0
    size = counted.bucket_seconds
    first, last = counted.first_bucket, counted.last_bucket
    n = last - first + 1
    attempts = [0] * n
    numer = [0] * n
    for index, row in counts.buckets.items():
        attempts[index - first] = row[volume_column]
        numer[index - first] = row[m]
    pa, pn = _prefix(attempts), _prefix(numer)
    w = rule.window // size

    def window(end: int) -> tuple[int, int]:
        """(attempts, numerator) of the window ending after bucket ``end - 1`` (0-based)."""
        if end <= 0:
            return 0, 0
        start = max(end - w, 0)
        return pa[end] - pa[start], pn[end] - pn[start]

    def value(a: int, k: int) -> float:
        if not metric.is_rate:
            return float(k)
        return k / a if a else 0.0

    thresholds = {s.value: v for s, v in rule.base_thresholds().items()}
    spike = isinstance(rule, SpikeRule)
    series = RuleSeries(
        rule=rule.name,
        rule_type="spike" if spike else "threshold",
        key=key,
        isp=counts.isp,
        group=counts.group,
        metric=metric.text,
        metric_label=metric.label,
        is_rate=metric.is_rate,
        window_seconds=rule.window,
        min_attempts=rule.min_attempts,
        volume_label="delivered" if volume_column else "attempts",
        levels=thresholds,
        comparison=getattr(rule, "comparison", ">="),
        confidence=rule.confidence,
        step_seconds=size * max(1, math.ceil(n / max_points)),
    )
    per_bin = series.step_seconds // size
    windows = 0
    if isinstance(rule, SpikeRule):
        windows = rule.baseline.period // rule.window
    values: list[float | None] = []
    baselines: list[float | None] = []
    for end in range(1, n + 1):
        a, k = window(end)
        # Shown where the rule judges: with at least min_attempts in the window.
        values.append(value(a, k) if a >= rule.volume_guard else None)
        if isinstance(rule, SpikeRule):
            found: list[float] = []
            for i in range(1, windows + 1):
                ba, bk = window(end - i * w)
                # A window without attempts has no rate (as alerts/evaluate.py has it).
                if ba or not metric.is_rate:
                    found.append(value(ba, bk))
            baselines.append(rule.combine(found) if found else None)
    # Display bins: aligned on the bucket grid, `per_bin` buckets each.
    for start in range(0, n, per_bin):
        stop = min(start + per_bin, n)
        chunk = [v for v in values[start:stop] if v is not None]
        series.times.append((first + stop) * size)
        series.values.append(max(chunk) if chunk else None)
        series.attempts.append(sum(attempts[start:stop]))
        if spike:
            base = [b for b in baselines[start:stop] if b is not None]
            series.baselines.append(statistics.fmean(base) if base else None)
    return series


def chart_keys(
    counted: Counted, rules: RuleSet, transitions: Iterable[AlertTransition]
) -> list[tuple[AnyRule, str]]:
    """(rule, key) of every chart: each rule on each ISP in its scope that had attempts,
    and, for rules grouped by IP, domain or tenant, on each group key that had an alert."""
    alerted: dict[str, set[str]] = {}
    for t in transitions:
        alerted.setdefault(t.rule, set()).add(make_key(t.isp, t.group))
    out: list[tuple[AnyRule, str]] = []
    isps = sorted(
        {c.isp for c in counted.keys.values() if not c.group},
        key=lambda isp: -sum(r[0] for r in counted.keys[make_key(isp)].buckets.values()),
    )
    for rule in rules.rules:
        if rule.group_by:
            for key in sorted(alerted.get(rule.name, ())):
                if key in counted.keys:
                    out.append((rule, key))
            continue
        for isp in isps:
            if rule.in_scope(isp):
                out.append((rule, make_key(isp)))
    return out


def group_keys(transitions: Iterable[AlertTransition]) -> set[str]:
    """The keys (``make_key`` form) of the alerts of grouped rules."""
    return {make_key(t.isp, t.group) for t in transitions if t.group}


def attempts_by_isp(counted: Counted) -> Mapping[str, int]:
    return {
        c.isp: sum(r[0] for r in c.buckets.values()) for c in counted.keys.values() if not c.group
    }


__all__ = [
    "DEFAULT_MAX_POINTS",
    "Counted",
    "RuleSeries",
    "attempts_by_isp",
    "chart_keys",
    "count",
    "group_keys",
    "rule_series",
]
