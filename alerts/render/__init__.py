"""Rendering alert transitions for people: the words and numbers every receiver shares.

Slack blocks, email and the console say the same things in the same words; the phrasing
lives here once, and each renderer only lays it out.

Reply texts, ISP names and group labels come from remote servers and from the events, so
every such text goes through :func:`clean` here (no control characters, no line breaks, a
length cap) before a renderer escapes it for its own format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregation.metrics import Metric, parse_metric
from alerts.render.sparkline import sparkline
from alerts.routing import format_duration
from schemas.alert import AlertState, AlertTransition, ReplySample, Severity, TransitionKind

SEVERITY_ORDER = {Severity.WARNING: 1, Severity.CRITICAL: 2}
EMOJI = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠"}
RESOLVED_EMOJI = "✅"
PENDING_EMOJI = "⏳"

#: How group labels are named in front of people.
GROUP_LABEL_NAMES = {"source_ip": "IP", "sending_domain": "domain", "tenant": "tenant"}

KIND_WORDS = {
    TransitionKind.PENDING: "pending",
    TransitionKind.FIRING: "firing",
    TransitionKind.SEVERITY_CHANGED: "severity changed",
    TransitionKind.REMINDER: "still firing",
    TransitionKind.RESOLVED: "resolved",
}

#: Caps for remote text. A reply sample longer than this says nothing more to a person, and
#: Slack sections hold 3,000 characters; an ISP name or label value this long is garbage.
REPLY_TEXT_LIMIT = 1000
SUMMARY_LIMIT = 1000
LABEL_LIMIT = 100
CODE_LIMIT = 40

#: Line breaks become spaces: a reply is shown on one line, and a break in a label would
#: end an email header early (the email library refuses such a header outright).
_BREAKS = "\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
#: Removed: characters that reorder or hide text (bidi overrides and isolates, zero-width
#: characters, the BOM), which can make a reply read as something it does not say.
_INVISIBLE = (
    "\u200b\u200c\u200d\u200e\u200f"  # zero-width space, (non-)joiner, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2066\u2067\u2068\u2069\ufeff"  # word joiner, bidi isolates, BOM
)
_CLEAN_TABLE: dict[int, str | None] = {ord(c): " " for c in _BREAKS}
_CLEAN_TABLE.update({ord(c): None for c in _INVISIBLE})
# Every other C0 and C1 control goes too: ESC would colour or clear the console's terminal.
_CLEAN_TABLE.update({i: None for i in [*range(0x20), *range(0x7F, 0xA0)] if i not in _CLEAN_TABLE})


def _metric(metric: str) -> Metric | None:
    """The one definition of a metric (``aggregation.metrics``); None for a name it does not
    know (a transition from an older or a newer version)."""
    try:
        return parse_metric(metric)
    except ValueError:
        return None


def is_rate(metric: str) -> bool:
    known = _metric(metric)
    return known.is_rate if known is not None else metric.endswith("_rate")


def metric_label(metric: str) -> str:
    """``soft_bounce_rate`` → ``soft-bounce rate``; ``category_rate(x)`` → ``x rate``."""
    known = _metric(metric)
    return known.label if known is not None else metric.replace("_", " ")


def rate_definition(metric: str) -> str:
    """What a rate divides, said wherever the number is shown (attempts, not messages)."""
    known = _metric(metric)
    return known.definition if known is not None else ""


def volume_word(metric: str) -> str:
    """What the volume of an alert counts: ``attempts``, or ``delivered`` for complaints."""
    known = _metric(metric)
    return (
        "delivered" if known is not None and known.info.denominator == "delivered" else "attempts"
    )


def fmt_number(metric: str, value: float) -> str:
    if is_rate(metric):
        percent = value * 100
        return f"{percent:.2f}%" if 0 < abs(percent) < 1 else f"{percent:.1f}%"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def fmt_count(value: int) -> str:
    return f"{value:,}"


def fmt_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value.utcoffset() is not None else str(value)


def isp_label(t: AlertTransition) -> str:
    """``Microsoft (IP 203.0.113.7)``: the ISP and what else the alert is grouped by."""
    extra = [
        clean(f"{GROUP_LABEL_NAMES.get(k, k)} {v}", LABEL_LIMIT)
        for k, v in sorted(t.group.items())
        if v
    ]
    name = clean(t.isp_name, LABEL_LIMIT)
    return f"{name} ({', '.join(extra)})" if extra else name


def comparison(t: AlertTransition) -> str:
    """The number against what it is judged by: ``18.4% ≥ threshold 5.0%``."""
    value = fmt_number(t.metric, t.value)
    if t.baseline is not None:
        text = f"{value} vs baseline {fmt_number(t.metric, t.baseline)}"
        if t.baseline > 0:
            text += f" (×{t.value / t.baseline:.1f})"  # noqa: RUF001
        return text
    if t.threshold is not None:
        relation = "≥" if t.value >= t.threshold else "<"
        return f"{value} {relation} threshold {fmt_number(t.metric, t.threshold)}"
    return value


def judged(t: AlertTransition) -> str:
    """What the number was judged against, in a few words for a title.

    A spike rule and a threshold rule on one metric can hold the same number; without this,
    "RESOLVED soft-bounce rate 22.1%" next to a firing 22.1% reads as a contradiction.
    """
    if t.baseline is not None:
        if t.baseline > 0:
            return f"{t.value / t.baseline:.1f}x its baseline"
        return f"{_relation(t.value, t.baseline)} its baseline {fmt_number(t.metric, t.baseline)}"
    if t.threshold is not None:
        return f"{_relation(t.value, t.threshold)} {fmt_number(t.metric, t.threshold)}"
    return ""


def _relation(value: float, limit: float) -> str:
    return "above" if value > limit else "below" if value < limit else "at"


def volume(t: AlertTransition) -> str:
    window = format_duration_s(t.window_seconds)
    return f"{fmt_count(t.attempts)} {volume_word(t.metric)} in the last {window}"


def complaint_lines(t: AlertTransition) -> list[str]:
    """A complaint alert's evidence, one statement a line: the counts behind the rate, the
    provider's limit, and the top sending domains, IPs and campaigns among the complaints."""
    e = t.complaints
    if e is None:
        return []
    window = format_duration_s(t.window_seconds)
    counts = (
        f"{fmt_count(e.complaints)} complaints / {fmt_count(e.delivered)} delivered"
        f" in the last {window}"
    )
    if e.other_feedback:
        counts += f"; {fmt_count(e.other_feedback)} other feedback (not-spam, opt-out), not counted"
    lines = [counts]
    if e.provider_limit:
        share = t.value / e.provider_limit
        lines.append(
            f"{clean(t.isp_name, LABEL_LIMIT)}'s limit: {fmt_number(t.metric, e.provider_limit)}"
            f" (the rate is at {share:.0%} of it): {clean(e.provider_limit_source, SUMMARY_LIMIT)}"
        )
    for label, items in (
        ("Top sending domains", e.top_sending_domains),
        ("Top IPs", e.top_source_ips),
        ("Top campaigns", e.top_campaigns),
    ):
        if items:
            shown = ", ".join(f"{clean(i.name, LABEL_LIMIT)} ({fmt_count(i.count)})" for i in items)
            lines.append(f"{label}: {shown}")
    return lines


def format_duration_s(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))


def trend_line(t: AlertTransition) -> str | None:
    if not t.trend:
        return None
    first, last = t.trend[0], t.trend[-1]
    return (
        f"{sparkline(t.trend)}  {fmt_number(t.metric, first)} → {fmt_number(t.metric, last)}"
        f" over the last {len(t.trend)} buckets"
    )


def categories(t: AlertTransition, limit: int = 6) -> list[tuple[str, int]]:
    ranked = sorted(t.categories.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = [(name.replace("_", " "), count) for name, count in ranked[:limit]]
    rest = sum(count for _, count in ranked[limit:])
    if rest:
        shown.append(("other", rest))
    return shown


def reply_code(r: ReplySample) -> str:
    parts = [str(r.code) if r.code is not None else "", r.enhanced or "", r.isp_code or ""]
    return " ".join(clean(p, CODE_LIMIT) for p in parts if p) or "no code"


def top_replies(t: AlertTransition, limit: int = 3) -> list[ReplySample]:
    return sorted(t.top_replies, key=lambda r: -r.count)[:limit]


def runbook(t: AlertTransition, fallback: str | None) -> str | None:
    return t.annotations.get("runbook_url") or fallback


def worst_severity(ts: Sequence[AlertTransition]) -> Severity:
    return max((t.severity for t in ts), key=lambda s: SEVERITY_ORDER[s])


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: str, limit: int) -> str:
    """Remote text made safe to show: one line, no control or invisible characters, capped."""
    # Cut first so a huge text costs no more than a long one.
    return truncate(text[: limit * 2 + 1].translate(_CLEAN_TABLE).strip(), limit)


def reply_text(r: ReplySample) -> str:
    return clean(r.text, REPLY_TEXT_LIMIT)


def summary_text(t: AlertTransition) -> str:
    return clean(t.summary, SUMMARY_LIMIT)


def action_texts(ts: Sequence[AlertTransition]) -> list[str]:
    """The recommended actions of these alerts, each once, in order (they name the ISP)."""
    actions: list[str] = []
    for t in ts:
        action = clean(t.recommended_action, SUMMARY_LIMIT)
        if action and action not in actions:
            actions.append(action)
    return actions


def rule_names(ts: Sequence[AlertTransition]) -> str:
    return ", ".join(sorted({clean(f"{t.rule} ({t.rule_type})", LABEL_LIMIT) for t in ts}))


def _value_judged(t: AlertTransition) -> str:
    """``18.4% (above 5.0%)``: a title's number with what it was judged against."""
    against = judged(t)
    value = fmt_number(t.metric, t.value)
    return f"{value} ({against})" if against else value


@dataclass(frozen=True)
class Headline:
    """The one-line statement of a message: subject line, header, notification text."""

    emoji: str
    status: str  # FIRING, RESOLVED, ...
    severity: Severity
    subject: str

    def tag(self) -> str:
        if self.status == "RESOLVED":
            return "[RESOLVED]"
        return f"[{self.status} {self.severity.value}]"


def headline(ts: Sequence[AlertTransition]) -> Headline:
    """What a message about these transitions (one group) says first.

    For the first message of a thread re-rendered later, ``ts`` are the latest states of its
    alerts, so the header shows the incident as it stands now.
    """
    firing = [t for t in ts if t.state is AlertState.FIRING]
    pending = [t for t in ts if t.state is AlertState.PENDING]
    active = firing or pending
    severity = worst_severity(active or ts)
    if not active:
        emoji, status = RESOLVED_EMOJI, "RESOLVED"
    elif firing:
        emoji, status = EMOJI[severity], "FIRING"
    else:
        emoji, status = PENDING_EMOJI, "PENDING"
    if len(ts) == 1:
        t = ts[0]
        subject = (
            f"{isp_label(t)}: {metric_label(t.metric)} {_value_judged(t)}"
            f" of {fmt_count(t.attempts)} {volume_word(t.metric)}"
        )
    else:
        rules = sorted({t.rule for t in ts})
        shown = [f"{isp_label(t)} {_value_judged(t)}" for t in ts[:4]]
        more = f", +{len(ts) - 4} more" if len(ts) > 4 else ""
        partial = bool(active) and len(active) < len(ts)
        counted = f" ({len(active)} of {len(ts)} firing)" if partial else ""
        subject = f"{', '.join(rules)}: {', '.join(shown)}{more}{counted}"
    return Headline(emoji=emoji, status=status, severity=severity, subject=subject)
