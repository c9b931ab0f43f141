"""Block Kit for one Slack message about one group of alert transitions.

Layout, top to bottom: a header (state, severity, ISP, the number); per alert the metric
against its threshold or baseline with the volume behind it, the trend as a sparkline, the
category breakdown and the top replies with one sample text; then the recommended action,
the runbook link and a context line (rule, when it started, the transition).

Block Kit limits are enforced here, not left to Slack's ``invalid_blocks``: 150 characters in
a header, 3,000 in a section, 50 blocks in a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    truncate,
    volume,
)
from schemas.alert import AlertTransition

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
#: Alerts shown in full in one message; the rest are listed by name. Keeps a message of a
#: rule firing on every ISP under Slack's 50 blocks and readable on a phone.
DETAILED_ALERTS = 8


#: U+02CB MODIFIER LETTER GRAVE ACCENT, which reads as a backtick.
BACKTICK_STAND_IN = "\u02cb"


@dataclass(frozen=True)
class SlackMessage:
    text: str  # the notification and screen-reader text; Slack shows blocks when present
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Text for mrkdwn: Slack's three control characters escaped, backticks replaced.

    Escaping ``<`` and ``>`` is what neutralises mentions (``<!channel>``, ``<@U…>``) and
    masked links (``<https://…|text>``): Slack then shows them as typed. mrkdwn has no
    escape for a backtick, and one in a reply or label would open or close a code span or
    block (a reply's own fence ending the block around it), so a look-alike stands in.
    """
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("`", BACKTICK_STAND_IN)
    )


def link_url(url: str) -> str:
    """A URL for ``<url|label>``: escaped, and without a ``|`` that would end it early."""
    return url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "%7C")


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _alert_blocks(t: AlertTransition, *, detailed: bool) -> list[dict[str, Any]]:
    definition = rate_definition(t.metric)
    metric = f"*{metric_label(t.metric)}*" + (f" ({definition})" if definition else "")
    lines = [f"*{escape(isp_label(t))}* — {KIND_WORDS[t.kind]}, {t.severity.value}"]
    summary = summary_text(t)
    if summary:
        lines.append(escape(summary))
    lines.append(f"{metric}: *{comparison(t)}* over {volume(t)}")
    trend = trend_line(t)
    if trend:
        lines.append(f"Trend: `{trend}`")
    blocks = [_section("\n".join(lines))]
    complaints = complaint_lines(t)
    if complaints:
        blocks.append(_section("*Complaints*\n" + "\n".join(f"• {escape(c)}" for c in complaints)))
    if not detailed:
        return blocks

    breakdown = categories(t)
    if breakdown:
        fields = [_mrkdwn(f"*{name}*\n{fmt_count(count)}") for name, count in breakdown[:10]]
        blocks.append({"type": "section", "text": _mrkdwn("*Failed attempts by category*")})
        blocks.append({"type": "section", "fields": fields})

    replies = top_replies(t)
    if replies:
        reply_lines = ["*Top replies*"]
        for r in replies:
            reply_lines.append(
                f"• `{escape(reply_code(r))}` {r.category.value.replace('_', ' ')}"
                f" ×{fmt_count(r.count)}"  # noqa: RUF001
            )
        sample = reply_text(replies[0])
        if sample:
            reply_lines.append(f"```{escape(truncate(sample, 600))}```")
        blocks.append(_section("\n".join(reply_lines)))
    return blocks


def render_slack(
    transitions: Sequence[AlertTransition], *, runbook_url: str | None = None
) -> SlackMessage:
    """Blocks for a message about ``transitions`` (one group, at least one).

    The same function renders a thread reply and, from the alerts' latest states, the
    first message's edited version, so the header always reflects the states it is given.
    """
    if not transitions:
        raise ValueError("render_slack needs at least one transition")
    head = headline(transitions)
    header_text = truncate(f"{head.emoji} {head.status.title()} · {head.subject}", HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header_text, "emoji": True}}
    ]
    detailed = transitions[:DETAILED_ALERTS]
    for i, t in enumerate(detailed):
        if i:
            blocks.append({"type": "divider"})
        blocks.extend(_alert_blocks(t, detailed=len(transitions) <= 2))
    rest = transitions[DETAILED_ALERTS:]
    if rest:
        names = ", ".join(f"{isp_label(t)} {comparison(t)}" for t in rest)
        blocks.append(_section(escape(f"Also: {names}")))

    actions = action_texts(transitions)
    if actions:
        if len(actions) == 1:
            text = escape(actions[0])
        else:
            text = "\n".join(f"• {escape(a)}" for a in actions)
        blocks.append({"type": "divider"})
        blocks.append(_section(f"*Recommended action*\n{text}"))

    context: list[dict[str, Any]] = []
    links = sorted({url for t in transitions if (url := runbook(t, runbook_url))})
    context.extend(_mrkdwn(f"<{link_url(url)}|Runbook>") for url in links[:3])
    first = transitions[0]
    context.append(_mrkdwn(f"Rule {escape(rule_names(transitions))}"))
    context.append(_mrkdwn(f"Started {fmt_time(min(t.started_at for t in transitions))}"))
    context.append(_mrkdwn(f"Evaluated {fmt_time(max(t.event_time for t in transitions))}"))
    if len(transitions) == 1:
        context.append(_mrkdwn(f"Alert `{first.fingerprint[:12]}` #{first.sequence}"))
    blocks.append({"type": "context", "elements": context[:10]})

    # The fallback text is mrkdwn too (notifications, screen readers, clients without
    # blocks): escaped like the blocks, or a <!channel> in a label would ping the channel.
    text = escape(f"{head.tag()} {head.subject}")
    return SlackMessage(text=truncate(text, 3000), blocks=blocks[:50])
