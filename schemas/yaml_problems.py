"""Errors of a YAML file validated by pydantic, each with its line, column and field.

Every YAML file a person edits (the rules file, ``delivery/data/isps.yaml`` and the ISP
overrides) is read here, so a mistake is reported the same way whichever file it is in::

    rules.yaml:9:13: rules[1].window: not a duration: 'soon' (...)
    isps.yaml:4:5: acme.families[0]: a family is one label like 'hotmail', not 'a.b'

The node tree (``yaml.compose``) is a second, cheap parse that only error reporting reads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a file cannot be used."""

    source: str
    line: int | None  # 1-based
    column: int | None
    location: str  # rules[2].window
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        return (
            f"{where}: {self.location}: {self.message}"
            if self.location
            else f"{where}: {self.message}"
        )


class ProblemsError(ValueError):
    """A file that cannot be used; ``problems`` lists every reason found, one a line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_loc(loc: Iterable[str | int]) -> str:
    """``rules[2].window`` from ``("rules", 2, "window")``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def node_at(root: yaml.Node | None, loc: Sequence[str | int]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location.

    Location parts that are not in the document (the discriminator tag pydantic inserts for
    unions, ``function-after[...]`` and the like) are skipped.
    """
    node = root
    for part in loc:
        if node is None:
            break
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
            continue
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    node = value_node
                    break
    return node


def problem_at(
    root: yaml.Node | None, source: str, loc: Sequence[str | int], message: str
) -> Problem:
    """A problem found after validation (a cross-field check), placed like pydantic's."""
    node = node_at(root, loc)
    return Problem(
        source,
        None if node is None else node.start_mark.line + 1,
        None if node is None else node.start_mark.column + 1,
        format_loc(loc),
        message,
    )


def problems_from(
    error: ValidationError,
    root: yaml.Node | None,
    source: str,
    prefix: tuple[str | int, ...] = (),
    *,
    hidden: Collection[str] = (),
) -> list[Problem]:
    """One problem per pydantic error, at its node; ``hidden`` are location parts pydantic
    adds (the names of union members) that the file never spelled."""
    problems = []
    for item in error.errors():
        loc = prefix + tuple(item["loc"])
        shown = [p for p in loc if not (isinstance(p, str) and (p in hidden or "[" in p))]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "this field is required"
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        node = node_at(root, loc)
        problems.append(
            Problem(
                source,
                None if node is None else node.start_mark.line + 1,
                None if node is None else node.start_mark.column + 1,
                format_loc(shown),
                message,
            )
        )
    return problems


def parse_yaml(
    text: str, source: str, error: Callable[[Sequence[Problem]], ProblemsError]
) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree; ``error`` (the file's own exception) when the text
    is not YAML, at the line and column the parser stopped."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        column = None if mark is None else mark.column + 1
        message = f"not valid YAML: {exc.problem or exc}"
        raise error([Problem(source, line, column, "", message)]) from None
    except yaml.YAMLError as exc:
        raise error([Problem(source, None, None, "", f"not valid YAML: {exc}")]) from None
    return data, root
