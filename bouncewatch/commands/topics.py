"""``bouncewatch topics create|list``: the topics bouncewatch reads and writes."""

from __future__ import annotations

import argparse

from bouncewatch.commands.common import load_settings
from bouncewatch.topics import ensure_topics, topic_specs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("topics", help="create or list bouncewatch's topics")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create the missing topics (idempotent)")
    create.set_defaults(func=_create)
    show = actions.add_parser("list", help="print the topics and their partitions")
    show.set_defaults(func=_list)


def _create(args: argparse.Namespace) -> int:
    created = ensure_topics(load_settings())
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def _list(args: argparse.Namespace) -> int:
    for spec in topic_specs(load_settings()):
        extra = " ".join(f"{k}={v}" for k, v in spec.config.items())
        print(
            f"{spec.name}\tpartitions={spec.partitions}\treplication={spec.replication_factor}"
            f"\t{extra}".rstrip()
        )
    return 0
