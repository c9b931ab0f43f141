"""The Grafana dashboard ConfigMap: off by default, labelled for the Grafana sidecar, and its
panels read only metrics the worker exports (the live check is
tests/integration/test_dashboard_metrics.py; this one asks the metrics registry)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import generate_latest

from alerts.pipeline import Outcome
from streams.metrics import WorkerMetrics

from .chart import CASES, NAMESPACE, render, rendered_case
from .dashboard import (
    dashboard_metric_names,
    expressions,
    load_dashboard,
    metric_names,
    panels,
)


def _configmaps(case: str) -> list[dict[str, object]]:
    return [
        m
        for m in rendered_case(case).of_kind("ConfigMap")
        if m["metadata"]["name"].endswith("-dashboard")
    ]


@pytest.mark.integration  # runs helm
def test_dashboard_is_off_by_default() -> None:
    assert _configmaps("default") == []


@pytest.mark.integration  # runs helm
def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    (cm,) = _configmaps("full")
    metadata = cm["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["namespace"] == "monitoring"
    assert metadata["annotations"]["grafana_folder"] == "Deliverability"
    data = cm["data"]
    assert isinstance(data, dict)
    assert json.loads(data["bouncewatch.json"]) == load_dashboard()
    # In the release namespace unless told otherwise, and with labels of one's own choice.
    rendered = render(
        CASES["default"],
        ["metrics.grafanaDashboard.enabled=true", "metrics.grafanaDashboard.labels.team=mail"],
    )
    (cm,) = [
        m for m in rendered.of_kind("ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["team"] == "mail"


def test_dashboard_shape() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "bouncewatch"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "isp"} <= variables
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"], panel["title"]


def test_dashboard_covers_the_service() -> None:
    """The panels the issue asks for: input, rates, alerts, notifications, worker health."""
    wanted = {
        "bouncewatch_events_total",
        "bouncewatch_alerts_firing",
        "bouncewatch_notification_transitions_total",
        "bouncewatch_notification_messages_total",
        "bouncewatch_notification_outbox",
        "bouncewatch_consumer_lag",
        "bouncewatch_dead_lettered_total",
        "bouncewatch_late_events_total",
        "bouncewatch_events_refused_total",
        "bouncewatch_ingest_commit_seconds_bucket",
        "bouncewatch_ready",
    }
    assert wanted <= dashboard_metric_names()
    titles = {title for title, _ in expressions(load_dashboard())}
    assert any("Deferral rate" in t for t in titles)


def test_metric_names_need_label_matchers() -> None:
    assert metric_names('sum(rate(bouncewatch_events_total{a="b"}[5m]))') == {
        "bouncewatch_events_total"
    }
    try:
        metric_names("sum(bouncewatch_ready)")
    except ValueError:
        pass
    else:
        raise AssertionError("a bare metric name was accepted")


def _exported_names() -> set[str]:
    """Sample names the worker's registry renders once every labelled metric has a child."""
    metrics = WorkerMetrics()
    metrics.events_in.labels("bouncewatch", "delivered", "gmail").inc()
    metrics.soft_bounces.labels("gmail").inc()
    metrics.invalid_events.labels("event_time").inc()
    metrics.late_events.labels("gmail").inc()
    metrics.events_refused.labels("ahead").inc()
    metrics.ingest_commit_seconds.observe(0.01)
    metrics.transitions.labels("r", "firing").inc()
    metrics.alerts_firing.labels("r", "warning").set(1)
    metrics.set_consumer_lag({("events", 0): 3})
    metrics.delivery.count("console", Outcome.SENT)
    metrics.delivery.message("console", Outcome.SENT)
    metrics.set_outbox({"console": 0})
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_dashboard_reads_only_exported_metrics() -> None:
    missing = dashboard_metric_names() - _exported_names()
    assert not missing, f"the dashboard reads metrics the worker does not export: {missing}"
