"""The suppression list as the sending side imports it: folded from the topic's records, and
written in the shapes MTAs and ESP import APIs take (README, "Suppression list")."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime
from typing import Any

#: ``export --profile`` names, each with its formats.
PROFILES: dict[str, tuple[str, ...]] = {
    "generic": ("csv", "jsonl"),
    "kumomta": ("csv", "jsonl"),
    "powermta": ("csv",),
    "ses": ("csv", "jsonl"),
    "sendgrid": ("csv", "jsonl"),
    "mailgun": ("csv", "jsonl"),
    "postmark": ("jsonl",),
}


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


def _ses_reason(record: dict[str, Any]) -> str:
    return "COMPLAINT" if record["reason"] == "complaint" else "BOUNCE"


def _rows(profile: str, record: dict[str, Any]) -> dict[str, Any]:
    address = _address(record)
    evidence = record.get("evidence") or {}
    if profile == "mailgun":
        code = 607 if record["reason"] == "complaint" else 550
        return {
            "address": address,
            "code": code,
            "error": evidence.get("last_reply") or record["rule"],
            "created_at": format_datetime(_when(record)),
        }
    if profile == "ses":
        return {"EmailAddress": address, "Reason": _ses_reason(record)}
    if profile == "sendgrid":
        return {"email": address, "created": int(_when(record).timestamp())}
    if profile == "postmark":
        return {"EmailAddress": address}
    if profile == "powermta":
        return {"email": address}
    # generic and kumomta
    return {
        "email": address,
        "reason": record["reason"],
        "category": record.get("category"),
        "created_at": record["when"],
        "rule": record.get("rule"),
        "isp": evidence.get("isp"),
        "last_reply": evidence.get("last_reply"),
    }


def export(records: Iterable[dict[str, Any]], profile: str, fmt: str) -> str:
    """The records (values of the list) as ``profile`` imports them, in ``fmt``."""
    if fmt not in PROFILES[profile]:
        raise ValueError(f"{profile} takes {' or '.join(PROFILES[profile])}, not {fmt}")
    rows = [_rows(profile, r) for r in records]
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    out = io.StringIO()
    if profile in ("powermta", "ses"):
        # No header: one address per line (PowerMTA), "address,reason" lines (SES).
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            writer.writerow(row.values())
        return out.getvalue()
    fields = list(
        _rows(profile, {"key": "", "reason": "", "rule": "", "when": "1970-01-01T00:00:00Z"})
    )
    dict_writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    dict_writer.writeheader()
    dict_writer.writerows(rows)
    return out.getvalue()
