"""``bouncewatch settings``: print the effective settings (secrets masked) or their docs."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from bouncewatch.commands.common import load_settings
from schemas.durations import format_duration
from schemas.settings import ENV_PREFIX, SECRET_FIELDS, Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("settings", help="show the effective settings or their docs")
    parser.add_argument(
        "--markdown", action="store_true", help="print the settings table for README.md"
    )
    parser.set_defaults(func=run)


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if field.default is None:
            default = ""
        elif isinstance(field.default, timedelta):
            default = format_duration(field.default)
        else:
            default = str(getattr(field.default, "value", field.default))
        variable = f"`{ENV_PREFIX}{name.upper()}`"
        if name in SECRET_FIELDS:
            variable += f" or `{ENV_PREFIX}{name.upper()}_FILE`"
        rows.append(
            f"| {variable} | `{default}` | {field.description or ''} |".replace("``", "(unset)")
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    settings = load_settings()
    shown = json.loads(settings.model_dump_json())
    for name in SECRET_FIELDS:
        if shown.get(name) is not None:
            shown[name] = "**********"
    print(json.dumps(shown, indent=2))
    return 0
