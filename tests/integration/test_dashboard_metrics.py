"""The chart's Grafana dashboard reads metrics a live worker really exports.

A ``bouncewatch worker`` process on the real broker gets a small incident (Gmail deferring
60 % from the second minute on, which fires a one-rule alert notified on the console and
still firing at the end: the worker exports ``bouncewatch_alerts_firing`` only for alerts
that fire), one message that
is not JSON (dead-lettered), one event a day ahead of the clock (refused, ``ahead``) and,
after the stream has moved on, one event older than the allowed lateness (late). Its
/metrics page must then hold every metric name that any panel or variable of
helm/bouncewatch/dashboards/bouncewatch.json uses, as a sample, not just a declaration.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.helm.dashboard import dashboard_metric_names
from tests.support.kafka_io import produce_batches
from tests.support.worker import WorkerProcess, isolated_env, metric_sum

pytestmark = pytest.mark.integration

RULES_YAML = """\
version: 1
settings:
  bucket: 10s
  allowed_lateness: 1m
  evaluation_delay: 0s
rules:
  - name: dashboard-deferrals
    type: threshold
    metric: deferral_rate
    window: 30s
    min_attempts: 20
    value: 0.3
    severity: warning
"""
DEFERRED = {"code": 421, "enhanced": "4.7.28", "text": "unusual rate of unsolicited mail"}
ACCEPTED = {"code": 250, "enhanced": "2.0.0", "text": "OK"}


def _event(start: datetime, second: float, n: int, deferred: bool) -> dict[str, Any]:
    return {
        "event_time": (start + timedelta(seconds=second)).isoformat(),
        "recipient": f"user{n}@gmail.com",
        "reply": DEFERRED if deferred else ACCEPTED,
    }


@pytest.fixture
def worker(kafka_bootstrap: str, new_topic: Any, tmp_path: Path) -> Iterator[WorkerProcess]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML, encoding="utf-8")
    env = isolated_env(kafka_bootstrap, new_topic, BOUNCEWATCH_RULES_FILE=str(rules))
    with WorkerProcess(env, tmp_path) as process:
        process.wait_ready()
        yield process


def _exposed_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_every_dashboard_metric_is_exported(worker: WorkerProcess, kafka_bootstrap: str) -> None:
    topic = worker.env["BOUNCEWATCH_TOPIC_INPUT"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    # Two attempts a second for four minutes; from second 60 on, 60 % deferred.
    events = [_event(start, i / 2, i, i >= 120 and i % 5 < 3) for i in range(0, 480)]
    produce_batches(kafka_bootstrap, topic, events, per_message=50)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(topic, b"this is not json {")
        ahead = _event(datetime.now(UTC) + timedelta(days=1), 0, 9999, False)
        producer.send(topic, json.dumps(ahead).encode())
        producer.flush()
        worker.wait_until(
            "the incident notified",
            lambda: metric_sum(worker.metrics(), "bouncewatch_notification_transitions_total") > 0,
            timeout=90,
        )
        # The stream is four minutes on: an event at its start is past the allowed lateness.
        producer.send(topic, json.dumps(_event(start, 0, 10_000, False)).encode())
        producer.flush()
    finally:
        producer.close()
    worker.wait_until(
        "the late event counted",
        lambda: metric_sum(worker.metrics(), "bouncewatch_late_events_total") > 0,
        timeout=60,
    )
    samples = worker.metrics()
    assert metric_sum(samples, "bouncewatch_dead_lettered_total") >= 2
    assert metric_sum(samples, "bouncewatch_events_refused_total", direction="ahead") == 1
    _, text = worker.get("/metrics")
    exposed = _exposed_names(str(text))
    used = dashboard_metric_names()
    missing = used - exposed
    assert not missing, f"the dashboard reads metrics the worker does not export: {missing}"
    assert len(used) >= 12
