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


def liveness(ingest: Part | None = None) -> tuple[bool, dict[str, Any]]:
    if ingest is None or ingest.alive:
        return True, {"status": "alive"}
    return False, {"status": "dead", "failed": "ingest", "error": repr(ingest.failure)}


def install_health_views(
    app: faust.App, ingest: Part | None = None, silences: Part | None = None
) -> None:
    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        alive, body = liveness(ingest)
        return web.json(body, status=200 if alive else 503)

    @app.page("/readyz")
    async def readyz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ready, checks = readiness(app, ingest, silences)
        return web.json(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )
