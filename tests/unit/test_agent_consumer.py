"""The Kafka consumer of the Faust agents reads committed records only (the ingest's
partials and observations are sent in transactions) and is never held by the broker longer
than ``FETCH_MAX_WAIT_MS`` (Faust fixes 1.5 s, which left the agents idle between records
of transactions committed while a fetch waited)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.settings import Settings
from streams.app import FETCH_MAX_WAIT_MS, create_app


def test_the_agents_consumer_reads_committed_records_without_long_fetch_waits(
    tmp_path: Path,
) -> None:
    async def created() -> tuple[str, int]:
        settings = Settings(data_dir=tmp_path / "data", app_id="bw-consumer-test")
        app = create_app(settings)
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return consumer._isolation_level, consumer._fetch_max_wait_ms

    isolation, wait_ms = asyncio.run(created())
    assert isolation == "read_committed"
    assert wait_ms == FETCH_MAX_WAIT_MS <= 500
