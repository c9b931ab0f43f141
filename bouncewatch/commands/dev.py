"""``bouncewatch dev``: the whole service on one machine, with no Kafka installed.

It starts the embedded broker (a child process on loopback), creates the topics, and runs
the worker in this process; ``--demo`` also feeds synthetic traffic in which Gmail starts
throttling. Ctrl-C or SIGTERM stops the worker, the traffic and the broker.

The console shows bouncewatch's own lines and the alerts; Faust's and the Kafka clients'
lines only from WARNING up, unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from bouncewatch.commands.common import load_settings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run everything on one machine on an embedded broker (no Kafka needed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--demo", action="store_true", help="feed synthetic traffic with a Gmail incident"
    )
    parser.add_argument(
        "--partitions", type=int, default=4, help="partitions of the dev topics (default 4)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show the INFO lines of Faust, mode, aiokafka, kafka-python and aiohttp",
    )
    parser.set_defaults(func=run)


def console_logging(level: str, verbose: bool) -> None:
    """Log as text to the console, the libraries quiet unless ``verbose``. Set before the
    worker builds its config, which it does from the settings alone (``streams.logs``)."""
    from streams.logs import configure, set_library_logs

    set_library_logs("verbose" if verbose else "quiet")
    configure(level, "text")


def run(args: argparse.Namespace) -> int:
    from bouncewatch.commands.worker import run_worker
    from bouncewatch.embedded_broker import (
        FAUST_SETTINGS,
        EmbeddedBroker,
        EmbeddedBrokerUnavailable,
    )
    from bouncewatch.topics import ensure_topics

    base = load_settings()
    console_logging(base.log_level, args.verbose)
    data_dir = Path(tempfile.mkdtemp(prefix="bouncewatch-dev-"))
    try:
        broker = EmbeddedBroker().start()
    except EmbeddedBrokerUnavailable as exc:
        print(f"bouncewatch dev: {exc}", file=sys.stderr)
        return 2
    traffic: DemoFeed | None = None
    try:
        settings = load_settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            topic_partitions=args.partitions,
            store="memory://",
            data_dir=data_dir,
            log_format="text",
            create_topics=False,
        )
        ensure_topics(settings)
        print(
            f"bouncewatch dev: {broker.name} {broker.version} at {broker.bootstrap_servers} "
            f"(pid {broker.pid}); web on http://127.0.0.1:{settings.web_port}/status",
            file=sys.stderr,
        )
        if args.demo:
            traffic = DemoFeed(settings.bootstrap_list, settings.topic_input).start()
        return run_worker(settings, **FAUST_SETTINGS)
    finally:
        if traffic is not None:
            traffic.stop()
        broker.stop()


class DemoFeed:
    """The demo traffic and the producer it writes with."""

    def __init__(self, bootstrap: list[str], topic: str) -> None:
        from kafka import KafkaProducer

        from bouncewatch.demo import DemoTraffic

        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
        self._traffic = DemoTraffic(lambda payload: self._send(topic, payload))

    def _send(self, topic: str, payload: bytes) -> None:
        self._producer.send(topic, payload)

    def start(self) -> DemoFeed:
        self._traffic.start()
        print(
            "bouncewatch dev: demo traffic on (simulated clock at 30x); Gmail starts "
            "throttling after about 25 seconds and the alert follows within a minute",
            file=sys.stderr,
        )
        return self

    def stop(self) -> None:
        self._traffic.stop()
        self._producer.close(timeout=5)
