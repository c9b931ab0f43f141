"""A backlog over eight input partitions, written without keys and read far faster than real
time, once straight and once with a SIGKILL and a restart in the middle: the worker counts no
event late and publishes exactly the transitions `bouncewatch replay` finds in the same file.

The feed is what a fleet of MTA hosts ships: KumoMTA records in time order within 40 s of
jitter (several hosts' clocks and queues), one record per message, spread over the
partitions by the producer. A worker catching up reads the partitions at different speeds;
event time must follow the slowest of them (aggregation/watermark.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.feeds import as_messages, kumomta_feed, kumomta_record, produce_keyless
from tests.support.kafka_io import TopicReader, read_jsonl
from tests.support.transitions import transition_keys
from tests.support.worker import REPO, WorkerProcess, isolated_env

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"
PARTITIONS = 8


def feed() -> list[dict[str, Any]]:
    """Two incidents at two ISPs over three hours: about 47,000 KumoMTA records."""
    return kumomta_feed(["microsoft_ip_blocklist", "yahoo_tss04_wave"], seed=11)


def replay_transitions(records: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = subprocess.run(
        [sys.executable, "-m", "bouncewatch.cli", "replay", str(path), "--output", "jsonl"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def env(kafka_bootstrap: str, new_topic: Any) -> dict[str, str]:
    return isolated_env(
        kafka_bootstrap,
        new_topic,
        input_partitions=PARTITIONS,
        alert_partitions=2,
        partitions=4,
        BOUNCEWATCH_INPUT_FORMAT="kumomta",
        # A restarted worker takes its partitions back at once, and its ingest producer
        # aborts the transaction the killed one left open.
        BOUNCEWATCH_INSTANCE_ID="backlog-worker",
        BOUNCEWATCH_INGEST_IDLE_SECONDS="5",
    )


@pytest.fixture
def alerts(env: dict[str, str], kafka_bootstrap: str) -> Iterator[TopicReader]:
    reader = TopicReader(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_ALERTS"])
    yield reader
    reader.close()


def published(alerts: TopicReader, count: int, worker: WorkerProcess) -> list[dict[str, Any]]:
    records = alerts.wait_for(lambda r: len(r) >= count, timeout=300, settle=5)
    assert len(records) >= count, worker.tail(40)
    return [json.loads(r.value) for r in records]


def minute(t: dict[str, Any]) -> str:
    return datetime.fromisoformat(t["event_time"]).strftime("%H:%M")


@pytest.mark.parametrize("crash", [False, True], ids=["straight", "sigkill-and-restart"])
def test_a_keyless_backlog_counts_nothing_late_and_matches_replay(
    crash: bool,
    env: dict[str, str],
    kafka_bootstrap: str,
    alerts: TopicReader,
    tmp_path: Path,
) -> None:
    records = feed()
    want = replay_transitions(records, tmp_path)
    assert len(want) >= 10, "the feed raises alerts at all"
    topic = env["BOUNCEWATCH_TOPIC_INPUT"]
    messages = as_messages(records)
    late_before = reopened_before = 0.0
    worker = WorkerProcess(env, tmp_path, name="first").start()
    try:
        worker.wait_ready()
        if crash:
            produce_keyless(kafka_bootstrap, topic, messages[: len(messages) // 2])
            # Killed while reading: some batches committed, one perhaps in flight.
            worker.wait_until(
                "a third of the feed read",
                lambda: worker.metric("bouncewatch_messages_total") >= len(messages) // 3,
                timeout=120,
            )
            late_before = worker.metric("bouncewatch_late_events_total")
            reopened_before = worker.metric("bouncewatch_events_after_evaluation_total")
            worker.kill()
            produce_keyless(kafka_bootstrap, topic, messages[len(messages) // 2 :])
            # The same instance id and web address, as a pod restarted in place has (Faust's
            # assignor insists that a static member's address does not change).
            port = worker.web_port
            worker = WorkerProcess(
                {**env, "BOUNCEWATCH_WEB_PORT": str(port)}, tmp_path, name="restarted"
            )
            worker.web_port = port
            worker.start()
            worker.wait_ready()
        else:
            produce_keyless(kafka_bootstrap, topic, messages)
        got = published(alerts, len(want), worker)
        late = late_before + worker.metric("bouncewatch_late_events_total")
        # Counted after their bucket was judged: the rules decided without them.
        reopened = (reopened_before, worker.metric("bouncewatch_events_after_evaluation_total"))
        detail = sorted(
            {(minute(t), t["rule"], t["isp"], t["kind"]) for t in got}
            ^ {(minute(t), t["rule"], t["isp"], t["kind"]) for t in want}
        )
        # A worker killed between publishing a transition and committing its state publishes
        # it again after the restart (the notifier drops the copy: one notification per
        # fingerprint and sequence); the set of transitions is the replay's.
        unique = {(t["fingerprint"], t["sequence"]): t for t in got}
        assert transition_keys(unique.values()) == transition_keys(want), (
            f"differ: {detail}; counted after evaluation (first, last worker): {reopened}"
        )
        assert reopened == (0, 0), worker.tail(40)
        if not crash:
            assert len(got) == len(want)
        assert late == 0, worker.tail(40)
    finally:
        worker.stop()


def test_an_event_with_a_wrong_clock_is_dead_lettered_and_the_worker_goes_on(
    kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    """A host whose clock says 2100, and one that says 1970, among normal traffic: both are
    dead-lettered with their reason and counted; the worker answers and reads on."""
    env = isolated_env(
        kafka_bootstrap, new_topic, input_partitions=1, BOUNCEWATCH_INPUT_FORMAT="kumomta"
    )
    events = read_jsonl(SCENARIOS / "yahoo_tss04_wave.jsonl.gz")
    records = [kumomta_record(e) for e in events[:3000]]
    future = {**records[0], "timestamp": 4102444800}  # 2100-01-01
    past = {**records[0], "timestamp": 0}  # 1970-01-01
    topic = env["BOUNCEWATCH_TOPIC_INPUT"]
    dead = TopicReader(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_DEAD_LETTER"])
    try:
        with WorkerProcess(env, tmp_path) as worker:
            worker.wait_ready()
            produce_keyless(kafka_bootstrap, topic, as_messages(records[:1000]))
            produce_keyless(kafka_bootstrap, topic, as_messages([future, past]))
            produce_keyless(kafka_bootstrap, topic, as_messages(records[1000:]))
            worker.wait_until(
                "every record read",
                lambda: worker.metric("bouncewatch_messages_total") >= len(records) + 2,
                timeout=120,
            )
            assert worker.get("/healthz")[0] == 200
            assert worker.metric("bouncewatch_events_total") == len(records)
            assert worker.metric("bouncewatch_events_refused_total", direction="ahead") == 1
            assert worker.metric("bouncewatch_events_refused_total", direction="behind") == 1
            letters = dead.wait_for(lambda r: len(r) >= 2, timeout=60)
            reasons = sorted(dict(r.headers)["bouncewatch-error"].decode() for r in letters)
            assert len(reasons) == 2, reasons
            behind, ahead = reasons  # sorted: "event_time 1970..." first
            assert "ahead of the clock" in ahead and "2100-01-01" in ahead
            assert "behind its input's progress" in behind and "1970-01-01" in behind
    finally:
        dead.close()


def test_two_workers_in_one_group_publish_what_one_does(
    env: dict[str, str], kafka_bootstrap: str, alerts: TopicReader, tmp_path: Path
) -> None:
    """Scale-out: two workers share the input partitions, the partials partitions and the
    tables; together they publish exactly the replay's transitions, none twice."""
    records = feed()
    want = replay_transitions(records, tmp_path)
    workers = [
        WorkerProcess({**env, "BOUNCEWATCH_INSTANCE_ID": f"w{i}"}, tmp_path, name=f"w{i}")
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(timeout=180)
        produce_keyless(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], as_messages(records))
        got = published(alerts, len(want), workers[0])
        assert transition_keys(got) == transition_keys(want)
        read = [w.metric("bouncewatch_messages_total") for w in workers]
        assert sum(read) == len(records) and all(read), read  # both worked
        assert sum(w.metric("bouncewatch_late_events_total") for w in workers) == 0
    finally:
        for worker in workers:
            worker.stop()
