"""Amazon SES notifications and event-publishing records, raw or inside an SNS envelope.

References:
- "Amazon SNS notification contents for Amazon SES"
  (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html): ``notificationType``
  Bounce / Complaint / Delivery with ``mail``, ``bounce``, ``delivery`` objects.
- "Contents of event data that Amazon SES publishes"
  (https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-firehose-contents.html):
  the same objects under ``eventType``, plus ``deliveryDelay`` (DeliveryDelay) and ``mail.tags``.
- SNS HTTP/S message format (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html):
  ``{"Type": "Notification", "Message": "<the SES JSON as a string>", ...}``.

Mapping: one event per recipient. Bounce -> bounced (suppressed for bounceSubType Suppressed
and OnAccountSuppressionList, where SES did not try); DeliveryDelay -> deferred;
Delivery -> delivered. A recipient's ``status`` is the enhanced code and ``diagnosticCode``
("smtp; 550 5.1.1 user unknown") carries the reply; Delivery has ``smtpResponse``.
``mail.source`` -> sender, ``mail.messageId`` -> message_id, tag ``ses:outgoing-ip`` ->
source_ip, custom message tags ``tenant`` and ``campaign`` -> tenant, campaign. Send, Reject,
Open, Click, Rendering Failure and Subscription records are skipped, as are SNS subscription
confirmations.

Complaint -> one feedback event per ``complaint.complainedRecipients[].emailAddress``:
``complaint.timestamp`` (when the ISP sent the report) -> event_time,
``complaint.complaintFeedbackType`` -> feedback_type (abuse when absent: SES passes the ISP's
Feedback-Type and some ISPs send none), ``complaint.userAgent`` -> reporter, ``mail.timestamp``
-> sent_at, and the sender, IP, message id and tags as above. ``complaintSubType``
OnAccountSuppressionList means SES did not send the message (the address was already on the
account's suppression list): no complaint about a sent message, skipped.
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
    feedback_type,
    first_str,
    loads,
    opt_str,
    parse_reply,
    parse_time,
    pick_enhanced,
    require,
    show,
    strip_diagnostic_type,
)
from schemas.vocabulary import SourceStatus

NAME = "ses"

_SUPPRESSED_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList"})
_SKIPPED = frozenset({"Send", "Reject", "Open", "Click", "Rendering Failure", "Subscription"})


def _origin(obj: str, recipients: str) -> dict[str, str]:
    rcpt = f"{obj}.{recipients}[]"
    return {
        "event_time": f"{obj}.timestamp",
        "recipient": f"{rcpt}.emailAddress"
        if recipients != "recipients"
        else f"{obj}.recipients[]",
        "sender": "mail.source",
        "sending_domain": "mail.source",
        "source_ip": "mail.tags.ses:outgoing-ip",
        "reply.code": f"{rcpt}.diagnosticCode" if obj != "delivery" else "delivery.smtpResponse",
        "reply.enhanced": f"{rcpt}.status" if obj != "delivery" else "delivery.smtpResponse",
        "reply.text": f"{rcpt}.diagnosticCode" if obj != "delivery" else "delivery.smtpResponse",
        "message_id": "mail.messageId",
        "tenant": "mail.tags.tenant",
        "campaign": "mail.tags.campaign",
    }


_BOUNCE = _origin("bounce", "bouncedRecipients")
_DELAY = _origin("deliveryDelay", "delayedRecipients")
_DELIVERY = _origin("delivery", "recipients")


def looks_like(record: Mapping[str, Any]) -> bool:
    if "notificationType" in record or "eventType" in record:
        return "mail" in record
    return record.get("Type") == "Notification" and isinstance(record.get("Message"), str)


def convert(record: dict[str, Any]) -> Converted:
    if "Type" in record and "notificationType" not in record and "eventType" not in record:
        if record.get("Type") != "Notification":
            return None  # SubscriptionConfirmation and other SNS housekeeping
        message = require(record, "Message")
        if not isinstance(message, str):
            raise FormatError("Message", f"expected the SES JSON as a string (got {show(message)})")
        try:
            inner = loads(message)
        except ValueError as exc:
            raise FormatError("Message", f"SNS Message is not JSON: {exc}") from None
        record = as_dict(inner, "Message")

    kind = record.get("notificationType") or record.get("eventType")
    if not isinstance(kind, str):
        raise FormatError("notificationType", "missing required field (or eventType)")
    if kind == "Bounce":
        return _bounce(record)
    if kind == "DeliveryDelay":
        return _per_recipient(
            record, "deliveryDelay", "delayedRecipients", SourceStatus.DEFERRED, _DELAY
        )
    if kind == "Delivery":
        return _delivery(record)
    if kind == "Complaint":
        return _complaint(record)
    if kind in _SKIPPED:
        return None
    return None  # types SES may add later are not delivery attempts we know how to read


def _common(record: dict[str, Any]) -> dict[str, Any]:
    mail = as_dict(require(record, "mail"), "mail")
    tags = mail.get("tags")
    tags = tags if isinstance(tags, dict) else {}
    sender = address_of(mail.get("source"))
    return {
        "sender": sender,
        "sending_domain": domain_of(sender),
        "source_ip": first_str(tags.get("ses:outgoing-ip")),
        "message_id": opt_str(mail.get("messageId")),
        "tenant": first_str(tags.get("tenant")),
        "campaign": first_str(tags.get("campaign")),
        "source_format": NAME,
    }


def _bounce(record: dict[str, Any]) -> Converted:
    bounce = as_dict(require(record, "bounce"), "bounce")
    status = (
        SourceStatus.SUPPRESSED
        if bounce.get("bounceSubType") in _SUPPRESSED_SUBTYPES
        else SourceStatus.BOUNCED
    )
    return _per_recipient(record, "bounce", "bouncedRecipients", status, _BOUNCE)


def _per_recipient(
    record: dict[str, Any],
    obj_name: str,
    list_name: str,
    status: SourceStatus,
    origin: Mapping[str, str],
) -> Converted:
    obj = as_dict(require(record, obj_name), obj_name)
    base = _common(record)
    base["event_time"] = parse_time(
        require(obj, "timestamp", obj_name + "."), obj_name + ".timestamp"
    )
    base["status"] = status
    recipients = require(obj, list_name, obj_name + ".")
    if not isinstance(recipients, list) or not recipients:
        raise FormatError(
            f"{obj_name}.{list_name}", f"expected a non-empty list (got {show(recipients)})"
        )
    drafts = []
    for i, item in enumerate(recipients):
        where = f"{obj_name}.{list_name}[{i}]"
        rcpt = as_dict(item, where)
        diagnostic = opt_str(rcpt.get("diagnosticCode")) or ""
        text = strip_diagnostic_type(diagnostic)
        code, enhanced = parse_reply(text)
        drafts.append(
            Draft(
                {
                    **base,
                    "recipient": require(rcpt, "emailAddress", where + "."),
                    "reply": {
                        "code": code,
                        "enhanced": pick_enhanced(opt_str(rcpt.get("status")), enhanced),
                        "text": text,
                    },
                },
                origin,
            )
        )
    return drafts


def _delivery(record: dict[str, Any]) -> Converted:
    delivery = as_dict(require(record, "delivery"), "delivery")
    base = _common(record)
    base["event_time"] = parse_time(
        require(delivery, "timestamp", "delivery."), "delivery.timestamp"
    )
    base["status"] = SourceStatus.DELIVERED
    text = opt_str(delivery.get("smtpResponse")) or ""
    code, enhanced = parse_reply(text)
    base["reply"] = {"code": code, "enhanced": enhanced, "text": text}
    recipients = require(delivery, "recipients", "delivery.")
    if not isinstance(recipients, list) or not recipients:
        raise FormatError(
            "delivery.recipients", f"expected a non-empty list (got {show(recipients)})"
        )
    return [Draft({**base, "recipient": rcpt}, _DELIVERY) for rcpt in recipients]


_COMPLAINT: Mapping[str, str] = {
    **_origin("complaint", "complainedRecipients"),
    "feedback_type": "complaint.complaintFeedbackType",
    "reporter": "complaint.userAgent",
    "sent_at": "mail.timestamp",
}


def _complaint(record: dict[str, Any]) -> Converted:
    complaint = as_dict(require(record, "complaint"), "complaint")
    if complaint.get("complaintSubType") == "OnAccountSuppressionList":
        return None
    base = _common(record)
    base["event_time"] = parse_time(
        require(complaint, "timestamp", "complaint."), "complaint.timestamp"
    )
    base["feedback_type"] = feedback_type(complaint.get("complaintFeedbackType"))
    base["reporter"] = opt_str(complaint.get("userAgent"))
    mail = as_dict(record["mail"], "mail")
    sent = mail.get("timestamp")
    base["sent_at"] = parse_time(sent, "mail.timestamp") if sent else None
    recipients = require(complaint, "complainedRecipients", "complaint.")
    if not isinstance(recipients, list) or not recipients:
        raise FormatError(
            "complaint.complainedRecipients", f"expected a non-empty list (got {show(recipients)})"
        )
    addresses = []
    for i, item in enumerate(recipients):
        where = f"complaint.complainedRecipients[{i}]"
        addresses.append(require(as_dict(item, where), "emailAddress", where + "."))
    return feedback_draft({**base, "recipient": addresses}, _COMPLAINT)


FORMAT = InputFormat(
    NAME, "json", "Amazon SES notifications and event records, raw or in SNS", looks_like, convert
)
