"""PowerMTA accounting records: CSV with a header line naming the columns.

References: PowerMTA User's Guide, "Accounting records" (record types and fields) and
"Encoding" of the CSV accounting file: RFC 4180 CSV, "a header line at the beginning of the
file describing what field is in which column", the record type always first. Types: ``d``
delivered, ``b`` bounced, ``t`` transient failure, ``tq`` transient-queue, ``r`` received,
``f`` feedback loop, ``rb`` / ``rs`` remote bounce / remote status.

Mapping: ``d`` -> delivered, ``t`` -> deferred, ``b`` -> bounced (expired when ``dsnStatus``
is X.4.7 "delivery time expired", RFC 3463); ``r``, ``tq`` (one per queue, not per
recipient), ``rb`` and ``rs`` (out-of-band reports about an attempt already counted) are
skipped. ``timeLogged`` ("2026-11-24 06:00:00-0000", or unix seconds) -> event_time;
``rcpt`` -> recipient; ``orig`` -> sender; ``dsnStatus`` ("5.1.1 (bad destination mailbox
address)") -> reply.enhanced; ``dsnDiag`` ("smtp;550 5.1.1 <x>... User unknown") -> reply
code and text; ``dsnMta`` ("mx.example.com (192.0.2.25)") -> mx_host; ``dlvSourceIp`` ->
source_ip; ``vmtaPool``, else ``vmta`` -> pool; ``jobId`` -> campaign; ``header_Message-Id``,
else ``envId`` -> message_id.

``f`` (feedback loop: an ARF report PowerMTA received and logged) -> a feedback event. Its
fields are the report's, as PowerMTA names them: ``timeLogged`` (when PowerMTA received the
report) -> event_time, ``feedbackType`` (else ``fbType``; abuse when empty),
``userAgent`` -> reporter, ``arrivalDate`` (when the provider received the original) ->
sent_at, ``rcpt`` (Original-Rcpt-To) -> recipient, ``orig`` (Original-Mail-From) -> sender,
``reportedDomain`` else the sender's domain -> sending_domain, ``srcIp`` (the report's
Source-IP; else ``dlvSourceIp``) -> source_ip, ``jobId`` -> campaign, ``header_Message-Id``
else ``envId`` -> message_id; a redacted ``rcpt`` falls back to the domain of
``reportingMta``. The columns of ``f`` records differ from those of ``d`` / ``b`` / ``t``:
a header line naming ``feedbackType`` (or ``fbType``) is kept as the header of ``f``
records, any other header line as that of the rest, so one file may hold both.

Without a header line the columns are assumed to be PowerMTA's default record fields in
their documented order (``DEFAULT_HEADER``); a file or message that starts with its header
line always wins.
"""

from __future__ import annotations

import csv
import email.utils
import re
from collections.abc import Mapping, Sequence
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    InputFormat,
    address_of,
    domain_of,
    feedback_draft,
    feedback_type,
    first_enhanced,
    opt_str,
    parse_reply,
    parse_time,
    pick_enhanced,
    require,
    strip_diagnostic_type,
)
from schemas.vocabulary import SourceStatus

NAME = "powermta"

DEFAULT_HEADER: tuple[str, ...] = (
    "type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction", "dsnStatus",
    "dsnDiag", "dsnMta", "bounceCat", "srcType", "srcMta", "dlvType", "dlvSourceIp",
    "dlvDestinationIp", "dlvEsmtpAvailable", "dlvSize", "vmta", "jobId", "envId", "queue",
    "vmtaPool",
)  # fmt: skip

STATUS: Mapping[str, SourceStatus] = {
    "d": SourceStatus.DELIVERED,
    "delivery": SourceStatus.DELIVERED,
    "b": SourceStatus.BOUNCED,
    "bounce": SourceStatus.BOUNCED,
    "t": SourceStatus.DEFERRED,
    "transient": SourceStatus.DEFERRED,
}

ORIGIN: Mapping[str, str] = {
    "event_time": "timeLogged",
    "recipient": "rcpt",
    "sender": "orig",
    "sending_domain": "orig",
    "source_ip": "dlvSourceIp",
    "pool": "vmtaPool",
    "mx_host": "dsnMta",
    "reply.code": "dsnDiag",
    "reply.enhanced": "dsnStatus",
    "reply.text": "dsnDiag",
    "status": "type",
    "message_id": "envId",
    "campaign": "jobId",
}

_RECORD = re.compile(r"^(?:d|b|t|tq|r|f|rb|rs|delivery|bounce|transient),")


def is_header(line: str) -> bool:
    return line.startswith("type,")


class State:
    """What later lines of one file need: the header of ``f`` records and of the others."""

    __slots__ = ("feedback_header", "header")

    def __init__(self, header: tuple[str, ...] = DEFAULT_HEADER) -> None:
        self.header = header
        self.feedback_header: tuple[str, ...] | None = None


def new_state(_year: int | None = None, _tz: object = None) -> State:
    return State()


def read_line(line: str, state: State) -> Converted:
    """One line of an accounting file: a header line (kept in ``state``; no events) or a
    record."""
    if is_header(line):
        header = parse_header(line)
        if "feedbackType" in header or "fbType" in header:
            state.feedback_header = header
        else:
            state.header = header
        return []
    if line.startswith(("f,", "feedback,")) and state.feedback_header is not None:
        return convert_line(line, state.feedback_header)
    return convert_line(line, state.header)


def looks_like(line: str) -> bool:
    return is_header(line) or _RECORD.match(line) is not None


def parse_header(line: str) -> tuple[str, ...]:
    return tuple(next(csv.reader([line])))


def convert_line(line: str, header: Sequence[str]) -> Converted:
    return convert_row(next(csv.reader([line]), []), header)


def convert_row(values: Sequence[str], header: Sequence[str]) -> Converted:
    if len(values) != len(header):
        raise FormatError(
            None,
            f"record has {len(values)} columns but the header has {len(header)}; "
            "send the accounting file's header line first",
        )
    row = dict(zip(header, values, strict=True))
    return convert(row)


def convert(row: Mapping[str, Any]) -> Converted:
    kind = row.get("type", "")
    status = STATUS.get(kind)
    if status is None:
        return _feedback(row) if kind in ("f", "feedback") else None
    dsn_status = opt_str(row.get("dsnStatus"))
    diag = strip_diagnostic_type(opt_str(row.get("dsnDiag")) or "")
    code, text_enhanced = parse_reply(diag)
    enhanced = pick_enhanced(first_enhanced(dsn_status), text_enhanced)
    if status is SourceStatus.BOUNCED and enhanced and enhanced[1:] == ".4.7":
        status = SourceStatus.EXPIRED
    sender = opt_str(row.get("orig"))
    dsn_mta = opt_str(row.get("dsnMta"))
    return [
        Draft(
            {
                "event_time": parse_time(require(row, "timeLogged"), "timeLogged"),
                "recipient": require(row, "rcpt"),
                "sender": sender,
                "sending_domain": domain_of(sender),
                "source_ip": opt_str(row.get("dlvSourceIp")),
                "pool": opt_str(row.get("vmtaPool")) or opt_str(row.get("vmta")),
                "mx_host": _mx_host(dsn_mta),
                "reply": {"code": code, "enhanced": enhanced, "text": diag},
                "status": status,
                "message_id": opt_str(row.get("header_Message-Id")) or opt_str(row.get("envId")),
                "campaign": opt_str(row.get("jobId")),
                "source_format": NAME,
            },
            ORIGIN,
        )
    ]


def _mx_host(dsn_mta: str | None) -> str | None:
    """``dns;mx.example.com (192.0.2.25)`` or ``mx.example.com (192.0.2.25)`` -> the host."""
    if not dsn_mta:
        return None
    host = dsn_mta.rpartition(";")[2].strip().split(" ", 1)[0].rstrip(".")
    return host or None


_FEEDBACK_ORIGIN: Mapping[str, str] = {
    "event_time": "timeLogged",
    "sent_at": "arrivalDate",
    "recipient": "rcpt",
    "feedback_type": "feedbackType",
    "reporter": "userAgent",
    "sender": "orig",
    "sending_domain": "reportedDomain",
    "source_ip": "srcIp",
    "message_id": "envId",
    "campaign": "jobId",
}


def _feedback(row: Mapping[str, Any]) -> Converted:
    arrival = opt_str(row.get("arrivalDate"))
    sender = address_of(row.get("orig"))
    recipient = address_of(row.get("rcpt"))
    if not recipient or "@" not in recipient:
        reporting = _mx_host(opt_str(row.get("reportingMta")))
        if reporting is None:
            raise FormatError(
                "rcpt", "no complainer address and no reportingMta to tell the provider by"
            )
        recipient = reporting
    return feedback_draft(
        {
            "event_time": parse_time(require(row, "timeLogged"), "timeLogged"),
            "sent_at": parse_time(_iso(arrival), "arrivalDate") if arrival else None,
            "recipient": recipient,
            "feedback_type": feedback_type(row.get("feedbackType") or row.get("fbType")),
            "reporter": opt_str(row.get("userAgent")),
            "sender": sender,
            "sending_domain": (opt_str(row.get("reportedDomain")) or "").lower()
            or domain_of(sender),
            "source_ip": opt_str(row.get("srcIp")) or opt_str(row.get("dlvSourceIp")),
            "message_id": opt_str(row.get("header_Message-Id")) or opt_str(row.get("envId")),
            "campaign": opt_str(row.get("jobId")),
            "source_format": NAME,
        },
        _FEEDBACK_ORIGIN,
    )


def _iso(value: str) -> str:
    """``2026-11-24 06:00:00-0000`` (PowerMTA's own form) or an RFC 5322 date as ISO 8601."""
    text = value.strip()
    if text[:4].isdigit():
        return text
    try:
        return email.utils.parsedate_to_datetime(text).isoformat()
    except (TypeError, ValueError, IndexError):
        return text


FORMAT = InputFormat(
    NAME, "text", "PowerMTA CSV accounting records", looks_like, read_line, new_state
)
