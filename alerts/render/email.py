"""Email for one group of alert transitions: a subject, a text part and an HTML part.

Both parts carry the same content; the text part is also what the console receiver prints.
The subject states the status, severity, ISP and the headline number, so the inbox list
alone says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from alerts.render import (
    KIND_WORDS,
    action_texts,
    categories,
    comparison,
    complaint_lines,
    fmt_count,
    fmt_time,
    headline,
    isp_label,
    metric_label,
    rate_definition,
    reply_code,
    reply_text,
    rule_names,
    runbook,
    summary_text,
    top_replies,
    trend_line,
    volume,
)
from schemas.alert import AlertTransition


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def _metric_line(t: AlertTransition) -> str:
    definition = rate_definition(t.metric)
    label = metric_label(t.metric) + (f" ({definition})" if definition else "")
    return f"{label}: {comparison(t)} over {volume(t)}"


def render_text(transitions: Sequence[AlertTransition], *, runbook_url: str | None = None) -> str:
    head = headline(transitions)
    lines = [f"{head.tag()} {head.subject}", ""]
    for t in transitions:
        lines.append(f"== {isp_label(t)}: {KIND_WORDS[t.kind]}, {t.severity.value} ==")
        summary = summary_text(t)
        if summary:
            lines.append(summary)
        lines.append(_metric_line(t))
        trend = trend_line(t)
        if trend:
            lines.append(f"Trend: {trend}")
        complaints = complaint_lines(t)
        if complaints:
            lines.append("Complaints:")
            lines.extend(f"  {line}" for line in complaints)
        breakdown = categories(t)
        if breakdown:
            lines.append("Failed attempts by category:")
            width = max(len(name) for name, _ in breakdown)
            lines.extend(f"  {name:<{width}}  {fmt_count(count):>8}" for name, count in breakdown)
        replies = top_replies(t)
        if replies:
            lines.append("Top replies:")
            for i, r in enumerate(replies, 1):
                category = r.category.value.replace("_", " ")
                lines.append(f"  {i}. {reply_code(r)}  {category}  x{fmt_count(r.count)}")
            lines.append(f'  Sample: "{reply_text(replies[0])}"')
        lines.append("")
    actions = action_texts(transitions)
    if actions:
        lines.append("Recommended action:")
        lines.extend(f"  - {a}" for a in actions)
        lines.append("")
    for url in sorted({u for t in transitions if (u := runbook(t, runbook_url))}):
        lines.append(f"Runbook: {url}")
    lines.append(f"Rule: {rule_names(transitions)}")
    lines.append(f"Started: {fmt_time(min(t.started_at for t in transitions))}")
    lines.append(f"Evaluated: {fmt_time(max(t.event_time for t in transitions))}")
    for t in transitions:
        lines.append(f"Alert: {t.fingerprint} #{t.sequence}")
    return "\n".join(lines) + "\n"


_STYLE_TD = "padding:2px 12px 2px 0"


def render_html(transitions: Sequence[AlertTransition], *, runbook_url: str | None = None) -> str:
    head = headline(transitions)
    colour = {"FIRING": "#c0392b", "RESOLVED": "#1e8449", "PENDING": "#b9770e"}[head.status]
    if head.status == "FIRING" and head.severity.value == "warning":
        colour = "#d35400"
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family:sans-serif;font-size:14px;color:#222">',
        f'<h2 style="color:{colour};margin:0 0 12px">{escape(head.tag())} '
        f"{escape(head.subject)}</h2>",
    ]
    for t in transitions:
        parts.append(
            f'<h3 style="margin:16px 0 4px">{escape(isp_label(t))}: '
            f"{escape(KIND_WORDS[t.kind])}, {escape(t.severity.value)}</h3>"
        )
        summary = summary_text(t)
        if summary:
            parts.append(f"<p>{escape(summary)}</p>")
        parts.append(f"<p><b>{escape(_metric_line(t))}</b></p>")
        trend = trend_line(t)
        if trend:
            parts.append(f"<p>Trend: <code>{escape(trend)}</code></p>")
        complaints = complaint_lines(t)
        if complaints:
            items = "".join(f"<li>{escape(line)}</li>" for line in complaints)
            parts.append(f"<p>Complaints:</p><ul>{items}</ul>")
        breakdown = categories(t)
        if breakdown:
            rows = "".join(
                f'<tr><td style="{_STYLE_TD}">{escape(name)}</td>'
                f'<td style="text-align:right">{fmt_count(count)}</td></tr>'
                for name, count in breakdown
            )
            parts.append(f"<p>Failed attempts by category:</p><table>{rows}</table>")
        replies = top_replies(t)
        if replies:
            items = "".join(
                f"<li><code>{escape(reply_code(r))}</code> "
                f"{escape(r.category.value.replace('_', ' '))} x{fmt_count(r.count)}</li>"
                for r in replies
            )
            parts.append(f"<p>Top replies:</p><ol>{items}</ol>")
            parts.append(
                '<pre style="white-space:pre-wrap;background:#f4f4f4;padding:8px">'
                f"{escape(reply_text(replies[0]))}</pre>"
            )
    actions = action_texts(transitions)
    if actions:
        items = "".join(f"<li>{escape(a)}</li>" for a in actions)
        parts.append(f"<p><b>Recommended action:</b></p><ul>{items}</ul>")
    for url in sorted({u for t in transitions if (u := runbook(t, runbook_url))}):
        parts.append(f'<p><a href="{escape(url, quote=True)}">Runbook</a></p>')
    rules = rule_names(transitions)
    started = fmt_time(min(t.started_at for t in transitions))
    evaluated = fmt_time(max(t.event_time for t in transitions))
    alerts = ", ".join(f"{t.fingerprint} #{t.sequence}" for t in transitions)
    parts.append(
        '<p style="color:#777;font-size:12px">'
        f"Rule: {escape(rules)}<br>Started: {started}<br>Evaluated: {evaluated}<br>"
        f"Alert: {escape(alerts)}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_email(
    transitions: Sequence[AlertTransition], *, runbook_url: str | None = None
) -> EmailContent:
    if not transitions:
        raise ValueError("render_email needs at least one transition")
    head = headline(transitions)
    return EmailContent(
        subject=f"{head.tag()} {head.subject}",
        text=render_text(transitions, runbook_url=runbook_url),
        html=render_html(transitions, runbook_url=runbook_url),
    )
