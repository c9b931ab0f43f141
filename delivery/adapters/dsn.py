"""Bounce mails: RFC 3464 delivery status notifications, and the older bounce bodies.

A bounce is a whole mail (one Kafka message, or one file; an mbox file holds several). It
gives one event per recipient it reports on; a mail that is not a bounce gives none and is
skipped, with the reason (``read_mail``), so an auto-reply or a challenge is counted, never
read as a failure.

Standard DSNs (RFC 3464, ``multipart/report; report-type=delivery-status``), read with
Python's ``email`` package. Each per-recipient block of the ``message/delivery-status`` part
gives one event:
- ``Final-Recipient`` (else ``Original-Recipient``) -> recipient
- ``Action``: failed -> bounced, delayed -> deferred, delivered / relayed / expanded ->
  delivered. ``failed`` with a 4.x.x ``Status`` is an expiry: the MTA gave up after
  temporary failures (Postfix and Exchange write exactly this), so status ``expired``.
- ``Status`` and ``Diagnostic-Code`` (its ``smtp;`` type dropped) -> reply: the code and the
  enhanced code are read from the diagnostic text, which a specific code there beats a
  generic ``Status: 5.0.0``
- ``Remote-MTA`` (``dns; host``) -> mx_host
- ``Last-Attempt-Date``, else the per-message ``Arrival-Date``, else the bounce's ``Date``
  -> event_time
- the returned message's headers (``text/rfc822-headers`` or ``message/rfc822``): ``From``
  -> sender and sending_domain, ``Message-ID`` -> message_id

Older bounce bodies, recognised by their wording and read by their reply lines: qmail-send
("<addr>:" then the remote host's reply), Exim ("The following address(es) failed:", each
address then its indented error), Sendmail before DSNs ("----- The following addresses had
permanent fatal errors -----" with "(reason: ...)"), Exchange 2003 ("The following
recipient(s) could not be reached:"), and Lotus/HCL Domino ("was not delivered to: ...
because: ..."). Their event time is the bounce's ``Date``.

Feedback reports (RFC 5965 ``report-type=feedback-report``: a spam complaint through a
feedback loop) reach the same mailboxes as bounces; they are read by ``arf``, into feedback
events, whether the format is ``dsn``, ``arf`` or detected.

Not a bounce, skipped: read receipts (``report-type=disposition-notification``),
auto-replies (RFC 3834 ``Auto-Submitted: auto-replied``,
vacation and out-of-office subjects), challenge-response requests, and any mail without a
delivery-status report or a bounce body we recognise. A mail that says it is a bounce
(from MAILER-DAEMON, "Undeliverable" ...) but whose recipients cannot be read is an error,
not a skip: it goes to the dead letters, where someone can look at it.
"""

from __future__ import annotations

import email.utils
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from typing import Any

from delivery.adapters import arf
from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    domain_of,
    first_enhanced,
    parse_reply,
    pick_enhanced,
    strip_diagnostic_type,
)
from schemas.vocabulary import SourceStatus

NAME = "dsn"

ORIGIN = {
    "event_time": "Last-Attempt-Date",
    "recipient": "Final-Recipient",
    "sender": "From (returned message)",
    "sending_domain": "From (returned message)",
    "mx_host": "Remote-MTA",
    "reply.code": "Diagnostic-Code",
    "reply.enhanced": "Status",
    "reply.text": "Diagnostic-Code",
    "reply": "Diagnostic-Code",
    "status": "Action",
    "message_id": "Message-ID (returned message)",
}

_ACTIONS = {
    "failed": SourceStatus.BOUNCED,
    "delayed": SourceStatus.DEFERRED,
    "delivered": SourceStatus.DELIVERED,
    "relayed": SourceStatus.DELIVERED,
    "expanded": SourceStatus.DELIVERED,
}
_MAX_TEXT = 4096
_PARSER = BytesParser(policy=policy.compat32)

# A header line ("Name: value", or "Name:" with the value folded below) or a folded
# continuation; an mbox "From " separator may come first.
_HEADER_LINE = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9-]*:(?:[ \t]|$)")
_CONTINUATION = re.compile(rb"^[ \t]+\S")
_MAIL_HEADERS = frozenset(
    {
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"received",
        b"return-path",
        b"delivered-to",
        b"auto-submitted",
    }
)
# "From sender asctime-date": the date is what tells a separator from a body line that
# happens to start with "From " (which mbox writers should have escaped, and some do not).
_MBOX_SEPARATOR = re.compile(rb"(?m)^From \S+ +[^\n]*\d\d:\d\d(?::\d\d)?[^\n]* \d{4}[ \t]*\r?\n")

_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|"
    r"vacation|abwesenheit|r[ée]ponse automatique|away from)",
    re.IGNORECASE,
)
_CHALLENGE = re.compile(
    r"please (?:confirm|verify) (?:that )?you|verify (?:that )?you are (?:a )?(?:human|real)|"
    r"challenge[- ]response|sender verification request|approve (?:your|this) (?:message|email)|"
    r"added to (?:my|the) (?:approved|allowed) senders",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (?:sub)?system", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status notification|failure|failed|has failed)|"
    r"failure notice|mail delivery failed|could not be delivered|non-?delivery|"
    r"delivery problem|not delivered",
    re.IGNORECASE,
)
_ADDRESS = r"[^\s<>()\"]+@[^\s<>()\"]+"
_TRANSIENT = re.compile(
    r"transient non-fatal errors|has not yet been delivered|will (?:keep|continue) trying|"
    r"delayed|still trying",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class MailRead:
    """What one mail held: an event draft per recipient, or why it is not a bounce."""

    drafts: list[Draft]
    skipped: str | None = None  # set when the mail is not a bounce
    is_mail: bool = True  # False when the payload is no mail at all (skipped says so)


def looks_like(payload: bytes) -> bool:
    """Whether a payload is a raw mail: its first lines are an RFC 5322 header block (after
    an optional mbox "From " line) naming the usual mail headers. Log lines, CSV records
    and JSON do not start that way, so auto-detection sends them elsewhere."""
    head = bytes(payload[:8192]).lstrip(b"\r\n")
    if head.startswith(b"From "):
        head = head.partition(b"\n")[2]
    # most payloads that reach here are log or CSV lines: one cheap test of the first line
    if _HEADER_LINE.match(head[: head.find(b"\n") if b"\n" in head else len(head)]) is None:
        return False
    lines = head.split(b"\n")
    names: set[bytes] = set()
    for raw in lines[:200]:
        line = raw.rstrip(b"\r")
        if not line:
            break
        if _HEADER_LINE.match(line):
            names.add(line.split(b":", 1)[0].lower())
        elif not (names and _CONTINUATION.match(line)):
            return False
    return len(names) >= 2 and len(names & _MAIL_HEADERS) >= 2


def split_mbox(data: bytes) -> list[bytes]:
    """The mails of an mbox file (mboxo/mboxrd "From " separators); one mail if it has none."""
    starts = [m.start() for m in _MBOX_SEPARATOR.finditer(data) if _at_mail_start(data, m.start())]
    if not starts:
        return [data]
    bounds = [*starts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if data[a:b].strip()]


def _at_mail_start(data: bytes, index: int) -> bool:
    # a separator opens the file or follows a blank line; a "From " inside a body does not
    return (
        index == 0
        or data[max(0, index - 2) : index] in (b"\n\n", b"\r\n")
        or (data[max(0, index - 3) : index] == b"\n\r\n")
    )


def convert_mail(payload: bytes) -> Converted:
    """The adapter's shape: the drafts of a bounce, or None for a mail that is not one."""
    read = read_mail(payload)
    if not read.is_mail:
        # on a topic of bounce mails, a payload that is no mail is unreadable input
        raise FormatError(None, read.skipped or "not a mail")
    return None if read.skipped is not None else read.drafts


def read_mail(payload: bytes) -> MailRead:
    """Read one mail. Raises ``FormatError`` for a bounce whose recipients cannot be read."""
    raw = bytes(payload)
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    if not raw.strip():
        return MailRead([], "not a mail: empty", is_mail=False)
    if not looks_like(raw):
        return MailRead([], "not a mail: no RFC 5322 header block", is_mail=False)
    message = _PARSER.parsebytes(raw)
    content_type = message.get_content_type()
    if content_type == "multipart/report":
        param = message.get_param("report-type")
        report_type = param.lower() if isinstance(param, str) else ""
        if report_type == "delivery-status" or _delivery_status_part(message) is not None:
            return MailRead(_from_dsn(message))
        if report_type == "disposition-notification":
            return MailRead([], "a read receipt (RFC 8098 disposition notification), not a bounce")
        if report_type == "feedback-report":
            return MailRead(arf.read_report(message))
        return MailRead([], f"a report of type {report_type or 'unknown'!r}, not a bounce")
    if _delivery_status_part(message) is not None:
        # some MTAs send the delivery-status part without the multipart/report wrapper
        return MailRead(_from_dsn(message))
    if arf.is_report(message):
        return MailRead(arf.read_report(message))
    subject = _header(message, "Subject")
    body = _body_text(message)
    # A bounce body is recognised before the auto-reply signs: MTAs mark their own bounces
    # "Auto-Submitted: auto-replied" (Exim, Postfix), as RFC 3834 asks of any automatic mail.
    found = _from_body(body)
    if found is None:
        auto = (message.get("Auto-Submitted") or "").strip().lower()
        if auto.startswith("auto-replied") or message.get("X-Autoreply"):
            return MailRead(
                [], "an auto-reply (RFC 3834 Auto-Submitted: auto-replied), not a bounce"
            )
        if message.get("X-Autorespond") or _AUTO_REPLY_SUBJECT.search(subject):
            return MailRead([], "an auto-reply (vacation or out-of-office), not a bounce")
        if _CHALLENGE.search(subject) or _CHALLENGE.search(body[:4000]):
            return MailRead([], "a challenge-response request, not a bounce")
        if _BOUNCE_SENDER.search(_header(message, "From")) or _BOUNCE_SUBJECT.search(subject):
            raise FormatError(
                "body",
                "a bounce whose failed recipients could not be read (no delivery-status "
                "report, and not a qmail, Exim, Sendmail, Exchange or Domino bounce body)",
            )
        return MailRead(
            [], "not a bounce: no delivery-status report and no bounce text we recognise"
        )
    reader, entries = found
    entries = [(recipient, _reply_part(text)) for recipient, text in entries]
    status = SourceStatus.DEFERRED if _TRANSIENT.search(body[:2000]) else SourceStatus.BOUNCED
    returned = _returned_headers(message)
    drafts = [
        _draft(
            recipient=recipient,
            text=text,
            status_field=None,
            status=status,
            mx_host=None,
            when=_mail_date(message),
            returned=returned,
            reader=reader,
        )
        for recipient, text in entries
    ]
    return MailRead(drafts)


# ----------------------------------------------------------------------- RFC 3464 reports


def _delivery_status_part(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            return part
    return None


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    # a global-delivery-status or a part the parser left as text: parse its blocks
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [_PARSER.parsebytes(block.encode("utf-8") + b"\n") for block in blocks if block]


def _from_dsn(message: Message) -> list[Draft]:
    part = _delivery_status_part(message)
    if part is None:
        raise FormatError("message/delivery-status", "a report without a delivery-status part")
    blocks = _status_blocks(part)
    per_message = blocks[0] if blocks and blocks[0].get("Reporting-MTA") else None
    recipients = [b for b in blocks if b.get("Final-Recipient") or b.get("Original-Recipient")]
    if not recipients:
        raise FormatError("Final-Recipient", "a delivery-status report naming no recipient")
    arrival = _date(per_message.get("Arrival-Date")) if per_message is not None else None
    returned = _returned_headers(message)
    drafts = []
    for block in recipients:
        recipient = _address_field(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if recipient is None:
            raise FormatError("Final-Recipient", "a recipient field with no address")
        action = (block.get("Action") or "").strip().lower()
        status = _ACTIONS.get(action)
        if status is None:
            raise FormatError("Action", f"unknown action {action!r} for {recipient}")
        status_field = (block.get("Status") or "").strip() or None
        if status is SourceStatus.BOUNCED and status_field and status_field.startswith("4."):
            status = SourceStatus.EXPIRED
        diagnostic = _unfold(block.get("Diagnostic-Code") or "")
        remote = _unfold(block.get("Remote-MTA") or "")
        when = _date(block.get("Last-Attempt-Date")) or arrival or _mail_date(message)
        drafts.append(
            _draft(
                recipient=recipient,
                text=strip_diagnostic_type(diagnostic) if diagnostic else "",
                status_field=status_field,
                status=status,
                mx_host=_remote_host(remote),
                when=when,
                returned=returned,
                reader="rfc3464",
            )
        )
    return drafts


def _draft(
    *,
    recipient: str,
    text: str,
    status_field: str | None,
    status: SourceStatus,
    mx_host: str | None,
    when: datetime | None,
    returned: dict[str, str],
    reader: str,
) -> Draft:
    if when is None:
        raise FormatError("Date", "no Last-Attempt-Date, Arrival-Date or Date: no event time")
    text = text[:_MAX_TEXT]
    code, enhanced_in_text = parse_reply(text)
    enhanced = pick_enhanced(status_field, enhanced_in_text or first_enhanced(text))
    sender = returned.get("from")
    fields: dict[str, Any] = {
        "event_time": when,
        "recipient": recipient,
        "sender": sender,
        "sending_domain": domain_of(sender),
        "mx_host": mx_host,
        "reply": {"code": code, "enhanced": enhanced, "text": text},
        "status": status,
        "message_id": returned.get("message-id"),
        "source_format": NAME,
    }
    origin = ORIGIN if reader == "rfc3464" else {**ORIGIN, "reply.text": f"{reader} bounce body"}
    return Draft(fields, origin)


# --------------------------------------------------------------- older bounce bodies

_QMAIL = re.compile(r"this is the qmail-send program|i wasn't able to deliver your message", re.I)
_QMAIL_ENTRY = re.compile(
    rf"^<(?P<rcpt>{_ADDRESS})>:[ \t]*\n(?P<text>(?:[^\n]+\n?)+?)(?=\n|<{_ADDRESS}>:|--- |\Z)",
    re.M,
)
_EXIM_FAILED = re.compile(r"the following address(?:\(es\)|es)? failed:", re.I)
_EXIM = re.compile(rf"{_EXIM_FAILED.pattern}|could not be delivered to one", re.I)
_EXIM_ENTRY = re.compile(
    rf"^[ \t]{{1,4}}(?P<rcpt>{_ADDRESS})[^\n]*\n(?P<text>(?:[ \t]{{3,}}[^\n]*\n?)*)", re.M
)
_SENDMAIL = re.compile(r"-{3,} ?the following addresses had (?:permanent fatal|transient)", re.I)
_SENDMAIL_ENTRY = re.compile(
    rf"^<?(?P<rcpt>{_ADDRESS})>?[ \t]*\n(?:[ \t]+\(reason: (?P<text>[^\n]*)\)\n?)?", re.M
)
_SENDMAIL_TRANSCRIPT = re.compile(r"^<<< (?P<reply>[45]\d\d[ -][^\n]*)", re.M)
_EXCHANGE = re.compile(r"the following recipient\(s\) (?:could not|cannot) be reached", re.I)
_EXCHANGE_ENTRY = re.compile(
    rf"^[ \t]+(?P<rcpt>{_ADDRESS})(?: on [^\n]*)?\n(?P<text>(?:[ \t]{{8,}}[^\n]*\n?)*)", re.M
)
_DOMINO = re.compile(r"was not delivered to:", re.I)
_DOMINO_ENTRY = re.compile(
    rf"was not delivered to:\s*\n\s*(?P<rcpt>{_ADDRESS})\s*\n\s*because:\s*\n\s*(?P<text>[^\n]+)",
    re.I,
)


def _from_body(body: str) -> tuple[str, list[tuple[str, str]]] | None:
    """(reader, [(recipient, reply text)]) for a bounce body we recognise, else None."""
    text = body.replace("\r\n", "\n")
    if _QMAIL.search(text):
        tail = text.split("--- Below this line", 1)[0]
        entries = [(m["rcpt"], _join(m["text"])) for m in _QMAIL_ENTRY.finditer(tail)]
        return ("qmail", entries) if entries else None
    if _DOMINO.search(text):
        entries = [(m["rcpt"], _join(m["text"])) for m in _DOMINO_ENTRY.finditer(text)]
        if entries:
            return "domino", entries
    if _EXCHANGE.search(text):
        section = _EXCHANGE.split(text, 1)[1]
        entries = [(m["rcpt"], _join(m["text"])) for m in _EXCHANGE_ENTRY.finditer(section)]
        return ("exchange2003", entries) if entries else None
    if _SENDMAIL.search(text):
        return _sendmail(text)
    if _EXIM.search(text):
        section = _EXIM_FAILED.split(text, maxsplit=1)[-1]
        section = re.split(r"\n-{3,}", section, maxsplit=1)[0]
        entries = [(m["rcpt"], _join(m["text"])) for m in _EXIM_ENTRY.finditer(section)]
        return ("exim", entries) if entries else None
    return None


def _sendmail(text: str) -> tuple[str, list[tuple[str, str]]] | None:
    section = _SENDMAIL.split(text, 1)[1].split("\n", 1)[-1]
    head = re.split(r"-{3,} ?transcript of session", section, maxsplit=1, flags=re.I)[0]
    transcript = section[len(head) :]
    replies = [m["reply"] for m in _SENDMAIL_TRANSCRIPT.finditer(transcript)]
    entries = []
    for match in _SENDMAIL_ENTRY.finditer(head):
        reason = match["text"]
        if not reason:
            mine = [r for r in replies if match["rcpt"] in r]
            reason = (mine or replies or [""])[-1]
        entries.append((match["rcpt"], reason.strip()))
    return ("sendmail", entries) if entries else None


# Where the remote server's own reply starts in a bounce body's explanation: "... Remote host
# said: 550 5.1.1 ...", "SMTP error from remote mail server after RCPT TO:<a@b>: 550 ...".
_REPLY_START = re.compile(r"(?:^|[:;]\s|said:?\s|\(reason:\s)(?P<reply>[45]\d\d[ -].*)$", re.I)


def _reply_part(text: str) -> str:
    found = _REPLY_START.search(text)
    return found["reply"] if found else text


def _join(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------ mail plumbing


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def _body_text(message: Message) -> str:
    """The first text/plain part (or the body of a single-part mail) as text."""
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() in ("text/plain", "text/html") or not message.is_multipart():
            raw = part.get_payload(decode=True)
            if not isinstance(raw, bytes):
                continue
            charset = part.get_content_charset() or "utf-8"
            try:
                return raw.decode(charset, "replace")
            except LookupError:
                return raw.decode("latin-1")
    return ""


def _returned_headers(message: Message) -> dict[str, str]:
    """From and Message-ID of the returned message, when the bounce carries its headers."""
    for part in message.walk():
        kind = part.get_content_type()
        inner: Message | None = None
        if kind == "message/rfc822":
            payload = part.get_payload()
            first = payload[0] if isinstance(payload, list) and payload else None
            inner = first if isinstance(first, Message) else None
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                inner = _PARSER.parsebytes(raw, headersonly=True)
        if inner is not None:
            out = {}
            sender = email.utils.parseaddr(str(inner.get("From") or ""))[1]
            if "@" in sender:
                out["from"] = sender
            message_id = str(inner.get("Message-ID") or "").strip()
            if message_id:
                out["message-id"] = message_id
            return out
    return {}


def _address_field(value: object) -> str | None:
    # "rfc822; kim@example.com" (RFC 3464 address-type; address)
    text = _unfold(str(value or ""))
    _type, sep, address = text.partition(";")
    address = (address if sep else text).strip().strip("<>").strip()
    return address or None


def _remote_host(value: str) -> str | None:
    _type, sep, host = value.partition(";")
    host = (host if sep else value).strip().strip("[]").rstrip(".")
    return host or None


def _unfold(value: str) -> str:
    return " ".join(value.split())


def _date(value: object) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(_unfold(str(value)))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _mail_date(message: Message) -> datetime | None:
    return _date(message.get("Date"))


FORMAT = InputFormat(
    NAME,
    "mail",
    "bounce mails (RFC 3464 and older; feedback reports too)",
    looks_like,
    convert_mail,
)
