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
    """Fails as told (``start``, the first ``getmany``, or the second one after an empty
    first: ``poison``), else serves ``records`` once; ``highwater`` None: not fetched yet."""

    def __init__(
        self,
        fail: str | None,
        records: list[tuple[str | bytes, bytes | None]],
        highwater: int | None = None,
    ) -> None:
        self.fail = fail
        self.records = records
        self.stopped = False
        self.fetches = 0
        self._highwater = highwater

    def assignment(self) -> set[str]:
        return {"tp"}

    def highwater(self, tp: str) -> int | None:
        return self._highwater

    async def position(self, tp: str) -> int:
        return 0

    async def start(self) -> None:
        if self.fail == "start":
            raise ConnectionError("broker unreachable")

    def subscribe(self, topics: list[str]) -> None:
        self.topics = topics

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Any]]:
        self.fetches += 1
        if self.fail == "getmany" or (self.fail == "poison" and self.fetches > 1):
            raise RuntimeError("TopicAuthorizationFailedError")
        records, self.records = self.records, []
        if not records:
            await asyncio.sleep(0.001)
            return {}
        return {
            "tp": [
                SimpleNamespace(key=k.encode() if isinstance(k, str) else k, value=v)
                for k, v in records
            ]
        }

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


def _run_until(
    view: SilenceView, new_consumer: Callable[[], Any], done: Callable[[], bool]
) -> None:
    clock = view._clock
    assert isinstance(clock, Clock)

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    async def scenario() -> None:
        task = asyncio.create_task(
            view.run(new_consumer, "silences", unhealthy_after=20.0, backoff_max=8.0, sleep=sleep)
        )
        await _until(done)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_an_empty_fetch_before_each_error_does_not_end_the_failure() -> None:
    # A reader failing on the same record every time gets an empty fetch first each time:
    # that is no progress, and it must end up not ready.
    clock = Clock()
    view = SilenceView(clock=clock)
    _run_until(view, lambda: FakeConsumer("poison", []), lambda: view.errors >= 6)
    assert not view.ready and isinstance(view.failure, RuntimeError)


def test_reading_an_empty_topic_to_its_end_ends_the_failure() -> None:
    clock = Clock()
    view = SilenceView(clock=clock)
    consumers = iter([FakeConsumer("start", []), FakeConsumer(None, [], highwater=0)])
    _run_until(view, lambda: next(consumers), lambda: view.errors == 1 and view.failure is None)
    assert view.ready


def test_a_key_that_is_not_utf8_does_not_stop_the_reader() -> None:
    clock = Clock()
    view = SilenceView(clock=clock)
    consumers = iter([FakeConsumer(None, [(b"\xff\xfe", b"junk"), ("s1", SILENCE)])])
    _run_until(view, lambda: next(consumers), lambda: "s1" in view.silences)
    assert view.errors == 0 and view.ready
