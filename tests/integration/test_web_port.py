"""The worker's web port serves what README lists (/healthz, /readyz, /metrics, /status) and
none of Faust's built-in pages: /table/... would show table contents (stored delivery
errors), /router/... the cluster's hosts, / and /assignment/ the sensors and partitions,
/graph/ the service tree, /performance/ the request timings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.worker import WorkerProcess, isolated_env

pytestmark = pytest.mark.integration

SERVED = ("/healthz", "/readyz", "/metrics", "/status")
#: Every page faust.web registers (faust/web/base.py: the default, production, debug and
#: optional blueprints and their routes), with a table and key where a route takes one.
FAUST_PAGES = (
    "/",  # production index ({"status": "OK"}) or, with debug, the sensor statistics
    "/assignment/",
    "/graph/",
    "/performance/",
    "/router/",
    "/router/topics",
    "/router/buckets/",
    "/router/buckets/gmail/",
    "/table/",
    "/table/buckets/",
    "/table/buckets/gmail/",
    "/table/notify-state/",
    "/table/alert-states/",
    "/stats/",
    "/signal/",
)


def test_the_web_port_serves_only_the_documented_pages(
    kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    env = isolated_env(kafka_bootstrap, new_topic)
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        for path in SERVED:
            status, _ = worker.get(path)
            assert status == 200, path
        exposed = {}
        for path in FAUST_PAGES:
            status, body = worker.get(path)
            if status != 404:
                exposed[path] = (status, body)
        assert exposed == {}, f"Faust pages still served: {exposed}"
