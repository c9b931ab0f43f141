"""Scoring the classifier against labelled replies: accuracy, per-category precision and
recall, and the confusions, for ``bouncewatch classify --evaluate``.

A labelled line is any line ``bouncewatch classify`` reads plus ``expected``: an object with
``outcome``, ``bounce_type`` and ``category`` (any of them; only those given are scored).
Bookkeeping keys a corpus may carry (``family``, ``source``, ``note``, ``id``) are ignored.
Plain Python, no I/O: the command feeds it pairs and prints what it returns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from delivery.types import Classification
from schemas.vocabulary import BounceType, Category, Outcome

#: The keys a labelled line may add to what ``classify`` reads.
LABEL_KEYS = frozenset({"expected", "family", "source", "note", "id"})
MEASURES = ("outcome", "bounce_type", "category")
_EXAMPLE_CHARS = 160


class LabelError(ValueError):
    """An ``expected`` object that cannot be scored."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What a labelled line says the answer is; None where it does not say."""

    outcome: Outcome | None
    bounce_type: BounceType | None
    category: Category | None


def parse_expected(value: object) -> Expected:
    """The ``expected`` object of a labelled line; raises LabelError naming the bad field."""
    if not isinstance(value, dict):
        raise LabelError("'expected' must be an object with outcome, bounce_type and category")
    unknown = sorted(set(value) - set(MEASURES))
    if unknown:
        raise LabelError(f"expected: unknown field(s) {', '.join(unknown)}")
    if not any(key in value for key in MEASURES):
        raise LabelError("expected: give at least one of outcome, bounce_type, category")
    try:
        return Expected(
            outcome=Outcome(value["outcome"]) if "outcome" in value else None,
            bounce_type=BounceType(value["bounce_type"]) if "bounce_type" in value else None,
            category=Category(value["category"]) if "category" in value else None,
        )
    except ValueError as exc:
        raise LabelError(f"expected: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Confusion:
    """Replies of one expected value read as another, with the first one seen."""

    measure: str  # outcome, bounce_type or category
    expected: str
    got: str
    count: int
    example: str
    rule: str | None
    line: int


@dataclass
class Scorer:
    """Accumulates (expected, classification) pairs; ``report()`` sums them up."""

    scored: Counter[str] = field(default_factory=Counter)
    right: Counter[str] = field(default_factory=Counter)
    # per measure: (expected, got) -> count, and the first (text, rule, line) of each pair
    pairs: dict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: {m: Counter() for m in MEASURES}
    )
    examples: dict[tuple[str, str, str], tuple[str, str | None, int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, expected: Expected, got: Classification, text: str, line: int) -> None:
        for measure in MEASURES:
            want = getattr(expected, measure)
            if want is None:
                continue
            have = getattr(got, measure)
            self.scored[measure] += 1
            self.pairs[measure][(want.value, have.value)] += 1
            if want is have:
                self.right[measure] += 1
            else:
                key = (measure, want.value, have.value)
                self.examples.setdefault(key, (_shorten(text), got.rule_id, line))

    def error(self, line: int, reason: str) -> None:
        self.errors.append({"line": line, "error": reason})

    def report(self) -> dict[str, Any]:
        """Overall accuracy per measure, per-category precision and recall, confusions."""
        accuracy = {
            m: _ratio(self.right[m], self.scored[m]) for m in MEASURES if self.scored[m] > 0
        }
        return {
            "scored": max(self.scored.values(), default=0),
            "accuracy": accuracy,
            "categories": self._per_value("category"),
            "bounce_types": self._per_value("bounce_type"),
            "confusions": [_as_dict(c) for c in self.confusions()],
            "errors": self.errors,
        }

    def confusions(self) -> list[Confusion]:
        """Every (expected, got) pair that differs, commonest first; bounce types first,
        since reading a good address as hard (or a bad one as soft) costs the most."""
        out: list[Confusion] = []
        for measure in ("bounce_type", "category", "outcome"):
            for (want, have), count in self.pairs[measure].items():
                if want == have:
                    continue
                text, rule, line = self.examples[(measure, want, have)]
                out.append(Confusion(measure, want, have, count, text, rule, line))
        order = {"bounce_type": 0, "category": 1, "outcome": 2}
        out.sort(key=lambda c: (order[c.measure], -c.count, c.expected, c.got))
        return out

    def _per_value(self, measure: str) -> dict[str, dict[str, Any]]:
        expected: Counter[str] = Counter()
        predicted: Counter[str] = Counter()
        correct: Counter[str] = Counter()
        for (want, have), count in self.pairs[measure].items():
            expected[want] += count
            predicted[have] += count
            if want == have:
                correct[want] += count
        values = sorted(set(expected) | set(predicted))
        return {
            value: {
                "expected": expected[value],
                "predicted": predicted[value],
                "precision": _ratio(correct[value], predicted[value]),
                "recall": _ratio(correct[value], expected[value]),
            }
            for value in values
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXAMPLE_CHARS else flat[: _EXAMPLE_CHARS - 1] + "…"


def _as_dict(confusion: Confusion) -> dict[str, Any]:
    return {
        "measure": confusion.measure,
        "expected": confusion.expected,
        "got": confusion.got,
        "count": confusion.count,
        "example": confusion.example,
        "rule": confusion.rule,
        "line": confusion.line,
    }


def render_text(report: dict[str, Any]) -> str:
    """The report for a person: accuracy, a per-category table, the confusions."""
    lines = [f"scored {report['scored']} replies"]
    for measure, value in report["accuracy"].items():
        lines.append(f"  {measure:<12} accuracy {_pct(value)}")
    if report["errors"]:
        lines.append(f"  {len(report['errors'])} line(s) could not be scored (see below)")
    lines.append("")
    lines.append(f"{'category':<18} {'expected':>8} {'got':>6} {'precision':>10} {'recall':>8}")
    for value, row in report["categories"].items():
        lines.append(
            f"{value:<18} {row['expected']:>8} {row['predicted']:>6} "
            f"{_pct(row['precision']):>10} {_pct(row['recall']):>8}"
        )
    if report["confusions"]:
        lines.append("")
        lines.append("confusions (expected -> got, count, first example):")
        for c in report["confusions"]:
            rule = f" [rule {c['rule']}]" if c["rule"] else " [no rule]"
            lines.append(
                f"  {c['measure']}: {c['expected']} -> {c['got']}  x{c['count']}  "
                f"line {c['line']}{rule}: {c['example']}"
            )
    for error in report["errors"]:
        lines.append(f"  line {error['line']}: {error['error']}")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
