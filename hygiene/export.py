"""The suppression list as the sending side imports it: folded from the topic's records, and
written in the shapes MTAs and ESP import APIs take (README, "Export formats", which names the
vendor documentation each shape was checked against)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from hygiene.core import REASON_COMPLAINT

#: ``export --profile`` names, each with its formats.
PROFILES: dict[str, tuple[str, ...]] = {
    "generic": ("csv", "jsonl"),
    "kumomta": ("jsonl",),
    "powermta": ("csv",),
    "ses": ("csv", "jsonl"),
    "sendgrid": ("csv", "jsonl"),
    "mailgun": ("csv", "jsonl"),
    "mailgun-complaints": ("csv", "jsonl"),
    "postmark": ("jsonl",),
}

#: CSV shapes written without a header row (the vendor's file has none).
HEADERLESS = frozenset({"powermta", "ses"})

#: The documented size limits of an import file, per (profile, format): (what is counted,
#: the limit, the vendor's words). ``size_warnings`` reports an export that exceeds one.
#: (Per-request limits of the JSON APIs are the caller's to batch by: README.)
LIMITS: dict[tuple[str, str], tuple[str, int, str]] = {
    ("ses", "csv"): ("rows", 100_000, "100,000 addresses in an S3 object per CreateImportJob"),
    ("ses", "jsonl"): ("rows", 100_000, "100,000 addresses in an S3 object per CreateImportJob"),
    ("mailgun", "csv"): ("bytes", 25 * 1024 * 1024, "a bounces/import CSV file of 25MB or under"),
    ("mailgun-complaints", "csv"): (
        "bytes",
        25 * 1024 * 1024,
        "a complaints/import CSV file of 25MB or under",
    ),
}

#: KumoMTA keys an entry by (recipient, type); an address bouncewatch suppresses is bad for
#: every kind of mail, so the export writes one entry for each type.
KUMOMTA_TYPES = ("transactional", "non_transactional")


def fold(records: Iterable[tuple[str, bytes | None]]) -> dict[str, dict[str, Any]]:
    """The list now: the latest record of each key, without the released (tombstoned)."""
    current: dict[str, dict[str, Any]] = {}
    for key, value in records:
        if value is None:
            current.pop(key, None)
        else:
            current[key] = json.loads(value)
    return current


def _when(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["when"]).replace("Z", "+00:00"))


def _address(record: dict[str, Any]) -> str:
    return str(record.get("address") or record["key"])


def _complaint(record: dict[str, Any]) -> bool:
    return bool(record["reason"] == REASON_COMPLAINT)


def _description(record: dict[str, Any]) -> str:
    evidence = record.get("evidence") or {}
    text = f"bouncewatch {record['reason']}"
    if record.get("category"):
        text += f" ({record['category']})"
    if evidence.get("last_reply"):
        text += f": {evidence['last_reply']}"
    return text


def _generic(record: dict[str, Any]) -> list[dict[str, Any]]:
    evidence = record.get("evidence") or {}
    return [
        {
            "email": _address(record),
            "reason": record["reason"],
            "category": record.get("category"),
            "created_at": record["when"],
            "rule": record.get("rule"),
            "isp": evidence.get("isp"),
            "last_reply": evidence.get("last_reply"),
        }
    ]


def _kumomta(record: dict[str, Any]) -> list[dict[str, Any]]:
    # POST /api/admin/suppression/v1/bulk takes {"recipients": [these]}; unknown fields are
    # refused (deny_unknown_fields), and the time of an entry is set by KumoMTA itself.
    source = "complaint" if _complaint(record) else "bounce"
    return [
        {
            "recipient": _address(record),
            "type": kind,
            "source": source,
            "description": _description(record),
        }
        for kind in KUMOMTA_TYPES
    ]


def _powermta(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"email": _address(record)}]


def _ses(record: dict[str, Any]) -> list[dict[str, Any]]:
    # The CSV is "address,REASON" without a header; the JSON lines are
    # {"emailAddress": ..., "reason": ...} (the SES Developer Guide's own field names).
    reason = "COMPLAINT" if _complaint(record) else "BOUNCE"
    return [{"emailAddress": _address(record), "reason": reason}]


def _sendgrid(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"email": _address(record), "created": int(_when(record).timestamp())}]


def _mailgun(record: dict[str, Any]) -> list[dict[str, Any]]:
    if _complaint(record):
        return []  # the complaints list: --profile mailgun-complaints
    evidence = record.get("evidence") or {}
    return [
        {
            "address": _address(record),
            "code": "550",
            "error": evidence.get("last_reply") or record.get("rule") or "",
            "created_at": format_datetime(_when(record)),
        }
    ]


def _mailgun_complaints(record: dict[str, Any]) -> list[dict[str, Any]]:
    if not _complaint(record):
        return []
    return [{"address": _address(record), "created_at": format_datetime(_when(record))}]


def _postmark(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"EmailAddress": _address(record)}]


_SHAPES: dict[str, tuple[Callable[[dict[str, Any]], list[dict[str, Any]]], tuple[str, ...]]] = {
    "generic": (
        _generic,
        ("email", "reason", "category", "created_at", "rule", "isp", "last_reply"),
    ),
    "kumomta": (_kumomta, ("recipient", "type", "source", "description")),
    "powermta": (_powermta, ("email",)),
    "ses": (_ses, ("emailAddress", "reason")),
    "sendgrid": (_sendgrid, ("email", "created")),
    "mailgun": (_mailgun, ("address", "code", "error", "created_at")),
    "mailgun-complaints": (_mailgun_complaints, ("address", "created_at")),
    "postmark": (_postmark, ("EmailAddress",)),
}


def rows(records: Iterable[dict[str, Any]], profile: str) -> list[dict[str, Any]]:
    """The rows (JSON objects) ``profile`` takes for these records, in their order."""
    shape = _SHAPES[profile][0]
    return [row for record in records for row in shape(record)]


def export(records: Iterable[dict[str, Any]], profile: str, fmt: str) -> str:
    """The records (values of the list) as ``profile`` imports them, in ``fmt``."""
    if fmt not in PROFILES[profile]:
        raise ValueError(f"{profile} takes {' or '.join(PROFILES[profile])}, not {fmt}")
    out_rows = rows(records, profile)
    if fmt == "jsonl":
        if profile == "sendgrid":
            # Each line is a whole request body of POST /v3/asm/suppressions/global (or
            # /v3/asm/groups/{group_id}/suppressions), which takes only recipient_emails.
            out_rows = [{"recipient_emails": [row["email"]]} for row in out_rows]
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in out_rows)
    out = io.StringIO()
    fields = _SHAPES[profile][1]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    if profile not in HEADERLESS:
        writer.writeheader()
    writer.writerows(out_rows)
    return out.getvalue()


def size_warnings(text: str, profile: str, fmt: str) -> list[str]:
    """What in an export ``text`` exceeds its vendor's documented import limit (empty: none)."""
    limit = LIMITS.get((profile, fmt))
    if limit is None:
        return []
    what, most, words = limit
    if what == "bytes":
        size = len(text.encode())
    elif fmt == "jsonl":
        size = text.count("\n")
    else:
        size = sum(1 for _ in csv.reader(io.StringIO(text))) - (profile not in HEADERLESS)
    if size <= most:
        return []
    return [f"{profile} {fmt}: {size:,} {what}, more than the vendor takes ({words}): split it"]
