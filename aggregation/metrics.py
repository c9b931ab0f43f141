"""The metrics a rule can name, as functions of the counts over a window: the one definition
of each (name, numerator, denominator, display name, unit) that rules, evaluation, rendering
and /status ask.

Rates are fractions (0.12 is 12 %). Bounce, deferral and category rates are over delivery
attempts in the window (retries of one message are separate attempts); the complaint rate
is over delivered attempts, as the mailbox providers define it: spam complaints received in
the window / attempts delivered in the window. Complaints arrive hours or days after the
delivery they are about, so a window counts the complaints that arrived in it against the
deliveries made in it, as the providers' dashboards (Gmail Postmaster Tools, Yahoo's
Sender Hub) do. ``category_rate(<category>)`` and ``category_count(<category>)`` take a
``schemas.vocabulary.Category`` value.

``suppression_rate`` = addresses newly put on the suppression list in the window / delivery
attempts in the window (list hygiene, ``BOUNCEWATCH_HYGIENE``). "Newly" is the hygiene core's
verdict (``hygiene.core.apply``): an address already on the list adds nothing, however often
it bounces again, so a list that was cleaned keeps the rate near zero while a stale or bought
one drives it up. A suppression counts in the bucket of the event that decided it (the hard
bounce, the complaint, the soft bounce that completed a streak) and in every aggregation key
that event fed. ``suppression_rate(<reason>)`` and ``suppression_count(<reason>)`` count one
reason only (``hard_bounce``, ``soft_bounce_streak``, ``complaint``). With hygiene off
nothing decides suppressions: both metrics are zero.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aggregation.buckets import Counts
from schemas.vocabulary import Category

#: Why an address went on the suppression list (``hygiene.core.REASONS``, which tests hold
#: equal): the argument ``suppression_rate(...)`` takes.
SUPPRESSION_REASONS = ("soft_bounce_streak", "hard_bounce", "complaint")


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What one metric means. ``label`` and ``numerator`` may hold ``{category}``."""

    is_rate: bool
    label: str  # what people read: "soft-bounce rate"
    numerator: str  # what is counted: "soft bounces"
    #: What a rate divides by, "attempts" or "delivered"; for counts, the volume shown.
    denominator: str = "attempts"


#: Metric name -> its meaning. Category metrics are listed without argument.
METRICS: dict[str, MetricInfo] = {
    "soft_bounce_rate": MetricInfo(True, "soft-bounce rate", "soft bounces"),
    "hard_bounce_rate": MetricInfo(True, "hard-bounce rate", "hard bounces"),
    "deferral_rate": MetricInfo(True, "deferral rate", "deferrals"),
    "bounce_rate": MetricInfo(True, "bounce rate", "bounces"),
    "delivered_rate": MetricInfo(True, "delivered rate", "delivered attempts"),
    "category_rate": MetricInfo(True, "{category} rate", "{category} replies"),
    "category_count": MetricInfo(False, "{category} replies", "{category} replies"),
    "attempts": MetricInfo(False, "attempts", "attempts"),
    "complaint_rate": MetricInfo(True, "complaint rate", "spam complaints", "delivered"),
    "complaint_count": MetricInfo(False, "complaints", "spam complaints", "delivered"),
    "suppression_rate": MetricInfo(
        True, "new-suppression rate{reason}", "new suppressions{reason}"
    ),
    "suppression_count": MetricInfo(False, "new suppressions{reason}", "new suppressions{reason}"),
}

#: Metrics whose argument, optional, is a suppression reason.
SUPPRESSION_METRICS = frozenset({"suppression_rate", "suppression_count"})

#: What each denominator is called where a number is shown.
DENOMINATOR_WORDS = {"attempts": "delivery attempts", "delivered": "delivered messages"}

_CALL = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([a-z_]+)\s*\))?\s*$")

#: z for a two-sided 95 % interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    category: Category | None = None
    #: The suppression reason of ``suppression_rate(<reason>)``; None: every reason.
    reason: str | None = None

    @property
    def info(self) -> MetricInfo:
        return METRICS[self.name]

    @property
    def text(self) -> str:
        if self.category:
            return f"{self.name}({self.category.value})"
        return f"{self.name}({self.reason})" if self.reason else self.name

    @property
    def is_rate(self) -> bool:
        return self.info.is_rate

    def _fill(self, text: str) -> str:
        category = self.category.value.replace("_", " ") if self.category else ""
        reason = f" ({self.reason.replace('_', ' ')})" if self.reason else ""
        return text.format(category=category, reason=reason)

    @property
    def label(self) -> str:
        return self._fill(self.info.label)

    @property
    def numerator_label(self) -> str:
        """What the numerator counts, for people: ``soft bounces``, ``spam complaints``."""
        return self._fill(self.info.numerator)

    @property
    def volume_label(self) -> str:
        """What the volume a rule needs (``min_attempts``) counts: ``delivery attempts``
        for most metrics, ``delivered messages`` for complaints."""
        return DENOMINATOR_WORDS[self.info.denominator]

    @property
    def definition(self) -> str:
        """``soft bounces / delivery attempts``; empty for counts."""
        if not self.is_rate:
            return ""
        return f"{self.numerator_label} / {self.volume_label}"

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
        if name in ("complaint_rate", "complaint_count"):
            return counts.complaints
        if name in SUPPRESSION_METRICS:
            if self.reason is None:
                return counts.suppressed
            return counts.suppressions.get(self.reason, 0)
        assert self.category is not None
        return counts.categories.get(self.category.value, 0)

    def volume(self, counts: Counts) -> int:
        """The rate's denominator (for a count, the volume it is judged with): what a
        rule's ``min_attempts`` asks for."""
        return counts.delivered if self.info.denominator == "delivered" else counts.attempts

    def value(self, counts: Counts) -> float:
        n = self.numerator(counts)
        if not self.is_rate:
            return float(n)
        volume = self.volume(counts)
        return n / volume if volume else 0.0

    def lower_bound(self, counts: Counts) -> float:
        """Wilson score lower bound at 95 % for rates; the value itself for counts."""
        if not self.is_rate:
            return self.value(counts)
        return wilson_lower_bound(
            min(self.numerator(counts), self.volume(counts)), self.volume(counts)
        )

    def upper_bound(self, counts: Counts) -> float:
        if not self.is_rate:
            return self.value(counts)
        return wilson_upper_bound(
            min(self.numerator(counts), self.volume(counts)), self.volume(counts)
        )

    def format(self, value: float) -> str:
        """A value for people: rates below 1 % with two decimals (complaint rates live
        there), others with one."""
        if not self.is_rate:
            return f"{value:,.0f}"
        percent = value * 100
        return f"{percent:.2f}%" if 0 < abs(percent) < 1 else f"{percent:.1f}%"


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
    if name in SUPPRESSION_METRICS:
        if argument is not None and argument not in SUPPRESSION_REASONS:
            known = ", ".join(SUPPRESSION_REASONS)
            raise ValueError(f"unknown suppression reason {argument!r}; known: {known}")
        return Metric(name, reason=argument)
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
