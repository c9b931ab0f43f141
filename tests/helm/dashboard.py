"""The Grafana dashboard of the chart (helm/bouncewatch/dashboards/bouncewatch.json): its
panels' PromQL expressions and the metric names they read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from .chart import CHART

DASHBOARD_FILE = CHART / "dashboards" / "bouncewatch.json"

#: Grafana's variables, replaced by what Prometheus would see with "All" selected.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m",
    "$__interval": "1m",
    "$namespace": ".*",
    "$isp": ".*",
}
#: A metric name of ours: in the chart's expressions, always followed by its label matchers.
_METRIC = re.compile(r"\b(bouncewatch_[a-z0-9_]+)\b(\s*\{)?")


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The `label_values(...)` queries of the dashboard's query variables."""
    return [
        var["query"]["query"] for var in dashboard["templating"]["list"] if var["type"] == "query"
    ]


def substitute(expr: str) -> str:
    """The expression with Grafana's variables replaced (longest names first)."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def metric_names(expr: str) -> set[str]:
    """The bouncewatch metric names an expression reads; each must carry label matchers
    (the namespace filter), so a bare name is a mistake and raises."""
    names: set[str] = set()
    for match in _METRIC.finditer(expr):
        if not match.group(2):
            raise ValueError(f"{match.group(1)} without label matchers in: {expr}")
        names.add(match.group(1))
    return names


def dashboard_metric_names() -> set[str]:
    """Every metric name used by any panel or variable of the dashboard."""
    dashboard = load_dashboard()
    names: set[str] = set()
    for _, expr in expressions(dashboard):
        names |= metric_names(expr)
    for query in variable_queries(dashboard):
        names |= {m.group(1) for m in _METRIC.finditer(query)}
    return names
