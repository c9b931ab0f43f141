"""Contender (b): a bare aiokafka consumer that only decodes each message.

    python -m bench.bare_aiokafka --bootstrap HOST:PORT --topic T --group G --messages N

Reads ``topic`` from the beginning with a fresh consumer group until it has read
``messages`` messages, decoding each with ``delivery.adapters.decode_message`` (the adapter
the worker uses), and prints one JSON line: messages, events, and the monotonic times at
which the group assignment arrived, the first message was read and the last was decoded,
plus the process CPU seconds in between. No Faust, no classification, no aggregation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from delivery.adapters import decode_message


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.at: float | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and self.at is None:
            self.at = time.monotonic()


async def consume(bootstrap: str, topic: str, group: str, expected: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    listener = _Assigned()
    await consumer.start()
    consumer.subscribe([topic], listener=listener)
    messages = events = errors = 0
    first: float | None = None
    cpu_first = 0.0
    try:
        while messages < expected:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                if first is None:
                    first, cpu_first = time.monotonic(), time.process_time()
                for record in records:
                    decoded = decode_message(record.value or b"")
                    events += len(decoded.events)
                    errors += len(decoded.errors)
                messages += len(records)
        last = time.monotonic()
        cpu_last = time.process_time()
    finally:
        await consumer.stop()
    return {
        "messages": messages,
        "events": events,
        "errors": errors,
        "assigned": listener.at,
        "first": first,
        "last": last,
        "cpu_seconds": cpu_last - cpu_first,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--messages", type=int, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(consume(args.bootstrap, args.topic, args.group, args.messages))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
