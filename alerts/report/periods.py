"""Alerts as periods and incidents, from the transitions of a replay.

Transitions say when an alert went pending, fired, changed severity, reminded and resolved.
The report shades the periods between them and lists each incident (one pending-to-resolved
cycle) with its evidence. A pending alert whose condition clears goes back to inactive
without a transition (``alerts/state.py``); such a period is shown until its next transition
or its ``for`` elapsed, whichever comes first, so it is at most that long.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from aggregation.buckets import make_key
from alerts.rules import RuleSet
from schemas.alert import AlertTransition, TransitionKind

_RANK = {"warning": 1, "critical": 2}


@dataclass
class Period:
    start: float
    end: float
    state: str  # pending or firing
    severity: str


@dataclass
class Incident:
    """One cycle of one alert: pending (if the rule has a `for`), firing, resolved."""

    id: str
    fingerprint: str
    rule: str
    key: str
    isp: str
    isp_name: str
    group: dict[str, str]
    started_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    severity: str = "warning"  # the highest it reached
    transitions: list[AlertTransition] = field(default_factory=list)
    periods: list[Period] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    def firing_seconds(self) -> float:
        return sum(p.end - p.start for p in self.periods if p.state == "firing")

    def evidence(self) -> AlertTransition:
        """The transition that shows the incident best: its worst firing one, else the last."""
        firing = [
            t
            for t in self.transitions
            if t.kind in (TransitionKind.FIRING, TransitionKind.SEVERITY_CHANGED)
        ]
        if not firing:
            return self.transitions[-1]
        return max(firing, key=lambda t: (_RANK.get(t.severity.value, 0), t.value))


def _epoch(when: datetime) -> float:
    return when.timestamp()


def incidents(
    transitions: Iterable[AlertTransition], rules: RuleSet, end: float, prefix: str = "a"
) -> list[Incident]:
    """Every incident of the run, in the order they started; ``end`` closes open periods."""
    by_rule = {rule.name: rule for rule in rules.rules}
    ordered = sorted(transitions, key=lambda t: (t.event_time, t.fingerprint, t.sequence))
    open_: dict[str, Incident] = {}
    done: list[Incident] = []

    def for_seconds(t: AlertTransition) -> int:
        rule = by_rule.get(t.rule)
        return rule.for_isp(t.isp).for_ if rule is not None else 0

    def close(incident: Incident, at: float, cleared: bool = False) -> None:
        """End the open period at ``at``; ``cleared``: a pending one may have ended silently
        earlier, but it lasted less than the rule's ``for``."""
        if incident.periods and incident.periods[-1].end < 0:
            last = incident.periods[-1]
            if cleared and last.state == "pending":
                at = min(at, last.start + max(for_seconds(incident.transitions[-1]), 0))
            last.end = max(at, last.start)

    for t in ordered:
        at = _epoch(t.event_time)
        incident = open_.get(t.fingerprint)
        starts = t.kind is TransitionKind.PENDING or (
            t.kind is TransitionKind.FIRING and (incident is None or incident.fired)
        )
        if incident is not None and starts:
            # A pending alert that cleared silently, now pending (or firing) again.
            close(incident, at, cleared=True)
            done.append(open_.pop(t.fingerprint))
            incident = None
        if incident is None:
            incident = open_[t.fingerprint] = Incident(
                id=f"{prefix}{len(done) + len(open_)}",
                fingerprint=t.fingerprint,
                rule=t.rule,
                key=make_key(t.isp, t.group),
                isp=t.isp,
                isp_name=t.isp_name,
                group=dict(t.group),
                started_at=at,
            )
        incident.transitions.append(t)
        if _RANK.get(t.severity.value, 0) > _RANK.get(incident.severity, 0):
            incident.severity = t.severity.value
        kind = t.kind
        if kind is TransitionKind.PENDING:
            incident.periods.append(Period(at, -1, "pending", t.severity.value))
        elif kind in (TransitionKind.FIRING, TransitionKind.SEVERITY_CHANGED):
            close(incident, at)
            if kind is TransitionKind.FIRING:
                incident.fired_at = at
            incident.periods.append(Period(at, -1, "firing", t.severity.value))
        elif kind is TransitionKind.RESOLVED:
            close(incident, at)
            incident.resolved_at = at
            done.append(open_.pop(t.fingerprint))
    for incident in open_.values():
        close(incident, end, cleared=True)
        done.append(incident)
    done.sort(key=lambda i: (i.started_at, i.rule, i.key))
    for n, incident in enumerate(done, start=1):
        incident.id = f"{prefix}{n}"
    return done


@dataclass
class RuleSummary:
    rule: str
    severity: str
    fired: int = 0
    pending_only: int = 0
    firing_seconds: float = 0.0
    keys: set[str] = field(default_factory=set)


def summarize(found: Iterable[Incident]) -> list[RuleSummary]:
    """Alerts per rule and (highest) severity."""
    table: dict[tuple[str, str], RuleSummary] = {}
    for incident in found:
        row = table.get((incident.rule, incident.severity))
        if row is None:
            row = table[(incident.rule, incident.severity)] = RuleSummary(
                incident.rule, incident.severity
            )
        if incident.fired:
            row.fired += 1
            row.firing_seconds += incident.firing_seconds()
            row.keys.add(incident.key)
        else:
            row.pending_only += 1
    return sorted(table.values(), key=lambda r: (-r.fired, r.rule, -_RANK.get(r.severity, 0)))


@dataclass
class IspSummary:
    isp: str
    name: str
    attempts: int
    alerts: int = 0
    firing_seconds: float = 0.0


def busiest_isps(
    attempts: Mapping[str, int], names: Mapping[str, str], found: Iterable[Incident]
) -> list[IspSummary]:
    """ISPs by attempts, with their fired alerts and time firing."""
    rows = {isp: IspSummary(isp, names.get(isp, isp), n) for isp, n in attempts.items()}
    for incident in found:
        row = rows.get(incident.isp)
        if row is not None and incident.fired:
            row.alerts += 1
            row.firing_seconds += incident.firing_seconds()
    return sorted(rows.values(), key=lambda r: (-r.attempts, r.isp))


@dataclass
class Difference:
    """One (rule, key) whose alerts differ between two rule sets."""

    rule: str
    key: str
    isp_name: str
    only_a: list[Incident]
    only_b: list[Incident]
    both: int


def _overlap(a: Incident, b: Incident) -> bool:
    a_end = a.resolved_at if a.resolved_at is not None else float("inf")
    b_end = b.resolved_at if b.resolved_at is not None else float("inf")
    a_start = a.fired_at if a.fired_at is not None else a.started_at
    b_start = b.fired_at if b.fired_at is not None else b.started_at
    return a_start <= b_end and b_start <= a_end


def compare(a: Iterable[Incident], b: Iterable[Incident]) -> list[Difference]:
    """Fired incidents of each side that no fired incident of the other side (same rule
    name, same key) overlaps in time: what fires in one rule set and not the other."""
    fired_a = [i for i in a if i.fired]
    fired_b = [i for i in b if i.fired]
    groups: dict[tuple[str, str], tuple[list[Incident], list[Incident]]] = {}
    for i in fired_a:
        groups.setdefault((i.rule, i.key), ([], []))[0].append(i)
    for i in fired_b:
        groups.setdefault((i.rule, i.key), ([], []))[1].append(i)
    out: list[Difference] = []
    for (rule, key), (left, right) in sorted(groups.items()):
        only_a = [i for i in left if not any(_overlap(i, j) for j in right)]
        only_b = [j for j in right if not any(_overlap(i, j) for i in left)]
        both = len(left) - len(only_a)
        if only_a or only_b:
            name = (left or right)[0].isp_name
            out.append(Difference(rule, key, name, only_a, only_b, both))
    return out
