"""CPU per table write of the worker's Faust app: Faust's changelog path against ours.

    .venv/bin/python scripts/bench_changelog.py [--writes 20000] [--repeat 3]
        [--bootstrap HOST:PORT]

Starts a real Apache Kafka broker (or uses ``--bootstrap``), then, once per path and round,
a child process running the worker's Faust app (``streams.app.create_app``) with one table
and one agent. On its first message the agent writes ``--writes`` entries of about 1.5 KB
(a bucket entry of the benchmark's traffic: counts, reply samples, offsets) and flushes the
producer, the way the aggregate stage writes a backlog's buckets. The child prints the CPU
its process spent per write until the writes were put, and until the flush returned (every
write acknowledged by the broker):

- ``faust``: Faust's own ``Table.on_key_set`` and ``send_changelog`` (a FutureMessage per
  write through its producer buffer);
- ``ours``: the worker's table (``streams.app._Table``: writes appended to the Kafka
  producer's batches, ``streams.changelog``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
for entry in (str(ROOT), str(SCRIPTS)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench import traffic  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench_stream import broker  # noqa: E402

PATHS = ("faust", "ours")

#: A reply sample as a bucket keeps it.
REPLY = ["421 4.7.0 try again later " + "x" * 200, 50, 421, "4.7.0"]
#: A bucket entry as the aggregate stage writes it (about 1.5 KB of JSON).
VALUE: dict[str, Any] = {
    "c": {
        "attempts": 1234,
        "delivered": 1100,
        "deferred": 50,
        "bounced": 84,
        "soft": 80,
        "hard": 4,
        "categories": {"delivered": 1100, "throttled": 50, "user_unknown": 4},
        "replies": {"throttled": [REPLY] * 5},
    },
    "o": {"in:0": 12345, "in:1": 22222},
    "p": 0,
}


def child(path: str, bootstrap: str, writes: int, datadir: str, app_id: str) -> None:
    """Run one measurement in this process (the parent reads its last line)."""
    import faust

    from schemas.settings import Settings
    from streams.app import _Table, create_app

    settings = Settings(
        kafka_bootstrap_servers=bootstrap, app_id=app_id, data_dir=datadir, web_port=free_port()
    )
    app = create_app(settings)
    # Created by the parent: a topic missing when the group forms is never assigned.
    topic = app.topic(f"{app_id}-in", key_type=str, value_serializer="json", partitions=1)
    if path == "faust":

        class FaustTable(_Table):
            on_key_set = faust.Table.on_key_set
            send_changelog = faust.Table.send_changelog

        table = app.Table("t", default=None, partitions=1, key_type=str)
        table.__class__ = FaustTable
    else:
        table = app.Table("t", default=None, partitions=1, key_type=str)

    @app.agent(topic)
    async def write(stream: Any) -> None:
        async for _ in stream.events():
            c0 = time.process_time()
            for i in range(writes):
                table[f"isp=gmail|source_ip=192.0.2.{i % 16}@{i}"] = VALUE
                if i % 256 == 0:
                    await asyncio.sleep(0)  # the agent lets the producer's tasks run
            c1 = time.process_time()
            await app.producer.flush()
            c2 = time.process_time()
            print(
                f"RESULT {1e6 * (c1 - c0) / writes:.1f} {1e6 * (c2 - c0) / writes:.1f}", flush=True
            )
            os._exit(0)

    @app.timer(1.0, on_leader=False)  # type: ignore[untyped-decorator]
    async def kick() -> None:
        await topic.send(key="go", value={"go": 1})

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(path: str, bootstrap: str, writes: int) -> tuple[float, float]:
    app_id = f"bench-changelog-{uuid.uuid4().hex[:8]}"
    asyncio.run(traffic.create_topic(bootstrap, f"{app_id}-in", 1))
    with tempfile.TemporaryDirectory() as datadir:
        argv = [sys.executable, __file__, "--child", path, "--bootstrap", bootstrap]
        argv += ["--writes", str(writes), "--datadir", datadir, "--app-id", app_id]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT)
    for line in reversed(done.stdout.splitlines() + done.stderr.splitlines()):
        if "RESULT" in line:
            put, acked = line.split("RESULT", 1)[1].split()[:2]
            return float(put), float(acked.rstrip('"}'))
    raise RuntimeError(f"{path}: no result\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--datadir", help=argparse.SUPPRESS)
    parser.add_argument("--app-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.bootstrap, args.writes, args.datadir, args.app_id)
        return 0
    print(describe(), flush=True)
    results: dict[str, list[tuple[float, float]]] = {path: [] for path in PATHS}
    with broker(args.bootstrap) as bootstrap:
        for round_number in range(1, args.repeat + 1):
            for path in PATHS:
                put, acked = measure(path, bootstrap, args.writes)
                results[path].append((put, acked))
                print(f"  round {round_number}: {path:5} put {put:6.1f}  acknowledged {acked:6.1f}")
    print(f"\nCPU-us per table write of ~1.5 KB, {args.writes:,} writes, medians of {args.repeat}:")
    print("path    put  acknowledged")
    for path in PATHS:
        put = statistics.median(r[0] for r in results[path])
        acked = statistics.median(r[1] for r in results[path])
        print(f"{path:5} {put:6.1f} {acked:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
