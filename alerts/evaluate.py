"""Rule evaluation: closed buckets + alert states + evaluation time → transitions + new states.

``Evaluator.evaluate`` is a pure function of its inputs. It reads only buckets that end at or
before the evaluation time, which must not be later than the key's watermark (the latest event
time minus the evaluation delay), so the same buckets give the same answer live, after a
restart and in ``bouncewatch replay``. A bucket may still gain events after it was evaluated,
up to the allowed lateness (see ``aggregation.buckets``): they count from the next evaluation
on, in every window covering the bucket, and are never announced retroactively. Calling it
twice with the same evaluation time announces nothing the second time (see
``alerts.state.step``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aggregation.buckets import Counts, KeyBuckets, KeySpec, align_down, parse_key
from aggregation.metrics import SUPPRESSION_METRICS, Metric
from aggregation.topk import TopK
from alerts.actions import complaint_actions, complaint_limit, recommend
from alerts.rules import RuleSet, SpikeRule, ThresholdRule
from alerts.state import AlertStateRecord, Step, Timing, fingerprint, severity_rank, step
from delivery.isp import default_resolver
from schemas.alert import (
    AlertState,
    AlertTransition,
    ComplaintEvidence,
    ReplySample,
    Severity,
    SourceCount,
    TransitionKind,
)
from schemas.durations import format_duration
from schemas.vocabulary import HARD_CATEGORIES, Category

#: Replies shown per alert: enough to see the pattern, few enough to read in a chat message.
TOP_REPLIES = 5
#: Points in a transition's trend; the window is cut into at most this many slices.
TREND_POINTS = 15

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}

#: The states in which an alert holds its level (hysteresis), as a global: reading an Enum
#: member off its class costs about 0.1 us in Python 3.11, and judging runs for every rule
#: of every key at every boundary.
_HOLDING = (AlertState.PENDING, AlertState.FIRING)

AnyRule = ThresholdRule | SpikeRule


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one rule saw for one key at one evaluation."""

    active: Severity | None
    value: float  # the metric over the window, as measured
    judged: float  # what was compared: the value or its Wilson bound
    attempts: int
    baseline: float | None = None
    baseline_attempts: int = 0


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of evaluating one key at one boundary (``Evaluator.evaluate_at``)."""

    transitions: list[AlertTransition]
    records: dict[str, AlertStateRecord]
    #: Every rule's window held fewer attempts than its ``min_attempts`` (at least one).
    below_guard: bool


class Evaluator:
    """Evaluates a rule set over one aggregation key at a time."""

    def __init__(
        self,
        rules: RuleSet,
        isp_names: Callable[[str], str] | None = None,
        top_replies: int = TOP_REPLIES,
    ) -> None:
        self.rules = rules
        self._names = isp_names
        self._top = top_replies
        self._by_key: dict[str, list[AnyRule]] = {}
        #: Rules by (ISP, key family): the many keys of one ISP and family share them.
        self._by_family: dict[tuple[str, KeySpec], list[AnyRule]] = {}
        self._key_info: dict[str, tuple[str, dict[str, str], list[tuple[AnyRule, str]]]] = {}

    def isp_name(self, isp: str) -> str:
        """The ISP's display name: the resolver's (``delivery/data/isps.yaml``, with the
        user's overrides) when given, the packaged table's otherwise."""
        return (self._names or default_resolver().name)(isp)

    def rules_for_key(self, key: str) -> list[AnyRule]:
        """The rules (per-ISP overrides applied) that read this aggregation key."""
        rules = self._by_key.get(key)
        if rules is None:
            isp, group = parse_key(key)
            family = (isp, KeySpec.of(group))
            rules = self._by_family.get(family)
            if rules is None:
                rules = self._by_family[family] = self.rules.rules_for(*family)
            self._by_key[key] = rules
        return rules

    def fingerprints_for(self, key: str) -> dict[str, str]:
        """Rule name → fingerprint of every alert this key can raise."""
        return {rule.name: fp for rule, fp in self._key_rules(key)[2]}

    def _key_rules(self, key: str) -> tuple[str, dict[str, str], list[tuple[AnyRule, str]]]:
        """The key's ISP, group labels, and rules with their alerts' fingerprints: worked out
        once per key, as a month's replay evaluates each key tens of thousands of times."""
        known = self._key_info.get(key)
        if known is None:
            isp, group = parse_key(key)
            rules = [(r, fingerprint(r.name, isp, group)) for r in self.rules_for_key(key)]
            known = self._key_info[key] = (isp, group, rules)
        return known

    def evaluate(
        self,
        buckets: KeyBuckets,
        states: Mapping[str, AlertStateRecord],
        eval_time: int,
    ) -> tuple[list[AlertTransition], dict[str, AlertStateRecord]]:
        """Evaluate every rule of ``buckets.key`` over the windows ending at ``eval_time``.

        ``states`` maps fingerprint → record for this key (missing ones start inactive).
        Returns the transitions to publish, in order, and every record of the key to store
        (the ones passed in, updated, plus any new one); a rule that has never been active
        gets no record.
        """
        evaluation = self.evaluate_at(buckets, states, eval_time)
        return evaluation.transitions, evaluation.records

    def evaluate_at(
        self,
        buckets: KeyBuckets,
        states: Mapping[str, AlertStateRecord],
        eval_time: int,
    ) -> Evaluation:
        """``evaluate``, also telling whether every rule's window was below its volume guard
        (``alerts.catchup`` lets such a key sleep until counts come)."""
        if buckets.watermark is None or eval_time > buckets.watermark:
            raise ValueError(
                f"evaluation time {eval_time} is past the watermark of {buckets.key!r} "
                f"({buckets.watermark}); call KeyBuckets.advance first"
            )
        key = buckets.key
        isp, group, rules = self._key_rules(key)
        end = align_down(eval_time, buckets.config.bucket_seconds)
        cache: dict[tuple[int, int], Counts] = {}
        transitions: list[AlertTransition] = []
        new_states = dict(states)
        repeat_default = self.rules.settings.repeat_interval
        below_guard = True
        for rule, fp in rules:
            record = states.get(fp)
            if record is None:
                record = AlertStateRecord(fp, rule.name, key)
            judgement = self.judge(rule, buckets, end, record, cache)
            if judgement.attempts >= rule.volume_guard:
                below_guard = False
            if judgement.active is None and fp not in states:
                continue  # nothing to remember about a rule that has never been active
            timing = Timing(rule.for_, rule.repeat_interval or repeat_default)
            result = step(record, judgement.active, end, timing)
            new_states[fp] = result.record
            for s in result.steps:
                transitions.append(
                    self._transition(rule, buckets, result.record, s, judgement, end, isp, group)
                )
        return Evaluation(transitions, new_states, below_guard)

    def metric_status(self, kb: KeyBuckets) -> dict[str, dict[str, Any]]:
        """What the rules of ``kb``'s key read, as of its last closed bucket: per metric
        (``soft_bounce_rate``, ``complaint_rate`` ...), its value over the longest window a
        rule reads it over, with the metric's own name, definition and volume (for
        ``/status``: the numbers mean what they mean in an alert)."""
        end = kb.closed_end()
        if end is None:
            return {}
        windows: dict[str, tuple[Metric, int]] = {}
        for rule in self.rules_for_key(kb.key):
            metric = rule.parsed_metric
            known = windows.get(metric.text)
            if known is None or rule.window > known[1]:
                windows[metric.text] = (metric, rule.window)
        out: dict[str, dict[str, Any]] = {}
        cache: dict[tuple[int, int], Counts] = {}
        for text, (metric, window) in sorted(windows.items()):
            counts = self._window(kb, end - window, end, cache)
            out[text] = {
                "label": metric.label,
                "definition": metric.definition,
                "value": metric.value(counts),
                "shown": metric.format(metric.value(counts)),
                "volume": metric.volume(counts),
                "volume_label": metric.volume_label,
                "window_seconds": window,
            }
        return out

    # ---- judging

    def _window(
        self, kb: KeyBuckets, start: int, end: int, cache: dict[tuple[int, int], Counts]
    ) -> Counts:
        counts = cache.get((start, end))
        if counts is None:
            counts = cache[(start, end)] = kb.window(start, end)
        return counts

    def judge(
        self,
        rule: AnyRule,
        kb: KeyBuckets,
        end: int,
        record: AlertStateRecord,
        cache: dict[tuple[int, int], Counts] | None = None,
    ) -> Judgement:
        """Which severity's condition holds for ``rule`` over the window ending at ``end``.

        Hysteresis: a level the alert already holds (pending or firing at that severity or
        above) stays held until the value is back past the threshold by ``hysteresis``.
        """
        cache = {} if cache is None else cache
        metric = rule.parsed_metric
        current = self._window(kb, end - rule.window, end, cache)
        value = metric.value(current)
        holding = record.state in _HOLDING
        volume = metric.volume(current)
        if not holding and volume < rule.volume_guard:
            # Below the volume guard no level can hold: the verdict the full judgement below
            # reaches, without its bounds and baseline (most evaluations of a quiet key).
            return Judgement(None, value, value, volume)
        held = severity_rank(record.severity) if holding else 0
        levels = rule.levels
        if isinstance(rule, ThresholdRule):
            rising = rule.comparison in (">", ">=")
            judged = self._judged(rule, metric, current, rising)
            active: Severity | None = None
            if volume >= rule.volume_guard:
                op = _OPS[rule.comparison]
                for severity, threshold in levels:
                    if severity_rank(severity) <= held:
                        h = rule.hysteresis_for(severity)
                        threshold = threshold - h if rising else threshold + h
                    if op(judged, threshold):
                        active = severity
                        break
            return Judgement(active, value, judged, volume)
        # spike
        judged = self._judged(rule, metric, current, True)
        baseline, baseline_attempts = self._baseline(rule, kb, end, cache)
        active = None
        if (
            baseline is not None
            and volume >= rule.volume_guard
            and baseline_attempts >= rule.baseline_min_attempts
        ):
            for severity, factor in levels:
                min_delta = rule.min_delta
                if severity_rank(severity) <= held:
                    h = rule.hysteresis_for(severity)
                    min_delta *= (factor - h) / factor
                    factor -= h
                if judged >= factor * baseline and judged - baseline >= min_delta:
                    active = severity
                    break
        return Judgement(active, value, judged, volume, baseline, baseline_attempts)

    @staticmethod
    def _judged(rule: AnyRule, metric: Metric, counts: Counts, rising: bool) -> float:
        if rule.confidence != "wilson":
            return metric.value(counts)
        # The bound on the side that makes the alert less likely: the rate is at least
        # (rising) or at most (falling) this much with 95 % confidence.
        return metric.lower_bound(counts) if rising else metric.upper_bound(counts)

    def _baseline(
        self, rule: SpikeRule, kb: KeyBuckets, end: int, cache: dict[tuple[int, int], Counts]
    ) -> tuple[float | None, int]:
        metric = rule.parsed_metric
        values: list[float] = []
        attempts = 0
        current_start = end - rule.window
        for i in range(1, rule.baseline.period // rule.window + 1):
            stop = current_start - (i - 1) * rule.window
            counts = self._window(kb, stop - rule.window, stop, cache)
            volume = metric.volume(counts)
            attempts += volume
            # A window without volume has no rate: it says nothing about the baseline.
            if volume or not metric.is_rate:
                values.append(metric.value(counts))
        if not values:
            return None, attempts
        return rule.combine(values), attempts

    # ---- announcing

    def _transition(
        self,
        rule: AnyRule,
        kb: KeyBuckets,
        record: AlertStateRecord,
        s: Step,
        judgement: Judgement,
        end: int,
        isp: str,
        group: dict[str, str],
    ) -> AlertTransition:
        metric = rule.parsed_metric
        start = end - rule.window
        complaints = metric.name in COMPLAINT_METRICS
        # a complaint alert is about complaints: replies and failures are not its evidence
        window = kb.window(start, end, with_replies=not complaints)
        failures = {} if complaints else window.failures()
        cause = None if complaints else self._cause(metric, failures)
        isp_name = self.isp_name(isp)
        evidence = _complaint_evidence(window, isp) if complaints else None
        if s.kind is TransitionKind.RESOLVED:
            action = ""
        elif evidence is not None:
            top = evidence.top_campaigns[0].name if evidence.top_campaigns else None
            action = complaint_actions(isp_name, top)
        else:
            action = recommend(cause, isp_name)
        threshold = rule.base_thresholds()[s.severity] if isinstance(rule, ThresholdRule) else None
        assert record.started_at is not None
        return AlertTransition(
            fingerprint=record.fingerprint,
            sequence=s.sequence,
            kind=s.kind,
            state=s.state,
            severity=s.severity,
            rule=rule.name,
            rule_type=rule.type,
            isp=isp,
            isp_name=isp_name,
            group=dict(group),
            metric=metric.text,
            value=judgement.value,
            threshold=threshold,
            baseline=judgement.baseline,
            attempts=judgement.attempts,
            window_seconds=rule.window,
            event_time=_dt(end),
            started_at=_dt(record.started_at),
            cause=cause,
            categories=failures,
            top_replies=self._top_replies(window, metric),
            trend=self._trend(kb, metric, start, end),
            summary=self._summary(rule, s, judgement, isp_name, group, cause, failures, evidence),
            recommended_action=action,
            labels=dict(rule.labels),
            annotations=dict(rule.annotations),
            complaints=evidence,
        )

    @staticmethod
    def _cause(metric: Metric, failures: Mapping[str, int]) -> Category | None:
        if metric.category is not None and metric.category is not Category.DELIVERED:
            return metric.category
        if metric.name in SUPPRESSION_METRICS:
            # New suppressions speak of the list: the cause is its most frequent address
            # failure, not a throttling that happens to outnumber it.
            hard = [c for c in failures if Category(c) in HARD_CATEGORIES]
            return Category(hard[0]) if hard else None
        if not failures:
            return None
        return Category(next(iter(failures)))

    def _top_replies(self, window: Counts, metric: Metric) -> list[ReplySample]:
        chosen: list[tuple[str, int, int | None, str | None, str | None, str]] = []
        sources: list[tuple[str, TopK]] = sorted(window.replies.items())
        if metric.category is not None and metric.category.value in window.replies:
            sources = [(metric.category.value, window.replies[metric.category.value])]
        elif metric.name in SUPPRESSION_METRICS:
            sources = [(c, topk) for c, topk in sources if Category(c) in HARD_CATEGORIES]
        for category, topk in sources:
            for entry in topk.top(self._top):
                chosen.append(
                    (
                        category,
                        entry.count,
                        entry.code,
                        entry.enhanced,
                        entry.isp_code,
                        entry.sample,
                    )
                )
        chosen.sort(key=lambda c: (-c[1], c[0], c[5]))
        return [
            ReplySample(
                category=Category(category),
                code=code,
                enhanced=enhanced,
                isp_code=isp_code,
                text=sample,
                count=count,
            )
            for category, count, code, enhanced, isp_code, sample in chosen[: self._top]
        ]

    @staticmethod
    def _trend(kb: KeyBuckets, metric: Metric, start: int, end: int) -> list[float]:
        size = kb.config.bucket_seconds
        n = (end - start) // size
        step_seconds = math.ceil(n / TREND_POINTS) * size
        return [round(metric.value(c), 6) for c in kb.series(start, end, step_seconds)]

    @staticmethod
    def _summary(
        rule: AnyRule,
        s: Step,
        j: Judgement,
        isp_name: str,
        group: Mapping[str, str],
        cause: Category | None,
        failures: Mapping[str, int],
        evidence: ComplaintEvidence | None = None,
    ) -> str:
        metric = rule.parsed_metric
        who = isp_name + "".join(f" {k}={v}" for k, v in group.items())
        window = format_duration(rule.window)
        volume = "attempts" if metric.info.denominator == "attempts" else "delivered"
        measured = (
            f"{metric.label} {metric.format(j.value)} of {j.attempts:,} {volume} over {window}"
        )
        if evidence is not None:
            measured = (
                f"{metric.label} {metric.format(j.value)} ({evidence.complaints:,} complaints "
                f"/ {evidence.delivered:,} delivered over {window})"
            )
        if rule.confidence == "wilson" and metric.is_rate:
            measured += f" (95% bound {metric.format(j.judged)})"
        if isinstance(rule, ThresholdRule):
            limit = f"{s.severity.value} at {rule.comparison} "
            limit += metric.format(rule.base_thresholds()[s.severity])
        else:
            base = "n/a" if j.baseline is None else metric.format(j.baseline)
            factor = rule.base_thresholds()[s.severity]
            limit = f"baseline {base} over the previous {format_duration(rule.baseline.period)}"
            limit += f", {s.severity.value} at x{factor:g}"
        if s.kind is TransitionKind.RESOLVED:
            return f"Resolved: {who} {measured} ({limit})."
        if evidence is not None and evidence.provider_limit is not None:
            return (
                f"{who}: {measured} ({limit}); {isp_name}'s limit is "
                f"{metric.format(evidence.provider_limit)}."
            )
        total = sum(failures.values())
        mostly = ""
        if cause is not None and total:
            share = failures.get(cause.value, 0) / total
            mostly = f"; {share:.0%} of failures are {cause.value.replace('_', ' ')}"
        return f"{who}: {measured} ({limit}){mostly}."


#: Metrics whose alerts carry ``ComplaintEvidence``.
COMPLAINT_METRICS = frozenset({"complaint_rate", "complaint_count"})
#: Sending domains, IPs and campaigns an alert names among its complaints.
TOP_SOURCES = 3


def _complaint_evidence(window: Counts, isp: str) -> ComplaintEvidence:
    limit, source = complaint_limit(isp)

    def top(prefix: str) -> list[SourceCount]:
        return [
            SourceCount(name=name, count=n)
            for name, n in window.top_complaint_sources(prefix, TOP_SOURCES)
        ]

    return ComplaintEvidence(
        complaints=window.complaints,
        delivered=window.delivered,
        other_feedback=window.feedback,
        provider_limit=limit,
        provider_limit_source=source,
        top_sending_domains=top("d:"),
        top_source_ips=top("i:"),
        top_campaigns=top("c:"),
    )


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
