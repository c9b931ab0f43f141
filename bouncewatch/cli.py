"""The ``bouncewatch`` console script: one entry point, one subcommand per module.

Each module in ``bouncewatch.commands`` exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (taking the parsed namespace, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (
    "worker",
    "dev",
    "classify",
    "replay",
    "rules",
    "silence",
    "suppressions",
    "topics",
    "settings",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bouncewatch",
        description="Streaming alerting for email deliverability.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"bouncewatch.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bouncewatch.commands.{name}":
                raise
            continue  # not built yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
