"""The worker's default memory request and limit follow the measured peak (docs/benchmarks.md,
"Memory"): the request holds the largest peak measured while a worker catches up a backlog,
the limit twice it, so that a worker is not killed for memory while it catches up (it would
restart into the same backlog)."""

from __future__ import annotations

import re

import pytest

from .chart import ROOT, render, worker

#: Peak resident memory (MiB) of a worker owning all 8 partitions, RocksDB store, default
#: rules, catching up 4.5 million events (the largest backlog measured).
MEASURED_PEAK_MIB = 1289


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity)
    assert match, quantity
    return float(match[1]) * (1024 if match[2] == "Gi" else 1)


@pytest.mark.integration  # runs helm
def test_default_memory_follows_the_measured_peak() -> None:
    resources = worker(render())["resources"]
    request = mebibytes(resources["requests"]["memory"])
    limit = mebibytes(resources["limits"]["memory"])
    assert request >= 0.99 * MEASURED_PEAK_MIB
    assert limit >= 1.9 * MEASURED_PEAK_MIB
    assert "cpu" not in resources["limits"]


def test_the_measured_peak_is_documented() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert f"{MEASURED_PEAK_MIB:,} MiB" in text
