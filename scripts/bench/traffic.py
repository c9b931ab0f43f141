"""Realistic delivery events for the stream benchmark, and how they are put in Kafka.

The mix follows real sending: most attempts are delivered (2xx texts carrying per-message
ids, so the classifier's raw-reply cache does not simply answer them), about one in ten is a
deferral or bounce taken from the documented replies of ``tests/data/reply_samples.yaml``
for the recipient's ISP, recipients spread over every packaged ISP with the big ones
dominating, plus custom domains the resolver does not know. Event times rise over one hour
with a few seconds of jitter, so the worker's buckets and rule evaluation see an hour of
traffic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "data" / "reply_samples.yaml"
ISPS = ROOT / "delivery" / "data" / "isps.yaml"

START = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SPAN_SECONDS = 3600.0
FAILURE_SHARE = 0.10

#: Share of attempts per ISP key; the rest is spread over every other packaged ISP.
BIG_ISPS: dict[str, float] = {
    "gmail": 0.34,
    "microsoft": 0.16,
    "yahoo": 0.13,
    "apple": 0.07,
    "comcast": 0.03,
    "gmx": 0.03,
}
#: Custom domains (resolved by MX or counted as "other").
CUSTOM_SHARE = 0.08
CUSTOM_MX = (None, "aspmx.l.google.com", "corp-com.mail.protection.outlook.com")
SOURCE_IPS = tuple(f"192.0.2.{n}" for n in range(10, 26))
SENDING_DOMAINS = ("news.shop.example", "mail.shop.example", "billing.shop.example")


def _delivered_text(isp: str, rng: random.Random) -> tuple[str, str]:
    """(enhanced code, text) of a 2xx reply as the ISP words it, with its per-message id."""
    ident = f"{rng.getrandbits(48):012x}"
    if isp == "gmail":
        return "2.0.0", f"OK  {rng.randrange(10**9, 2 * 10**9)} {ident}si.{ident[:3]} - gsmtp"
    if isp == "microsoft":
        return "2.6.0", f"<{ident}@mail.shop.example> [InternalId={rng.getrandbits(40)}] Queued"
    if isp == "yahoo":
        return "", "ok dirdel"
    return "2.0.0", f"Ok: queued as {ident.upper()}"


def _isp_domains() -> dict[str, list[str]]:
    data = yaml.safe_load(ISPS.read_text("utf-8"))
    out: dict[str, list[str]] = {}
    for key, spec in data.items():
        domains = spec.get("domains") if isinstance(spec, dict) else None
        plain = [d for d in domains or [] if isinstance(d, str) and "*" not in d]
        families = spec.get("families") if isinstance(spec, dict) else None
        plain += [f"{f}.com" for f in families or []]
        if plain:
            out[key] = plain
    return out


def _failures() -> dict[str, list[dict[str, Any]]]:
    """Documented non-2xx replies per ISP key; ``"*"`` holds the generic (RFC, filter) ones."""
    data = yaml.safe_load(SAMPLES.read_text("utf-8"))
    out: dict[str, list[dict[str, Any]]] = {}
    for s in data["samples"]:
        code, text = s.get("code"), s.get("text")
        if not code or code < 400 or not text:
            continue
        reply: dict[str, Any] = {"code": code, "text": text}
        if s.get("enhanced"):
            reply["enhanced"] = s["enhanced"]
        out.setdefault(s.get("isp") or "*", []).append(reply)
        if s.get("isp") in ("rfc", "mimecast", "barracuda", "proofpoint", "spamhaus"):
            out.setdefault("*", []).append(reply)
    return out


def events(
    count: int, seed: int = 7, span: float = SPAN_SECONDS, start: datetime = START
) -> list[dict[str, Any]]:
    """``count`` native bouncewatch events, event times rising over ``span`` seconds from
    ``start``."""
    rng = random.Random(seed)
    domains = _isp_domains()
    failures = _failures()
    others = sorted(k for k in domains if k not in BIG_ISPS)
    keys = [*BIG_ISPS, *others, "custom"]
    rest = 1.0 - sum(BIG_ISPS.values()) - CUSTOM_SHARE
    weights = [*BIG_ISPS.values(), *(rest / len(others) for _ in others), CUSTOM_SHARE]
    picks = rng.choices(keys, weights, k=count)
    out: list[dict[str, Any]] = []
    for i, isp in enumerate(picks):
        mx: str | None = None
        if isp == "custom":
            domain = f"corp{rng.randrange(400)}.example"
            mx = CUSTOM_MX[rng.randrange(len(CUSTOM_MX))]
        else:
            domain = rng.choice(domains[isp])
        if rng.random() < FAILURE_SHARE:
            reply = dict(rng.choice(failures.get(isp) or failures["*"]))
        else:
            enhanced, text = _delivered_text(isp, rng)
            reply = {"code": 250, "text": text}
            if enhanced:
                reply["enhanced"] = enhanced
        at = start + timedelta(seconds=span * i / count - rng.random() * 5)
        event: dict[str, Any] = {
            "event_time": at.isoformat().replace("+00:00", "Z"),
            "recipient": f"user{rng.randrange(1_000_000)}@{domain}",
            "sender": f"bounces+{rng.randrange(10**6)}@{SENDING_DOMAINS[i % 3]}",
            "sending_domain": SENDING_DOMAINS[i % 3],
            "source_ip": SOURCE_IPS[rng.randrange(len(SOURCE_IPS))],
            "reply": reply,
            "message_id": f"<{rng.getrandbits(64):016x}@shop.example>",
        }
        if mx:
            event["mx_host"] = mx
        out.append(event)
    return out


def _arf(rcpt: str, domain: str, ip: str, at: datetime, n: int) -> bytes:
    """An RFC 5965 report as a mailbox provider's feedback loop sends it."""
    date = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        f"From: feedback@arf.mail.yahoo.com\r\nTo: fbl@shop.example\r\n"
        f"Subject: Email Feedback Report for IP {ip}\r\nDate: {date}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
        f'report-type=feedback-report; boundary="b{n}"\r\n\r\n'
        f"--b{n}\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\r\n"
        f"--b{n}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: Yahoo!-Mail-Feedback/2.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <bounces+{n}@{domain}>\r\nOriginal-Rcpt-To: <{rcpt}>\r\n"
        f"Arrival-Date: {date}\r\nSource-IP: {ip}\r\nReported-Domain: {domain}\r\n\r\n"
        f"--b{n}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: news@{domain}\r\nTo: {rcpt}\r\nDate: {date}\r\n"
        f"Message-ID: <{n}@{domain}>\r\nX-Campaign: black-friday\r\n\r\n--b{n}--\r\n"
    ).encode()


def complaints(evs: Sequence[dict[str, Any]], share: float, seed: int = 11) -> list[bytes]:
    """Complaint records for ``share`` of ``evs`` (0.01: one per hundred attempts), one per
    message as feedback loops and webhooks send them, in turn each source bouncewatch reads:
    an ARF mail, a KumoMTA Feedback record, an SES Complaint, a SendGrid spamreport, a
    Mailgun complained and a Postmark SpamComplaint. Each is about an event of ``evs`` and
    arrives a few seconds after it, so event time keeps rising."""
    rng = random.Random(seed)
    out: list[bytes] = []
    count = round(len(evs) * share)
    for n in range(count):
        ev = evs[min(len(evs) - 1, int(n / max(count, 1) * len(evs)))]
        at = datetime.fromisoformat(ev["event_time"]) + timedelta(seconds=rng.random() * 3)
        iso = at.isoformat().replace("+00:00", "Z")
        rcpt, domain, ip = ev["recipient"], ev["sending_domain"], ev["source_ip"]
        kind = n % 6
        record: dict[str, Any]
        if kind == 0:
            out.append(_arf(rcpt, domain, ip, at, n))
            continue
        if kind == 1:
            record = {
                "type": "Feedback",
                "id": f"{n:032x}",
                "sender": "fbl@fbl.example",
                "recipient": "fbl@shop.example",
                "timestamp": int(at.timestamp()),
                "response": {"code": 250, "content": ""},
                "feedback_report": {
                    "feedback_type": "abuse",
                    "user_agent": "Yahoo!-Mail-Feedback/2.0",
                    "arrival_date": iso,
                    "original_mail_from": f"<bounces@{domain}>",
                    "source_ip": ip,
                    "reported_domain": [domain],
                    "original_rcpt_to": [f"<{rcpt}>"],
                    "supplemental_trace": {"meta": {"campaign": "black-friday"}},
                },
            }
        elif kind == 2:
            record = {
                "notificationType": "Complaint",
                "complaint": {
                    "complainedRecipients": [{"emailAddress": rcpt}],
                    "timestamp": iso,
                    "complaintFeedbackType": "abuse",
                },
                "mail": {"timestamp": iso, "source": f"news@{domain}", "messageId": f"m{n}"},
            }
        elif kind == 3:
            record = {
                "email": rcpt,
                "timestamp": int(at.timestamp()),
                "event": "spamreport",
                "sg_event_id": f"e{n}",
                "sg_message_id": f"m{n}",
                "ip": ip,
            }
        elif kind == 4:
            record = {
                "event-data": {
                    "event": "complained",
                    "timestamp": at.timestamp(),
                    "recipient": rcpt,
                    "envelope": {"sending-ip": ip, "sender": f"news@{domain}"},
                    "tags": ["black-friday"],
                }
            }
        else:
            record = {
                "RecordType": "SpamComplaint",
                "Type": "SpamComplaint",
                "Email": rcpt,
                "From": f"news@{domain}",
                "BouncedAt": iso,
                "MessageID": f"m{n}",
                "Tag": "black-friday",
            }
        out.append(json.dumps(record, separators=(",", ":")).encode())
    return out


def interleave(payloads: Sequence[bytes], extra: Sequence[bytes]) -> list[bytes]:
    """``payloads`` with ``extra`` spread evenly among them, each in its place in time."""
    if not extra:
        return list(payloads)
    out: list[bytes] = []
    step = len(payloads) / len(extra)
    j = 0
    for i, payload in enumerate(payloads):
        out.append(payload)
        while j < len(extra) and (j + 1) * step <= i + 1:
            out.append(extra[j])
            j += 1
    out.extend(extra[j:])
    return out


def singles(evs: Sequence[dict[str, Any]]) -> list[bytes]:
    """One event per message."""
    return [json.dumps(e, separators=(",", ":")).encode() for e in evs]


def batches(evs: Sequence[dict[str, Any]], size: int) -> list[bytes]:
    """JSON arrays of ``size`` events per message."""
    return [
        json.dumps(list(evs[i : i + size]), separators=(",", ":")).encode()
        for i in range(0, len(evs), size)
    ]


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def fill(bootstrap: str, topic: str, payloads: Sequence[bytes], partitions: int) -> None:
    """Append ``payloads`` round-robin over the partitions, in large producer batches."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_batch_size=512 * 1024,
        max_request_size=16 * 1024 * 1024,
        linger_ms=50,
    )
    await producer.start()
    try:
        pending = []
        for p in range(partitions):
            batch = producer.create_batch()
            for payload in payloads[p::partitions]:
                if batch.append(key=None, value=payload, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=None, value=payload, timestamp=None)
                if len(pending) > 64:
                    await asyncio.gather(*pending)
                    pending = []
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
