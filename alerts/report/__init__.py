"""``bouncewatch replay --report``: a backtest report to tune rules by.

One self-contained HTML file (see ``alerts/report/html.py``) with, for each ISP and each
rule that judged it, the rule's metric over time against its thresholds (or its baseline for
a spike rule), the attempts as volume bars, and the pending, firing and resolved periods of
its alerts shaded; a summary at the top (alerts per rule and severity, time firing, the
busiest ISPs) with every alert linked to its evidence (category breakdown, top replies).
With a second rule set, both side by side and a table of what fires in one and not the
other.

The transitions come from the replay itself; the charts' numbers are counted again from
the same observations by ``alerts/report/series.py`` (the replay keeps no history).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregation.buckets import make_key
from alerts.replay import Observation, Replay
from alerts.report.html import Chart, ReportDependencyError, ReportView, RunView, plotly_js, render
from alerts.report.periods import busiest_isps, compare, incidents, summarize
from alerts.report.series import (
    DEFAULT_MAX_POINTS,
    Counted,
    attempts_by_isp,
    chart_keys,
    count,
    group_keys,
    rule_series,
)
from alerts.rules import RuleSet
from schemas.alert import AlertTransition

__all__ = [
    "DEFAULT_MAX_POINTS",
    "ReportDependencyError",
    "RuleRun",
    "build_report",
    "plotly_js",
    "replay_rules",
    "write_report",
]


@dataclass
class RuleRun:
    """One rule set's replay of the events: what the report shows for it."""

    label: str  # e.g. "A" or the rules file's name
    rules_source: str
    rules: RuleSet
    transitions: list[AlertTransition]


def replay_rules(
    rules: RuleSet, isp_names: dict[str, str], observations: Sequence[Observation]
) -> list[AlertTransition]:
    """The transitions of ``rules`` over observations already in event-time order."""
    engine = Replay(rules, isp_names)
    engine.feed(observations)
    return engine.finish().transitions


def build_report(
    observations: Sequence[Observation],
    runs: Sequence[RuleRun],
    isp_names: dict[str, str],
    *,
    source: str,
    max_points: int = DEFAULT_MAX_POINTS,
) -> str:
    """The report's HTML. ``observations`` in event-time order; one run, or two to compare."""
    if not 1 <= len(runs) <= 2:
        raise ValueError("a report shows one rule set, or two side by side")
    first = observations[0].t if observations else None
    last = observations[-1].t if observations else None
    end = last if last is not None else 0.0
    wanted: set[str] = set()
    for run in runs:
        wanted |= group_keys(run.transitions)
    counted: dict[int, Counted] = {}
    for run in runs:
        bucket = run.rules.settings.bucket
        if bucket not in counted:
            same = [r.rules for r in runs if r.rules.settings.bucket == bucket]
            counted[bucket] = count(observations, same, wanted)
    views: list[RunView] = []
    per_run_charts: list[dict[tuple[str, str], Chart]] = []
    all_charts: list[Chart] = []
    for index, run in enumerate(runs):
        c = counted[run.rules.settings.bucket]
        found = incidents(run.transitions, run.rules, end, prefix="ab"[index])
        attempts = attempts_by_isp(c)
        views.append(
            RunView(
                label=run.label,
                rules_source=run.rules_source,
                transitions=len(run.transitions),
                incidents=found,
                summary=summarize(found),
                isps=busiest_isps(attempts, isp_names, found),
            )
        )
        charts: dict[tuple[str, str], Chart] = {}
        for rule, key in chart_keys(c, run.rules, run.transitions):
            series = rule_series(c, rule, key, max_points)
            if series is None or all(v is None for v in series.values):
                continue  # the rule never judged this key: too few attempts
            mine = [i for i in found if i.rule == rule.name and i.key == key]
            chart = Chart(f"c{len(all_charts)}", index, series, mine)
            charts[(rule.name, key)] = chart
            all_charts.append(chart)
        per_run_charts.append(charts)
    # Sections per ISP, busiest first; in each, one row per (rule, key) of either run.
    attempts = attempts_by_isp(counted[runs[0].rules.settings.bucket])
    order: list[tuple[str, str]] = []
    for charts in per_run_charts:
        for rk in charts:
            if rk not in order:
                order.append(rk)
    sections = []
    for isp in sorted(attempts, key=lambda i: (-attempts[i], i)):
        rows = [
            [
                charts.get(rk) or _missing(run, rk[0])
                for run, charts in zip(runs, per_run_charts, strict=True)
            ]
            for rk in order
            if rk[1] == make_key(isp) or rk[1].startswith(make_key(isp) + "|")
        ]
        if rows:
            sections.append((isp, isp_names.get(isp, isp), attempts[isp], rows))
    view = ReportView(
        title="bouncewatch backtest" + (" comparison" if len(runs) == 2 else ""),
        source=source,
        events=len(observations),
        first_event=first,
        last_event=last,
        runs=views,
        sections=sections,
        differences=compare(views[0].incidents, views[1].incidents) if len(runs) == 2 else None,
    )
    return render(view, all_charts)


def _missing(run: RuleRun, rule: str) -> str:
    """Why a run has no chart of ``rule`` on a key the other run charts."""
    if all(r.name != rule for r in run.rules.rules):
        return f"no rule {rule} in this set"
    return "too few attempts for this rule, or out of its scope"


def write_report(
    path: str | Path,
    observations: Sequence[Observation],
    runs: Sequence[RuleRun],
    isp_names: dict[str, str],
    *,
    source: str,
    max_points: int = DEFAULT_MAX_POINTS,
    on_written: Callable[[Path, int], None] | None = None,
) -> Path:
    """Build the report and write it to ``path`` (UTF-8)."""
    text = build_report(observations, runs, isp_names, source=source, max_points=max_points)
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    if on_written is not None:
        on_written(target, len(text.encode("utf-8")))
    return target
