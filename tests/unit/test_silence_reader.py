"""The silence reader retries with backoff after any error and tells /readyz when it has been
failing for too long (streams.silences, streams.health)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from alerts.routing import Matcher
from alerts.silences import new_silence
from streams.health import readiness
from streams.silences import SilenceView
from tests.support.alert_samples import T0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """Fails as told (``start`` or the first ``getmany``), else serves ``records`` once."""

    def __init__(self, fail: str | None, records: list[tuple[str, bytes | None]]) -> None:
        self.fail = fail
        self.records = records
        self.stopped = False

    async def start(self) -> None:
        if self.fail == "start":
            raise ConnectionError("broker unreachable")

    def subscribe(self, topics: list[str]) -> None:
        self.topics = topics

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        if self.fail == "getmany":
            raise RuntimeError("TopicAuthorizationFailedError")
        records, self.records = self.records, []
        if not records:
            await asyncio.sleep(0.001)
            return {}
        return {"tp": [SimpleNamespace(key=k.encode(), value=v) for k, v in records]}

    async def stop(self) -> None:
        self.stopped = True
        if self.fail == "start":
            raise RuntimeError("never started")


SILENCE = new_silence(
    matchers=[Matcher.model_validate('isp="gmail"')],
    ends_at=T0 + timedelta(hours=2),
    created_by="alice",
    comment="IP warm-up",
    now=T0,
    silence_id="s1",
).to_json()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000):  # about 10 s at most
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not met")


def test_the_reader_retries_with_backoff_and_reports_unready_after_the_limit() -> None:
    clock = Clock()
    view = SilenceView(clock=clock)
    failures = ["start", "getmany", "start", "getmany", "start", "getmany"]
    consumers: list[FakeConsumer] = []
    sleeps: list[float] = []
    readiness_seen: list[bool] = []

    def new_consumer() -> Any:
        fail = failures.pop(0) if failures else None
        consumer = FakeConsumer(fail, [] if fail else [("s1", SILENCE)])
        consumers.append(consumer)
        return consumer

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        readiness_seen.append(view.ready)
        clock.now += seconds

    async def scenario() -> None:
        task = asyncio.create_task(
            view.run(
                new_consumer,
                "silences",
                unhealthy_after=20.0,
                backoff_initial=1.0,
                backoff_max=8.0,
                sleep=sleep,
            )
        )
        await _until(lambda: bool(view.silences))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    # Six errors, six waits, doubling from 1 s up to 8 s (within the +-20% jitter); then a
    # seventh consumer read the silence.
    assert len(sleeps) == 6 and len(consumers) == 7 and view.errors == 6
    for wait, nominal in zip(sleeps, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.8 * nominal <= wait <= 1.2 * nominal
    # Not ready once the failures had lasted 20 s (1+2+4+8 = 15 s, then 23 s, 31 s).
    assert readiness_seen[:4] == [True] * 4 and readiness_seen[-1] is False
    assert all(c.stopped for c in consumers[:-1])
    # A good read makes it ready again and forgets the error.
    assert "s1" in view.silences and view.ready and view.failure is None


def test_a_reader_failing_now_reports_its_error_until_the_limit() -> None:
    clock = Clock()
    view = SilenceView(clock=clock)
    view.unhealthy_after = 120.0
    stop = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await stop.wait()

    async def scenario() -> None:
        task = asyncio.create_task(
            view.run(lambda: FakeConsumer("getmany", []), "silences", sleep=sleep)
        )
        await _until(lambda: view.errors > 0)
        assert view.ready and isinstance(view.failure, RuntimeError)
        clock.now += 119.0
        assert view.ready
        clock.now += 2.0
        assert not view.ready
        assert view.alive  # it keeps retrying: no reason to restart the pod
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_readiness_includes_the_silence_reader() -> None:
    recovery = SimpleNamespace(
        completed=SimpleNamespace(is_set=lambda: True), active_remaining_total=lambda: 0
    )
    app: Any = SimpleNamespace(
        tables=SimpleNamespace(recovery=recovery), rebalancing_count=1, rebalancing=False
    )
    clock = Clock()
    view = SilenceView(clock=clock)
    assert readiness(app) == (
        True,
        {"joined_group": True, "not_rebalancing": True, "tables_recovered": True},
    )
    ready, checks = readiness(app, None, silences=view)
    assert ready and checks["silences_read"] is True
    view._failing_since = clock.now - view.unhealthy_after
    ready, checks = readiness(app, None, silences=view)
    assert not ready and checks["silences_read"] is False
