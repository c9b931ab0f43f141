"""Every worker reads the whole (compacted) silences topic into memory.

Silences are few and every worker's notifier needs all of them, so each worker reads every
partition from the beginning with a consumer outside the group, and follows the topic.

The reader never gives up: when its consumer fails (the broker refuses it, the topic is
deleted, an ACL is missing) it logs the error, waits with exponential backoff and starts a
new consumer, keeping the silences it already knows meanwhile. Those are frozen while it
fails: a silence added or expired then is not seen. After ``unhealthy_after`` seconds of
failing without one good read the view reports itself not ready (``ready``), which
``/readyz`` shows (streams.health).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer

from alerts.silences import Silence, fold

log = logging.getLogger(__name__)

#: Seconds of failing reads after which the view reports itself not ready (the settings'
#: ``silences_unhealthy_after`` overrides it).
DEFAULT_UNHEALTHY_AFTER = 120.0
#: First and longest wait between two attempts to read the topic again.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """Whether ``consumer`` has read every partition it holds to its end.

    An empty fetch alone proves nothing (a new consumer's first ones are empty), and a
    reader failing on the same record every time must stay failing.
    """
    partitions = consumer.assignment()
    if not partitions:
        return False
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


class SilenceView:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, bytes | None] = {}
        self.silences: dict[str, Silence] = {}
        self.unhealthy_after = DEFAULT_UNHEALTHY_AFTER
        #: Errors of the reader since the start.
        self.errors = 0
        self._clock = clock
        self._failing_since: float | None = None
        self._failure: BaseException | None = None

    def apply(self, records: Iterable[tuple[str, bytes | None]]) -> None:
        for key, value in records:
            self._records[key] = value
        self.silences = fold(self._records.items())

    def __call__(self) -> Iterable[Silence]:
        return list(self.silences.values())

    # ---- health (streams.health.Part) ---------------------------------------------------

    @property
    def alive(self) -> bool:
        """Always: the reader retries on its own, a restart would not help it."""
        return True

    @property
    def ready(self) -> bool:
        """False once the reader has been failing for ``unhealthy_after`` seconds: since its
        first error, without applying a record or reading the topic to its end."""
        since = self._failing_since
        return since is None or self._clock() - since < self.unhealthy_after

    @property
    def failure(self) -> BaseException | None:
        """The reader's latest error while it is failing; ``None`` once it reads again."""
        return self._failure

    def _read_ok(self) -> None:
        if self._failing_since is not None:
            log.info("reading silences again", extra={"silences": len(self.silences)})
        self._failing_since = None
        self._failure = None

    # ---- reading ------------------------------------------------------------------------

    async def follow(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        """Read ``topic`` from the beginning and keep reading until cancelled or an error.

        ``consumer`` has no group and ``auto_offset_reset="earliest"``: subscribing then
        assigns it every partition of the topic from its first offset, also when the topic
        is created after the start (``bouncewatch silence add`` may be the first to write).
        Assigning partitions by hand needs them known, and a group-less consumer's metadata
        never learns of a topic that did not exist when it started.
        """
        try:
            await consumer.start()
            consumer.subscribe([topic])
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                records = [
                    # A key that is not UTF-8 (no silence of ours) must not stop the reader.
                    (m.key.decode("utf-8", "replace") if m.key else "", m.value)
                    for messages in batches.values()
                    for m in messages
                ]
                if records:
                    self.apply(records)
                    self._read_ok()
                    log.info("silences updated", extra={"silences": len(self.silences)})
                elif await _caught_up(consumer):
                    self._read_ok()
        finally:
            try:
                await consumer.stop()
            except Exception:  # a consumer that failed to start may fail to stop too
                log.debug("silence consumer did not stop cleanly", exc_info=True)

    async def run(
        self,
        new_consumer: Callable[[], AIOKafkaConsumer],
        topic: str,
        *,
        unhealthy_after: float | None = None,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """:meth:`follow` ``topic`` with a new consumer after every error, until cancelled.

        Waits ``backoff_initial`` seconds after the first error of a run of errors, twice as
        long after each next one, at most ``backoff_max`` (each wait drawn within +-20% so
        that workers do not retry in step). A good read ends the run of errors.
        """
        if unhealthy_after is not None:
            self.unhealthy_after = unhealthy_after
        delay = backoff_initial
        while True:
            try:
                await self.follow(new_consumer(), topic)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors += 1
                first = self._failing_since is None
                if first:
                    self._failing_since = self._clock()
                    delay = backoff_initial
                self._failure = exc
                wait = delay * random.uniform(0.8, 1.2)
                log.warning(
                    "cannot read silences from %s (%r); silences frozen, retrying in %.1fs",
                    topic,
                    exc,
                    wait,
                    exc_info=first,
                    extra={"silences": len(self.silences), "silence_reader_ready": self.ready},
                )
                await sleep(wait)
                delay = min(delay * 2, backoff_max)
