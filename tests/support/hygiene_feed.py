"""A week of KumoMTA records for list hygiene: recipients who should and should not end up
on the suppression list, among many delivered ones, in event-time order."""

from __future__ import annotations

import random
import time
from typing import Any

DAY = 86_400.0
FULL = (
    452,
    {"class": 4, "subject": 2, "detail": 2},
    "4.2.2 The email account that you tried "
    "to reach is over quota. Please direct the recipient to support",
)
THROTTLED = (421, {"class": 4, "subject": 7, "detail": 0}, "Try again later, closing connection.")
UNKNOWN = (
    550,
    {"class": 5, "subject": 1, "detail": 1},
    "5.1.1 The email account that you "
    "tried to reach does not exist. Please try double-checking the recipient's address",
)
DELIVERED = (250, None, "2.0.0 OK  1700000000 a1-20020a05")


def _record(t: float, recipient: str, reply: tuple[int, Any, str]) -> dict[str, Any]:
    code, enhanced, text = reply
    kind = "Delivery" if code < 400 else "TransientFailure" if code < 500 else "Bounce"
    return {
        "type": kind,
        "id": f"m{int(t * 1000)}",
        "sender": "bounces@news.shop.example",
        "recipient": recipient,
        "queue": recipient.rpartition("@")[2].lower(),
        "response": {"code": code, "enhanced_code": enhanced, "content": text},
        "timestamp": t,
        "num_attempts": 1,
    }


def _complaint(t: float, recipient: str) -> dict[str, Any]:
    return {
        "type": "Feedback",
        "id": f"f{int(t * 1000)}",
        "sender": "complaints@fbl.mail.yahoo.com",
        "recipient": "fbl@shop.example",
        "response": {"code": 250, "enhanced_code": None, "content": ""},
        "timestamp": t,
        "feedback_report": {
            "feedback_type": "abuse",
            "original_mail_from": "<bounces@news.shop.example>",
            "original_rcpt_to": recipient,
            "source_ip": "192.0.2.14",
            "reporting_mta": {"mta_type": "dns", "name": "mta1001.mail.gq1.yahoo.com"},
        },
    }


def hygiene_feed(
    seed: int = 7, scale: int = 1, now: float | None = None
) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """(records in time order, the expected suppressed keys by reason)."""
    rng = random.Random(seed)
    start = (now or time.time()) - 5.5 * DAY
    out: list[tuple[float, dict[str, Any]]] = []
    expected: dict[str, set[str]] = {
        "soft_bounce_streak": set(),
        "hard_bounce": set(),
        "complaint": set(),
    }

    def at(day: float) -> float:
        return start + day * DAY + rng.uniform(0, 3600)

    domains = ["gmail.com", "yahoo.com", "outlook.com", "example.org"]
    for i in range(30 * scale):
        domain = domains[i % 4]
        # mailbox full every day: graduates on its fifth day (domain written in capitals
        # half of the time: one key)
        full = f"Full.{i}@{domain}"
        for day in range(6):
            written = full if day % 2 else f"Full.{i}@{domain.upper()}"
            out.append((t := at(day), _record(t, written, FULL)))
        expected["soft_bounce_streak"].add(full)
        # mailbox full, a delivery after the third day: never five since
        reset = f"reset.{i}@{domain}"
        for day in (0, 1, 2, 3.5, 4.5):
            out.append((t := at(day), _record(t, reset, FULL)))
        out.append((t := start + 3.2 * DAY, _record(t, reset, DELIVERED)))
        # throttled all week
        for day in range(6):
            out.append((t := at(day), _record(t, f"throttled.{i}@{domain}", THROTTLED)))
        # unknown user: at once
        unknown = f"gone.{i}@{domain}"
        out.append((t := at(rng.uniform(0, 5)), _record(t, unknown, UNKNOWN)))
        expected["hard_bounce"].add(unknown)
        if i % 3 == 0:
            complainer = f"angry.{i}@yahoo.com"
            out.append((t := at(rng.uniform(0, 5)), _record(t, complainer, DELIVERED)))
            out.append((t + 600, _complaint(t + 600, complainer)))
            expected["complaint"].add(complainer)
    for n in range(4000 * scale):
        t = start + rng.uniform(0, 5.5 * DAY)
        out.append((t, _record(t, f"ok.{n % (1000 * scale)}@{domains[n % 4]}", DELIVERED)))
    out.sort(key=lambda item: item[0])
    return [record for _, record in out], expected
