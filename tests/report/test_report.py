"""The replay report (alerts/report): its numbers agree with the replay's own, alerts become
periods and incidents, two rule sets compare, and the HTML stands alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregation.buckets import make_key
from alerts.replay import Observation
from alerts.report import RuleRun, build_report, replay_rules
from alerts.report.periods import compare, incidents, summarize
from alerts.report.series import count, rule_series
from alerts.rules import RuleSet, SpikeRule, load_default_rules, parse_rules
from bouncewatch.commands.replay import read_observations
from schemas.alert import AlertState, AlertTransition, Severity, TransitionKind

from .synthetic import write

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "data" / "scenarios"


def _load(path: Path) -> tuple[list[Observation], dict[str, str]]:
    observations, names, _ = read_observations(str(path), "auto", "never")
    observations.sort(key=lambda o: o.t)
    return observations, names


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "two-days.jsonl.gz"
    write(path, days=2, per_minute=60)
    return path


@pytest.mark.parametrize(
    "scenario", ["gmail_throttling_burst", "yahoo_tss04_wave", "microsoft_ip_blocklist"]
)
def test_series_match_the_values_the_replay_judged(scenario: str) -> None:
    """At every transition's evaluation time, the chart shows the value the evaluator had:
    the report counts the observations again with the core's definitions."""
    observations, names = _load(SCENARIOS / f"{scenario}.jsonl.gz")
    rules = load_default_rules()
    transitions = replay_rules(rules, names, observations)
    assert transitions
    counted = count(observations, [rules], {make_key(t.isp, t.group) for t in transitions})
    by_name = {r.name: r for r in rules.rules}
    checked = 0
    for t in transitions:
        series = rule_series(counted, by_name[t.rule], make_key(t.isp, t.group), 10**9)
        assert series is not None
        assert series.step_seconds == rules.settings.bucket
        at = series.times.index(int(t.event_time.timestamp()))
        assert series.values[at] == pytest.approx(t.value), (t.rule, t.kind, t.event_time)
        if isinstance(by_name[t.rule], SpikeRule):
            assert series.baselines[at] == pytest.approx(t.baseline)
        else:
            assert series.levels[t.severity.value] == pytest.approx(t.threshold)
        checked += 1
    assert checked == len(transitions)


def test_downsampling_keeps_the_peak_and_the_volume(two_days: Path) -> None:
    observations, _names = _load(two_days)
    rules = load_default_rules()
    counted = count(observations, [rules])
    rule = next(r for r in rules.rules if r.name == "soft-bounce-rate")
    full = rule_series(counted, rule, make_key("gmail"), 10**9)
    small = rule_series(counted, rule, make_key("gmail"), 200)
    assert full is not None and small is not None
    assert len(full.times) == 2 * 24 * 60
    assert len(small.times) <= 200
    assert small.step_seconds % full.step_seconds == 0
    assert (
        sum(small.attempts)
        == sum(full.attempts)
        == sum(1 for o in observations if o.isp == "gmail")
    )
    peak = max(v for v in full.values if v is not None)
    assert max(v for v in small.values if v is not None) == pytest.approx(peak)


def _t(
    kind: TransitionKind, minute: int, severity: str = "warning", fp: str = "f1", rule: str = "r"
) -> AlertTransition:
    state = {
        TransitionKind.PENDING: AlertState.PENDING,
        TransitionKind.RESOLVED: AlertState.RESOLVED,
    }.get(kind, AlertState.FIRING)
    at = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=minute)
    return AlertTransition(
        fingerprint=fp,
        sequence=minute + 1,
        kind=kind,
        state=state,
        severity=Severity(severity),
        rule=rule,
        rule_type="threshold",
        isp="gmail",
        isp_name="Gmail",
        metric="soft_bounce_rate",
        value=0.3,
        threshold=0.1,
        attempts=500,
        window_seconds=900,
        event_time=at,
        started_at=at,
        summary=f"{kind.value} at {minute}",
    )


RULES_FOR_5M = parse_rules(
    "rules:\n  - {name: r, type: threshold, metric: soft_bounce_rate, value: 0.1, for: 5m}\n"
)


def test_incidents_and_periods() -> None:
    base = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    found = incidents(
        [
            _t(TransitionKind.PENDING, 0),
            _t(TransitionKind.FIRING, 5),
            _t(TransitionKind.SEVERITY_CHANGED, 10, "critical"),
            _t(TransitionKind.REMINDER, 20, "critical"),
            _t(TransitionKind.RESOLVED, 30, "critical"),
            # Pending that clears without a transition, then pending again and firing.
            _t(TransitionKind.PENDING, 40),
            _t(TransitionKind.PENDING, 60),
            _t(TransitionKind.FIRING, 65),
        ],
        RULES_FOR_5M,
        end=base + 90 * 60,
    )
    assert [i.id for i in found] == ["a1", "a2", "a3"]
    first, cleared, open_ = found
    periods = [
        (p.state, p.severity, (p.start - base) / 60, (p.end - base) / 60) for p in first.periods
    ]
    assert periods == [
        ("pending", "warning", 0, 5),
        ("firing", "warning", 5, 10),
        ("firing", "critical", 10, 30),
    ]
    assert first.severity == "critical" and first.firing_seconds() == 25 * 60
    assert first.evidence().kind is TransitionKind.SEVERITY_CHANGED
    # Cleared silently: shown for at most the rule's `for` (5m), never fired.
    assert not cleared.fired
    assert [(p.start - base) / 60 for p in cleared.periods] == [40]
    assert (cleared.periods[0].end - base) / 60 == 45
    # Still firing at the end of the run.
    assert open_.resolved_at is None
    assert (open_.periods[-1].end - base) / 60 == 90
    rows = {(r.rule, r.severity): r for r in summarize(found)}
    assert rows[("r", "critical")].fired == 1
    assert rows[("r", "warning")].fired == 1 and rows[("r", "warning")].pending_only == 1


def test_compare_lists_what_fires_in_one_set_only() -> None:
    end = datetime(2026, 3, 3, tzinfo=UTC).timestamp()
    a = incidents(
        [
            _t(TransitionKind.FIRING, 0),
            _t(TransitionKind.RESOLVED, 30),
            _t(TransitionKind.FIRING, 100),
            _t(TransitionKind.RESOLVED, 120),
        ],
        RULES_FOR_5M,
        end,
        prefix="a",
    )
    b = incidents(
        [_t(TransitionKind.FIRING, 10), _t(TransitionKind.RESOLVED, 20)],
        RULES_FOR_5M,
        end,
        prefix="b",
    )
    (diff,) = compare(a, b)
    assert [i.id for i in diff.only_a] == ["a2"] and diff.only_b == [] and diff.both == 1
    assert compare(a, a) == []


LOOSE = """\
rules:
  - name: soft-bounce-rate
    type: threshold
    metric: soft_bounce_rate
    window: 15m
    min_attempts: 300
    severities: {warning: 0.05, critical: 0.5}
"""


def _report(two_days: Path, compare_with: RuleSet | None = None) -> str:
    observations, names = _load(two_days)
    rules = load_default_rules()
    runs = [RuleRun("A", "default rules", rules, replay_rules(rules, names, observations))]
    if compare_with is not None:
        runs.append(
            RuleRun(
                "B", "loose.yaml", compare_with, replay_rules(compare_with, names, observations)
            )
        )
    return build_report(observations, runs, names, source=str(two_days), max_points=300)


def _data(page: str) -> dict[str, list[dict[str, object]]]:
    match = re.search(r"<script type='application/json' id='report-data'>(.*?)</script>", page)
    assert match
    data: dict[str, list[dict[str, object]]] = json.loads(match.group(1))
    return data


def test_report_is_self_contained(two_days: Path) -> None:
    page = _report(two_days)
    # Nothing is fetched: no external script, style sheet, image or frame.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "@import" not in page
    assert "Plotly.newPlot" in page and "plotly.js" in page  # the library is inline
    data = _data(page)
    assert len(data["charts"]) == page.count("data-chart='")
    assert all(len(c["values"]) <= 300 for c in data["charts"])  # type: ignore[arg-type]
    # Every fired alert links to its evidence, which has the categories and replies.
    for anchor in re.findall(r"<a href='#(a\d+)'>", page):
        assert f"<details id='{anchor}'>" in page
    assert "failure category" in page and "sample reply" in page
    assert "alerts per rule and severity" in page and "Busiest ISPs" in page


def test_report_compares_two_rule_sets(two_days: Path) -> None:
    page = _report(two_days, parse_rules(LOOSE))
    assert "What fires in one rule set and not the other" in page
    assert "only in B" in page
    # Both sets' alerts, each with its evidence, side by side.
    assert re.search(r"<details id='a\d+'>", page) and re.search(r"<details id='b\d+'>", page)
    assert page.count("class='grid runs-2'") > 2


@pytest.mark.integration  # runs bouncewatch in a child Python
def test_cli_writes_the_report(tmp_path: Path) -> None:
    events = SCENARIOS / "gmail_throttling_burst.jsonl.gz"
    loose = tmp_path / "loose.yaml"
    loose.write_text(LOOSE, encoding="utf-8")
    out = tmp_path / "report.html"
    cli = [sys.executable, "-m", "bouncewatch.cli", "replay", str(events)]
    done = subprocess.run(
        [*cli, "--report", str(out), "--compare", str(loose)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "report: " in done.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "gmail_throttling_burst" in page
    refused = subprocess.run(
        [*cli, "--compare", str(loose)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert refused.returncode == 2 and "--compare needs --report" in refused.stderr
