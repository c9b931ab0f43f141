"""Memory of the aggregate side for many keys with long windows: 1,000 keys, 24 hours of
one-minute buckets each.

    .venv/bin/python scripts/bench_memory.py [--keys 1000] [--hours 24] [--window 24h]
                                             [--store dict|none]

Runs the worker's own ``Aggregator`` in this process over a rule with a 24-hour window (or
``--window``, to compare what a shorter one costs over the same traffic), and
merges one partial per key and minute (a realistic minute: deliveries, deferrals of two
causes, a bounce, reply samples) through the evaluation of every boundary, as the live
worker does. ``--store dict`` keeps the bucket table in a dict, as the worker's
``memory://`` store does (every entry twice: the table's value and the live object);
``--store none`` measures the live objects alone, which is what a worker on ``rocksdb://``
keeps in memory besides RocksDB's bounded cache. Prints the resident memory (VmRSS) before
and after, and the peak (VmHWM).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aggregation.aggregator import Aggregator  # noqa: E402
from aggregation.buckets import PartialBuilder  # noqa: E402
from aggregation.ingest import Engine  # noqa: E402
from alerts.rules import parse_rules  # noqa: E402

RULES = """\
settings: {{bucket: 1m, allowed_lateness: 5m, evaluation_delay: 1m}}
rules:
  - name: daily-hard-bounce-rate
    type: threshold
    metric: hard_bounce_rate
    window: {window}
    min_attempts: 1000
    severities: {{warning: 0.02, critical: 0.05}}
"""


class Discard(dict[str, Any]):
    """A table that keeps nothing (the worker on rocksdb:// keeps it on disk)."""

    def __setitem__(self, key: str, value: Any) -> None:
        pass


def status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--window", default="24h", help="the rule's window (default 24h)")
    parser.add_argument("--store", choices=("dict", "none"), default="dict")
    args = parser.parse_args(argv)

    rules = parse_rules(RULES.format(window=args.window))
    engine = Engine.packaged(rules)
    classify = engine.classifier.classify
    ok = classify(250, "2.0.0", "OK", None)
    throttled = classify(421, "4.7.28", "Our system has detected an unusual rate", None)
    full = classify(452, "4.2.2", "The email account that you tried to reach is over quota", None)
    unknown = classify(
        550, "5.1.1", "The email account that you tried to reach does not exist", None
    )
    table: MutableMapping[str, Any] = {} if args.store == "dict" else Discard()
    aggregator = Aggregator(engine, table, {})
    gc.collect()
    before = status("VmRSS:")
    started = time.monotonic()
    t0 = 1_790_000_000 - 1_790_000_000 % 60
    minutes = args.hours * 60
    for minute in range(minutes + 2):
        builder = PartialBuilder(rules.key_specs(), 60)
        at = float(t0 + minute * 60 + 30)
        for k in range(args.keys):
            isp = f"isp{k}"
            builder.add(at, isp, ok, count=200)
            builder.add(at, isp, throttled, code=421, enhanced="4.7.28",
                        text=f"Our system has detected an unusual rate [{k}]", count=5)  # fmt: skip
            builder.add(at, isp, full, code=452, enhanced="4.2.2", text="over quota", count=2)
            builder.add(at, isp, unknown, code=550, enhanced="5.1.1", text="no such user")
        builder.note_offset("in:0", minute)
        for partial in builder.drain().values():
            aggregator.merge(0, partial)
        end = at + 60
        aggregator.progress.update(0, {"of": 1, "sources": {"in:0": [end, False]}})
        aggregator.tick(0)
        if minute % 120 == 0:
            print(f"  {minute // 60:>3}h  rss {status('VmRSS:'):7.0f} MiB", flush=True)
    gc.collect()
    after = status("VmRSS:")
    buckets = sum(len(aggregator.load(k).buckets) for k in aggregator.aggregation_keys())
    print(
        f"{args.keys:,} keys x {args.hours} h of 1-minute buckets ({buckets:,} buckets held), "
        f"{args.window} window, "
        f"store {args.store}: rss {before:.0f} -> {after:.0f} MiB (+{after - before:.0f}), "
        f"peak {status('VmHWM:'):.0f} MiB, {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
