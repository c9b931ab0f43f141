"""Render the bouncewatch chart with the real helm CLI and look into the result.

helm is the binary named by the HELM environment variable, or the pinned one that
scripts/ensure_helm.sh installs (with `go install`, cached). These tests never skip: a
missing helm is a failure.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "bouncewatch"
RELEASE = "bw"
NAMESPACE = "deliverability"
#: Kubernetes version the chart is rendered for (the Capabilities helm reports); the
#: manifests are validated against it and against the oldest version Chart.yaml allows.
KUBE_VERSION = "1.37.0"
OLDEST_KUBE_VERSION = "1.27.0"

#: Values cases: the defaults, and one per ci/*-values.yaml (one feature combination each).
CASES: dict[str, Path | None] = {"default": None} | {
    path.name.removesuffix("-values.yaml"): path for path in sorted(CHART.glob("ci/*-values.yaml"))
}

Manifest = dict[str, Any]


@functools.cache
def tool_binary(variable: str, name: str, timeout: float) -> str:
    """Path of a Go tool the chart tests run: ``$variable``, else what
    ``scripts/ensure_<name>.sh`` prints (it builds the tool once and caches it)."""
    env = os.environ.get(variable, "").strip()
    if env:
        return env
    script = ROOT / "scripts" / f"ensure_{name}.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"scripts/ensure_{name}.sh failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def helm_binary() -> str:
    """Path of the helm CLI: $HELM, else scripts/ensure_helm.sh (which prints it)."""
    return tool_binary("HELM", "helm", 900)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm; the caller checks returncode (failures are sometimes the point)."""
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, check=False, timeout=120
    )


def values_args(values_file: Path | None, sets: Sequence[str] = ()) -> list[str]:
    args: list[str] = []
    if values_file is not None:
        args += ["--values", str(values_file)]
    for item in sets:
        args += ["--set", item]
    return args


def render_text(
    values_file: Path | None = None, sets: Sequence[str] = (), *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *values_args(values_file, sets),
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm template failed:\n{done.stderr}")
    return done


@dataclass(frozen=True)
class Rendered:
    """The manifests of one `helm template` run."""

    manifests: tuple[Manifest, ...]

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[Manifest, Manifest]]:
        """(workload, pod spec) for every workload that runs pods, and every bare Pod."""
        for manifest in self.manifests:
            if manifest["kind"] in {"StatefulSet", "Deployment", "DaemonSet", "Job"}:
                yield manifest, manifest["spec"]["template"]["spec"]
            elif manifest["kind"] == "Pod":
                yield manifest, manifest["spec"]


def render(values_file: Path | None = None, sets: Sequence[str] = ()) -> Rendered:
    text = render_text(values_file, sets).stdout
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(tuple(docs))


def containers(pod_spec: Manifest) -> list[Manifest]:
    found: list[Manifest] = pod_spec["containers"] + pod_spec.get("initContainers", [])
    return found


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item for item in container.get("env", [])}


def worker(rendered: Rendered) -> Manifest:
    """The worker container of the StatefulSet."""
    spec = rendered.one("StatefulSet")["spec"]["template"]["spec"]
    found: list[Manifest] = [c for c in spec["containers"] if c["name"] == "worker"]
    assert len(found) == 1
    return found[0]


@functools.cache
def rendered_case(case: str) -> Rendered:
    """The chart rendered with one values case (see CASES), once per test session."""
    return render(CASES[case])
