"""SendGrid Event Webhook payloads: a JSON array of event objects.

Reference: Twilio SendGrid "Event Webhook Reference"
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event).

Mapping: ``delivered`` -> delivered, ``deferred`` -> deferred, ``bounce`` (``type`` "bounce"
or "blocked") and the legacy ``blocked`` event -> bounced, ``dropped`` -> suppressed
(SendGrid did not try: the address is on a suppression list or invalid). ``spamreport`` (the
recipient marked the message as spam) -> a complaint: a feedback event of type abuse, with
the fields below. Engagement and account events (processed, open, click, unsubscribe,
group_unsubscribe, group_resubscribe) are skipped. ``email`` -> recipient; ``timestamp``
(unix seconds) -> event_time; the reply is ``response`` (delivered, deferred) or ``reason``
(bounce, dropped) with ``status`` as the enhanced code; ``attempt`` -> attempt; ``ip`` ->
source_ip; ``pool.name`` -> pool; ``sg_message_id`` -> message_id; custom args ``tenant`` /
``campaign`` (SendGrid puts them at the top level), else ``marketing_campaign_name`` or the
first ``category`` -> campaign.
SendGrid events carry no envelope sender, so sender and sending_domain stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    feedback_draft,
    first_str,
    opt_str,
    parse_reply,
    parse_time,
    pick_enhanced,
    require,
    show,
    smtp_code,
)
from schemas.vocabulary import SourceStatus

NAME = "sendgrid"

STATUS: Mapping[str, SourceStatus] = {
    "delivered": SourceStatus.DELIVERED,
    "deferred": SourceStatus.DEFERRED,
    "bounce": SourceStatus.BOUNCED,
    "blocked": SourceStatus.BOUNCED,
    "dropped": SourceStatus.SUPPRESSED,
}

ORIGIN: Mapping[str, str] = {
    "event_time": "timestamp",
    "recipient": "email",
    "source_ip": "ip",
    "pool": "pool.name",
    "reply.code": "response",
    "reply.enhanced": "status",
    "reply.text": "response",
    "status": "event",
    "attempt": "attempt",
    "message_id": "sg_message_id",
    "tenant": "tenant",
    "campaign": "campaign",
}


def looks_like(record: Mapping[str, Any]) -> bool:
    return "event" in record and ("sg_event_id" in record or "sg_message_id" in record)


def convert(record: dict[str, Any]) -> Converted:
    event = require(record, "event")
    if not isinstance(event, str):
        raise FormatError("event", f"expected an event name (got {show(event)})")
    status = STATUS.get(event)
    if status is None:
        return _spamreport(record) if event == "spamreport" else None
    text = opt_str(record.get("response")) or opt_str(record.get("reason")) or ""
    code, enhanced = parse_reply(text)
    pool = record.get("pool")
    attempt = record.get("attempt")
    return [
        Draft(
            {
                "event_time": parse_time(require(record, "timestamp"), "timestamp"),
                "recipient": require(record, "email"),
                "source_ip": opt_str(record.get("ip")),
                "pool": opt_str(pool.get("name")) if isinstance(pool, dict) else None,
                "reply": {
                    "code": smtp_code(code),
                    "enhanced": pick_enhanced(opt_str(record.get("status")), enhanced),
                    "text": text,
                },
                "status": status,
                "attempt": 1 if attempt in (None, "", 0, "0") else attempt,
                "message_id": opt_str(record.get("sg_message_id")),
                "tenant": opt_str(record.get("tenant")),
                "campaign": opt_str(record.get("campaign"))
                or opt_str(record.get("marketing_campaign_name"))
                or first_str(record.get("category")),
                "source_format": NAME,
            },
            ORIGIN,
        )
    ]


_SPAMREPORT_ORIGIN: Mapping[str, str] = {**ORIGIN, "feedback_type": "event"}


def _spamreport(record: dict[str, Any]) -> Converted:
    return feedback_draft(
        {
            "event_time": parse_time(require(record, "timestamp"), "timestamp"),
            "recipient": require(record, "email"),
            "feedback_type": "abuse",
            "source_ip": opt_str(record.get("ip")),
            "message_id": opt_str(record.get("sg_message_id")),
            "tenant": opt_str(record.get("tenant")),
            "campaign": opt_str(record.get("campaign"))
            or opt_str(record.get("marketing_campaign_name"))
            or first_str(record.get("category")),
            "reporter": NAME,
            "source_format": NAME,
        },
        _SPAMREPORT_ORIGIN,
    )


FORMAT = InputFormat(NAME, "json", "SendGrid Event Webhook", looks_like, convert)
