"""Every worker reads the whole (compacted) silences topic into memory.

Silences are few and every worker's notifier needs all of them, so each worker reads every
partition from the beginning with a consumer outside the group, and follows the topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

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
        """Read ``topic`` from the beginning and keep reading until cancelled."""
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            while not partitions:
                await asyncio.sleep(1.0)
                await consumer.topics()  # refresh metadata until the topic exists
                partitions = consumer.partitions_for_topic(topic)
            consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            await consumer.seek_to_beginning()
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
