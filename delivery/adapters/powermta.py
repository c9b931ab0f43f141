"""PowerMTA accounting records: CSV with a header line naming the columns.

References: PowerMTA User's Guide, "Accounting records" (record types and fields) and
"Encoding" of the CSV accounting file: RFC 4180 CSV, "a header line at the beginning of the
file describing what field is in which column", the record type always first. Types: ``d``
delivered, ``b`` bounced, ``t`` transient failure, ``tq`` transient-queue, ``r`` received,
``f`` feedback loop, ``rb`` / ``rs`` remote bounce / remote status.

Mapping: ``d`` -> delivered, ``t`` -> deferred, ``b`` -> bounced (expired when ``dsnStatus``
is X.4.7 "delivery time expired", RFC 3463); ``r``, ``f``, ``tq`` (one per queue, not per
recipient), ``rb`` and ``rs`` (out-of-band reports about an attempt already counted) are
skipped. ``timeLogged`` ("2026-11-24 06:00:00-0000", or unix seconds) -> event_time;
``rcpt`` -> recipient; ``orig`` -> sender; ``dsnStatus`` ("5.1.1 (bad destination mailbox
address)") -> reply.enhanced; ``dsnDiag`` ("smtp;550 5.1.1 <x>... User unknown") -> reply
code and text; ``dsnMta`` ("mx.example.com (192.0.2.25)") -> mx_host; ``dlvSourceIp`` ->
source_ip; ``vmtaPool``, else ``vmta`` -> pool; ``jobId`` -> campaign; ``header_Message-Id``,
else ``envId`` -> message_id.

Without a header line the columns are assumed to be PowerMTA's default record fields in
their documented order (``DEFAULT_HEADER``); a file or message that starts with its header
line always wins.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from typing import Any

from delivery.adapters.common import (
    Converted,
    Draft,
    FormatError,
    domain_of,
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
    status = STATUS.get(row.get("type", ""))
    if status is None:
        return None
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
