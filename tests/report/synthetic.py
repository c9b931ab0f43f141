"""Synthetic delivery events for the report tests: days of traffic to four ISPs with a daily
cycle and a few incidents (Gmail throttling, Yahoo TSS04, a Microsoft blocklisted IP).

Deterministic (a seeded random generator), written as bouncewatch JSONL:

    .venv/bin/python -m tests.report.synthetic OUT.jsonl.gz --days 30 --per-minute 40
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from make_scenarios import REPLIES

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
#: ISP -> (recipient domain, share of the traffic, source IPs).
ISPS = {
    "gmail": ("gmail.com", 0.45, ["192.0.2.10", "192.0.2.11"]),
    "yahoo": ("yahoo.com", 0.2, ["192.0.2.20"]),
    "microsoft": ("outlook.com", 0.25, ["192.0.2.31", "192.0.2.32", "192.0.2.33"]),
    "apple": ("icloud.com", 0.1, ["192.0.2.40"]),
}
#: (ISP, reply kind, first minute, last minute, share of that ISP's attempts, source IP or "").
INCIDENTS_PER_DAY = [
    ("gmail", "gmail_rate", 9 * 60, 9 * 60 + 40, 0.3, ""),
    ("yahoo", "tss04", 14 * 60, 15 * 60 + 30, 0.25, ""),
    ("microsoft", "s3150", 12 * 60, 13 * 60, 1.0, "192.0.2.33"),
]


def events(days: float, per_minute: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """About ``per_minute`` attempts a minute at the daily peak, in event-time order."""
    rng = random.Random(seed)
    minutes = int(days * 24 * 60)
    n = 0
    for minute in range(minutes):
        day, of_day = divmod(minute, 24 * 60)
        # Daily cycle: a trough at night, a peak in the afternoon.
        level = 0.55 + 0.45 * math.sin((of_day / (24 * 60) - 0.25) * 2 * math.pi)
        for isp, (domain, share, ips) in ISPS.items():
            count = rng.randint(0, 2) + int(per_minute * share * level)
            for i in range(count):
                ip = ips[(n + i) % len(ips)]
                kind = "ok" if rng.random() > 0.02 else "mailbox_full"
                for inc_isp, inc_kind, first, last, rate, inc_ip in INCIDENTS_PER_DAY:
                    # Incidents on even days only, so a week has both calm and bad days.
                    if (
                        inc_isp == isp
                        and day % 2 == 0
                        and first <= of_day < last
                        and (not inc_ip or inc_ip == ip)
                        and rng.random() < rate
                    ):
                        kind = inc_kind
                code, enhanced, text, status = REPLIES[kind]
                second = (i + rng.random()) * 60 / max(count, 1)
                yield {
                    "event_time": (T0 + timedelta(minutes=minute, seconds=second)).isoformat(),
                    "recipient": f"user{n % 5000}@{domain}",
                    "sending_domain": "mail.shop.example",
                    "source_ip": ip,
                    "reply": {"code": code, "enhanced": enhanced, "text": text},
                    "status": status,
                }
                n += 1


def write(path: Path, days: float, per_minute: int) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    written = 0
    with opener(path, "wt", encoding="utf-8") as fh:
        for event in events(days, per_minute):
            fh.write(json.dumps(event, separators=(",", ":")) + "\n")
            written += 1
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path)
    parser.add_argument("--days", type=float, default=2)
    parser.add_argument("--per-minute", type=int, default=40)
    args = parser.parse_args()
    print(f"{write(args.output, args.days, args.per_minute):,} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
