"""``scripts/bench_core.py`` runs the worker's stages end to end: a small run must count every
event into partials and print a figure for each stage (no timing is asserted)."""

from __future__ import annotations

import pytest

from tests.support.scripts import script


def test_bench_core_prints_every_stage_for_both_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    bench_core = script("bench_core")
    assert bench_core.main(["--events", "3000", "--repeat", "1", "--batch-seconds", "60"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("shape"))
    assert header.split()[1:] == [*bench_core.STAGES, "worker"]
    for shape in ("single", "batch"):
        row = next(line for line in lines if line.startswith(shape)).split()
        figures = [float(v) for v in row[1:]]
        assert len(figures) == len(bench_core.STAGES) + 1 and all(f > 0 for f in figures)
