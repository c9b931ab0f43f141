"""A worker with ``BOUNCEWATCH_MX_LOOKUP`` on the real broker, asking a loopback DNS stand-in.

An event to a domain the ISP table does not know is counted as ``other`` while the MX
lookup runs; once the answer (an Outlook MX) is cached, the domain's events count under
Microsoft, and the lookup shows in /metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dns_server import StandInDns, zone_handler
from tests.support.kafka_io import produce_batches
from tests.support.worker import WorkerProcess, isolated_env

pytestmark = pytest.mark.integration

ZONE = {"example-corp.com": [(10, "example-corp-com.mail.protection.outlook.com")]}


@pytest.fixture
def dns() -> Iterator[StandInDns]:
    server = StandInDns(zone_handler(ZONE))
    yield server
    server.close()


def event(recipient: str) -> dict[str, Any]:
    return {
        "event_time": "2026-03-02T08:00:00Z",
        "recipient": recipient,
        "reply": {"code": 250, "text": "ok"},
    }


def test_unknown_domains_count_under_their_mx_once_looked_up(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, dns: StandInDns
) -> None:
    host, port = dns.address
    env = isolated_env(
        kafka_bootstrap,
        new_topic,
        BOUNCEWATCH_MX_LOOKUP="true",
        BOUNCEWATCH_MX_NAMESERVERS=f"{host}:{port}",
    )
    topic = env["BOUNCEWATCH_TOPIC_INPUT"]
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        produce_batches(kafka_bootstrap, topic, [event("first@example-corp.com")])
        worker.wait_until(
            "the MX lookup",
            lambda: worker.metric("bouncewatch_mx_lookups", outcome="done") == 1,
            timeout=60,
        )
        assert dns.queries == ["example-corp.com"]
        produce_batches(kafka_bootstrap, topic, [event(f"u{i}@example-corp.com") for i in range(3)])
        worker.wait_until(
            "the later events counted under Microsoft",
            lambda: worker.metric("bouncewatch_events_total", isp="microsoft") == 3,
            timeout=60,
        )
        assert worker.metric("bouncewatch_events_total", isp="other") == 1
        assert dns.queries == ["example-corp.com"]  # answered from the cache since
