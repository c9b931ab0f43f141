"""``bouncewatch silence add|list|expire``: maintenance windows, stored in Kafka.

Silences live in a compacted topic (``BOUNCEWATCH_TOPIC_SILENCES``) keyed by silence id;
every worker reads it into a table, so a silence added here mutes notifications on all of
them. Expiring writes the silence again with its end set to now; the newest record wins.

Examples::

    bouncewatch silence add --isp microsoft --match source_ip=203.0.113.9 --for 4h \\
        --comment "delisting requested, ticket 4711"
    bouncewatch silence list
    bouncewatch silence expire 3f9a1c2b7e04
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from alerts.routing import Matcher
from alerts.silences import Silence, SilenceState, fold, new_silence
from bouncewatch.commands.common import load_settings
from schemas.durations import parse_duration
from schemas.settings import Settings

#: How long ``list`` waits for the topic's end before giving up on a slow broker.
READ_TIMEOUT_S = 30.0


class SilenceStore(Protocol):
    def read(self) -> dict[str, Silence]: ...

    def write(self, silence: Silence) -> None: ...


class KafkaSilenceStore:
    """The compacted silences topic, through kafka-python."""

    def __init__(self, settings: Settings, timeout_s: float = READ_TIMEOUT_S) -> None:
        self.settings = settings
        self.topic = settings.topic_silences
        self.timeout_s = timeout_s

    def read(self) -> dict[str, Silence]:
        from kafka import KafkaConsumer, TopicPartition

        from streams.kafka_client import client_config

        consumer = KafkaConsumer(
            **client_config(self.settings),
            group_id=None,  # read everything, commit nothing: a CLI is not a group member
            enable_auto_commit=False,
            consumer_timeout_ms=int(self.timeout_s * 1000),
        )
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                raise SystemExit(
                    f"bouncewatch: topic {self.topic} does not exist "
                    "(bouncewatch topics create makes it)"
                )
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            end = consumer.end_offsets(assigned)
            records: list[tuple[str, bytes | None]] = []
            remaining = {tp for tp in assigned if end[tp] > 0}
            deadline = time.monotonic() + self.timeout_s
            while remaining and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=500)
                for messages in batch.values():
                    for message in messages:
                        key = message.key.decode() if message.key else ""
                        records.append((key, message.value))
                for tp in list(remaining):
                    if consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            if remaining:
                raise SystemExit(f"bouncewatch: timed out reading {self.topic}")
            return fold(records)
        finally:
            consumer.close()

    def write(self, silence: Silence) -> None:
        from kafka import KafkaProducer

        from streams.kafka_client import client_config

        producer = KafkaProducer(**client_config(self.settings), acks="all")
        try:
            producer.send(self.topic, key=silence.id.encode(), value=silence.to_json()).get(
                timeout=self.timeout_s
            )
        finally:
            producer.close()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "silence", help="add, list or expire silences (mute notifications, keep alert state)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a silence")
    add.add_argument("--isp", help="ISP key, e.g. gmail (same as --match isp=gmail)")
    add.add_argument("--rule", help="rule name (same as --match rule=NAME)")
    add.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="MATCHER",
        help="label matcher: name=value, name!=value, name=~regex, name!~regex (repeatable)",
    )
    ends = add.add_mutually_exclusive_group(required=True)
    ends.add_argument(
        "--for",
        dest="duration",
        help="how long: 2h, 30m, 1d, 1h30m (a duration, as in the rules file)",
    )
    ends.add_argument("--until", dest="ends_at", help="end time, ISO 8601 (UTC if no zone)")
    add.add_argument("--starts", help="start time, ISO 8601 (default: now)")
    add.add_argument("--comment", required=True, help="why: a ticket, a maintenance window")
    add.add_argument("--author", help="who made it (default: the login name)")
    add.set_defaults(func=_run_add)

    show = actions.add_parser("list", help="list silences (active and pending by default)")
    show.add_argument("--all", action="store_true", help="include expired silences")
    show.add_argument("--output", choices=("table", "json"), default="table")
    show.set_defaults(func=_run_list)

    expire = actions.add_parser("expire", help="end silences now")
    expire.add_argument("ids", nargs="+", metavar="ID")
    expire.set_defaults(func=_run_expire)


# --- pure parts, tested without a broker ----------------------------------------------------


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def silence_from_args(args: argparse.Namespace, now: datetime) -> Silence:
    matchers = [Matcher.model_validate(m) for m in args.match]
    if args.isp:
        matchers.append(Matcher(name="isp", value=args.isp))
    if args.rule:
        matchers.append(Matcher(name="rule", value=args.rule))
    if not matchers:
        raise ValueError("say what to silence: --isp, --rule or --match")
    starts = parse_time(args.starts) if args.starts else now
    ends = parse_time(args.ends_at) if args.ends_at else starts + parse_duration(args.duration)
    if ends <= now:
        raise ValueError("the silence would already be over")
    author = args.author or os.environ.get("BOUNCEWATCH_USER") or _login()
    return new_silence(
        matchers=matchers,
        starts_at=starts,
        ends_at=ends,
        created_by=author,
        comment=args.comment,
        now=now,
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def format_table(silences: Iterable[Silence], now: datetime) -> str:
    rows = [("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT")]
    for s in sorted(silences, key=lambda s: (s.ends_at, s.id)):
        rows.append(
            (
                s.id,
                s.state(now).value,
                " ".join(str(m) for m in s.matchers),
                s.starts_at.strftime("%Y-%m-%d %H:%M"),
                s.ends_at.strftime("%Y-%m-%d %H:%M"),
                s.created_by,
                s.comment,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def add(store: SilenceStore, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    try:
        silence = silence_from_args(args, now)
    except ValueError as exc:
        print(f"bouncewatch silence add: {exc}", file=sys.stderr)
        return 2
    store.write(silence)
    print(silence.id, file=out)
    return 0


def show(store: SilenceStore, args: argparse.Namespace, now: datetime, out: TextIO) -> int:
    silences = [
        s for s in store.read().values() if args.all or s.state(now) is not SilenceState.EXPIRED
    ]
    if args.output == "json":
        data: list[dict[str, Any]] = [s.model_dump(mode="json") for s in silences]
        print(json.dumps(data, indent=2), file=out)
    else:
        print(format_table(silences, now), file=out)
    return 0


def expire(store: SilenceStore, ids: Sequence[str], now: datetime, out: TextIO) -> int:
    current = store.read()
    missing = [i for i in ids if i not in current]
    for silence_id in ids:
        if silence_id in current:
            store.write(current[silence_id].expire(now))
            print(f"expired {silence_id}", file=out)
    if missing:
        print(f"bouncewatch silence expire: no silence {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


# --- the commands -----------------------------------------------------------------------------


def _store() -> KafkaSilenceStore:
    return KafkaSilenceStore(load_settings())


def _run_add(args: argparse.Namespace) -> int:
    return add(_store(), args, datetime.now(UTC), sys.stdout)


def _run_list(args: argparse.Namespace) -> int:
    return show(_store(), args, datetime.now(UTC), sys.stdout)


def _run_expire(args: argparse.Namespace) -> int:
    return expire(_store(), args.ids, datetime.now(UTC), sys.stdout)
