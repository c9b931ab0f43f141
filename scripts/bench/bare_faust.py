"""Contender (a): a bare Faust agent that only decodes each message.

    BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS=... BOUNCEWATCH_APP_ID=... BOUNCEWATCH_TOPIC_INPUT=...
    BOUNCEWATCH_WEB_PORT=... python -m bench.bare_faust

The app is the worker's own (``streams.app.create_app`` from the same ``BOUNCEWATCH_*``
settings: consumer settings, web server, logging), with one agent on the input topic that
decodes each message with ``delivery.adapters.decode_message`` and counts, and nothing
else: no classification, no partials, no tables, no metrics. ``/readyz`` is the worker's
readiness view; ``/count`` answers ``{"messages": m, "events": e, "errors": x}``, plus the
monotonic times of the first message and of message number ``BENCH_EXPECT_MESSAGES``.

``BENCH_FAUST_MODE``: ``iter`` (default) reads ``async for value in stream``, the plainest
agent; ``take`` reads ``stream.take_events(2000, within=1.0)`` as the worker's ingest does.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, cast

import faust

from delivery.adapters import decode_message
from schemas.settings import Settings
from streams.app import create_app, create_worker
from streams.health import install_health_views


def build(settings: Settings, mode: str) -> faust.App:
    app = create_app(settings)
    topic = app.topic(settings.topic_input, key_serializer="raw", value_serializer="raw")
    counts: dict[str, float] = {"messages": 0, "events": 0, "errors": 0}
    expected = int(os.environ.get("BENCH_EXPECT_MESSAGES", "0"))

    def count(value: Any) -> None:
        if not counts["messages"]:
            counts["first"] = time.monotonic()
        decoded = decode_message(value if isinstance(value, bytes) else b"")
        counts["messages"] += 1
        counts["events"] += len(decoded.events)
        counts["errors"] += len(decoded.errors)
        if counts["messages"] == expected:
            counts["last"] = time.monotonic()

    if mode == "take":

        @app.agent(topic, name="decode")
        async def decode_batches(stream: faust.StreamT[bytes]) -> None:
            batches = cast(faust.Stream[bytes], stream).take_events(2000, within=1.0)
            async for batch in batches:
                for event in batch:
                    count(event.value)

    else:

        @app.agent(topic, name="decode")
        async def decode_each(stream: faust.StreamT[bytes]) -> None:
            async for value in stream:
                count(value)

    @app.page("/count")
    async def count_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(counts)

    install_health_views(app)
    return app


def main() -> int:
    settings = Settings()
    app = build(settings, os.environ.get("BENCH_FAUST_MODE", "iter"))
    worker = create_worker(app, settings)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
