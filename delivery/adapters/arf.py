"""Feedback reports as raw mail: the Abuse Reporting Format of RFC 5965.

Mailbox providers with a feedback loop (Microsoft JMRP, Yahoo/AOL CFL, Comcast, Fastmail,
most others; Gmail has none and reports spam rates in Postmaster Tools instead) send the
sender a mail for each complaint: ``multipart/report; report-type=feedback-report`` with a
human-readable part, a ``message/feedback-report`` part of ``Name: value`` fields and the
original message (``message/rfc822``) or its headers (``text/rfc822-headers``). One report
per Kafka message (or per file; an mbox holds several), read with Python's ``email`` package.

Mapping, one feedback event per complainer:
- ``Feedback-Type`` (required by RFC 5965 section 3.1) -> feedback_type: abuse, fraud, virus
  and other are complaints; not-spam (RFC 6430), auth-failure (RFC 6591) and opt-out are
  counted apart
- ``Original-Rcpt-To`` (one per recipient) -> recipient; feedback loops often redact it
  (and the original ``To``), so without an address the recipient is the provider's domain:
  that of the report's ``From`` (staff@hotmail.com, feedback@arf.mail.yahoo.com), else of
  ``Reporting-MTA``; the complaint still counts against the right mailbox provider
- the report's ``Date`` (when the provider sent it) -> event_time; ``Arrival-Date`` (when the
  provider received the original, RFC 5965 section 3.2; ``Received-Date`` in older reports),
  else the original's ``Date`` -> sent_at
- ``User-Agent`` -> reporter; ``Source-IP`` -> source_ip
- the original message's ``From`` -> sender and sending_domain, else ``Original-Mail-From``;
  ``Reported-Domain`` when neither names a domain
- the original's ``Message-ID`` -> message_id; its ``X-Campaign`` (or ``X-Campaign-ID``)
  and ``X-Tenant`` -> campaign and tenant, else the campaign and customer fields of a
  4-part ``Feedback-ID`` (Gmail's form, ``campaign:customer:mailtype:sender``)

A report without a ``message/feedback-report`` part, without ``Feedback-Type``, or without
any date is unreadable and goes to the dead letters with its reason.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    domain_of,
    feedback_draft,
    feedback_type,
)

NAME = "arf"

ORIGIN = {
    "event_time": "Date",
    "recipient": "Original-Rcpt-To",
    "feedback_type": "Feedback-Type",
    "reporter": "User-Agent",
    "sender": "From (original message)",
    "sending_domain": "From (original message)",
    "source_ip": "Source-IP",
    "message_id": "Message-ID (original message)",
    "sent_at": "Arrival-Date",
    "campaign": "X-Campaign (original message)",
    "tenant": "X-Tenant (original message)",
}

_PARSER = BytesParser(policy=policy.compat32)
_MAX_RECIPIENTS = 100


def is_report(message: Message) -> bool:
    """Whether a parsed mail is an RFC 5965 feedback report."""
    if message.get_content_type() == "multipart/report":
        param = message.get_param("report-type")
        if isinstance(param, str) and param.lower() == "feedback-report":
            return True
    return _report_part(message) is not None


def read_report(message: Message) -> list[Draft]:
    """The feedback drafts of one report; ``FormatError`` when it cannot be read."""
    part = _report_part(message)
    if part is None:
        raise FormatError(
            "message/feedback-report", "a feedback report without a message/feedback-report part"
        )
    fields = _fields(part)
    kind = fields.get("feedback-type", [""])[0]
    if not kind:
        raise FormatError("Feedback-Type", "missing required field (RFC 5965 section 3.1)")
    original = _original_headers(message)
    when = _date(message.get("Date"))
    arrival = _date(_first(fields, "arrival-date", "received-date")) or _date(
        original.get("Date") if original is not None else None
    )
    if when is None:
        when = arrival
    if when is None:
        raise FormatError("Date", "no Date, Arrival-Date or Received-Date: no event time")
    sender = _address(original.get("From")) if original is not None else None
    sender = sender or _address(_first(fields, "original-mail-from"))
    reported = _first(fields, "reported-domain")
    campaign, tenant = _labels(original)
    recipients = [
        a for value in fields.get("original-rcpt-to", []) if (a := _address(value)) is not None
    ]
    if not recipients and original is not None:
        to = _address(original.get("To"))
        recipients = [to] if to is not None else []
    if not recipients:
        provider = domain_of(_address(message.get("From"))) or _host(
            _first(fields, "reporting-mta")
        )
        if provider is None:
            raise FormatError(
                "Original-Rcpt-To",
                "no complainer address, and neither From nor Reporting-MTA names the provider",
            )
        recipients = [provider]
    message_id = str(original.get("Message-ID") or "").strip() if original is not None else ""
    draft: dict[str, Any] = {
        "event_time": when,
        "recipient": recipients[:_MAX_RECIPIENTS],
        "feedback_type": feedback_type(kind),
        "reporter": _first(fields, "user-agent"),
        "sender": sender,
        "sending_domain": domain_of(sender) or (reported.lower() if reported else None),
        "source_ip": _first(fields, "source-ip"),
        "message_id": message_id or None,
        "sent_at": arrival,
        "campaign": campaign,
        "tenant": tenant,
        "source_format": NAME,
    }
    return feedback_draft(draft, ORIGIN)


def convert_message(message: Message) -> Converted:
    """The adapter's shape for a parsed mail that must be a feedback report."""
    if not is_report(message):
        raise FormatError(
            "Content-Type",
            "not an RFC 5965 feedback report (multipart/report; "
            "report-type=feedback-report with a message/feedback-report part)",
        )
    return read_report(message)


def convert_mail(payload: bytes) -> Converted:
    """Read one raw mail as a feedback report (``--format arf``)."""
    # imported here: dsn reads the reports it meets through this module
    from delivery.adapters import dsn

    raw = bytes(payload)
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    if not raw.strip() or not dsn.looks_like(raw):
        raise FormatError(None, "not a mail: no RFC 5322 header block")
    return convert_message(_PARSER.parsebytes(raw))


def looks_like(payload: bytes) -> bool:
    from delivery.adapters import dsn

    return dsn.looks_like(payload)


# --------------------------------------------------------------------------- plumbing


def _report_part(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            return part
    return None


def _fields(part: Message) -> dict[str, list[str]]:
    """The report's fields by lower-case name, every value of repeated ones in order."""
    payload = part.get_payload()
    block: Message | None = None
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        block = payload[0]
    else:
        raw = part.get_payload(decode=True)
        text = raw if isinstance(raw, bytes) else str(payload).encode("utf-8", "replace")
        block = _PARSER.parsebytes(text.strip() + b"\n", headersonly=True)
    out: dict[str, list[str]] = {}
    for name, value in block.items():
        out.setdefault(name.lower(), []).append(" ".join(str(value).split()))
    return out


def _first(fields: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        for value in fields.get(name, []):
            if value:
                return value
    return None


def _original_headers(message: Message) -> Message | None:
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            first = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(first, Message):
                return first
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return _PARSER.parsebytes(raw, headersonly=True)
    return None


def _labels(original: Message | None) -> tuple[str | None, str | None]:
    """(campaign, tenant) from the original message's headers."""
    if original is None:
        return None, None
    campaign = _text(original.get("X-Campaign") or original.get("X-Campaign-ID"))
    tenant = _text(original.get("X-Tenant"))
    feedback_id = _text(original.get("Feedback-ID"))
    if feedback_id and feedback_id.count(":") == 3:
        parts = feedback_id.split(":")
        campaign = campaign or parts[0] or None
        tenant = tenant or parts[1] or None
    return campaign, tenant


def _text(value: object) -> str | None:
    text = " ".join(str(value or "").split())
    return text or None


def _address(value: object) -> str | None:
    """The address in ``<a@b>``, ``Name <a@b>`` or ``rfc822; a@b``; None when redacted."""
    text = _text(value)
    if text is None:
        return None
    head, sep, tail = text.partition(";")
    if sep and "@" not in head:
        text = tail.strip()
    address = email.utils.parseaddr(text)[1] or text.strip("<>")
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or " " in address:
        return None
    return address


def _host(value: str | None) -> str | None:
    if not value:
        return None
    _type, sep, host = value.partition(";")
    host = (host if sep else value).strip().split(" ", 1)[0].strip("[]").rstrip(".")
    return host.lower() or None


def _date(value: object) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


FORMAT = InputFormat(
    NAME, "mail", "RFC 5965 feedback reports (complaints) as raw mail", looks_like, convert_mail
)
