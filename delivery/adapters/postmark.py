"""Postmark Bounce, Delivery and Spam Complaint webhooks.

References: Postmark "Bounce webhook" (https://postmarkapp.com/developer/webhooks/bounce-webhook),
"Delivery webhook" (https://postmarkapp.com/developer/webhooks/delivery-webhook), "Spam
complaint webhook" (https://postmarkapp.com/developer/webhooks/spam-complaint-webhook) and the
bounce types of the Bounce API (https://postmarkapp.com/developer/api/bounce-api#bounce-types).

Mapping by ``RecordType``:
- ``Delivery`` -> delivered: ``Recipient``, ``DeliveredAt``, ``Details`` (the receiver's reply).
- ``Bounce`` -> by ``Type``: HardBounce, BadEmailAddress, Blocked, DMARCPolicy and SoftBounce
  (Postmark's final soft failure) -> bounced; Transient and DnsError (Postmark says
  "temporary" and retries) -> deferred; ManuallyDeactivated -> suppressed; Unknown -> no
  verdict, left to the classifier. Types that are not delivery failures (AutoResponder,
  SpamNotification, Unsubscribe, Subscribe, AddressChange, ChallengeVerification,
  OpenRelayTest, VirusNotification, SpamComplaint, Unconfirmed, InboundError, SMTPApiError,
  TemplateRenderingFailed) are skipped, as are Open, Click and SubscriptionChange records.
- ``SpamComplaint`` (RecordType, Type SpamComplaint, TypeCode 512) -> a feedback event of type
  abuse: ``Email`` -> recipient, ``BouncedAt`` (when Postmark received the complaint) ->
  event_time, and the sender, message id, stream and labels as for bounces.
- ``Email`` -> recipient, ``BouncedAt`` -> event_time, ``Details`` ("smtp;550 5.1.1 ...") ->
  reply, else ``Description``; ``From`` -> sender; ``MessageID`` -> message_id;
  ``MessageStream`` -> pool (Postmark sends each stream from its own IP pool);
  ``Metadata.tenant`` -> tenant; ``Metadata.campaign``, else ``Tag`` -> campaign.
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
    domain_of,
    feedback_draft,
    opt_str,
    parse_reply,
    parse_time,
    require,
    show,
    smtp_code,
    strip_diagnostic_type,
)
from schemas.vocabulary import SourceStatus

NAME = "postmark"

BOUNCE_STATUS: Mapping[str, SourceStatus | None] = {
    "HardBounce": SourceStatus.BOUNCED,
    "BadEmailAddress": SourceStatus.BOUNCED,
    "Blocked": SourceStatus.BOUNCED,
    "DMARCPolicy": SourceStatus.BOUNCED,
    "SoftBounce": SourceStatus.BOUNCED,
    "Transient": SourceStatus.DEFERRED,
    "DnsError": SourceStatus.DEFERRED,
    "ManuallyDeactivated": SourceStatus.SUPPRESSED,
    "Unknown": None,
}

_BOUNCE_ORIGIN: Mapping[str, str] = {
    "event_time": "BouncedAt",
    "recipient": "Email",
    "sender": "From",
    "sending_domain": "From",
    "pool": "MessageStream",
    "reply.code": "Details",
    "reply.enhanced": "Details",
    "reply.text": "Details",
    "status": "Type",
    "message_id": "MessageID",
    "tenant": "Metadata.tenant",
    "campaign": "Tag",
}
_DELIVERY_ORIGIN: Mapping[str, str] = {
    **_BOUNCE_ORIGIN,
    "event_time": "DeliveredAt",
    "recipient": "Recipient",
    "status": "RecordType",
}


def looks_like(record: Mapping[str, Any]) -> bool:
    return "RecordType" in record


def convert(record: dict[str, Any]) -> Converted:
    kind = require(record, "RecordType")
    if kind == "Bounce":
        bounce_type = require(record, "Type")
        if not isinstance(bounce_type, str):
            raise FormatError("Type", f"expected a bounce type name (got {show(bounce_type)})")
        if bounce_type not in BOUNCE_STATUS:
            return None
        status = BOUNCE_STATUS[bounce_type]
        time_field, rcpt_field, origin = "BouncedAt", "Email", _BOUNCE_ORIGIN
    elif kind == "SpamComplaint":
        return _complaint(record)
    elif kind == "Delivery":
        status = SourceStatus.DELIVERED
        time_field, rcpt_field, origin = "DeliveredAt", "Recipient", _DELIVERY_ORIGIN
    elif isinstance(kind, str):
        return None
    else:
        raise FormatError("RecordType", f"expected a record type name (got {show(kind)})")

    details = opt_str(record.get("Details")) or ""
    text = strip_diagnostic_type(details) or opt_str(record.get("Description")) or ""
    code, enhanced = parse_reply(text)
    sender = address_of(record.get("From"))
    metadata = record.get("Metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return [
        Draft(
            {
                "event_time": parse_time(require(record, time_field), time_field),
                "recipient": require(record, rcpt_field),
                "sender": sender,
                "sending_domain": domain_of(sender),
                "pool": opt_str(record.get("MessageStream")),
                "reply": {"code": smtp_code(code), "enhanced": enhanced, "text": text},
                "status": status,
                "message_id": opt_str(record.get("MessageID")),
                "tenant": opt_str(metadata.get("tenant")),
                "campaign": opt_str(metadata.get("campaign")) or opt_str(record.get("Tag")),
                "source_format": NAME,
            },
            origin,
        )
    ]


_COMPLAINT_ORIGIN: Mapping[str, str] = {**_BOUNCE_ORIGIN, "feedback_type": "RecordType"}


def _complaint(record: dict[str, Any]) -> Converted:
    sender = address_of(record.get("From"))
    metadata = record.get("Metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return feedback_draft(
        {
            "event_time": parse_time(require(record, "BouncedAt"), "BouncedAt"),
            "recipient": require(record, "Email"),
            "feedback_type": "abuse",
            "sender": sender,
            "sending_domain": domain_of(sender),
            "message_id": opt_str(record.get("MessageID")),
            "tenant": opt_str(metadata.get("tenant")),
            "campaign": opt_str(metadata.get("campaign")) or opt_str(record.get("Tag")),
            "reporter": NAME,
            "source_format": NAME,
        },
        _COMPLAINT_ORIGIN,
    )


FORMAT = InputFormat(
    NAME, "json", "Postmark Bounce, Delivery and SpamComplaint webhooks", looks_like, convert
)
