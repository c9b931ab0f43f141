"""The worker's Faust offsets: a commit never passes a message no agent handled (issue 15).

Faust commits, per partition, the offsets its agents acknowledged in a row, plus the gaps
its fetcher saw between two messages (transaction markers, aborted records). Two ways it
counted a message as done that no agent had seen are closed in streams/app.py: the gap ran
to the arriving message inclusive, and after a table recovery the stream partitions were
fetched during their seek, into queues Faust cleared just after.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka.consumer.fetcher import Fetcher as AIOKafkaFetcher
from aiokafka.consumer.fetcher import FetchResult
from faust.types import TP
from intervaltree import IntervalTree

from schemas.settings import Settings
from streams.app import (
    ActivePartitions,
    _ReadCommittedConsumer,
    _Recovery,
    create_app,
    resume_streams_after_seek,
)

NOTIFY = TP("bw-notify", 2)
CHANGELOG = TP("bw-notify-state-changelog", 2)


def offsets_of(committed: int, acked: list[int]) -> Any:
    """Faust's offset book-keeping of one partition, without a broker."""
    consumer = object.__new__(_ReadCommittedConsumer)
    consumer._committed_offset = defaultdict(lambda: None, {NOTIFY: committed})
    consumer._gap = defaultdict(IntervalTree)
    consumer._acked = defaultdict(list, {NOTIFY: list(acked)})
    consumer._acked_index = defaultdict(set, {NOTIFY: set(acked)})
    return consumer


def test_a_gap_ends_before_the_message_that_revealed_it() -> None:
    # Offsets 8 and 9 are transaction markers; 10 arrives after 7, and an agent that
    # acknowledges out of order (the recipients agent) acknowledged 11 before 10.
    consumer = offsets_of(committed=7, acked=[7, 11])
    asyncio.run(consumer._add_gap(NOTIFY, 8, 10))
    assert consumer._new_offset(NOTIFY) == 10  # Faust's own gap ran to 10: it committed 12

    # Once 10 is acknowledged, the commit goes on past it.
    consumer._committed_offset[NOTIFY] = 10
    consumer._acked[NOTIFY].append(10)
    assert consumer._new_offset(NOTIFY) == 12


def test_a_gap_of_markers_is_still_committed_past() -> None:
    consumer = offsets_of(committed=7, acked=[7])
    asyncio.run(consumer._add_gap(NOTIFY, 8, 10))
    consumer._acked[NOTIFY].append(10)
    assert consumer._new_offset(NOTIFY) == 11


class Fetcher:
    """Faust's fetcher in miniature: every turn of the loop, one message of each resumed
    partition goes into the agent's queue; a seek moves the position to the committed
    offset, and takes a few turns (broker round trips). Faust's own order (resume the
    partitions, seek, clear the queues) leaves the queue starting past the committed offset:
    what the fetcher delivered during the seek was cleared."""

    def __init__(self, committed: int, position: int) -> None:
        self.committed = committed
        self.position = position
        self.active: set[TP] = set()
        self.queue: list[int] = []  # offsets delivered to the agent, not yet taken
        self.steps: list[str] = []

    # consumer
    def resume_partitions(self, tps: set[TP]) -> None:
        self.steps.append("resume partitions")
        self.active |= tps

    def resume_flow(self) -> None:
        self.steps.append("resume flow")

    async def perform_seek(self) -> None:
        # The committed offsets come back from the broker, the position moves, and the
        # seek's caller goes on a few turns later.
        self.steps.append("seek")
        await asyncio.sleep(0)
        self.position = self.committed
        for _ in range(3):
            await asyncio.sleep(0)

    # flow control
    def resume(self) -> None:
        self.steps.append("clear queues")
        self.queue.clear()

    async def run(self) -> None:
        while True:
            if NOTIFY in self.active:
                self.queue.append(self.position)
                self.position += 1
            await asyncio.sleep(0)


def test_stream_partitions_are_resumed_only_once_seeked_and_their_queues_cleared() -> None:
    async def scenario() -> Fetcher:
        # The fetch position of the previous generation (or of a consumer just started) is
        # past the committed offset 7.
        fetcher = Fetcher(committed=7, position=12)
        task = asyncio.create_task(fetcher.run())
        try:
            await resume_streams_after_seek(fetcher, fetcher, {NOTIFY}, seek=fetcher.perform_seek)
            for _ in range(5):
                await asyncio.sleep(0)
        finally:
            task.cancel()
        return fetcher

    fetcher = asyncio.run(scenario())
    assert fetcher.steps == ["seek", "clear queues", "resume flow", "resume partitions"]
    # Every message from the committed offset on reaches the agent, none cleared or skipped.
    assert fetcher.queue == list(range(7, 7 + len(fetcher.queue)))
    assert len(fetcher.queue) >= 3


def test_without_assignment_nothing_is_seeked() -> None:
    async def scenario() -> Fetcher:
        fetcher = Fetcher(committed=7, position=7)
        await resume_streams_after_seek(fetcher, fetcher, set(), seek=None)
        return fetcher

    assert asyncio.run(scenario()).steps == ["clear queues", "resume flow", "resume partitions"]


def test_the_app_recovers_its_tables_with_the_reordered_recovery(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", app_id="bw-offsets-test")
    app = create_app(settings)
    assert isinstance(app.tables.recovery, _Recovery)


# --- what the fetcher asks aiokafka for ---------------------------------------------------


class PartitionState:
    paused = False

    def __init__(self, position: int) -> None:
        self.position = position

    def consumed_to(self, offset: int) -> None:
        self.position = offset


class Assignment:
    active = True

    def __init__(self, positions: dict[TP, int]) -> None:
        self.states = {tp: PartitionState(p) for tp, p in positions.items()}

    def state_value(self, tp: TP) -> PartitionState:
        return self.states[tp]


class Records:
    """A fetched batch of one partition, as aiokafka's FetchResult reads it."""

    def __init__(self, first: int, n: int) -> None:
        self.next_fetch_offset = first
        self._left = list(range(first, first + n))

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> int:
        if not self._left:
            raise StopIteration
        self.next_fetch_offset = self._left[0] + 1
        return self._left.pop(0)


def aiokafka_fetcher(assignment: Assignment) -> Any:
    """aiokafka's fetcher holding records of a stream and a changelog partition."""
    fetcher = object.__new__(AIOKafkaFetcher)
    fetcher._subscriptions = SimpleNamespace(
        reassignment_in_progress=False, is_assigned=lambda tp: True
    )
    fetcher._wait_consume_future = None
    fetcher._records = {
        NOTIFY: FetchResult(
            NOTIFY, assignment=assignment, partition_records=Records(7, 5), backoff=0
        ),
        CHANGELOG: FetchResult(
            CHANGELOG, assignment=assignment, partition_records=Records(40, 2), backoff=0
        ),
    }
    return fetcher


def test_aiokafka_reads_an_emptied_set_of_partitions_as_every_partition() -> None:
    # What Faust's fetcher met: it asked for the changelog partitions while recovering, the
    # recovery paused them before records came, and aiokafka handed out the paused stream
    # partition's records, its position moved past them.
    assignment = Assignment({NOTIFY: 7, CHANGELOG: 40})
    live: set[TP] = set()
    records = asyncio.run(aiokafka_fetcher(assignment).fetched_records(live, timeout=0))
    assert records[NOTIFY] == [7, 8, 9, 10, 11]
    assert assignment.states[NOTIFY].position == 12


def test_the_fetcher_asks_only_for_the_partitions_active_when_records_come() -> None:
    assignment = Assignment({NOTIFY: 7, CHANGELOG: 40})
    live: set[TP] = set()
    asked = ActivePartitions(live)
    fetcher = aiokafka_fetcher(assignment)
    assert asyncio.run(fetcher.fetched_records(asked, timeout=0)) == {}
    assert assignment.states[NOTIFY].position == 7  # still to be read

    live.add(NOTIFY)  # resumed: its records come, from where it was
    assert asyncio.run(fetcher.fetched_records(asked, timeout=0)) == {NOTIFY: [7, 8, 9, 10, 11]}
