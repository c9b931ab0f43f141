"""CPU of list hygiene's steps in-process, without Kafka or Faust: where its cost is not waiting.

    .venv/bin/python scripts/bench_hygiene.py [--events 200000] [--shape batch|single]

Reads the stream benchmark's traffic (``bench/traffic.py``, the same seed) with the ingest core
(``IngestBatch``) with list hygiene off and on, then takes the observations of the last run
the way the worker does: encoded as recipients messages (``observation_bundles``), decoded by
Faust's JSON codec, applied to dict tables with a presence filter per partition
(``apply_bundle``), and the decisions counted in partials and serialized for publication.
Prints CPU microseconds per event of each step (``time.process_time``), best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "scripts")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import orjson  # noqa: E402
from bench import traffic  # noqa: E402
from bench.engine import PARTITIONS, engine  # noqa: E402
from faust.serializers import codecs  # noqa: E402

from aggregation.ingest import Chunk, IngestBatch  # noqa: E402
from aggregation.watermark import InputProgress  # noqa: E402
from hygiene.bundles import PresenceFilter, apply_bundle, decision_partials  # noqa: E402
from hygiene.core import HygieneRules  # noqa: E402
from hygiene.observe import Bundle  # noqa: E402
from streams.ingest import observation_bundles  # noqa: E402


def ingest(payloads: list[bytes], hygiene: bool) -> tuple[float, list[Chunk]]:
    e = engine(hygiene)
    now = time.time()
    inputs = InputProgress(e.time_bounds)
    inputs.assign(["in:0"], now)
    reader = IngestBatch(e, inputs, 1, lambda: now)
    chunks: list[Chunk] = []
    gc.collect()
    started = time.process_time()
    for offset, payload in enumerate(payloads):
        reader.add(payload, "in:0", offset)
        if reader.due():
            chunks.append(reader.flush())
    chunks.append(reader.flush())
    return time.process_time() - started, chunks


def best(rounds: int, step: Callable[[], float]) -> float:
    return min(step() for _ in range(rounds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--shape", choices=("single", "batch"), default="batch")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.events
    events = traffic.events(n, span=120.0 * n / 100_000)
    payloads = traffic.singles(events) if args.shape == "single" else traffic.batches(events, 100)

    def us(seconds: float) -> str:
        return f"{1e6 * seconds / n:6.2f}"

    off = best(args.rounds, lambda: ingest(payloads, False)[0])
    on = best(args.rounds, lambda: ingest(payloads, True)[0])
    _, chunks = ingest(payloads, True)
    print(f"ingest core, hygiene off  {us(off)} CPU-us/event")
    print(f"ingest core, hygiene on   {us(on)} CPU-us/event (+{us(on - off)})")
    observations = sum(len(b) for c in chunks for b in c.recipients.values())
    deliveries = sum(len(b.keys) for c in chunks for b in c.recipients.values())
    print(f"observations {observations:,} ({deliveries:,} deliveries) in {len(chunks)} chunk(s)")

    messages: list[list[bytes]] = [[] for _ in range(PARTITIONS)]

    def encode() -> float:
        started = time.process_time()
        out: list[list[bytes]] = [[] for _ in range(PARTITIONS)]
        for chunk in chunks:
            for p in range(PARTITIONS):
                out[p] += observation_bundles(chunk.recipients.get(p), chunk.progress)
        messages[:] = out
        return time.process_time() - started

    print(f"encode                    {us(best(args.rounds, encode))}", end="")
    size = sum(len(v) for m in messages for v in m)
    print(f" ({sum(map(len, messages))} messages, {size / n:.1f} bytes/event)")
    codec = codecs.get_codec("json")
    decoded: list[list[Bundle]] = []

    def decode() -> float:
        started = time.process_time()
        decoded[:] = [[Bundle.from_message(codec.loads(v)) for v in m] for m in messages]
        return time.process_time() - started

    print(f"decode (Faust's codec)    {us(best(args.rounds, decode))}")
    rules = HygieneRules()
    counting = engine(True)
    made: list[int] = []

    def apply() -> tuple[float, float]:
        tables: list[dict[str, Any]] = [{} for _ in range(PARTITIONS)]
        presence = [PresenceFilter() for _ in range(PARTITIONS)]
        applying = deciding = 0.0
        made.clear()
        for p in range(PARTITIONS):
            for offset, bundle in enumerate(decoded[p]):
                counted: list[tuple[Sequence[Any], str]] = []
                started = time.process_time()
                pending = apply_bundle(
                    tables[p], offset, bundle, rules, False, presence[p], counted=counted
                )
                middle = time.process_time()
                if counted:
                    decision_partials(counting.builder(), counted, f"r:{p}", offset)
                for item in pending:
                    orjson.dumps(item.record)
                applying += middle - started
                deciding += time.process_time() - middle
                made.append(len(pending))
        return applying, deciding

    applying, deciding = min((apply() for _ in range(args.rounds)), key=lambda r: sum(r))
    decisions = sum(made)
    print(f"apply (filter, table)     {us(applying)}")
    print(
        f"count and serialize       {us(deciding)} ({decisions:,} suppressions,"
        f" {1e6 * deciding / max(decisions, 1):.1f} CPU-us each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
