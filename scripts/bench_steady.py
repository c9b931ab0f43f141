"""CPU a worker needs to keep up with a live event rate, per ingest batch window.

    .venv/bin/python scripts/bench_steady.py [--rate 2000] [--windows 1 5] [--seconds 60]
        [--batch 1] [--bootstrap HOST:PORT]

``bench_stream.py`` measures how fast a worker drains a backlog. A deployed worker mostly
does something else: it keeps up with events as they happen, and what matters then is the
CPU it spends at that rate. Part of that cost does not depend on the rate at all: each
ingest batch sends one partial per aggregation key it saw, so the merges per second are
about keys / ``ingest_batch_seconds``. This script shows that part.

For each window in ``--windows`` it starts a real broker (or uses ``--bootstrap``), a fresh
input topic and a ``bouncewatch worker`` with ``BOUNCEWATCH_INGEST_BATCH_SECONDS`` set to it,
then produces ``--rate`` events per second, stamped with the current time (the benchmark's
realistic mix, ``bench/traffic.py``: 45+ ISPs, 16 source IPs), one per message or
``--batch`` per message. After ``--warmup`` seconds it measures, over ``--seconds``, the
worker process's CPU time (user + system, as a share of one core) and the partials it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
for entry in (str(ROOT), str(SCRIPTS)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench import traffic  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench_stream import ChildProcess, base_env, broker  # noqa: E402

from tests.support.worker import metric_sum  # noqa: E402

#: How often the producer sends what the rate has accumulated.
TICK_SECONDS = 0.1


async def produce(bootstrap: str, topic: str, rate: float, batch: int, stop: asyncio.Event) -> int:
    """Send ``rate`` events per second, stamped now, until ``stop``; returns events sent."""
    from aiokafka import AIOKafkaProducer

    templates = traffic.events(max(1000, int(rate * 5)))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate) - sent
            stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            events = []
            for i in range(sent, sent + due):
                event = dict(templates[i % len(templates)])
                event["event_time"] = stamp
                events.append(event)
            for i in range(0, len(events), batch):
                chunk = events[i : i + batch]
                body = chunk[0] if batch == 1 else chunk
                await producer.send(topic, json.dumps(body, separators=(",", ":")).encode())
            sent += due
            await asyncio.sleep(TICK_SECONDS)
    finally:
        await producer.stop()
    return sent


def measure(bootstrap: str, window: float, args: argparse.Namespace, workdir: Path) -> str:
    prefix = f"steady-{uuid.uuid4().hex[:6]}"
    topic = f"{prefix}-input"
    asyncio.run(traffic.create_topic(bootstrap, topic, args.partitions))
    env = base_env(bootstrap, prefix, topic, prefix, args.partitions)
    env["BOUNCEWATCH_INGEST_BATCH_SECONDS"] = str(window)
    child = ChildProcess(["-m", "bouncewatch.cli", "worker"], env, workdir, prefix, ROOT)

    async def run() -> tuple[float, float, float, int]:
        stop = asyncio.Event()
        producing = asyncio.create_task(produce(bootstrap, topic, args.rate, args.batch, stop))
        await asyncio.sleep(args.warmup)
        partials0 = metric_sum(child.metrics(), "bouncewatch_partials_sent_total")
        cpu0, t0 = child.cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1, t1 = child.cpu_seconds(), time.monotonic()
        partials1 = metric_sum(child.metrics(), "bouncewatch_partials_sent_total")
        stop.set()
        sent = await producing
        return t1 - t0, cpu1 - cpu0, partials1 - partials0, sent

    child.start()
    try:
        child.wait_ready(timeout=120)
        seconds, cpu, partials, sent = asyncio.run(run())
        read = metric_sum(child.metrics(), "bouncewatch_events_total")
    finally:
        child.stop()
    return (
        f"{window:>7.1f} {args.rate:>9,.0f} {args.batch:>6} {100 * cpu / seconds:>9.1f}%"
        f" {partials / seconds:>11,.0f} {1e6 * cpu / (args.rate * seconds):>10.1f}"
        f"   (sent {sent:,}, counted {read:,.0f} by the end)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument("--batch", type=int, default=1, help="events per message")
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    rows = []
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        for window in args.windows:
            rows.append(measure(bootstrap, window, args, Path(tmp)))
            print(rows[-1], flush=True)
    print("\n window      rate  batch  cpu/core  partials/s  cpu-us/ev")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
