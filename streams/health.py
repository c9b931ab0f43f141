"""Liveness and readiness on the web port.

Liveness is the event loop answering at all: a worker replaying a long changelog is alive
and must not be restarted for being slow. Readiness waits until the worker has joined its
consumer group, is not in the middle of a rebalance, and has recovered its tables.
"""

from __future__ import annotations

from typing import Any

import faust


def readiness(app: faust.App) -> tuple[bool, dict[str, Any]]:
    # TableManagerT does not declare the recovery service that TableManager has.
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    checks = {
        "joined_group": app.rebalancing_count > 0,
        "not_rebalancing": not app.rebalancing,
        "tables_recovered": recovery.completed.is_set() and recovery.active_remaining_total() == 0,
    }
    return all(checks.values()), checks


def install_health_views(app: faust.App) -> None:
    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ready, checks = readiness(app)
        return web.json(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )
