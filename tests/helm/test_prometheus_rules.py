"""The chart's PrometheusRule (alerts on bouncewatch's own health) and the dashboard's
queries, checked with Prometheus' own promtool.

promtool is the binary named by the PROMTOOL environment variable, or the pinned one that
scripts/ensure_promtool.sh installs (``go install`` through the Go module proxy, cached
like helm). These tests never skip: a missing promtool is a failure.

- ``promtool check rules`` parses every expression and annotation template of the rendered
  rule groups;
- ``promtool test rules`` runs tests/helm/prometheus-rules-test.yaml, a case per alert with
  series that must and must not fire it (annotations left out there: check rules covers them);
- the dashboard's panel queries, with Grafana's variables substituted, are parsed by
  ``promtool check rules`` as recording rules.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .chart import CASES, NAMESPACE, render, rendered_case, tool_binary
from .dashboard import expressions, load_dashboard, substitute

RULES_TEST = Path(__file__).with_name("prometheus-rules-test.yaml")
# Every test here renders the chart with helm, and some run promtool, whose first use builds
# it (3 to 8 minutes on two cores): past pytest's 300 s default.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ALERTS = {
    "BouncewatchWorkerDown",
    "BouncewatchWorkersAbsent",
    "BouncewatchWorkerNotReady",
    "BouncewatchTooFewWorkersReady",
    "BouncewatchConsumerLagGrowing",
    "BouncewatchOutboxNotDraining",
    "BouncewatchDeadLettersRising",
    "BouncewatchNotificationsFailing",
}


def promtool_binary() -> str:
    """Path of promtool: $PROMTOOL, else scripts/ensure_promtool.sh (which prints it)."""
    return tool_binary("PROMTOOL", "promtool", 1800)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_binary(), *args], capture_output=True, text=True, check=False, timeout=120
    )


def _rule(sets: list[str]) -> dict[str, Any]:
    rule: dict[str, Any] = render(CASES["default"], sets).one("PrometheusRule")
    return rule


def _alerts(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_prometheus_rule_is_off_by_default() -> None:
    assert rendered_case("default").of_kind("PrometheusRule") == []


def test_prometheus_rule_shape() -> None:
    rule = rendered_case("full").one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = _alerts(rule)
    # The full case leaves one out, as an autoscaled release would.
    assert set(alerts) == ALERTS - {"BouncewatchTooFewWorkersReady"}
    for name, alert in alerts.items():
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert alert["labels"]["team"] == "deliverability", name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
        assert alert["annotations"]["runbook_url"].endswith("#" + name.lower()), name
        selector = f'namespace="{NAMESPACE}",service="bw-bouncewatch"'
        assert selector in alert["expr"], f"{name} must select the release's workers"


def test_rules_select_the_monitored_service() -> None:
    """The `service` label of the expressions is the Service the ServiceMonitor scrapes."""
    rendered = render(
        CASES["default"],
        ["metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"],
    )
    selector = rendered.one("ServiceMonitor")["spec"]["selector"]["matchLabels"]
    (service,) = [
        s
        for s in rendered.of_kind("Service")
        if selector.items() <= s["metadata"]["labels"].items()
    ]
    name = service["metadata"]["name"]
    for alert in _alerts(rendered.one("PrometheusRule")).values():
        assert f'service="{name}"' in alert["expr"]


def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    for sets in (
        ["metrics.prometheusRule.enabled=true"],
        ["metrics.prometheusRule.enabled=true", "metrics.prometheusRule.runbookUrl=https://x/y"],
    ):
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(_rule(sets)["spec"]), encoding="utf-8")
        done = promtool("check", "rules", str(path))
        assert done.returncode == 0, done.stdout + done.stderr
    # Not vacuous: a broken expression is refused.
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(up{a=}"}]}]}
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert promtool("check", "rules", str(path)).returncode != 0


def test_promtool_unit_tests_of_every_alert(tmp_path: Path) -> None:
    spec = _rule(["metrics.prometheusRule.enabled=true", "replicaCount=2"])["spec"]
    for group in spec["groups"]:
        for alert in group["rules"]:
            alert.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
        for case in test["alert_rule_test"]
    }
    assert tested == ALERTS, "every alert needs a promtool test case"
    done = promtool("test", "rules", str(tmp_path / RULES_TEST.name))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("disabled", sorted(ALERTS))
def test_each_alert_can_be_left_out(disabled: str) -> None:
    alerts = _alerts(
        _rule(
            [
                "metrics.prometheusRule.enabled=true",
                f"metrics.prometheusRule.disabled={{{disabled}}}",
            ]
        )
    )
    assert set(alerts) == ALERTS - {disabled}


def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(expressions(load_dashboard()))
    ]
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
