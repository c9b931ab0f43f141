"""``scripts/bench_stream.py`` reports each target both as a ratio of medians and round by
round (contenders of one round run back to back, so a round's ratio is the one the machine's
changing speed touches least)."""

from __future__ import annotations

import argparse

import pytest

from tests.support.scripts import script


def test_the_table_gives_the_ratios_of_each_round(capsys: pytest.CaptureFixture[str]) -> None:
    bench_stream = script("bench_stream")
    # Two rounds; the machine is twice as fast in the second, for both contenders alike.
    runs = [
        bench_stream.Run("worker", "batch", 10, 1000, 10.0, 9.0, 1.0, round=0),
        bench_stream.Run("aiokafka-bare", "batch", 10, 1000, 4.0, 4.0, 1.0, round=0),
        bench_stream.Run("worker", "batch", 10, 1000, 5.0, 4.5, 1.0, round=1),
        bench_stream.Run("aiokafka-bare", "batch", 10, 1000, 2.5, 2.5, 1.0, round=1),
    ]
    assert bench_stream.paired_ratios(runs, "worker", "aiokafka-bare", "batch") == [0.4, 0.5]
    assert bench_stream.paired_ratios(runs, "worker", "aiokafka-bare", "single") == []
    bench_stream.table(runs, argparse.Namespace(contenders=["worker", "aiokafka-bare"]))
    out = capsys.readouterr().out
    assert "batch  worker / aiokafka-bare:  0.45  (0.40, 0.50)" in out
