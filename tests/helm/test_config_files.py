"""Every rules file and notifications file the chart renders passes the worker's own loaders.

The chart only stores these files as text; the worker parses them at start and exits on a
bad one. So a values file the chart accepts but whose rules or routes the worker refuses
means a pod that crash-loops after a successful `helm install`. Each values case (the
defaults and every ci/*-values.yaml) is rendered, the file the worker would read is followed
from its environment variable through the volume mount to the chart's ConfigMap, and loaded
with alerts.rules.load_rules (what `bouncewatch rules validate` runs) and
alerts.routing.load_config (what the worker runs on BOUNCEWATCH_NOTIFY_FILE).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from alerts.routing import NotifyConfigError, load_config
from alerts.rules import RulesError, load_rules

from .chart import CASES, Manifest, Rendered, env_of, render, rendered_case, worker

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration

#: Environment variable naming the file -> the loader the worker runs on it.
LOADERS: dict[str, Callable[[Path], Any]] = {
    "BOUNCEWATCH_RULES_FILE": load_rules,
    "BOUNCEWATCH_NOTIFY_FILE": load_config,
}


def _chart_files(rendered: Rendered) -> dict[str, str]:
    """Environment variable -> text of the file it names, for files held in a ConfigMap the
    chart itself renders (an existing ConfigMap is the cluster's, not the chart's)."""
    pod = rendered.one("StatefulSet")["spec"]["template"]["spec"]
    container = worker(rendered)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    configmaps = {m["metadata"]["name"]: m for m in rendered.of_kind("ConfigMap")}
    env = env_of(container)
    found: dict[str, str] = {}
    for variable in LOADERS:
        if variable not in env:
            continue
        path = PurePosixPath(env[variable]["value"])
        (mount,) = [
            m for m in container["volumeMounts"] if path.parent == PurePosixPath(m["mountPath"])
        ]
        source: Manifest = volumes[mount["name"]]["configMap"]
        (item,) = [i for i in source["items"] if i["path"] == path.name]
        if source["name"] in configmaps:
            found[variable] = configmaps[source["name"]]["data"][item["key"]]
    return found


def _load(variable: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / variable.lower()
    path.write_text(text, encoding="utf-8")
    LOADERS[variable](path)


def _problems(variable: str, text: str, tmp_path: Path) -> str:
    """The loader's complaint about the file, or "" when the worker accepts it."""
    try:
        _load(variable, text, tmp_path)
    except RulesError as exc:
        return "\n".join(str(p) for p in exc.problems)
    except NotifyConfigError as exc:
        return str(exc)
    return ""


def test_every_rendered_file_is_accepted_by_the_worker(case: str, tmp_path: Path) -> None:
    rendered = rendered_case(case)
    files = _chart_files(rendered)
    # Every ConfigMap the chart renders for the worker is one of these files: none escapes
    # the check. (The Grafana dashboard's is for Grafana: tests/helm/test_dashboard.py.)
    worker_configmaps = [
        m for m in rendered.of_kind("ConfigMap") if not m["metadata"]["name"].endswith("-dashboard")
    ]
    assert len(worker_configmaps) == len(files)
    for variable, text in files.items():
        problems = _problems(variable, text, tmp_path)
        assert not problems, f"{case}: the worker refuses the file of {variable}:\n{problems}"


def test_the_check_covers_both_files() -> None:
    """At least one values case carries an inline file of each kind."""
    covered = {variable for case in CASES for variable in _chart_files(rendered_case(case))}
    assert covered == set(LOADERS)


@pytest.mark.parametrize(
    ("variable", "values", "complaint"),
    [
        (
            "BOUNCEWATCH_RULES_FILE",
            "rules:\n  inline: |\n    rules:\n      - name: x\n        metric: deferral_rate\n",
            "rules[0]",
        ),
        (
            "BOUNCEWATCH_NOTIFY_FILE",
            "notifications:\n  inline: |\n    receivers: [{name: a}]\n    route: {receiver: b}\n",
            "no receiver named 'b'",
        ),
    ],
)
def test_a_file_the_worker_refuses_is_caught(
    variable: str, values: str, complaint: str, tmp_path: Path
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(values, encoding="utf-8")
    text = _chart_files(render(values_file))[variable]
    assert complaint in _problems(variable, text, tmp_path)
