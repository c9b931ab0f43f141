"""Peak memory of a worker holding the state of many distinct recipients (list hygiene).

    .venv/bin/python scripts/bench_recipients.py --bootstrap HOST:PORT [--recipients 2000000]
        [--checkpoints 250000 500000 1000000 2000000] [--delivered 0]

Feeds one worker (``BOUNCEWATCH_STORE=rocksdb://``) events in batches of 100 per message:
``--recipients`` distinct addresses each get one mailbox-full deferral (every one of them
then has an entry in the ``recipients`` table: the worst case for memory, since deliveries to
addresses without state store nothing), and ``--delivered`` more distinct addresses one
delivery each (answered by the in-memory presence filter). At each checkpoint of
observations applied it prints the worker's resident memory (VmRSS), its peak (VmHWM), the
RocksDB size on disk and the load average. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from tests.support.worker import WorkerProcess, metric_sum  # noqa: E402

FULL = {"code": 452, "enhanced": "4.2.2", "text": "4.2.2 The email account that you tried to "
        "reach is over quota."}  # fmt: skip
DELIVERED = {"code": 250, "enhanced": "2.0.0", "text": "OK"}
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "example.org", "web.de", "icloud.com")


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file compaction removed meanwhile
                total += (Path(root) / name).stat().st_size
    return total / 1e6


def produce(bootstrap: str, topic: str, count: int, reply: dict[str, object], prefix: str) -> None:
    """Send ``count`` events in messages of 100; raises if any message was not stored (on a
    loaded broker, messages outlived kafka-python's two-minute delivery timeout and were
    dropped with nothing said: a run then measured a worker holding a fraction of the
    addresses it printed)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20,
                             max_request_size=4 << 20,
                             delivery_timeout_ms=900_000)  # fmt: skip
    failed: list[BaseException] = []
    now = time.time()
    batch: list[dict[str, object]] = []
    for n in range(count):
        t = datetime.fromtimestamp(now - 3600 + (n % 3600), UTC).isoformat()
        batch.append({
            "event_time": t,
            "recipient": f"{prefix}{n}@{DOMAINS[n % len(DOMAINS)]}",
            "reply": reply,
        })  # fmt: skip
        if len(batch) == 100:
            producer.send(topic, json.dumps(batch).encode()).add_errback(failed.append)
            batch = []
    if batch:
        producer.send(topic, json.dumps(batch).encode()).add_errback(failed.append)
    producer.flush()
    producer.close()
    if failed:
        raise RuntimeError(f"{len(failed)} messages not stored, e.g. {failed[0]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--recipients", type=int, default=2_000_000)
    parser.add_argument("--delivered", type=int, default=0)
    parser.add_argument("--checkpoints", type=int, nargs="*", default=None)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--hygiene",
        choices=("on", "off"),
        default="on",
        help="off: the same feed with list hygiene off (checkpoints count events read)",
    )
    args = parser.parse_args()
    total = args.recipients + args.delivered
    checkpoints = sorted(args.checkpoints or [total // 8, total // 4, total // 2, total])
    suffix = uuid.uuid4().hex[:6]
    topic = f"rss-{suffix}-events"
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()
    print(f"producing {args.recipients:,} mailbox-full + {args.delivered:,} delivered ...",
          flush=True)  # fmt: skip
    started = time.monotonic()
    produce(args.bootstrap, topic, args.recipients, FULL, "full.")
    produce(args.bootstrap, topic, args.delivered, DELIVERED, "ok.")
    print(f"produced in {time.monotonic() - started:.0f}s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-recipients-") as tmp:
        env = {
            "BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS": args.bootstrap,
            "BOUNCEWATCH_APP_ID": f"rss-{suffix}",
            "BOUNCEWATCH_TOPIC_INPUT": topic,
            "BOUNCEWATCH_TOPIC_DEAD_LETTER": f"rss-{suffix}-dlq",
            "BOUNCEWATCH_TOPIC_ALERTS": f"rss-{suffix}-alerts",
            "BOUNCEWATCH_TOPIC_SILENCES": f"rss-{suffix}-silences",
            "BOUNCEWATCH_TOPIC_PARTITIONS": "4",
            "BOUNCEWATCH_STORE": "rocksdb://",
            "BOUNCEWATCH_HYGIENE": "true" if args.hygiene == "on" else "false",
            "BOUNCEWATCH_INPUT_FORMAT": "bouncewatch",
            "BOUNCEWATCH_LOG_LEVEL": "WARNING",
        }
        worker = WorkerProcess(env, Path(tmp))
        worker.request_timeout = 60
        worker.start()
        try:
            worker.wait_ready(timeout=180)
            t0 = time.monotonic()
            counted = (
                "bouncewatch_recipient_observations_total"
                if args.hygiene == "on"
                else "bouncewatch_events_total"
            )
            print(f"{'observations':>14}{'seconds':>9}{'rss MiB':>9}{'peak MiB':>10}"
                  f"{'rocksdb MB':>12}{'load1':>7}", flush=True)  # fmt: skip
            for mark in checkpoints:
                while True:
                    applied = metric_sum(worker.metrics(), counted)
                    if applied >= mark:
                        break
                    if time.monotonic() - t0 > args.timeout:
                        raise TimeoutError(f"{applied:,.0f} observations after {args.timeout}s")
                    time.sleep(2)
                print(
                    f"{applied:>14,.0f}{time.monotonic() - t0:>9.0f}"
                    f"{status_kb(worker.pid, 'VmRSS') / 1024:>9.0f}"
                    f"{status_kb(worker.pid, 'VmHWM') / 1024:>10.0f}"
                    f"{du_mb(Path(tmp) / 'worker-data'):>12.0f}{os.getloadavg()[0]:>7.2f}",
                    flush=True,
                )
        finally:
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
