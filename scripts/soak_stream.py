"""Soak: the stream benchmark's worker run many times in a row, each time on a freshly started
broker, with each ingest window: counts the runs that stalled.

    .venv/bin/python scripts/soak_stream.py [--runs 20] [--windows 1 5]
        [--events 50000] [--batch-events 200000] [--timeout 300]

A stall is a run that did not finish within ``--timeout`` (the worker stopped reading or
merging) or that failed; each run is ``bench_stream.py --contenders worker --repeat 1`` with
``BOUNCEWATCH_INGEST_BATCH_SECONDS`` set to the window, which starts its own broker and stops
it after. The first worker against a fresh broker is where stalls were seen before the
ingest left Faust's per-message path (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-events", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    stalls: dict[float, int] = {}
    for window in args.windows:
        stalls[window] = 0
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            env = {**os.environ, "BOUNCEWATCH_INGEST_BATCH_SECONDS": str(window)}
            command = [
                sys.executable,
                str(ROOT / "scripts" / "bench_stream.py"),
                "--contenders", "worker",
                "--repeat", "1",
                "--events", str(args.events),
                "--batch-events", str(args.batch_events),
                "--timeout", str(args.timeout),
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=args.timeout + 180
                )
                ok = done.returncode == 0
                detail = "" if ok else done.stderr.strip().splitlines()[-1:]
            except subprocess.TimeoutExpired:
                ok, detail = False, ["timed out"]
            stalls[window] += 0 if ok else 1
            print(
                f"window {window:g}s run {run:>2}/{args.runs}: "
                f"{'ok   ' if ok else 'STALL'} {time.monotonic() - started:5.0f}s {detail or ''}",
                flush=True,
            )
    for window, count in stalls.items():
        print(f"window {window:g}s: {count} stalled of {args.runs} runs, each on a fresh broker")
    return 1 if any(stalls.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
