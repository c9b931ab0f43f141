"""The evaluator and the alert state machine, on hand-built buckets."""

from __future__ import annotations

import json

import pytest

from aggregation.buckets import KeyBuckets, PartialBuilder
from aggregation.ingest import Engine
from alerts.evaluate import Evaluator
from alerts.replay import Replay
from alerts.rules import RuleSet, parse_rules
from alerts.state import AlertStateRecord, Timing, fingerprint, step
from delivery.isp import default_resolver, load_resolver
from delivery.types import Classification
from schemas.alert import AlertState, Severity, TransitionKind
from schemas.settings import Settings
from schemas.vocabulary import BounceType, Category, Outcome

OK = Classification(Outcome.DELIVERED, BounceType.NONE, Category.DELIVERED, "ok")
DEFER = Classification(Outcome.DEFERRED, BounceType.SOFT, Category.THROTTLED, "rate", "TS01")

RULES = """\
settings: {bucket: 1m, allowed_lateness: 0, repeat_interval: 10m}
rules:
  - name: defer
    type: threshold
    metric: deferral_rate
    window: 5m
    min_attempts: 100
    for: 2m
    severities: {warning: 0.1, critical: 0.3}
    hysteresis: 0.05
    labels: {team: mail}
"""


def _feed(kb: KeyBuckets, minute: int, ok: int, deferred: int, ruleset: RuleSet) -> None:
    builder = PartialBuilder(ruleset.key_specs(), 60)
    for i in range(ok + deferred):
        cls = DEFER if i < deferred else OK
        builder.add(minute * 60 + i * 0.1, "gmail", cls, code=421, text="421 try later")
    partial = builder.drain().get("isp=gmail")
    if partial is not None:
        kb.merge(partial)


def _run(per_minute: list[tuple[int, int]], rules_text: str = RULES) -> list[tuple[int, str, str]]:
    ruleset = parse_rules(rules_text)
    evaluator = Evaluator(ruleset)
    kb = KeyBuckets("isp=gmail", ruleset.aggregation_config())
    states: dict[str, AlertStateRecord] = {}
    out = []
    for minute, (ok, deferred) in enumerate(per_minute):
        _feed(kb, minute, ok, deferred, ruleset)
        boundary = (minute + 1) * 60
        kb.advance(boundary)
        transitions, states = evaluator.evaluate(kb, states, boundary)
        out += [(minute + 1, t.kind.value, t.severity.value) for t in transitions]
        # A replayed tick (same time, same inputs) announces nothing.
        again, states_again = evaluator.evaluate(kb, states, boundary)
        assert again == [] and states_again == states
    return out


def test_pending_for_firing_escalation_hysteresis_and_resolve() -> None:
    # 40 attempts a minute, so every full 5m window holds 200; deferrals per minute:
    # 0 (minutes 0-4), 11 (5-9), 20 (10-14), 12 (15-19), 0 (20-25).
    minutes = [(40, 0)] * 5 + [(29, 11)] * 5 + [(20, 20)] * 5 + [(28, 12)] * 5 + [(40, 0)] * 6
    assert _run(minutes) == [
        (7, "pending", "warning"),  # minutes 2-6: 22/200 = 11 % >= 10 %
        (9, "firing", "warning"),  # held for the 2m of `for`
        (11, "severity_changed", "critical"),  # minutes 6-10: 64/200 = 32 % >= 30 %
        # tick 20 (minutes 15-19, 30 %) stays critical: the level clears below 30 - 5 %
        (21, "severity_changed", "warning"),  # minutes 16-20: 48/200 = 24 % < 25 %
        # tick 24 (12/200 = 6 %) stays warning: it clears below 10 - 5 %
        (25, "resolved", "warning"),  # minutes 20-24: 0 %
    ]


def test_min_volume_keeps_quiet_and_reminders_repeat() -> None:
    quiet = _run([(3, 5)] * 20)  # 62% deferred but 40 attempts a window
    assert quiet == []
    loud = _run([(20, 20)] * 30)
    kinds = [k for _, k, _ in loud]
    assert kinds[:2] == ["pending", "firing"]
    # pending at tick 3 (120 attempts), firing at 5, reminders at 15 and 25
    assert kinds.count("still_firing") == 2


def test_state_machine_step_is_idempotent_and_serializable() -> None:
    record = AlertStateRecord(fingerprint("r", "gmail"), "r", "isp=gmail")
    timing = Timing(for_seconds=0, repeat_seconds=3600)
    first = step(record, Severity.WARNING, 60, timing)
    assert [s.kind for s in first.steps] == [TransitionKind.FIRING]
    assert step(first.record, Severity.WARNING, 60, timing).steps == []
    assert step(first.record, None, 30, timing).steps == []  # an older tick changes nothing
    resolved = step(first.record, None, 120, timing)
    assert resolved.record.state is AlertState.RESOLVED and resolved.record.sequence == 2
    again = step(resolved.record, Severity.CRITICAL, 180, timing)
    assert again.steps[0].sequence == 3  # sequences keep counting across episodes
    data = json.loads(json.dumps(again.record.to_dict()))
    assert AlertStateRecord.from_dict(data) == again.record
    assert fingerprint("r", "gmail", {"source_ip": "1"}) != fingerprint("r", "gmail")


def test_wilson_confidence_tells_small_from_large() -> None:
    rules = """\
settings: {bucket: 1m, allowed_lateness: 0}
rules:
  - name: w
    type: threshold
    metric: category_rate(throttled)
    window: 1m
    min_attempts: 10
    confidence: wilson
    value: 0.2
"""
    assert _run([(7, 3)], rules) == []  # 30 % of 10: bound 10.8 %
    assert _run([(700, 300)], rules) == [(1, "firing", "warning")]  # bound 27.2 %


def test_evaluation_past_the_watermark_is_refused() -> None:
    ruleset = parse_rules(RULES)
    kb = KeyBuckets("isp=gmail", ruleset.aggregation_config())
    _feed(kb, 0, 10, 0, ruleset)
    with pytest.raises(ValueError):
        Evaluator(ruleset).evaluate(kb, {}, 10_000)


def test_isp_display_names_come_from_the_isp_table_alone() -> None:
    """One source: the evaluator, the replay and the live engine name ISPs as isps.yaml does."""
    ruleset = parse_rules(RULES)
    resolver = default_resolver()
    engine = Engine.from_settings(Settings(), ruleset, mx_lookup=False)
    replay = Replay(ruleset)
    for key, isp in resolver.isps.items():
        assert Evaluator(ruleset).isp_name(key) == isp.name
        assert replay.evaluator.isp_name(key) == isp.name
        assert engine.evaluator.isp_name(key) == isp.name
    assert resolver.name("gmail") == "Gmail / Google Workspace"
    assert resolver.name("example.com") == "example.com"  # keyed by its domain
    renamed = load_resolver({"gmail": ["gmail.com"]})
    assert Evaluator(ruleset, renamed.name).isp_name("gmail") == renamed.name("gmail")
