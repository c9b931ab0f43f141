"""The rules file: the default one, durations, overrides, scope, and errors with their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregation.buckets import KeySpec
from alerts.rules import (
    RulesError,
    SpikeRule,
    ThresholdRule,
    load_default_rules,
    load_rules,
    parse_rules,
)
from bouncewatch.cli import main
from schemas.alert import Severity


def test_default_rules_load_and_ask_for_the_per_ip_and_per_domain_keys() -> None:
    rules = load_default_rules()
    assert {r.name for r in rules.rules} >= {"soft-bounce-rate", "soft-bounce-spike"}
    assert rules.key_specs() == {
        KeySpec(()),
        KeySpec(("source_ip",)),
        KeySpec(("sending_domain",)),  # complaint-rate-per-domain
    }
    config = rules.aggregation_config()
    # the complaint rules read a day; the longest span otherwise is the spike's 2h15m
    assert config.retention_seconds == 24 * 3600 + 60
    assert (config.lateness_seconds, config.evaluation_delay_seconds) == (300, 60)
    soft = rules.rules[0]
    assert isinstance(soft, ThresholdRule)
    assert soft.for_isp("other").base_thresholds()[Severity.WARNING] == 0.20
    assert soft.for_isp("gmail") is soft


def test_every_number_of_the_default_rules_has_a_comment() -> None:
    text = (Path(__file__).parents[2] / "alerts" / "data" / "default_rules.yaml").read_text()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        body = line.split("#")[0]
        if any(ch.isdigit() for ch in body) and ":" in body and "version" not in body:
            above = [ln.strip() for ln in lines[max(0, index - 4) : index + 1]]
            assert any(ln.startswith("#") or " # " in ln for ln in above), line


@pytest.mark.parametrize(
    ("settings", "delay"),
    [
        ("{}", 60),
        ("{evaluation_delay: 0}", 0),
        ("{allowed_lateness: 10m, evaluation_delay: 2m}", 120),
        ("{allowed_lateness: 2m, evaluation_delay: 2m}", 120),
        # Unset, the delay follows a lateness shorter than its one-minute default.
        ("{allowed_lateness: 30s}", 30),
        ("{allowed_lateness: 0}", 0),
    ],
)
def test_evaluation_delay(settings: str, delay: int) -> None:
    config = parse_rules(f"settings: {settings}").aggregation_config()
    assert config.evaluation_delay_seconds == delay


def test_evaluation_delay_beyond_the_lateness_is_refused_at_its_line() -> None:
    text = "settings:\n  allowed_lateness: 1m\n  evaluation_delay: 2m\n"
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.yaml")
    assert str(info.value).startswith(
        "r.yaml:3:21: settings.evaluation_delay: evaluation_delay (2m) must not exceed "
        "allowed_lateness (1m)"
    )
    with pytest.raises(RulesError, match=r"settings\.evaluation_delay: not a duration: -60"):
        parse_rules("settings: {evaluation_delay: -60}")


BAD = """\
rules:
  - name: ok-rule
    type: threshold
    metric: soft_bounce_rate
    value: 0.1
  - name: broken
    type: threshold
    metric: category_rate(throtled)
    window: 7m30
    severities: {warning: 0.3, critical: 0.2}
  - name: spikey
    type: spike
    metric: attempts
    factor: 2
    colour: red
"""


def test_bad_file_is_refused_with_lines_and_fields() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(BAD, "r.yaml")
    shown = [str(p) for p in info.value.problems]
    for start in (
        "r.yaml:8:13: rules[1].metric: unknown category",
        "r.yaml:9:13: rules[1].window: not a duration",
        "r.yaml:11:5: rules[2].baseline: this field is required",
        "r.yaml:15:13: rules[2].colour: unknown field",
    ):
        assert any(s.startswith(start) for s in shown), (start, shown)


def test_override_errors_point_into_the_override() -> None:
    text = """\
rules:
  - name: r
    type: threshold
    metric: soft_bounce_rate
    severities: {warning: 0.1, critical: 0.2}
    overrides:
      gmail:
        min_attempts: -5
      yahoo:
        group_by: [tenant]
"""
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.yaml")
    shown = [str(p) for p in info.value.problems]
    assert any("rules[0].overrides" in s and "group_by" in s for s in shown), shown


def test_override_errors_after_the_file_is_otherwise_valid() -> None:
    text = """\
rules:
  - name: r
    type: threshold
    metric: soft_bounce_rate
    severities: {warning: 0.1, critical: 0.2}
    overrides:
      gmail:
        min_attempts: -5
"""
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.yaml")
    assert str(info.value).startswith("r.yaml:8:23: rules[0].overrides.gmail.min_attempts")


def test_scope_spike_and_rule_set_checks() -> None:
    rules = parse_rules(
        """\
rules:
  - name: s
    type: spike
    metric: deferral_rate
    window: 10m
    baseline: {period: 1h, aggregate: mean}
    severities: {warning: 2, critical: 4}
    scope: {except: [other]}
    group_by: [sending_domain]
  - name: t
    type: threshold
    metric: attempts
    comparison: "<"
    severities: {warning: 100, critical: 10}
    scope: [gmail]
"""
    )
    spike, threshold = rules.rules
    assert isinstance(spike, SpikeRule) and spike.span_seconds == 4200
    assert spike.in_scope("gmail") and not spike.in_scope("other")
    assert threshold.in_scope("gmail") and not threshold.in_scope("yahoo")
    assert rules.rules_for("gmail", KeySpec(("sending_domain",))) == [spike]
    for bad in (
        "rules: [{name: a, type: spike, metric: attempts, window: 10m, factor: 2,"
        " baseline: {period: 25m}}]",
        "rules: [{name: a, type: threshold, metric: attempts, value: 1, window: 90s}]",
        "rules: [{name: a, type: threshold, metric: attempts, value: 1},"
        " {name: a, type: threshold, metric: attempts, value: 2}]",
        "rules: [{name: a, type: threshold, metric: attempts, value: 1, severities: {warning: 1}}]",
        "rules: [: nope",
    ):
        with pytest.raises(RulesError):
            parse_rules(bad)


def test_rules_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate"]) == 0
    assert "ok, 10 rule(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert main(["rules", "validate", str(bad)]) == 1
    assert f"{bad}:9:13: rules[1].window" in capsys.readouterr().err
    with pytest.raises(RulesError):
        load_rules(tmp_path / "missing.yaml")
