"""Mailgun webhook payloads (``{"signature": {...}, "event-data": {...}}``) and Events API items.

References: Mailgun "Webhooks" user manual
(https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhooks) and the event
structure of the Events API, which webhooks share
(https://documentation.mailgun.com/docs/mailgun/user-manual/events/).

Mapping: ``delivered`` -> delivered; ``failed`` with ``severity`` "temporary" -> deferred,
"permanent" -> bounced, and reasons ``suppress-bounce`` / ``suppress-unsubscribe`` /
``suppress-complaint`` -> suppressed (Mailgun did not try). ``complained`` (the recipient's
provider reported a spam complaint through its feedback loop) -> a feedback event of type
abuse, with the recipient, time, sender, IP, message id and labels below. accepted,
rejected, opened, clicked, unsubscribed and stored are skipped. ``timestamp`` (unix seconds,
float) -> event_time; ``delivery-status.code`` / ``enhanced-code`` / ``message`` (else
``description``) -> reply; codes outside 200-599 (Mailgun's own 605, 607) are dropped and
only the text kept; ``delivery-status.mx-host`` -> mx_host; ``delivery-status.attempt-no``
-> attempt; ``envelope.sender`` -> sender; ``envelope.sending-ip`` -> source_ip;
``message.headers.message-id`` -> message_id; ``user-variables.tenant`` / ``.campaign`` ->
tenant / campaign, else the first of ``campaigns[].name`` or ``tags`` -> campaign.
Webhook signatures are not checked here: that belongs to whatever receives the HTTP request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    address_of,
    as_dict,
    domain_of,
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

NAME = "mailgun"

_SUPPRESSION_REASONS = frozenset({"suppress-bounce", "suppress-unsubscribe", "suppress-complaint"})

_P = "event-data."
ORIGIN: Mapping[str, str] = {
    "event_time": _P + "timestamp",
    "recipient": _P + "recipient",
    "sender": _P + "envelope.sender",
    "sending_domain": _P + "envelope.sender",
    "source_ip": _P + "envelope.sending-ip",
    "mx_host": _P + "delivery-status.mx-host",
    "reply.code": _P + "delivery-status.code",
    "reply.enhanced": _P + "delivery-status.enhanced-code",
    "reply.text": _P + "delivery-status.message",
    "status": _P + "severity",
    "attempt": _P + "delivery-status.attempt-no",
    "message_id": _P + "message.headers.message-id",
    "tenant": _P + "user-variables.tenant",
    "campaign": _P + "user-variables.campaign",
}


def looks_like(record: Mapping[str, Any]) -> bool:
    return isinstance(record.get("event-data"), dict)


def convert(record: dict[str, Any]) -> Converted:
    # webhooks wrap the event in "event-data"; Events API items are the event itself
    data = as_dict(record["event-data"], "event-data") if "event-data" in record else record
    event = require(data, "event", _P)
    if event == "delivered":
        status = SourceStatus.DELIVERED
    elif event == "failed":
        if data.get("reason") in _SUPPRESSION_REASONS:
            status = SourceStatus.SUPPRESSED
        else:
            severity = require(data, "severity", _P)
            if severity == "temporary":
                status = SourceStatus.DEFERRED
            elif severity == "permanent":
                status = SourceStatus.BOUNCED
            else:
                raise FormatError(
                    _P + "severity", f"expected 'temporary' or 'permanent' (got {show(severity)})"
                )
    elif event == "complained":
        return _complained(data)
    elif isinstance(event, str):
        return None
    else:
        raise FormatError(_P + "event", f"expected an event name (got {show(event)})")

    ds = data.get("delivery-status")
    ds = as_dict(ds, _P + "delivery-status") if ds is not None else {}
    envelope = data.get("envelope")
    envelope = envelope if isinstance(envelope, dict) else {}
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    variables = data.get("user-variables")
    variables = variables if isinstance(variables, dict) else {}
    campaigns = data.get("campaigns")
    first_campaign = (
        opt_str(campaigns[0].get("name"))
        if isinstance(campaigns, list) and campaigns and isinstance(campaigns[0], dict)
        else None
    )
    text = opt_str(ds.get("message")) or opt_str(ds.get("description")) or ""
    text_code, text_enhanced = parse_reply(text)
    code = ds.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        code = smtp_code(code)
    elif code in (None, ""):
        code = smtp_code(text_code)
    sender = opt_str(envelope.get("sender"))
    attempt = ds.get("attempt-no")
    return [
        Draft(
            {
                "event_time": parse_time(require(data, "timestamp", _P), _P + "timestamp"),
                "recipient": require(data, "recipient", _P),
                "sender": sender,
                "sending_domain": domain_of(sender),
                "source_ip": opt_str(envelope.get("sending-ip")),
                "mx_host": opt_str(ds.get("mx-host")),
                "reply": {
                    "code": code,
                    "enhanced": pick_enhanced(opt_str(ds.get("enhanced-code")), text_enhanced),
                    "text": text,
                },
                "status": status,
                "attempt": 1 if attempt in (None, "", 0) else attempt,
                "message_id": opt_str(headers.get("message-id"))
                if isinstance(headers, dict)
                else None,
                "tenant": opt_str(variables.get("tenant")),
                "campaign": opt_str(variables.get("campaign"))
                or first_campaign
                or first_str(data.get("tags")),
                "source_format": NAME,
            },
            ORIGIN,
        )
    ]


_COMPLAINED_ORIGIN: Mapping[str, str] = {**ORIGIN, "feedback_type": _P + "event"}


def _complained(data: dict[str, Any]) -> Converted:
    envelope = data.get("envelope")
    envelope = envelope if isinstance(envelope, dict) else {}
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    headers = headers if isinstance(headers, dict) else {}
    variables = data.get("user-variables")
    variables = variables if isinstance(variables, dict) else {}
    campaigns = data.get("campaigns")
    first_campaign = (
        opt_str(campaigns[0].get("name"))
        if isinstance(campaigns, list) and campaigns and isinstance(campaigns[0], dict)
        else None
    )
    # a complaint's envelope may lack the sender; the original From header names it then
    sender = opt_str(envelope.get("sender")) or address_of(headers.get("from"))
    return feedback_draft(
        {
            "event_time": parse_time(require(data, "timestamp", _P), _P + "timestamp"),
            "recipient": require(data, "recipient", _P),
            "feedback_type": "abuse",
            "sender": sender,
            "sending_domain": domain_of(sender),
            "source_ip": opt_str(envelope.get("sending-ip")),
            "message_id": opt_str(headers.get("message-id")),
            "tenant": opt_str(variables.get("tenant")),
            "campaign": opt_str(variables.get("campaign"))
            or first_campaign
            or first_str(data.get("tags")),
            "reporter": NAME,
            "source_format": NAME,
        },
        _COMPLAINED_ORIGIN,
    )


FORMAT = InputFormat(NAME, "json", "Mailgun webhooks and Events API", looks_like, convert)
