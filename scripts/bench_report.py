"""How big and how slow is `bouncewatch replay --report` on a large sender's month?

Writes a gzipped JSONL file of native events (scripts/bench/traffic.py: every packaged ISP,
10 % documented failures, 16 source IPs, three sending domains) spread evenly over
``--days``, with incidents that make the default rules fire: Yahoo deferring with TSS04 for
two hours every third day, Gmail rate-limiting with 4.7.28 for an hour every fifth day.
Then runs ``bouncewatch replay FILE --report OUT.html`` in a child process and prints the
input size, the wall time, the child's peak resident memory, the report's size and the
transitions found.

    .venv/bin/python scripts/bench_report.py                     # 10,000,000 events, 30 days
    .venv/bin/python scripts/bench_report.py --events 1000000 --days 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench import traffic
from scripts.bench.machine import describe

CHUNK = 200_000
YAHOO_TSS04 = {
    "code": 421,
    "enhanced": "4.7.0",
    "text": "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or "
    "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
}
GMAIL_4728 = {
    "code": 421,
    "enhanced": "4.7.28",
    "text": "Gmail has detected an unusual rate of unsolicited mail originating from your IP "
    "address. To protect our users from spam, mail sent from your IP address has been "
    "temporarily rate limited. gsmtp",
}


def incident(event: dict[str, Any], day: int, hour: int, n: int) -> None:
    """Turn ``event`` into an incident's reply when its ISP and hour have one."""
    domain = event["recipient"].rpartition("@")[2]
    yahoo = day % 3 == 1 and hour in (10, 11) and domain.startswith(("yahoo.", "aol."))
    gmail = day % 5 == 2 and hour == 14 and domain in ("gmail.com", "googlemail.com")
    if yahoo and n % 100 < 35:
        event["reply"] = YAHOO_TSS04
    elif gmail and n % 100 < 25:
        event["reply"] = GMAIL_4728


def write_feed(path: Path, count: int, days: int) -> float:
    """Write the feed; returns the seconds it took."""
    started = time.perf_counter()
    span = days * 86400.0
    chunks = max(1, count // CHUNK)
    chunk_span = span / chunks
    n = 0
    with gzip.open(path, "wt", compresslevel=1) as out:
        for c in range(chunks):
            size = CHUNK if c < chunks - 1 else count - CHUNK * (chunks - 1)
            start = traffic.START + timedelta(seconds=c * chunk_span)
            for i, event in enumerate(traffic.events(size, seed=c, span=chunk_span, start=start)):
                t = start + timedelta(seconds=chunk_span * i / size)
                incident(event, (t - traffic.START).days, t.hour, n)
                out.write(json.dumps(event, separators=(",", ":")))
                out.write("\n")
                n += 1
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="bench-report-"))
    workdir.mkdir(parents=True, exist_ok=True)
    feed = workdir / f"events-{args.events}.jsonl.gz"
    report = workdir / "report.html"
    print(describe(load=True))
    if not feed.exists():
        took = write_feed(feed, args.events, args.days)
        print(f"feed: {feed} {feed.stat().st_size / 1e6:.1f} MB gz, written in {took:.0f} s")
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bouncewatch.cli",
            "replay",
            str(feed),
            "--output",
            "jsonl",
            "--progress",
            "never",
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        print(out.stderr[-4000:], file=sys.stderr)
        return out.returncode
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    transitions = sum(1 for line in out.stdout.splitlines() if line.strip())
    print(
        f"replay --report: {args.events:,} events over {args.days} days in {wall:.0f} s "
        f"({args.events / wall:,.0f} events/s), peak RSS {peak_mib:,.0f} MiB, "
        f"report {report.stat().st_size / 1e6:.1f} MB, {transitions} transitions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
