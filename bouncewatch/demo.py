"""Synthetic delivery traffic for ``bouncewatch dev --demo``.

The scenario runs on a simulated clock, faster than the wall clock, so that a newcomer sees
a whole incident in a minute or two: normal traffic, then Gmail starts throttling (421 4.7.0
"Try again later"), then it recovers. Event times are simulated too, so the worker's event-
time windows see exactly what they would see in a real incident of that length.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: Share of attempts per recipient domain (the big ISPs dominate real traffic too).
DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 0.38),
    ("outlook.com", 0.12),
    ("hotmail.com", 0.08),
    ("yahoo.com", 0.16),
    ("aol.com", 0.04),
    ("icloud.com", 0.10),
    ("gmx.de", 0.04),
    ("example-corp.com", 0.08),
)
SOURCE_IPS = ("192.0.2.10", "192.0.2.11", "192.0.2.12")

DELIVERED = (250, "2.0.0", "OK 1700000000 a1si123456qkb.123 - gsmtp")
NORMAL_FAILURES: tuple[tuple[int, str, str], ...] = (
    (550, "5.1.1", "The email account that you tried to reach does not exist."),
    (452, "4.2.2", "The email account that you tried to reach is over quota."),
    (451, "4.7.1", "Greylisting in action, please come back later"),
)
GMAIL_THROTTLING = (
    421,
    "4.7.0",
    "Try again later, closing connection. (EHLO) For more information, go to "
    "https://support.google.com/mail/answer/7720 - gsmtp",
)


@dataclass(frozen=True)
class Phase:
    minutes: float
    gmail_throttled: float  # share of Gmail attempts answered with 421 4.7.0


#: Normal for 12 simulated minutes, Gmail throttling for 18, then normal again.
SCENARIO: tuple[Phase, ...] = (Phase(12, 0.0), Phase(18, 0.30), Phase(20, 0.0))


def events_for(
    start: datetime, seconds: float, rate_per_minute: float, throttled: float, rng: random.Random
) -> Iterator[dict[str, Any]]:
    """The attempts of ``seconds`` simulated seconds from ``start``."""
    n = int(rate_per_minute * seconds / 60)
    domains = [d for d, _ in DOMAINS]
    weights = [w for _, w in DOMAINS]
    for i in range(n):
        at = start + timedelta(seconds=seconds * i / max(n, 1))
        domain = rng.choices(domains, weights)[0]
        code, enhanced, text = DELIVERED
        if domain == "gmail.com" and rng.random() < throttled:
            code, enhanced, text = GMAIL_THROTTLING
        elif rng.random() < 0.02:
            code, enhanced, text = rng.choice(NORMAL_FAILURES)
        yield {
            "event_time": at.isoformat(),
            "recipient": f"user{rng.randrange(100_000)}@{domain}",
            "sender": "bounces@news.example.com",
            "sending_domain": "news.example.com",
            "source_ip": rng.choice(SOURCE_IPS),
            "reply": {"code": code, "enhanced": enhanced, "text": text},
            "source_format": "bouncewatch",
        }


class DemoTraffic:
    """Produces the scenario to Kafka from a thread until stopped.

    ``send`` takes one message (a JSON array of events). After the scenario the traffic goes
    on, normal, at the wall clock's pace.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        speed: float = 30.0,
        rate_per_minute: float = 1200.0,
        seed: int = 7,
    ) -> None:
        self._send = send
        self.speed = speed
        self.rate = rate_per_minute
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        total = sum(p.minutes for p in SCENARIO)
        self.sim_start = datetime.now(UTC) - timedelta(minutes=total)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _phase(self, sim_minutes: float) -> Phase | None:
        elapsed = 0.0
        for phase in SCENARIO:
            elapsed += phase.minutes
            if sim_minutes < elapsed:
                return phase
        return None

    def _run(self) -> None:
        sim = self.sim_start
        step = 1.0  # wall seconds per message burst
        while not self._stop.is_set():
            began = time.monotonic()
            minutes = (sim - self.sim_start).total_seconds() / 60
            phase = self._phase(minutes)
            speed = self.speed if phase is not None else 1.0
            throttled = phase.gmail_throttled if phase is not None else 0.0
            sim_seconds = step * speed
            batch = list(events_for(sim, sim_seconds, self.rate, throttled, self._rng))
            for i in range(0, len(batch), 100):
                self._send(json.dumps(batch[i : i + 100]).encode())
            sim += timedelta(seconds=sim_seconds)
            self._stop.wait(max(0.0, step - (time.monotonic() - began)))
