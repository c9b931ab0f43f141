"""A complaint rate rising slowly at one ISP and one sending domain, live and in replay.

Thirty-six hours of traffic from 2026-11-24 00:00 UTC. Every ten minutes, 100 messages are
delivered to Yahoo from news.shop.example, 100 to Yahoo from mail.shop.example and 100 to
Gmail from news.shop.example. Complaints come only from Yahoo recipients of
news.shop.example, ``hour // 6`` in each hour (none in the first six hours, one an hour in
the next six, two in the six after ...), as SES Complaint notifications and KumoMTA
Feedback records in turn, mixed into the same input as the delivery events. A low-volume
sender, tiny.example, delivers 200 messages to Yahoo over the day and draws 1 complaint
(0.5 %): under the default rules' 5,000 delivered a day it must not alert.

The default rules judge complaint_rate = complaints received in the last 24 hours /
messages delivered in them, warning at 0.1 %, critical at 0.3 %, with at least 5,000
delivered, 0.02 points of hysteresis and no ``for``. ``expected`` below works the
transitions out from the events themselves (counting them per window directly, no bucket
code), and the hand-checked moments are asserted too. The same events then go through the
worker's logic (ingest batches, partials, the aggregator, as tests/unit/test_aggregator.py
drives it) and through ``bouncewatch replay``: both must produce exactly these transitions.
"""

from __future__ import annotations

import bisect
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bouncewatch.cli import main
from tests.support.transitions import transition_keys
from tests.unit.test_aggregator import Worker, published

#: One record with what the oracle needs: (event time, the record, (kind, ISP, domain)).
Record = tuple[float, dict[str, Any], tuple[str, str, str]]
#: (time, rule, ISP, group, kind, severity); a resolve names no severity ("").
Announced = tuple[str, str, str, str, str, str]

START = 1795478400  # 2026-11-24 00:00 UTC
HOURS = 36
DAY = 86400
WARNING, CRITICAL, HYSTERESIS, MIN_DELIVERED = 0.001, 0.003, 0.0002, 5000
RULES = {(): "complaint-rate", ("sending_domain",): "complaint-rate-per-domain"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def delivered(t: float, isp_domain: str, sending_domain: str, n: int) -> dict[str, Any]:
    return {
        "event_time": iso(t),
        "recipient": f"reader{n}@{isp_domain}",
        "sending_domain": sending_domain,
        "reply": {"code": 250, "text": "250 ok"},
    }


def complaint(t: float, n: int) -> dict[str, Any]:
    """A Yahoo reader of news.shop.example complains: SES and KumoMTA in turn."""
    rcpt = f"annoyed{n}@yahoo.com"
    if n % 2:
        return {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": rcpt}],
                "timestamp": iso(t),
                "complaintFeedbackType": "abuse",
            },
            "mail": {"timestamp": iso(t - 3600), "source": "news@news.shop.example"},
        }
    return {
        "type": "Feedback",
        "recipient": "fbl@shop.example",
        "timestamp": t,
        "response": {"code": 250, "content": ""},
        "feedback_report": {
            "feedback_type": "abuse",
            "original_mail_from": "<bounces@news.shop.example>",
            "original_rcpt_to": [f"<{rcpt}>"],
        },
    }


def scenario() -> list[Record]:
    """Every record, in event-time order, with (kind, ISP, sending domain) for the oracle."""
    out: list[Record] = []
    n = 0
    for minute in range(0, HOURS * 60, 10):
        t = START + minute * 60
        for isp, domain in (("yahoo", "news"), ("yahoo", "mail"), ("gmail", "news")):
            mailbox = "yahoo.com" if isp == "yahoo" else "gmail.com"
            sending = f"{domain}.shop.example"
            for _ in range(100):
                n += 1
                out.append((t, delivered(t, mailbox, sending, n), ("d", isp, sending)))
    for hour in range(HOURS):
        for i in range(hour // 6):
            t = START + hour * 3600 + ((7 + 13 * i) % 60) * 60 + 30
            n += 1
            out.append((t, complaint(t, n), ("c", "yahoo", "news.shop.example")))
    # tiny.example: 200 delivered over the first day, one complaint at 20:00
    for i in range(200):
        t = START + i * 432 + 5
        out.append(
            (t, delivered(t, "yahoo.com", "tiny.example", i), ("d", "yahoo", "tiny.example"))
        )
    t = START + 20 * 3600 + 45
    record = {
        "RecordType": "SpamComplaint",
        "Email": "reader7@yahoo.com",
        "From": "hello@tiny.example",
        "BouncedAt": iso(t),
    }
    out.append((t, record, ("c", "yahoo", "tiny.example")))
    out.sort(key=lambda r: r[0])
    return out


def expected(records: list[Record]) -> list[Announced]:
    """(time, rule, ISP, group, kind, severity) of every firing, severity change and resolve,
    counted from the records per 24-hour window at every minute."""
    series: dict[tuple[str, str | None], tuple[list[float], list[float]]] = {}
    for t, _, (kind, isp, domain) in records:
        for key in ((isp, None), (isp, domain)):
            d, c = series.setdefault(key, ([], []))
            (d if kind == "d" else c).append(t)
    first = int(records[0][0]) // 60 * 60 + 60
    last = int(records[-1][0]) // 60 * 60 + 60
    out: list[Announced] = []
    for (isp, sending), (d, c) in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        held: str | None = None
        for end in range(first, last + 1, 60):
            start = end - DAY
            dn = bisect.bisect_left(d, end) - bisect.bisect_left(d, start)
            cn = bisect.bisect_left(c, end) - bisect.bisect_left(c, start)
            active: str | None = None
            if dn >= MIN_DELIVERED:
                for level, limit in (("critical", CRITICAL), ("warning", WARNING)):
                    rank = {"warning": 1, "critical": 2}
                    if held is not None and rank[level] <= rank[held]:
                        limit -= HYSTERESIS
                    if cn / dn >= limit:
                        active = level
                        break
            rule = RULES[("sending_domain",) if sending else ()]
            group = json.dumps({"sending_domain": sending} if sending else {}, sort_keys=True)
            when = iso(end)
            if active is not None and held is None:
                out.append((when, rule, isp, group, "firing", active))
            elif active is not None and active != held:
                out.append((when, rule, isp, group, "severity_changed", active))
            elif active is None and held is not None:
                out.append((when, rule, isp, group, "resolved", ""))
            held = active
    return out


def announced(transitions: list[dict[str, Any]]) -> list[Announced]:
    """The complaint transitions a person is told about, as ``expected`` names them."""
    out: list[Announced] = []
    for key in transition_keys(t for t in transitions if t["rule"].startswith("complaint-")):
        if key[4] in ("firing", "severity_changed"):
            out.append(key)
        elif key[4] == "resolved":
            out.append((*key[:5], ""))
    return sorted(out)


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return scenario()


def test_the_expected_moments(records: list[Record]) -> None:
    """The oracle's answer, checked by hand.

    news.shop.example at Yahoo, warning at 12:21: the window holds 75 batches of 100
    delivered (00:00 to 12:20) and 8 complaints (one an hour from 06:00 to 11:00, then 12:07
    and 12:20:30): 8 / 7,500 = 0.107 %; at 12:20 it was 7 / 7,400 = 0.095 %. Critical the
    next day at 01:47: a full day of 14,400 delivered and 6 + 12 + 18 complaints from the
    first day's hours 6-23, plus 4 each in 00:xx and 01:xx (the last at 01:46:30): 44 /
    14,400 = 0.306 %; at 01:34, 43 (0.299 %). Yahoo as a whole (news, mail, tiny.example)
    warns at 19:34: 11,800 + 11,800 + 164 delivered and 24 complaints (19:33:30 the
    24th): 0.101 %; it never reaches 0.3 %, having twice the deliveries for the same
    complaints.
    """
    got = expected(records)
    firing = [(k[1], k[3], k[4], k[5]) for k in got if k[4] != "resolved"]
    domain = json.dumps({"sending_domain": "news.shop.example"})
    assert [f[2:] for f in firing if f[1] == domain] == [
        ("firing", "warning"),
        ("severity_changed", "critical"),
    ]
    assert [f[2:] for f in firing if f[0] == "complaint-rate"] == [("firing", "warning")]
    # the low-volume sender never alerts, whatever its 0.5 %
    assert not [k for k in got if "tiny.example" in k[3]]
    # gmail and mail.shop.example have no complaints
    assert not [k for k in got if k[2] == "gmail" or "mail.shop" in k[3]]
    times = {(k[1], k[4]): k[0] for k in got if k[3] in (domain, "{}")}
    assert times[("complaint-rate-per-domain", "firing")] == "2026-11-24T12:21:00Z"
    assert times[("complaint-rate-per-domain", "severity_changed")] == "2026-11-25T01:47:00Z"
    assert times[("complaint-rate", "firing")] == "2026-11-24T19:34:00Z"


def test_live_and_replay_fire_warning_then_critical_at_the_expected_moments(
    records: list[Record], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    want = expected(records)
    # the closing event moves event time one evaluation delay past the last bucket, as
    # a live worker needs (see test_aggregator.closing_event); replay evaluates to it anyway
    last = int(records[-1][0]) // 60 * 60 + 60
    closing = {"event_time": iso(last + 60), "recipient": "closing@clock.invalid",
               "reply": {"code": 250, "text": "ok"}}  # fmt: skip

    # live: the worker's ingest and aggregate logic, delivery batches and complaint
    # records as separate input messages, in the order they were produced
    payloads: list[bytes] = []
    batch: list[dict[str, Any]] = []
    for _, record, (kind, _, _) in records:
        if kind == "d":
            batch.append(record)
            continue
        if batch:
            payloads.append(json.dumps(batch).encode())
            batch = []
        payloads.append(json.dumps(record).encode())
    payloads.append(json.dumps([*batch, closing]).encode())
    worker = Worker()
    worker.run(payloads, batch_messages=50)
    worker.finish()
    live = published(worker.out)
    assert worker.late == 0

    # replay: the same records as one JSON line each
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(record) for _, record, _ in records] + [json.dumps(closing)]
    path.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(path), "--output", "jsonl", "--progress", "never"]) == 0
    replayed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert announced(live) == sorted(want)
    assert announced(replayed) == sorted(want)
    # identical, reminders and all
    assert transition_keys(live) == transition_keys(replayed)
    critical = [t for t in live if t["kind"] == "severity_changed"]
    assert critical and critical[0]["complaints"]["top_sending_domains"][0]["name"] == (
        "news.shop.example"
    )
