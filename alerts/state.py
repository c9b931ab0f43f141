"""The alert state machine: inactive → pending → firing → resolved, one record per fingerprint.

``step`` is a pure function of (record, condition, evaluation time): the evaluator calls it
once per rule and key at each closed bucket, the live worker and the offline replay alike.
Hysteresis is decided before ``step`` (the condition it receives already takes the current
severity into account); ``step`` decides what is announced.

What is announced (``TransitionKind``):

- ``pending`` when the condition first holds and the rule has a ``for`` duration;
- ``firing`` once it has held for ``for`` (at once when ``for`` is 0, without ``pending``);
- ``severity_changed`` when a firing alert's severity moves up or down;
- ``still_firing`` every ``repeat_interval`` after the last announcement while firing;
- ``resolved`` when a firing alert's condition stops holding.

A pending alert whose condition stops holding returns to inactive silently: nothing was
notified, so there is nothing to take back.

Idempotence: a record remembers the last evaluation time it has seen; a step at that time or
an earlier one changes nothing, so a timer tick replayed after a crash announces nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.alert import AlertState, Severity, TransitionKind

_SEVERITY_RANK = {Severity.WARNING: 1, Severity.CRITICAL: 2}


def severity_rank(severity: Severity | None) -> int:
    return 0 if severity is None else _SEVERITY_RANK[severity]


def fingerprint(rule: str, isp: str, group: Mapping[str, str] | None = None) -> str:
    """Stable id of one alert: a hash of the rule name, the ISP and the group labels."""
    payload = json.dumps([rule, isp, sorted((group or {}).items())], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(slots=True)
class AlertStateRecord:
    """The state of one alert (fingerprint). Times are epoch seconds of event time."""

    fingerprint: str
    rule: str
    key: str  # the aggregation key the rule reads
    state: AlertState = AlertState.INACTIVE
    severity: Severity | None = None
    sequence: int = 0  # transitions announced so far; the next one gets sequence + 1
    started_at: int | None = None  # when the current (or last) episode went pending
    fired_at: int | None = None
    last_announced: int | None = None  # last firing / severity change / reminder
    resolved_at: int | None = None
    last_eval: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "key": self.key,
            "state": self.state.value,
            "severity": None if self.severity is None else self.severity.value,
            "sequence": self.sequence,
            "started_at": self.started_at,
            "fired_at": self.fired_at,
            "last_announced": self.last_announced,
            "resolved_at": self.resolved_at,
            "last_eval": self.last_eval,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertStateRecord:
        severity = data.get("severity")
        return cls(
            fingerprint=str(data["fingerprint"]),
            rule=str(data["rule"]),
            key=str(data["key"]),
            state=AlertState(data.get("state", AlertState.INACTIVE.value)),
            severity=None if severity is None else Severity(severity),
            sequence=int(data.get("sequence", 0)),
            started_at=data.get("started_at"),
            fired_at=data.get("fired_at"),
            last_announced=data.get("last_announced"),
            resolved_at=data.get("resolved_at"),
            last_eval=data.get("last_eval"),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One announced change: what kind, the state after it, and its severity."""

    kind: TransitionKind
    state: AlertState
    severity: Severity
    sequence: int


@dataclass(frozen=True, slots=True)
class Timing:
    for_seconds: int
    repeat_seconds: int


@dataclass(slots=True)
class StepResult:
    record: AlertStateRecord
    steps: list[Step] = field(default_factory=list)


def step(
    record: AlertStateRecord,
    active: Severity | None,
    eval_time: int,
    timing: Timing,
) -> StepResult:
    """Advance one alert by one evaluation.

    ``active`` is the severity whose condition holds now (``None``: no condition holds).
    """
    if record.last_eval is not None and eval_time <= record.last_eval:
        return StepResult(record)
    r = replace(record, last_eval=eval_time)
    out = StepResult(r)

    def announce(kind: TransitionKind, severity: Severity) -> None:
        r.sequence += 1
        out.steps.append(Step(kind, r.state, severity, r.sequence))

    if active is None:
        if r.state is AlertState.FIRING:
            r.state = AlertState.RESOLVED
            r.resolved_at = eval_time
            assert r.severity is not None
            announce(TransitionKind.RESOLVED, r.severity)
        elif r.state is AlertState.PENDING:
            r.state = AlertState.INACTIVE
            r.severity = None
        return out

    if r.state in (AlertState.INACTIVE, AlertState.RESOLVED):
        r.started_at = eval_time
        r.fired_at = r.resolved_at = r.last_announced = None
        r.severity = active
        if timing.for_seconds <= 0:
            _fire(r, eval_time)
            announce(TransitionKind.FIRING, active)
        else:
            r.state = AlertState.PENDING
            announce(TransitionKind.PENDING, active)
    elif r.state is AlertState.PENDING:
        r.severity = active
        assert r.started_at is not None
        if eval_time - r.started_at >= timing.for_seconds:
            _fire(r, eval_time)
            announce(TransitionKind.FIRING, active)
    else:  # firing
        assert r.last_announced is not None
        if active != r.severity:
            r.severity = active
            r.last_announced = eval_time
            announce(TransitionKind.SEVERITY_CHANGED, active)
        elif eval_time - r.last_announced >= timing.repeat_seconds:
            r.last_announced = eval_time
            announce(TransitionKind.REMINDER, active)
    return out


def _fire(r: AlertStateRecord, eval_time: int) -> None:
    r.state = AlertState.FIRING
    r.fired_at = eval_time
    r.last_announced = eval_time
