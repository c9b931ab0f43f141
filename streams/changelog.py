"""Table changelog writes appended straight to the Kafka producer's record batches.

Faust sends each table write as a message of its own: a ``FutureMessage`` through its
producer buffer, its codecs, a turn of the buffer's task and one aiokafka ``send``. That is
about 75 µs of CPU for a 1.5 KB bucket entry on the benchmark machine, and the aggregate stage
writes one entry per bucket a partial brings (thousands a second while a backlog is merged),
the recipients stage one per address. Here a write is encoded at once (the table's own
serializers) and appended to the list of its changelog partition; one task hands the lists to
the Kafka producer as record batches (aiokafka's ``create_batch``): about 8 µs a write
(docs/benchmarks.md, ninth session).

What Faust's path guaranteed still holds:

- writes reach each changelog partition in the order they were made (one task sends, a
  partition's lists in order), so recovery ends with the last value written;
- the producer's flush, which precedes every offset commit, waits until every write made
  before it was handed to the Kafka producer, whose own flush then waits for the broker;
- a write the broker never took makes every later flush fail: no offset is committed past
  it, and the worker's input is read again after its restart (Faust's path logged the failure
  and committed);
- a RocksDB store still learns the changelog offset it holds (its recovery starts there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """Writes to one changelog partition, in order, not yet handed to the producer."""

    store: Any
    #: Done once every write of the group is acknowledged.
    future: asyncio.Future[None]
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)


class ChangelogRecords:
    """The table writes waiting to be handed to the Kafka producer (module notes)."""

    def __init__(self, on_handed: Callable[[int], None]) -> None:
        self._on_handed = on_handed
        self._groups: dict[TP, _Group] = {}
        self._put = asyncio.Event()
        #: Writes put and not handed to the producer yet.
        self.waiting = 0
        #: The first delivery failure: every flush raises it from then on.
        self.failure: BaseException | None = None

    def put(
        self, tp: TP, store: Any, key: bytes | None, value: bytes | None
    ) -> asyncio.Future[None]:
        """Queue one write to changelog partition ``tp`` (``store``: the table's store); a
        future done once it is acknowledged, with the writes queued to ``tp`` before it."""
        group = self._groups.get(tp)
        if group is None:
            future = asyncio.get_running_loop().create_future()
            group = self._groups[tp] = _Group(store, future)
            self._put.set()
        group.records.append((key, value))
        self.waiting += 1
        return group.future

    async def send(self, producer_of: Callable[[], Any], stopping: Callable[[], bool]) -> None:
        """Hand the queued writes to the Kafka producer until ``stopping``; the producer
        buffer's task runs this."""
        while not stopping():
            if not self._groups:
                self._put.clear()
                # Timed, so that a stopping buffer is noticed with nothing to send.
                try:
                    await asyncio.wait_for(self._put.wait(), timeout=1.0)
                except TimeoutError:
                    continue
            while self._groups:
                tp = next(iter(self._groups))
                group = self._groups.pop(tp)
                await self._send_group(producer_of(), tp, group)

    async def _send_group(self, producer: Any, tp: TP, group: _Group) -> None:
        records = group.records
        batches: list[asyncio.Future[Any]] = []
        batch = producer.create_batch()
        count = 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batches.append(await self._hand(producer, batch, tp, group, count))
                batch = producer.create_batch()
                count = 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a table write to {tp} is larger than a producer batch")
            count += 1
        batches.append(await self._hand(producer, batch, tp, group, count))
        done = group.future

        def settle(result: asyncio.Future[Any]) -> None:
            if done.done():
                return
            if result.cancelled():
                done.cancel()
            elif result.exception() is not None:
                done.set_exception(result.exception())  # type: ignore[arg-type]
            else:
                done.set_result(None)

        asyncio.gather(*batches).add_done_callback(settle)

    async def _hand(
        self, producer: Any, batch: Any, tp: TP, group: _Group, count: int
    ) -> asyncio.Future[Any]:
        # Closed, the batch goes out at the sender's next turn: the producer's linger would
        # hold it, and the next batch of its partition waits for it to leave.
        batch.close()
        future: asyncio.Future[Any] = await producer.send_batch(
            batch, tp.topic, partition=tp.partition
        )
        self.waiting -= count
        self._on_handed(count)
        store = group.store

        def delivered(result: asyncio.Future[Any]) -> None:
            if result.cancelled() or result.exception() is not None:
                error = result.exception() if not result.cancelled() else asyncio.CancelledError()
                if self.failure is None:
                    self.failure = error
                    log.error("a table changelog write to %s failed: %r", tp, error)
                return
            # The offset of the batch's last record: recovery reads on from there.
            store.set_persisted_offset(tp, result.result().offset + count - 1)

        future.add_done_callback(delivered)
        return future
