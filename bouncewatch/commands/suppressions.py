"""``bouncewatch suppressions list|check|release|export``: the suppression list, read from
its compacted topic (``<app id>-suppressions``).

Examples::

    bouncewatch suppressions list --reason soft_bounce_streak --since 7d
    bouncewatch suppressions check Kim.Doe@example.com
    bouncewatch suppressions release Kim.Doe@example.com --by alice --why "ticket 4711"
    bouncewatch suppressions export --format csv --profile mailgun > bounces.csv

``release`` writes the tombstone, an audit record (who, why, when, the record released) and
a release observation for the worker, which forgets the address's bounce history so that
it can graduate again later.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bouncewatch.commands.common import load_settings
from hygiene.core import (
    REASONS,
    RELEASE,
    hash_key_from_settings,
    iso,
    recipient_key,
    recipient_partition,
)
from hygiene.export import PROFILES, export, fold, size_warnings
from hygiene.observe import Bundle
from schemas.durations import parse_duration
from schemas.settings import Settings

#: How long a read waits for the topic's end before giving up on a slow broker.
READ_TIMEOUT_S = 30.0


def read_topic(
    settings: Settings, topic: str, partition: int | None = None
) -> list[tuple[str, bytes | None]]:
    """Every (key, value) of ``topic`` (or of one partition), in offset order per partition."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka_client import client_config

    consumer = KafkaConsumer(
        **client_config(settings),
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=int(READ_TIMEOUT_S * 1000),
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"bouncewatch: topic {topic} does not exist (a worker creates it)")
        wanted = sorted(partitions) if partition is None else [partition]
        assigned = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned)
        records: list[tuple[str, bytes | None]] = []
        remaining = {tp for tp in assigned if end[tp] > 0}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while remaining and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                for message in messages:
                    key = message.key.decode("utf-8", "surrogatepass") if message.key else ""
                    records.append((key, message.value))
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        if remaining:
            raise SystemExit(f"bouncewatch: timed out reading {topic}")
        return records
    finally:
        consumer.close()


def partitions_of(settings: Settings, topic: str) -> int:
    from kafka import KafkaConsumer

    from streams.kafka_client import client_config

    consumer = KafkaConsumer(**client_config(settings), group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    if not partitions:
        raise SystemExit(f"bouncewatch: topic {topic} does not exist (a worker creates it)")
    return len(partitions)


def _since(value: str) -> datetime:
    """``--since``: an ISO 8601 time, or a duration back from now (``7d``, ``12h``)."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a time or a duration: {value!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "suppressions", help="list, check, release or export the suppression list"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--reason", choices=REASONS, help="only this reason")
        sub.add_argument(
            "--since", type=_since, help="only added since: an ISO time or a duration (7d)"
        )

    listing = actions.add_parser("list", help="the addresses on the list")
    filters(listing)
    listing.add_argument("--output", choices=("table", "jsonl"), default="table")
    listing.set_defaults(func=run_list)

    check = actions.add_parser("check", help="whether an address is on the list, and why")
    check.add_argument("address")
    check.set_defaults(func=run_check)

    release = actions.add_parser("release", help="take an address off the list (audited)")
    release.add_argument("address")
    release.add_argument("--by", default=None, help="who releases it (default: the OS user)")
    release.add_argument("--why", required=True, help="why: kept in the audit record")
    release.set_defaults(func=run_release)

    exporting = actions.add_parser(
        "export", help="write the list as an MTA or ESP imports it (README: export formats)"
    )
    filters(exporting)
    exporting.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    exporting.add_argument("--profile", choices=tuple(PROFILES), default="generic")
    exporting.set_defaults(func=run_export)


def _current(args: argparse.Namespace, settings: Settings) -> list[dict[str, Any]]:
    records = fold(read_topic(settings, settings.topic_suppressions)).values()
    out = []
    for record in records:
        if args.reason and record["reason"] != args.reason:
            continue
        when = datetime.fromisoformat(str(record["when"]).replace("Z", "+00:00"))
        if args.since and when < args.since:
            continue
        out.append(record)
    out.sort(key=lambda r: (r["when"], r["key"]))
    return out


def run_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    records = _current(args, settings)
    if args.output == "jsonl":
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return 0
    if not records:
        print("the suppression list is empty" + (" (with these filters)" if args.reason else ""))
        return 0
    rows = [
        (
            r.get("address") or r["key"],
            r["reason"],
            r.get("category") or "",
            r["when"],
            (r.get("evidence") or {}).get("isp") or "",
        )
        for r in records
    ]
    header = ("ADDRESS", "REASON", "CATEGORY", "ADDED (EVENT TIME)", "ISP")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(records)} addresses", file=sys.stderr)
    return 0


def _lookup(settings: Settings, address: str) -> tuple[str, int, dict[str, Any] | None]:
    key = recipient_key(address, hash_key_from_settings(settings))
    partition = recipient_partition(key, partitions_of(settings, settings.topic_suppressions))
    current = fold(
        (k, v) for k, v in read_topic(settings, settings.topic_suppressions, partition) if k == key
    )
    return key, partition, current.get(key)


def run_check(args: argparse.Namespace) -> int:
    """Exit 0 and print the record when the address is on the list; 1 when it is not."""
    settings = load_settings()
    _, _, record = _lookup(settings, args.address)
    if record is None:
        print(f"{args.address}: not on the suppression list")
        return 1
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


def run_release(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from streams.kafka_client import client_config

    settings = load_settings()
    key, partition, record = _lookup(settings, args.address)
    if record is None:
        print(f"{args.address}: not on the suppression list", file=sys.stderr)
        return 1
    by = args.by or getpass.getuser()
    now = time.time()
    audit = {
        "action": "release",
        "key": key,
        "address": record.get("address"),
        "by": by,
        "why": args.why,
        "at": iso(now),
        "released": record,
    }
    producer = KafkaProducer(**client_config(settings), acks="all")
    try:
        sent = [
            producer.send(
                settings.topic_suppression_audit,
                key=key.encode("utf-8", "surrogatepass"),
                value=json.dumps(audit, ensure_ascii=False).encode(),
            ),
            producer.send(
                settings.topic_suppressions,
                key=key.encode("utf-8", "surrogatepass"),
                value=None,
                partition=partition,
            ),
            # The worker that owns the address forgets its history (streams.recipients).
            producer.send(
                settings.topic_recipients,
                value=json.dumps(
                    Bundle(at=[0], others=[[key, RELEASE, now, by]]).message()
                ).encode(),
                partition=partition,
            ),
        ]
        for future in sent:
            future.get(timeout=READ_TIMEOUT_S)
    finally:
        producer.close()
    print(f"{args.address}: released by {by} ({args.why})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.format not in PROFILES[args.profile]:
        print(
            f"bouncewatch: --profile {args.profile} takes --format "
            f"{' or '.join(PROFILES[args.profile])}",
            file=sys.stderr,
        )
        return 2
    settings = load_settings()
    text = export(_current(args, settings), args.profile, args.format)
    sys.stdout.write(text)
    for warning in size_warnings(text, args.profile, args.format):
        print(f"bouncewatch: {warning}", file=sys.stderr)
    return 0
