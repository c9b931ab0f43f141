"""Shared pytest fixtures, and the line between unit and integration tests.

A test marked ``integration`` crosses a process boundary: it runs helm, openssl or Python
in a child process, or starts or reaches a server (Kafka, DNS, HTTP, SMTP) over a socket.
Every other test must not: while it runs (fixtures included), starting a process or using
an internet socket raises ``ProcessBoundaryCrossed``, so ``make unit`` stays self-contained
and a test that needs more is told to carry the mark.

Kafka: integration tests get a real Apache Kafka 4.x broker, provisioned from Maven Central
and started once per session on first use (see scripts/kafka_broker.py), or the broker named
by BOUNCEWATCH_TEST_KAFKA (host:port) when that is set.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import kafka_broker

EXTERNAL_KAFKA_ENV = "BOUNCEWATCH_TEST_KAFKA"
_INTERNET = (socket.AF_INET, socket.AF_INET6)


class ProcessBoundaryCrossed(AssertionError):
    """A test not marked ``integration`` started a process or used a network socket."""


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ProcessBoundaryCrossed(
            f"{what} in a test not marked integration: mark it (pytest.mark.integration) "
            "or keep it in this process"
        )

    return refuse


def _refuse_internet(name: str) -> Callable[..., Any]:
    original = getattr(socket.socket, name)

    def guarded(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
        # The event loop's own self-pipe is an AF_UNIX socket pair: that stays allowed.
        if sock.family in _INTERNET:
            _refuse(f"socket.{name} on {args[0] if args else ''}")()
        return original(sock, *args, **kwargs)

    return guarded


@contextlib.contextmanager
def _in_process_only(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("integration") is not None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", _refuse("a child process"))
        for name in ("fork", "posix_spawn", "posix_spawnp"):
            if hasattr(os, name):
                patch.setattr(os, name, _refuse(f"os.{name}"))
        for name in ("connect", "connect_ex", "bind", "sendto"):
            patch.setattr(socket.socket, name, _refuse_internet(name))
        yield


# Around each phase, so that fixtures of any scope a unit test sets up are held to it too.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _in_process_only(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _in_process_only(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    with _in_process_only(item):
        yield


# --------------------------------------------------------------------------- parallel order
#
# `make test` runs the suite on several pytest-xdist workers with ``--dist worksteal``: the
# controller hands each worker an equal, contiguous slice of the collection, and a worker
# that runs out takes half of the pending tail of the busiest one. A few integration tests
# spend minutes waiting on outages, kills and retries (marked ``long``); the run cannot end
# before the longest of them, so each worker's slice starts with one of the longest, and the
# other long ones close the slices, where an idle worker takes them over first. Without xdist
# the order is the collection's.


def _long_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("long")
    if marker is None:
        return 0.0
    return float(marker.args[0] if marker.args else marker.kwargs["seconds"])


def parallel_order(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` reordered for ``workers`` worksteal workers (see above)."""
    long = sorted((i for i in items if _long_seconds(i) > 0), key=_long_seconds, reverse=True)
    if workers < 2 or not long:
        return items
    chosen = set(map(id, long))
    short = [i for i in items if id(i) not in chosen]
    heads, extras = long[:workers], long[workers:]
    # The slices the controller cuts (xdist.scheduler.worksteal: pending // idle workers).
    sizes, remaining = [], len(items)
    for slot in range(workers):
        sizes.append(remaining // (workers - slot))
        remaining -= sizes[-1]
    tails: list[list[pytest.Item]] = [[] for _ in range(workers)]
    # The slices that start with the shorter long tests take the extra ones.
    for n, item in enumerate(extras):
        tails[workers - 1 - n % workers].append(item)
    ordered: list[pytest.Item] = []
    for slot, size in enumerate(sizes):
        head = heads[slot : slot + 1]
        take = max(0, size - len(head) - len(tails[slot]))
        ordered += head + short[:take] + tails[slot]
        short = short[take:]
    ordered += short
    assert sorted(map(id, ordered)) == sorted(map(id, items))
    return ordered


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Each xdist worker collects for itself; all of them must come to the same order.
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        items[:] = parallel_order(items, int(workerinput["workercount"]))


_KAFKA_USED = pytest.StashKey[str]()


def _external_kafka() -> str | None:
    return os.environ.get(EXTERNAL_KAFKA_ENV, "").strip() or None


def pytest_report_header(config: pytest.Config) -> str:
    # The broker starts lazily, so only say where it will come from; the address and
    # version are printed when it starts and again in the terminal summary.
    external = _external_kafka()
    if external:
        return f"kafka: external broker at {external} (${EXTERNAL_KAFKA_ENV})"
    return (
        f"kafka: Apache Kafka {kafka_broker.kafka_version()} (Maven Central), "
        "started on first use by an integration test"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    used = terminalreporter.config.stash.get(_KAFKA_USED, None)
    if used:
        terminalreporter.write_line(f"kafka: {used}")
    for worker, line in sorted(terminalreporter.config.stash.get(_KAFKA_WORKERS, {}).items()):
        terminalreporter.write_line(f"kafka ({worker}): {line}")


# An xdist worker's output does not reach the CI log: each sends its broker's line back with
# its results (workeroutput), and the controller prints them in its summary.
_KAFKA_WORKERS = pytest.StashKey[dict[str, str]]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    line = getattr(node, "workeroutput", {}).get("kafka")
    if line:
        node.config.stash.setdefault(_KAFKA_WORKERS, {})[node.gateway.id] = line


def _announce(config: pytest.Config, line: str) -> None:
    config.stash[_KAFKA_USED] = line
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["kafka"] = line
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    # Fixture set-up runs with fd 1 captured: suspend that so the line reaches the CI log.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(f"kafka: {line}")


@pytest.fixture(scope="session")
def kafka_broker_process(
    request: pytest.FixtureRequest,
) -> Iterator[kafka_broker.KafkaBroker | None]:
    """The broker this session started, or None when an external one is used."""
    external = _external_kafka()
    if external:
        _announce(request.config, f"external broker at {external}")
        yield None
        return
    broker = kafka_broker.KafkaBroker()
    try:
        broker.start()
        _announce(
            request.config,
            f"Apache Kafka {broker.version} at {broker.bootstrap_servers} "
            f"(pid {broker.pid}, up in {broker.startup_seconds or 0:.1f}s)",
        )
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker_process: kafka_broker.KafkaBroker | None) -> str:
    """``host:port`` of the session's Kafka broker."""
    if kafka_broker_process is None:
        external = _external_kafka()
        assert external is not None
        return external
    return kafka_broker_process.bootstrap_servers


class TopicFactory(Protocol):
    def __call__(self, partitions: int = 1, *, prefix: str = "test") -> str: ...


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Create uniquely named topics on the session broker; delete them afterwards."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admins: list[KafkaAdminClient] = []
    created: list[str] = []

    def create(partitions: int = 1, *, prefix: str = "test") -> str:
        if not admins:
            admins.append(
                KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="bouncewatch-tests")
            )
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        # Waiting for metadata means producers never race the partition leader election.
        admins[0].create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    yield create
    for admin in admins:
        try:
            if created:
                # Deleted so a long session (or a shared external broker) does not pile up.
                admin.delete_topics(created, raise_errors=False)
        finally:
            admin.close()
