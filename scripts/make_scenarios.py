"""Write the replay scenarios of tests/data/scenarios/ (deterministic: no randomness).

Each scenario is a list of phases: from minute ``start`` to minute ``end`` (exclusive), each
minute carries exactly the given number of attempts of each reply kind, spread evenly over
the minute. Exact counts make every window's rate computable by hand, which is how the
``*.expected.json`` files beside them were written (see the reasoning in each of them).

    .venv/bin/python scripts/make_scenarios.py [OUTPUT_DIR]
"""

from __future__ import annotations

import gzip
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: Minute 0 of every scenario; a Monday morning, aligned on the minute.
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

#: Reply kinds: (code, enhanced, text, status). Texts follow the ISPs' published wording.
REPLIES: dict[str, tuple[int, str, str, str]] = {
    "ok": (250, "2.0.0", "OK 1709366400 x1si123456qkb.12 - gsmtp", "delivered"),
    "mailbox_full": (
        452,
        "4.2.2",
        "The email account that you tried to reach is over quota. Please direct the "
        "recipient to https://support.google.com/mail/?p=OverQuotaTemp",
        "deferred",
    ),
    # Gmail's throttling reply (connection or message rate): 4.7.28 "unusual rate of
    # unsolicited mail" reads like throttling but is a reputation signal, and is classified so.
    "gmail_rate": (
        421,
        "4.7.0",
        "Try again later, closing connection. (EHLO) x1si123456qkb.12 - gsmtp",
        "deferred",
    ),
    "tss04": (
        421,
        "4.7.0",
        "[TSS04] Messages from 192.0.2.20 temporarily deferred due to unexpected volume or "
        "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
        "deferred",
    ),
    "s3150": (
        550,
        "5.7.1",
        "Unfortunately, messages from [192.0.2.33] weren't sent. Please contact your Internet "
        "service provider since part of their network is on our block list (S3150). You can "
        "also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
        "bounced",
    ),
    "server_busy": (
        451,
        "4.3.0",
        "Mail server temporarily rejected message.",
        "deferred",
    ),
    "unauthenticated": (
        550,
        "5.7.26",
        "This mail has been blocked because the sender is unauthenticated. Gmail requires all "
        "senders to authenticate with either SPF or DKIM.",
        "bounced",
    ),
}

DOMAINS = {
    "gmail": "gmail.com",
    "yahoo": "yahoo.com",
    "microsoft": "outlook.com",
    "apple": "icloud.com",
}


@dataclass(frozen=True)
class Phase:
    start: int
    end: int
    isp: str
    mix: dict[str, int]  # reply kind -> attempts per minute
    source_ip: str = "192.0.2.10"
    #: Extra reply kinds that grow by one attempt every ``ramp_every`` minutes (the drift).
    ramp: str | None = None
    ramp_every: int = 10


def _drift(phase: Phase, minute: int) -> dict[str, int]:
    mix = dict(phase.mix)
    if phase.ramp is not None:
        extra = (minute - phase.start) // phase.ramp_every
        mix[phase.ramp] = mix.get(phase.ramp, 0) + extra
        mix["ok"] = mix.get("ok", 0) - extra
    return mix


def _normal(isp: str, start: int, end: int, per_minute: int, ip: str = "192.0.2.10") -> Phase:
    return Phase(start, end, isp, {"ok": per_minute - 2, "mailbox_full": 2}, ip)


MICROSOFT_IPS = ["192.0.2.31", "192.0.2.32", "192.0.2.33", "192.0.2.34", "192.0.2.35"]

SCENARIOS: dict[str, list[Phase]] = {
    # Gmail rate-limits for 25 minutes (minutes 60-84): 28 of 100 attempts a minute get
    # 421 4.7.0 "Try again later, closing connection", then normal for an hour and a half.
    "gmail_throttling_burst": [
        _normal("gmail", 0, 60, 100),
        Phase(60, 85, "gmail", {"ok": 70, "gmail_rate": 28, "mailbox_full": 2}),
        _normal("gmail", 85, 180, 100),
    ],
    # Yahoo answers TSS04 to a quarter of the traffic for an hour (minutes 40-99).
    "yahoo_tss04_wave": [
        _normal("yahoo", 0, 40, 80, "192.0.2.20"),
        Phase(40, 100, "yahoo", {"ok": 58, "tss04": 20, "mailbox_full": 2}, "192.0.2.20"),
        _normal("yahoo", 100, 160, 80, "192.0.2.20"),
    ],
    # Microsoft blocklists one of five IPs (192.0.2.33) for an hour (minutes 50-109); each IP
    # sends 40 attempts a minute, all delivered otherwise.
    "microsoft_ip_blocklist": [
        *(Phase(0, 170, "microsoft", {"ok": 40}, ip) for ip in MICROSOFT_IPS if ip != "192.0.2.33"),
        Phase(0, 50, "microsoft", {"ok": 40}, "192.0.2.33"),
        Phase(50, 110, "microsoft", {"s3150": 40}, "192.0.2.33"),
        Phase(110, 170, "microsoft", {"ok": 40}, "192.0.2.33"),
    ],
    # Gmail's soft bounces creep up for two hours: one more 451 4.3.0 every ten minutes
    # from minute 60 (2 a minute) to minute 179 (2 + 11 = 13 a minute), then stay there.
    "slow_drift": [
        Phase(0, 60, "gmail", {"ok": 98, "mailbox_full": 2}),
        Phase(60, 180, "gmail", {"ok": 98, "mailbox_full": 2}, ramp="server_busy"),
        Phase(180, 210, "gmail", {"ok": 87, "mailbox_full": 2, "server_busy": 11}),
    ],
    # Apple gets 2 attempts a minute, one of them deferred, for two hours (a 50 % soft-bounce
    # rate on 30 attempts per window); Gmail beside it is healthy.
    "low_volume_isp": [
        _normal("gmail", 0, 120, 100),
        Phase(0, 120, "apple", {"ok": 1, "mailbox_full": 1}),
    ],
    # A DKIM key rotation breaks authentication for 45 minutes (minutes 30-74): 10 of 100
    # Gmail attempts a minute fail with 5.7.26; the fix holds for the last 85 minutes.
    "incident_recovers": [
        _normal("gmail", 0, 30, 100),
        Phase(30, 75, "gmail", {"ok": 88, "unauthenticated": 10, "mailbox_full": 2}),
        _normal("gmail", 75, 160, 100),
    ],
}

#: Written gzip-compressed: they compress 25-fold (plain JSONL input is unit-tested).
GZIPPED = set(SCENARIOS)


def events(phases: list[Phase]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    serial = 0
    for phase in phases:
        for minute in range(phase.start, phase.end):
            kinds = [k for k, n in sorted(_drift(phase, minute).items()) for _ in range(n)]
            for i, kind in enumerate(kinds):
                code, enhanced, text, status = REPLIES[kind]
                # Spread evenly inside the minute, never on its last instant.
                at = T0 + timedelta(minutes=minute, seconds=i * 59.0 / max(len(kinds), 1))
                serial += 1
                out.append(
                    {
                        "event_time": at.isoformat(),
                        "recipient": f"user{serial}@{DOMAINS[phase.isp]}",
                        "sender": "news@mail.shop.example",
                        "sending_domain": "mail.shop.example",
                        "source_ip": phase.source_ip,
                        "reply": {"code": code, "enhanced": enhanced, "text": text},
                        "status": status,
                        "message_id": f"<{serial}@mail.shop.example>",
                    }
                )
    # Files from MTAs are not in event-time order; neither are these (replay must sort).
    out.sort(key=lambda e: (e["source_ip"], e["event_time"]))
    return out


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else Path("tests/data/scenarios")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, phases in SCENARIOS.items():
        lines = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events(phases))
        if name in GZIPPED:
            path = out_dir / f"{name}.jsonl.gz"
            # mtime=0: the same bytes on every run, so the file does not churn in git.
            with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(lines.encode())
        else:
            path = out_dir / f"{name}.jsonl"
            path.write_text(lines, encoding="utf-8")
        print(f"{path}: {lines.count(chr(10))} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
