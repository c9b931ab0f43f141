"""The metrics a rule can name, as functions of the counts over a window.

Rates are fractions of delivery attempts in the window (0.12 is 12 %); retries of one message
are separate attempts. ``category_rate(<category>)`` and ``category_count(<category>)`` take a
``schemas.vocabulary.Category`` value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aggregation.buckets import Counts
from schemas.vocabulary import Category

#: Metric name -> (is a rate, what people read). Category metrics are listed without argument.
METRICS: dict[str, tuple[bool, str]] = {
    "soft_bounce_rate": (True, "soft-bounce rate"),
    "hard_bounce_rate": (True, "hard-bounce rate"),
    "deferral_rate": (True, "deferral rate"),
    "bounce_rate": (True, "bounce rate"),
    "delivered_rate": (True, "delivered rate"),
    "category_rate": (True, "rate of {category} replies"),
    "category_count": (False, "{category} replies"),
    "attempts": (False, "attempts"),
}

_CALL = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([a-z_]+)\s*\))?\s*$")

#: z for a two-sided 95 % interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    category: Category | None = None

    @property
    def text(self) -> str:
        return f"{self.name}({self.category.value})" if self.category else self.name

    @property
    def is_rate(self) -> bool:
        return METRICS[self.name][0]

    @property
    def label(self) -> str:
        category = self.category.value.replace("_", " ") if self.category else ""
        return METRICS[self.name][1].format(category=category)

    def numerator(self, counts: Counts) -> int:
        """The count the metric is made of (the rate's numerator, or the count itself)."""
        name = self.name
        if name == "soft_bounce_rate":
            return counts.soft
        if name == "hard_bounce_rate":
            return counts.hard
        if name == "deferral_rate":
            return counts.deferred
        if name == "bounce_rate":
            return counts.bounced
        if name == "delivered_rate":
            return counts.delivered
        if name == "attempts":
            return counts.attempts
        assert self.category is not None
        return counts.categories.get(self.category.value, 0)

    def value(self, counts: Counts) -> float:
        n = self.numerator(counts)
        if not self.is_rate:
            return float(n)
        return n / counts.attempts if counts.attempts else 0.0

    def lower_bound(self, counts: Counts) -> float:
        """Wilson score lower bound at 95 % for rates; the value itself for counts."""
        if not self.is_rate:
            return self.value(counts)
        return wilson_lower_bound(self.numerator(counts), counts.attempts)

    def upper_bound(self, counts: Counts) -> float:
        if not self.is_rate:
            return self.value(counts)
        return wilson_upper_bound(self.numerator(counts), counts.attempts)

    def format(self, value: float) -> str:
        return f"{value * 100:.1f}%" if self.is_rate else f"{value:,.0f}"


def parse_metric(text: str) -> Metric:
    """``soft_bounce_rate`` or ``category_rate(throttled)``; ValueError says what is wrong."""
    match = _CALL.match(text)
    if not match:
        raise ValueError(f"not a metric: {text!r}")
    name, argument = match.group(1), match.group(2)
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    takes_category = name in ("category_rate", "category_count")
    if takes_category:
        if argument is None:
            raise ValueError(f"{name} needs a category, e.g. {name}(throttled)")
        try:
            category = Category(argument)
        except ValueError:
            known = ", ".join(c.value for c in Category)
            raise ValueError(f"unknown category {argument!r}; known: {known}") from None
        return Metric(name, category)
    if argument is not None:
        raise ValueError(f"{name} takes no argument")
    return Metric(name)


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - margin) / denominator), min(1.0, (centre + margin) / denominator)


def wilson_lower_bound(k: int, n: int, z: float = Z_95) -> float:
    """Lower bound of the Wilson score interval: 3/10 gives 0.108, 300/1000 gives 0.272."""
    return _wilson(k, n, z)[0]


def wilson_upper_bound(k: int, n: int, z: float = Z_95) -> float:
    return _wilson(k, n, z)[1]
