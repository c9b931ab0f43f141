"""Liveness and readiness on the web port.

Liveness is the event loop answering and every long-running part of the worker still
running: a worker replaying a long changelog is alive and must not be restarted for being
slow, but one whose ingest loop has died reads nothing and must be (Kubernetes restarts a
pod whose liveness probe fails). Readiness waits until the worker has joined its consumer
groups, is not in the middle of a rebalance, and has recovered its tables, and no longer once
the silence reader (streams.silences) has been failing for longer than
``BOUNCEWATCH_SILENCES_UNHEALTHY_AFTER``: its silences are frozen meanwhile.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import faust


class Part(Protocol):
    """A long-running part of the worker beside Faust's agents (the ingest consumer)."""

    @property
    def alive(self) -> bool: ...

    @property
    def ready(self) -> bool: ...

    @property
    def failure(self) -> BaseException | None: ...


def readiness(
    app: faust.App, ingest: Part | None = None, silences: Part | None = None
) -> tuple[bool, dict[str, Any]]:
    # TableManagerT does not declare the recovery service that TableManager has.
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    checks = {
        "joined_group": app.rebalancing_count > 0,
        "not_rebalancing": not app.rebalancing,
        "tables_recovered": recovery.completed.is_set() and recovery.active_remaining_total() == 0,
    }
    if ingest is not None:
        checks["ingest_assigned"] = ingest.ready
    if silences is not None:
        checks["silences_read"] = silences.ready
    return all(checks.values()), checks


class StreamWatch:
    """Notices Faust's agents no longer moving while messages wait for them.

    Table writes wait in Faust's producer buffer, and every agent waits while it is over its
    limit; a stream can also stop on its own. Either way the agents read nothing more while
    the web port still answers: seen now and then after a rebalance or on a fresh broker
    (docs/benchmarks.md). ``sample`` runs on a timer: when messages wait on a partition an
    agent reads (or in the producer buffer) and nothing moved for ``stuck_after`` seconds,
    the worker is not alive any more, so that Kubernetes restarts it (its state is in Kafka,
    counted exactly once: a restart is safe).
    """

    #: Offsets between an agent's last message and the end of its partition that are not
    #: work: the marker of the transaction that wrote it, and the next one's.
    SLACK = 2

    def __init__(self, app: faust.App, stuck_after: float = 120.0) -> None:
        self.app = app
        self.stuck_after = stuck_after
        self._moved = time.monotonic()
        self._waiting = False
        self._last: tuple[Any, ...] = ()

    def sample(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        consumer = self.app.consumer
        read: dict[Any, int | None] = dict(getattr(consumer, "_read_offset", {}))
        waiting = False
        for tp, offset in read.items():
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # not fetched yet
                continue
            if offset is not None and highwater is not None and highwater - offset > self.SLACK:
                waiting = True
        buffer = getattr(self.app.producer, "buffer", None)
        size = int(getattr(buffer, "size", 0) or 0)
        state = (tuple(sorted(read.items(), key=str)), size)
        busy = waiting or size > 0
        # The clock runs from the moment work waits and nothing moves, never while the
        # agents are held back on purpose (a rebalance, a table recovery however long).
        if state != self._last or not busy or not self._waiting or self._held():
            self._moved = now
        self._last, self._waiting = state, busy

    def _held(self) -> bool:
        recovery = getattr(self.app.tables, "recovery", None)
        recovered = recovery is None or (
            recovery.completed.is_set() and recovery.active_remaining_total() == 0
        )
        return bool(self.app.rebalancing) or not recovered

    def stuck(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self._waiting and now - self._moved >= self.stuck_after


def liveness(
    ingest: Part | None = None, producer: StreamWatch | None = None
) -> tuple[bool, dict[str, Any]]:
    if ingest is not None and not ingest.alive:
        return False, {"status": "dead", "failed": "ingest", "error": repr(ingest.failure)}
    if producer is not None and producer.stuck():
        return False, {"status": "dead", "failed": "streams not moving while messages wait"}
    return True, {"status": "alive"}


def install_health_views(
    app: faust.App,
    ingest: Part | None = None,
    silences: Part | None = None,
    producer: StreamWatch | None = None,
) -> None:
    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        alive, body = liveness(ingest, producer)
        return web.json(body, status=200 if alive else 503)

    @app.page("/readyz")
    async def readyz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ready, checks = readiness(app, ingest, silences)
        return web.json(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )
