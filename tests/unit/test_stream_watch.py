"""The liveness watch: agents that stop while messages wait make the worker not alive."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.health import StreamWatch, liveness


class FakeConsumer:
    """Faust's consumer as the watch reads it: last offsets delivered, partition ends."""

    def __init__(self) -> None:
        self._read_offset: dict[Any, int | None] = {}
        self.ends: dict[Any, int] = {}

    def highwater(self, tp: Any) -> int:
        return self.ends[tp]


def app(consumer: FakeConsumer, buffered: int = 0, recovering: bool = False) -> Any:
    recovery = SimpleNamespace(
        completed=SimpleNamespace(is_set=lambda: not recovering),
        active_remaining_total=lambda: 0,
    )
    return SimpleNamespace(
        consumer=consumer,
        producer=SimpleNamespace(buffer=SimpleNamespace(size=buffered)),
        tables=SimpleNamespace(recovery=recovery),
        rebalancing=False,
    )


def test_waiting_messages_that_nobody_reads_for_long_make_the_worker_not_alive() -> None:
    consumer = FakeConsumer()
    consumer._read_offset["partials-0"] = 10
    consumer.ends["partials-0"] = 12  # the last transaction's marker: nothing waits
    watch = StreamWatch(app(consumer), stuck_after=60)
    watch.sample(now=0)
    watch.sample(now=500)
    assert not watch.stuck(now=500)  # idle, not stuck
    consumer.ends["partials-0"] = 40  # work arrives
    watch.sample(now=510)
    assert not watch.stuck(now=560)
    consumer._read_offset["partials-0"] = 20  # it moves
    watch.sample(now=565)
    assert not watch.stuck(now=600)
    watch.sample(now=630)  # and then it does not
    assert watch.stuck(now=630)
    assert liveness(None, watch) == (
        False,
        {"status": "dead", "failed": "streams not moving while messages wait"},
    )


def test_a_producer_buffer_that_never_drains_is_stuck_too() -> None:
    consumer = FakeConsumer()
    watch = StreamWatch(app(consumer, buffered=150), stuck_after=60)
    watch.sample(now=0)
    watch.sample(now=61)
    assert watch.stuck(now=61)


def test_a_long_table_recovery_is_not_a_stall() -> None:
    consumer = FakeConsumer()
    consumer._read_offset["partials-0"] = 10
    consumer.ends["partials-0"] = 5000
    watch = StreamWatch(app(consumer, recovering=True), stuck_after=60)
    for now in range(0, 600, 5):
        watch.sample(now=now)
    assert not watch.stuck(now=600)


class DeadIngest:
    """What the ingest consumer exposes once its batch loop has died."""

    alive = False
    ready = False
    failure: BaseException | None = RecursionError("maximum recursion depth exceeded")


def test_a_dead_ingest_loop_fails_liveness_with_its_error() -> None:
    alive, body = liveness(DeadIngest())
    assert not alive
    assert body == {
        "status": "dead",
        "failed": "ingest",
        "error": "RecursionError('maximum recursion depth exceeded')",
    }
    assert liveness(None, None) == (True, {"status": "alive"})


def test_the_ingest_consumer_is_not_alive_once_its_loop_raised() -> None:
    import asyncio

    from aggregation.ingest import Engine
    from schemas.settings import Settings
    from streams.ingest import IngestConsumer
    from streams.metrics import WorkerMetrics

    settings = Settings()
    ingest = IngestConsumer(settings, Engine.from_settings(settings), WorkerMetrics())

    async def loop_that_dies() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    async def run() -> None:
        task = asyncio.create_task(loop_that_dies())
        task.add_done_callback(ingest._ended)
        await asyncio.gather(task, return_exceptions=True)

    assert ingest.alive
    asyncio.run(run())
    assert not ingest.alive and not ingest.ready
    assert liveness(ingest)[1]["failed"] == "ingest"
