"""Turns of the event loop for long stretches of CPU work in the worker's one loop.

The ingest consumer, the Faust agents and the web port (probes, metrics) share one event
loop, and a coroutine that never waits on anything holds it: aiokafka's ``getmany`` and
``send`` return without suspending while fetched records or buffer room are at hand, so a
backlog read and sent in full can run for seconds without a turn for anyone else. A
``Turns`` is asked at each unit of work (a slice of records, a partial) and yields once the
budget is spent: one clock read per unit, one turn per ``every`` seconds.
"""

from __future__ import annotations

import asyncio
import time

#: Longest stretch of CPU work between two turns of the event loop, so that the web port
#: answers well inside a probe's timeout during a backlog.
EVERY_SECONDS = 0.02


class Turns:
    """Yields the event loop once ``every`` seconds of work have passed since the last turn
    (module notes); one per coroutine that works in long stretches."""

    __slots__ = ("_every", "_until")

    def __init__(self, every: float = EVERY_SECONDS) -> None:
        self._every = every
        self._until = time.perf_counter() + every

    async def take(self) -> None:
        """A turn for the others, if this coroutine has had its share."""
        if time.perf_counter() >= self._until:
            await asyncio.sleep(0)
            self._until = time.perf_counter() + self._every
