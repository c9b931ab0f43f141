"""Realistic alert transitions for the notifier's tests and golden files.

Reply texts follow what the ISPs answer (wording checked against their postmaster pages):
Gmail's 421-4.7.28 rate limit, Yahoo's TSS04 deferral, Microsoft's S3150 blocklisting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.alert import (
    AlertState,
    AlertTransition,
    ReplySample,
    Severity,
    TransitionKind,
)
from schemas.vocabulary import Category

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)

GMAIL_421 = (
    "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your "
    "IP address. To protect our users from spam, mail sent from your IP address has been "
    "temporarily rate limited. For more information, go to "
    "https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email "
    "Senders Guidelines. d2e1a72fcca58-73bd21d8f4esi11422985b3a.211 - gsmtp"
)
YAHOO_TSS04 = (
    "421 4.7.0 [TSS04] Messages from 203.0.113.7 temporarily deferred due to unexpected volume "
    "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"
)
MICROSOFT_S3150 = (
    "550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your "
    "Internet service provider since part of their network is on our block list (S3150). You "
    "can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
    "[AM4PEPF00027A6C.eurprd04.prod.outlook.com 2025-03-04T09:05:12.345Z 08DD5B1C9F6E2A41]"
)

THROTTLE_ACTION = (
    "Slow down: lower the connection and message rate to this ISP, spread the campaign over "
    "more hours, and pause sends to recipients who have not engaged in 90 days."
)
BLOCKLIST_ACTION = (
    "Check blocklists and complaints: look the IP up on Microsoft SNDS, request delisting at "
    "https://sender.office.com once the cause is fixed, and move traffic off the IP meanwhile."
)


def _base(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "fingerprint": "a3f1c29e7b0d4e55",
        "sequence": 1,
        "kind": TransitionKind.FIRING,
        "state": AlertState.FIRING,
        "severity": Severity.WARNING,
        "rule": "isp-throttling",
        "rule_type": "threshold",
        "isp": "gmail",
        "isp_name": "Gmail",
        "metric": "category_rate(throttled)",
        "value": 0.184,
        "threshold": 0.05,
        "attempts": 12480,
        "window_seconds": 300,
        "event_time": T0 + timedelta(minutes=5),
        "started_at": T0 + timedelta(minutes=2),
        "cause": Category.THROTTLED,
        "categories": {"throttled": 2296, "reputation": 41, "mailbox_full": 18, "user_unknown": 9},
        "top_replies": [
            ReplySample(
                category=Category.THROTTLED,
                code=421,
                enhanced="4.7.28",
                text=GMAIL_421,
                count=2271,
            ),
            ReplySample(
                category=Category.REPUTATION,
                code=421,
                enhanced="4.7.0",
                text="421-4.7.0 Try again later, closing connection. (EHLO) - gsmtp",
                count=41,
            ),
        ],
        "trend": [0.004, 0.006, 0.005, 0.011, 0.052, 0.121, 0.184],
        "summary": "Gmail is rate limiting: 18.4% of attempts deferred with 421-4.7.28.",
        "recommended_action": THROTTLE_ACTION,
        "labels": {"team": "deliverability"},
        "annotations": {"runbook_url": "https://runbooks.example.com/deliverability/throttling"},
    }
    data.update(overrides)
    return data


def gmail_throttling(**overrides: Any) -> AlertTransition:
    return AlertTransition(**_base(**overrides))


def yahoo_throttling(**overrides: Any) -> AlertTransition:
    data = _base(
        fingerprint="5b2d08c1e9f7a310",
        isp="yahoo",
        isp_name="Yahoo",
        value=0.072,
        attempts=6210,
        categories={"throttled": 447, "mailbox_disabled": 12},
        top_replies=[
            ReplySample(
                category=Category.THROTTLED,
                code=421,
                enhanced="4.7.0",
                isp_code="TSS04",
                text=YAHOO_TSS04,
                count=447,
            )
        ],
        trend=[0.002, 0.003, 0.002, 0.009, 0.031, 0.072],
        summary="Yahoo is deferring with TSS04: 7.2% of attempts.",
        started_at=T0 + timedelta(minutes=3),
    )
    data.update(overrides)
    return AlertTransition(**data)


def microsoft_blocklist(**overrides: Any) -> AlertTransition:
    data = _base(
        fingerprint="e07c4d93a21b68f0",
        severity=Severity.CRITICAL,
        rule="ip-blocklisted",
        rule_type="spike",
        isp="microsoft",
        isp_name="Microsoft",
        group={"source_ip": "203.0.113.9"},
        metric="category_rate(reputation)",
        value=0.412,
        threshold=None,
        baseline=0.003,
        attempts=3874,
        cause=Category.REPUTATION,
        categories={"reputation": 1596, "throttled": 22, "user_unknown": 31},
        top_replies=[
            ReplySample(
                category=Category.REPUTATION,
                code=550,
                enhanced="5.7.1",
                isp_code="S3150",
                text=MICROSOFT_S3150,
                count=1596,
            ),
            ReplySample(
                category=Category.USER_UNKNOWN,
                code=550,
                enhanced="5.5.0",
                text="550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).",
                count=31,
            ),
        ],
        trend=[0.002, 0.003, 0.004, 0.003, 0.187, 0.412],
        summary="Microsoft has put 203.0.113.9 on its block list (S3150).",
        recommended_action=BLOCKLIST_ACTION,
        annotations={},
    )
    data.update(overrides)
    return AlertTransition(**data)


#: A reply as a hostile or broken server might send it: Slack mentions, a masked link, code
#: fences, a terminal escape, a bidi override, a bell, header injection and 10 kB of filler.
HOSTILE_REPLY = (
    "550 5.7.1 <!channel> <!here> <@U024BE7LH> <https://evil.example/delist|click to delist> "
    "```*pwned*``` `x` & <b>bold</b> \x1b[31mred\x1b[0m \u202edecnalab\u202c bell\x07 "
    "line1\r\nSubject: injected\r\nBcc: victim@example.com\n" + "A" * 10_000
)


def hostile(**overrides: Any) -> AlertTransition:
    """An alert whose remote-supplied texts (reply, ISP name, labels, summary) are hostile."""
    data = _base(
        fingerprint="0badc0de0badc0de",
        isp="gmail",
        isp_name="Gmail <!here>",
        group={"sending_domain": "shop.example\r\nBcc: victim@example.com"},
        summary="Throttled <@U024BE7LH> ```" + "B" * 10_000,
        top_replies=[
            ReplySample(
                category=Category.THROTTLED,
                code=421,
                enhanced="4.7.28`<!channel>",
                isp_code="X\nY",
                text=HOSTILE_REPLY,
                count=2271,
            )
        ],
    )
    data.update(overrides)
    return AlertTransition(**data)


def resolved(
    t: AlertTransition, *, sequence: int | None = None, **overrides: Any
) -> AlertTransition:
    """The resolution of ``t``'s incident, some minutes later, with the rate back down."""
    data = t.model_dump()
    data.update(
        sequence=sequence or t.sequence + 1,
        kind=TransitionKind.RESOLVED,
        state=AlertState.RESOLVED,
        value=(t.threshold or t.baseline or 0.01) / 5,
        event_time=t.event_time + timedelta(minutes=25),
        trend=[*t.trend[-4:], t.value / 2, t.value / 8, (t.threshold or 0.01) / 5],
        summary=f"{t.isp_name} is back to normal.",
        # The window after recovery: a trickle of the same replies, far fewer attempts failing.
        categories={k: max(1, v // 60) for k, v in t.categories.items()},
        top_replies=[r.model_copy(update={"count": max(1, r.count // 60)}) for r in t.top_replies],
    )
    data.update(overrides)
    return AlertTransition(**data)


def followup(t: AlertTransition, kind: TransitionKind, **overrides: Any) -> AlertTransition:
    data = t.model_dump()
    data.update(
        sequence=t.sequence + 1,
        kind=kind,
        event_time=t.event_time + timedelta(minutes=10),
    )
    data.update(overrides)
    return AlertTransition(**data)
