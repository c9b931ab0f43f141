"""``scripts/bench_changelog.py`` runs both table-write paths on a real broker: a small run
prints a figure for each (no timing is asserted), so the script keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_changelog.py"


def test_bench_changelog_prints_both_paths(kafka_bootstrap: str) -> None:
    argv = [sys.executable, str(SCRIPT), "--bootstrap", kafka_bootstrap]
    done = subprocess.run(
        [*argv, "--writes", "500", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("path"))
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[start + 1 :]}
    assert set(rows) == {"faust", "ours"}
    assert all(len(v) == 2 and 0 < v[0] <= v[1] for v in rows.values()), rows
