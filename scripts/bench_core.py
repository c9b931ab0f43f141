"""CPU per event of each stage of the worker's event path, in one process, without Kafka.

    .venv/bin/python scripts/bench_core.py [--events 500000] [--shapes single batch]

Runs the code the worker runs on ``bench/traffic.py``'s events (the traffic of
``scripts/bench_stream.py``, same density of event time), stage by stage, and prints the
CPU microseconds each costs per event:

- ``decode``: ``decode_message`` of every message, what the bare consumer of
  ``bench_stream.py`` does (its figure there adds aiokafka's fetching);
- ``read``: ``IngestBatch.add_messages`` over the worker's slices (``streams.ingest.slices``):
  decode, time check, classification, grouping;
- ``flush``: the groups fed into partials at each flush;
- ``encode``: the partials as the ingest sends them (``bundles`` per partials partition);
- ``merge``: the aggregate stage: each bundle decoded, every partial merged
  (``Aggregator.merge``: its buckets, catch-up evaluation, table writes into dicts), a
  tick per partition after each batch.

Batches are ``--batch-seconds`` of the traffic's event time, as a worker reading a backlog
cuts them. What this leaves out, and ``bench_stream.py`` measures: fetching, Kafka
transactions, Faust's consumer and its changelog writes (about as much again as ``merge``
in a backlog), the web port. Figures are medians of ``--repeat`` runs, garbage collector
tuned as the worker tunes it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
for entry in (str(ROOT), str(SCRIPTS)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import orjson  # noqa: E402
from bench import traffic  # noqa: E402
from bench.engine import PARTITIONS  # noqa: E402
from bench.engine import engine as core_engine  # noqa: E402
from bench.machine import describe  # noqa: E402

from aggregation.aggregator import Aggregator  # noqa: E402
from aggregation.buckets import Partial  # noqa: E402
from aggregation.ingest import IngestBatch  # noqa: E402
from aggregation.watermark import InputProgress  # noqa: E402
from delivery.adapters import decode_message  # noqa: E402
from streams.ingest import bundles, partials_partition, slices  # noqa: E402

STAGES = ("decode", "read", "flush", "encode", "merge")


def run(
    payloads: list[bytes], per_message: int, batch_seconds: float, span: float
) -> dict[str, float]:
    """CPU seconds of each stage over ``payloads`` (one input partition)."""
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time
    started = clock()
    for payload in payloads:
        decode_message(payload)
    spent["decode"] = clock() - started

    engine = core_engine()
    now = time.time()
    inputs = InputProgress(engine.time_bounds)
    inputs.assign(["in:0"], now)
    aggregator = Aggregator(engine, {}, {})
    events = len(payloads) * per_message
    per_batch = max(1, int(len(payloads) * batch_seconds / span))
    for first in range(0, len(payloads), per_batch):
        now += batch_seconds
        reader = IngestBatch(engine, inputs, 1, lambda at=now: at)
        messages = [(p, o) for o, p in enumerate(payloads[first : first + per_batch], first)]
        chunks = []
        started = clock()
        for start, stop in slices(messages):
            reader.add_messages(messages[start:stop], "in:0")
            if reader.due():
                chunks.append(reader.flush())
        read = clock()
        chunks.append(reader.flush())
        flushed = clock()
        sent: list[tuple[int, bytes]] = []
        for chunk in chunks:
            encoded: list[list[bytes]] = [[] for _ in range(PARTITIONS)]
            for key, partial in chunk.partials.items():
                encoded[partials_partition(key, PARTITIONS)].append(orjson.dumps(partial.to_dict()))
            progress = orjson.dumps(chunk.progress) if chunk.progress else None
            sent.extend(
                (p, value) for p, items in enumerate(encoded) for value in bundles(items, progress)
            )
        encoded_at = clock()
        for p, value in sent:
            bundle: dict[str, Any] = orjson.loads(value)
            for item in bundle.get("partials", []):
                aggregator.merge(p, Partial.from_dict(item))
            if "progress" in bundle:
                aggregator.progress.update(p, bundle["progress"])
        for p in range(PARTITIONS):
            aggregator.tick(p)
        merged = clock()
        spent["read"] += read - started
        spent["flush"] += flushed - read
        spent["encode"] += encoded_at - flushed
        spent["merge"] += merged - encoded_at
    return {stage: 1e6 * seconds / events for stage, seconds in spent.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument(
        "--shapes", nargs="+", choices=("single", "batch"), default=["single", "batch"]
    )
    parser.add_argument("--batch", type=int, default=100, help="events per batched message")
    parser.add_argument(
        "--span", type=float, default=120.0, help="event-time seconds per 100,000 events"
    )
    parser.add_argument(
        "--batch-seconds", type=float, default=900.0, help="event time of one ingest batch"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(describe(load=True))
    span = args.span * args.events / 100_000
    evs = traffic.events(args.events, span=span)
    # As the worker does (bouncewatch.commands.worker._tune_gc).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    print(f"{args.events:,} events over {span:,.0f}s of event time; CPU us per event, median "
          f"of {args.repeat}")  # fmt: skip
    print(f"{'shape':<8}" + "".join(f"{s:>9}" for s in STAGES) + f"{'worker':>9}")
    for shape in args.shapes:
        per = 1 if shape == "single" else args.batch
        payloads = traffic.singles(evs) if per == 1 else traffic.batches(evs, per)
        runs = [run(payloads, per, args.batch_seconds, span) for _ in range(args.repeat)]
        figures = {s: statistics.median(r[s] for r in runs) for s in STAGES}
        worker = sum(figures[s] for s in STAGES if s != "decode")
        print(f"{shape:<8}" + "".join(f"{figures[s]:9.2f}" for s in STAGES) + f"{worker:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
