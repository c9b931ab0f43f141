"""The streaming engine on the real broker: the same transitions as the offline replay,
across a SIGKILL and a restart, and with two workers sharing the keys.

Each scenario's ``*.expected.json`` (tests/data/scenarios) was worked out by hand from the
scenario; ``tests/unit/test_replay_scenarios.py`` holds the replay to it, this module the
live worker. Scenario files are fed through one input partition: events from different
input partitions are not ordered in event time (see README, "Event time").
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.rules import load_default_rules
from tests.support.kafka_io import TopicReader, produce_batches, read_jsonl
from tests.support.transitions import transition_key, transition_keys
from tests.support.worker import WorkerProcess, isolated_env

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"
CONFIG = load_default_rules().aggregation_config()


def closing_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    """One event an evaluation delay past the last bucket's end, to an ISP of its own.

    The offline replay, reading a finished file, evaluates through the end of the last
    bucket; a live worker gets there once it has seen an event that much later.
    """
    last = max(datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")) for e in events)
    size = CONFIG.bucket_seconds
    end = int(last.timestamp()) // size * size + size
    at = datetime.fromtimestamp(end + CONFIG.evaluation_delay_seconds, last.tzinfo)
    return {
        "event_time": at.isoformat(),
        "recipient": "closing@clock.invalid",
        "reply": {"code": 250, "text": "ok"},
    }


def transitions_of(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


@pytest.fixture
def env(kafka_bootstrap: str, new_topic: Any) -> dict[str, str]:
    return isolated_env(kafka_bootstrap, new_topic, alert_partitions=2, partitions=4)


@pytest.fixture
def alerts(env: dict[str, str], kafka_bootstrap: str) -> Iterator[TopicReader]:
    reader = TopicReader(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_ALERTS"])
    yield reader
    reader.close()


SCENARIO_NAMES = sorted(p.name.split(".")[0] for p in SCENARIOS.glob("*.expected.json"))


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_live_worker_matches_the_scenario(
    name: str, env: dict[str, str], kafka_bootstrap: str, alerts: TopicReader, tmp_path: Path
) -> None:
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    events = read_jsonl(SCENARIOS / expected["events"])
    want = transition_keys(expected["transitions"])
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        produce_batches(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], events)
        produce_batches(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], [closing_event(events)])
        records = alerts.wait_for(lambda r: len(r) >= len(want), timeout=300, settle=4)
        got = transition_keys(transitions_of(records))
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        detail = [
            (t["event_time"], t["rule"], t["kind"], t["value"], t["baseline"], t["attempts"])
            for t in transitions_of(records)
            if transition_key(t) in extra
        ]
        assert got == want, f"missing {missing}\nextra {detail}\n{worker.tail(30)}"


@pytest.mark.long(70)
def test_sigkill_and_restart_recovers_counts_and_alerts(
    env: dict[str, str], kafka_bootstrap: str, alerts: TopicReader, tmp_path: Path
) -> None:
    expected = json.loads((SCENARIOS / "gmail_throttling_burst.expected.json").read_text())
    events = read_jsonl(SCENARIOS / expected["events"])
    want = transition_keys(expected["transitions"])
    # Cut the traffic where the throttling alert is firing: minute 75 of the scenario.
    start = min(datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")) for e in events)
    cut = start + timedelta(minutes=75)
    first = [
        e for e in events if datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")) < cut
    ]
    rest = events[len(first) :]
    topic = env["BOUNCEWATCH_TOPIC_INPUT"]

    worker = WorkerProcess(env, tmp_path, name="first").start()
    try:
        worker.wait_ready()
        produce_batches(kafka_bootstrap, topic, first)
        fired = alerts.wait_for(
            lambda r: any(t["kind"] == "firing" for t in transitions_of(r)), timeout=300
        )
        before = transitions_of(fired)
        assert any(t["kind"] == "firing" for t in before), worker.tail(30)
        # Crash once the input read so far is processed and its offsets committed (a crash
        # inside that window may count a re-read batch twice: README, limitations), and every
        # partial the ingest sent is merged, so the status compared after the restart holds
        # the whole of what was read.
        wait_until_consumed(worker)
        worker.wait_until(
            "every partial sent merged",
            lambda: (
                0
                < worker.metric("bouncewatch_partials_sent_total")
                <= worker.metric("bouncewatch_partials_merged_total")
            ),
            timeout=60,
        )
        _, status_before = worker.get("/status")
        worker.kill()
    finally:
        worker.stop()

    with WorkerProcess(env, tmp_path, name="second") as again:
        again.wait_ready()
        # The recovered worker knows the firing alert and the counts without new input.
        _, status = again.get("/status")
        firing = {(a["rule"], a["key"]) for a in status["alerts"]}
        assert ("throttling", "isp=gmail") in firing, status
        assert status["isps"]["gmail"]["attempts"] == status_before["isps"]["gmail"]["attempts"]
        _, metrics = again.get("/metrics")
        assert 'bouncewatch_alerts_firing{rule="throttling",' in metrics, metrics
        produce_batches(kafka_bootstrap, topic, rest)
        produce_batches(kafka_bootstrap, topic, [closing_event(events)])
        records = alerts.wait_for(lambda r: len(r) >= len(want), timeout=300, settle=4)

    published = transitions_of(records)
    # Re-announces none: every (fingerprint, sequence) once; forgets none: all expected.
    ids = Counter((t["fingerprint"], t["sequence"]) for t in published)
    assert [i for i, n in ids.items() if n > 1] == []
    assert transition_keys(published) == want


def test_two_workers_split_the_keys_and_agree_with_one(
    env: dict[str, str], kafka_bootstrap: str, alerts: TopicReader, tmp_path: Path
) -> None:
    expected = json.loads((SCENARIOS / "microsoft_ip_blocklist.expected.json").read_text())
    events = read_jsonl(SCENARIOS / expected["events"])
    want = transition_keys(expected["transitions"])
    with WorkerProcess(env, tmp_path, name="a") as a, WorkerProcess(env, tmp_path, name="b") as b:
        a.wait_ready()
        b.wait_ready()
        # Both have joined one group: the partials partitions (and so the keys) are split.
        produce_batches(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], events)
        produce_batches(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], [closing_event(events)])
        records = alerts.wait_for(lambda r: len(r) >= len(want), timeout=300, settle=4)
        keys_a = {k for k in _status(a)["isps"]}
        keys_b = {k for k in _status(b)["isps"]}
    assert transition_keys(transitions_of(records)) == want
    assert keys_a and keys_b and not keys_a & keys_b, (keys_a, keys_b)


def wait_until_consumed(worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker reports no consumer lag on any partition it owns."""
    deadline = time.monotonic() + timeout
    lags: dict[tuple[str, str], float] = {}
    while time.monotonic() < deadline:
        lags = {
            (lb["topic"], lb["partition"]): v
            for n, lb, v in worker.metrics()
            if n == "bouncewatch_consumer_lag"
        }
        if lags and not any(lags.values()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"lags {lags}\n{worker.tail(30)}")


def _status(worker: WorkerProcess) -> dict[str, Any]:
    status, body = worker.get("/status")
    assert status == 200
    return dict(body)
