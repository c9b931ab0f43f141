"""The worker's Faust producer buffer: a flush ends only when what was put before it is sent.

Faust commits an agent's input offsets right after flushing this buffer, so a flush that
returns early lets a crash lose table writes whose input will never be read again.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.app import _ExactProducerBuffer


class SlowChannel:
    """A topic channel that takes ``delay`` seconds to hand each message to Kafka."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.handed: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay)
        self.handed.append(fut.number)


def message(channel: SlowChannel, number: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(channel=channel), number=number)


async def started_buffer() -> _ExactProducerBuffer:
    buffer = _ExactProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    return buffer


def test_a_flush_waits_for_messages_slower_than_faust_gives_them() -> None:
    async def scenario() -> list[int]:
        # Faust's own flush returns once one message takes over 0.1 s.
        channel = SlowChannel(delay=0.25)
        buffer = await started_buffer()
        try:
            for n in range(4):
                buffer.put(message(channel, n))
            await asyncio.wait_for(buffer.flush(), timeout=30)
            return list(channel.handed)
        finally:
            await buffer.stop()

    assert asyncio.run(scenario()) == [0, 1, 2, 3]


def test_a_flush_ends_while_writes_keep_coming() -> None:
    async def scenario() -> tuple[list[int], int]:
        channel = SlowChannel(delay=0.02)
        buffer = await started_buffer()
        stop = asyncio.Event()

        async def writer() -> None:
            n = 100
            while not stop.is_set():
                buffer.put(message(channel, n))
                n += 1
                await asyncio.sleep(0.005)  # faster than the channel hands them over

        for n in range(5):
            buffer.put(message(channel, n))
        task = asyncio.create_task(writer())
        try:
            await asyncio.wait_for(buffer.flush(), timeout=30)
            return list(channel.handed), buffer.size
        finally:
            stop.set()
            await task
            await buffer.stop()

    handed, waiting = asyncio.run(scenario())
    assert handed[:5] == [0, 1, 2, 3, 4]
    assert waiting > 0, "the writer outran the sender: the flush did not wait for its writes"


def test_a_writer_that_waits_holds_the_buffer_at_its_limit() -> None:
    """The recipients agent's bound (issue 14): a writer faster than the sender that waits
    for the buffer before each write never finds more than ``limit`` messages waiting."""

    async def scenario() -> tuple[int, list[int]]:
        channel = SlowChannel(delay=0.002)
        buffer = await started_buffer()
        largest = 0
        try:
            for n in range(200):
                await buffer.wait_at_most(10)
                largest = max(largest, buffer.size)
                buffer.put(message(channel, n))  # no await: faster than the channel
            await asyncio.wait_for(buffer.flush(), timeout=30)
            return largest, list(channel.handed)
        finally:
            await buffer.stop()

    largest, handed = asyncio.run(scenario())
    assert largest <= 10
    assert handed == list(range(200))


def test_waiting_at_most_ends_when_the_buffer_stops() -> None:
    async def scenario() -> None:
        channel = SlowChannel(delay=3600)  # never hands one over
        buffer = await started_buffer()
        for n in range(5):
            buffer.put(message(channel, n))
        waiting = asyncio.create_task(buffer.wait_at_most(0))
        await asyncio.sleep(0)
        assert not waiting.done()
        await buffer.stop()
        await asyncio.wait_for(waiting, timeout=30)

    asyncio.run(scenario())


def test_waiters_wake_at_their_bounds_not_at_every_send() -> None:
    async def scenario() -> tuple[int, int, int]:
        channel = SlowChannel(delay=0.001)
        buffer = await started_buffer()
        wakes = 0
        wait = buffer._ebb.wait

        async def counted() -> bool:
            nonlocal wakes
            wakes += 1
            return await wait()

        buffer._ebb.wait = counted  # type: ignore[method-assign]
        try:
            for n in range(300):
                buffer.put(message(channel, n))
            low = asyncio.create_task(buffer.wait_at_most(20))
            await buffer.wait_at_most(200)  # as the conductor's wait_until_ebb, beside it
            high = buffer.size
            await low
            return high, buffer.size, wakes
        finally:
            await buffer.stop()

    high, low, wakes = asyncio.run(scenario())
    assert 20 < high <= 200 and low <= 20
    assert wakes <= 4  # not one per message sent (280)


def test_the_conductor_lets_a_message_through_when_the_buffer_never_drains(
    monkeypatch: Any,
) -> None:
    """A broker outage stops the buffer: the agents' input is held back for a while, then let
    through (as Faust's own wait does), so that the worker goes on once Kafka is back."""
    import streams.app

    monkeypatch.setattr(streams.app, "EBB_PATIENCE_SECONDS", 0.2)

    async def scenario() -> tuple[bool, float]:
        channel = SlowChannel(delay=3600)  # never hands one over
        buffer = await started_buffer()
        buffer.max_messages = 3
        try:
            for n in range(10):
                buffer.put(message(channel, n))
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(buffer.wait_until_ebb(), timeout=30)
            return buffer.size > buffer.max_messages, asyncio.get_running_loop().time() - started
        finally:
            await buffer.stop()

    still_full, waited = asyncio.run(scenario())
    assert still_full and waited >= 0.2


def test_the_conductor_waits_for_nothing_below_the_bound() -> None:
    async def scenario() -> None:
        channel = SlowChannel(delay=3600)
        buffer = await started_buffer()
        try:
            for n in range(5):
                buffer.put(message(channel, n))
            assert buffer.size <= buffer.max_messages
            await asyncio.wait_for(buffer.wait_until_ebb(), timeout=0.05)
        finally:
            await buffer.stop()

    asyncio.run(scenario())
