"""The recipients agent applies a message only once Faust's producer buffer is back under
its bound (issue 14): every table write waits there serialized until it is handed to Kafka,
and an agent that did not wait grew the buffer, and the worker's memory, with every address
it wrote."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aggregation.ingest import Engine
from hygiene.core import HygieneRules
from schemas.settings import Settings
from streams.app import _ExactProducerBuffer
from streams.metrics import WorkerMetrics
from streams.recipients import MAX_BUFFERED_WRITES, RecipientStage

KEY = "kim@example.com"
SOFT = [KEY, "s", 1_780_000_000.0, "gmail", "mailbox_full", "452 4.2.2 full", "example.com"]


class Table(dict[str, Any]):
    def send_changelog(self, *args: Any, **kwargs: Any) -> None:  # wrapped by the stage
        return None


def test_a_message_waits_until_the_producer_buffer_is_under_its_bound() -> None:
    async def scenario() -> None:
        buffer = _ExactProducerBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
        for n in range(MAX_BUFFERED_WRITES + 5):
            buffer.put(SimpleNamespace(number=n))  # type: ignore[arg-type]
        app = SimpleNamespace(rebalancing_count=0, producer=SimpleNamespace(buffer=buffer))
        table = Table()
        settings = Settings()
        stage = RecipientStage(
            app,  # type: ignore[arg-type]
            settings,
            HygieneRules(),
            table,
            WorkerMetrics(),
            hashed=False,
            engine=Engine.from_settings(settings),
        )
        acked: list[bool] = []
        event = SimpleNamespace(
            message=SimpleNamespace(partition=0, offset=0),
            value={"obs": [SOFT]},
            ack=lambda: acked.append(True),
        )
        handling = asyncio.create_task(stage.handle(event))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not handling.done() and KEY not in table, "wrote past a full producer buffer"
        while buffer.size > MAX_BUFFERED_WRITES:  # the sender hands messages over
            buffer.pending.get_nowait()
        buffer.message_sent.set()
        await asyncio.wait_for(handling, timeout=30)
        assert KEY in table and acked == [True]

    asyncio.run(scenario())
