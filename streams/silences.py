"""Every worker reads the whole (compacted) silences topic into memory.

Silences are few and every worker's notifier needs all of them, so each worker reads every
partition from the beginning with a consumer outside the group, and follows the topic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer

from alerts.silences import Silence, fold

log = logging.getLogger(__name__)


class SilenceView:
    def __init__(self) -> None:
        self._records: dict[str, bytes | None] = {}
        self.silences: dict[str, Silence] = {}

    def apply(self, records: Iterable[tuple[str, bytes | None]]) -> None:
        for key, value in records:
            self._records[key] = value
        self.silences = fold(self._records.items())

    def __call__(self) -> Iterable[Silence]:
        return list(self.silences.values())

    async def follow(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        """Read ``topic`` from the beginning and keep reading until cancelled.

        ``consumer`` has no group and ``auto_offset_reset="earliest"``: subscribing then
        assigns it every partition of the topic from its first offset, also when the topic
        is created after the start (``bouncewatch silence add`` may be the first to write).
        Assigning partitions by hand needs them known, and a group-less consumer's metadata
        never learns of a topic that did not exist when it started.
        """
        await consumer.start()
        try:
            consumer.subscribe([topic])
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                records = [
                    (m.key.decode() if m.key else "", m.value)
                    for messages in batches.values()
                    for m in messages
                ]
                if records:
                    self.apply(records)
                    log.info("silences updated", extra={"silences": len(self.silences)})
        finally:
            await consumer.stop()
