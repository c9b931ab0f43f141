#!/usr/bin/env python3
"""Generate the parameter table of helm/bouncewatch/README.md from values.yaml.

values.yaml documents every value with a Bitnami-style comment::

    ## @section Image parameters
    ## @param image.tag Image tag (empty: the chart's appVersion)
    ## @skip some.path            (documented elsewhere; left out of the table)

This script turns those comments into one Markdown table per section, with each value's
default read from the YAML itself, and writes it between the markers
``<!-- parameters:start -->`` and ``<!-- parameters:end -->`` of the chart's README.

It also refuses values without a ``@param`` (a leaf of values.yaml that no comment covers)
and comments naming a value that does not exist, so the table cannot drift.

    python scripts/helm_readme.py           # rewrite the table
    python scripts/helm_readme.py --check   # exit 1 when README.md is stale (for tests/CI)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "helm" / "bouncewatch"
START_MARKER = "<!-- parameters:start -->"
END_MARKER = "<!-- parameters:end -->"

_DIRECTIVE = re.compile(r"^\s*##\s+@(section|param|skip)\s+(\S.*?)\s*$")


@dataclass(frozen=True)
class Param:
    path: str
    description: str
    value: Any


@dataclass
class Section:
    title: str
    params: list[Param] = field(default_factory=list)


class ValuesDocError(ValueError):
    """values.yaml and its @param comments disagree."""


_MISSING = object()


def _lookup(values: Any, path: str) -> Any:
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaves(values: Any, prefix: str = "") -> list[str]:
    """Paths of the leaves: scalars, lists and empty maps."""
    if isinstance(values, dict) and values:
        paths: list[str] = []
        for key, child in values.items():
            paths.extend(_leaves(child, f"{prefix}.{key}" if prefix else str(key)))
        return paths
    return [prefix]


def parse(values_text: str) -> list[Section]:
    """Read the sections and parameters, in file order, checking them against the values."""
    values = yaml.safe_load(values_text) or {}
    sections: list[Section] = []
    documented: set[str] = set()
    errors: list[str] = []
    for lineno, line in enumerate(values_text.splitlines(), start=1):
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        kind, rest = match.groups()
        if kind == "section":
            sections.append(Section(rest))
            continue
        path, _, description = rest.partition(" ")
        value = _lookup(values, path)
        if value is _MISSING:
            errors.append(f"line {lineno}: @{kind} {path}: no such value in values.yaml")
            continue
        if path in documented:
            errors.append(f"line {lineno}: @{kind} {path}: documented twice")
        documented.add(path)
        if kind == "skip":
            continue
        if not description.strip():
            errors.append(f"line {lineno}: @param {path}: no description")
        if not sections:
            errors.append(f"line {lineno}: @param {path}: comes before the first @section")
            continue
        sections[-1].params.append(Param(path, description.strip(), value))
    for leaf in _leaves(values):
        parts = leaf.split(".")
        covered = any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1))
        if not covered:
            errors.append(f"{leaf}: no @param comment")
    if errors:
        raise ValuesDocError("values.yaml documentation is incomplete:\n  " + "\n  ".join(errors))
    return sections


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        text = value if value else '""'
        if "\n" in text:
            text = json.dumps(value)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return "`" + text.replace("|", "\\|") + "`"


def render(sections: list[Section]) -> str:
    """The Markdown tables, one per section with parameters."""
    blocks: list[str] = []
    for section in sections:
        if not section.params:
            continue
        rows = [
            f"### {section.title}",
            "",
            "| Name | Description | Value |",
            "| ---- | ----------- | ----- |",
        ]
        for param in section.params:
            description = param.description.replace("|", "\\|")
            rows.append(f"| `{param.path}` | {description} | {_format_value(param.value)} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def updated_readme(readme_text: str, table: str) -> str:
    """README text with the table replaced between the markers."""
    start = readme_text.find(START_MARKER)
    end = readme_text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValuesDocError(f"README.md needs the markers {START_MARKER} and {END_MARKER}")
    head = readme_text[: start + len(START_MARKER)]
    return f"{head}\n\n{table}\n\n{readme_text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--chart", type=Path, default=CHART_DIR, help="chart directory (default: %(default)s)"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if README.md is not up to date"
    )
    args = parser.parse_args(argv)
    chart: Path = args.chart
    values_text = (chart / "values.yaml").read_text(encoding="utf-8")
    readme_path = chart / "README.md"
    readme_text = readme_path.read_text(encoding="utf-8")
    try:
        new_text = updated_readme(readme_text, render(parse(values_text)))
    except ValuesDocError as exc:
        print(f"helm_readme: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new_text != readme_text:
            print(
                f"helm_readme: {readme_path} is stale; run: python scripts/helm_readme.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if new_text != readme_text:
        readme_path.write_text(new_text, encoding="utf-8")
        print(f"helm_readme: updated {readme_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
