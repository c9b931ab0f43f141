"""The suppression list folded from its topic and exported (hygiene.export): each profile's
exact output, header, column order and values, as the vendor's import documentation gives
them (README, "Export formats", names the source of each)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hygiene.export import PROFILES, export, fold, size_warnings

SOFT: dict[str, Any] = {
    "address": "kim@example.com",
    "key": "kim@example.com",
    "domain": "example.com",
    "reason": "soft_bounce_streak",
    "category": "mailbox_full",
    "when": "2026-03-06T09:00:00Z",
    "rule": "soft_bounces>=5 on >=3 days, no delivery between",
    "decision": 1,
    "evidence": {"isp": "gmail", "last_reply": "452 4.2.2 full"},
}
HARD: dict[str, Any] = {
    "address": "Lee@example.org",
    "key": "Lee@example.org",
    "domain": "example.org",
    "reason": "hard_bounce",
    "category": "user_unknown",
    "when": "2026-03-07T10:30:00Z",
    "rule": "hard_bounce:user_unknown",
    "decision": 1,
    "evidence": {"isp": "microsoft", "last_reply": '550 5.1.1 "lee": no such user, sorry'},
}
COMPLAINT: dict[str, Any] = {
    "address": "max@example.net",
    "key": "max@example.net",
    "domain": "example.net",
    "reason": "complaint",
    "category": "complaint",
    "when": "2026-03-08T00:00:05Z",
    "rule": "complaint",
    "decision": 2,
    "evidence": {"isp": "yahoo", "last_reply": None},
}
RECORDS = [SOFT, HARD, COMPLAINT]

# 2026-03-06T09:00:00Z, 2026-03-07T10:30:00Z, 2026-03-08T00:00:05Z as Unix time
T_SOFT, T_HARD, T_COMPLAINT = 1772787600, 1772879400, 1772928005


def lines(text: str) -> list[Any]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_fold_drops_released_addresses() -> None:
    value = json.dumps(SOFT).encode()
    key = SOFT["key"]
    assert fold([(key, value), ("x@y.org", value), ("x@y.org", None)]) == {key: SOFT}


def test_generic_csv_and_jsonl() -> None:
    assert export(RECORDS, "generic", "csv") == (
        "email,reason,category,created_at,rule,isp,last_reply\n"
        "kim@example.com,soft_bounce_streak,mailbox_full,2026-03-06T09:00:00Z,"
        '"soft_bounces>=5 on >=3 days, no delivery between",gmail,452 4.2.2 full\n'
        "Lee@example.org,hard_bounce,user_unknown,2026-03-07T10:30:00Z,"
        'hard_bounce:user_unknown,microsoft,"550 5.1.1 ""lee"": no such user, sorry"\n'
        "max@example.net,complaint,complaint,2026-03-08T00:00:05Z,complaint,yahoo,\n"
    )
    assert lines(export([SOFT], "generic", "jsonl")) == [
        {
            "email": "kim@example.com",
            "reason": "soft_bounce_streak",
            "category": "mailbox_full",
            "created_at": "2026-03-06T09:00:00Z",
            "rule": "soft_bounces>=5 on >=3 days, no delivery between",
            "isp": "gmail",
            "last_reply": "452 4.2.2 full",
        }
    ]


def test_kumomta_bulk_entries_one_per_suppression_type() -> None:
    """The items of POST /api/admin/suppression/v1/bulk's "recipients": only the fields
    SuppressionCreateRequest takes (it refuses unknown ones), both types, source by reason."""
    got = lines(export([SOFT, COMPLAINT], "kumomta", "jsonl"))
    assert got == [
        {
            "recipient": "kim@example.com",
            "type": "transactional",
            "source": "bounce",
            "description": "bouncewatch soft_bounce_streak (mailbox_full): 452 4.2.2 full",
        },
        {
            "recipient": "kim@example.com",
            "type": "non_transactional",
            "source": "bounce",
            "description": "bouncewatch soft_bounce_streak (mailbox_full): 452 4.2.2 full",
        },
        {
            "recipient": "max@example.net",
            "type": "transactional",
            "source": "complaint",
            "description": "bouncewatch complaint (complaint)",
        },
        {
            "recipient": "max@example.net",
            "type": "non_transactional",
            "source": "complaint",
            "description": "bouncewatch complaint (complaint)",
        },
    ]
    allowed = {"recipient", "type", "source", "description", "subaccount_id"}
    assert all(set(entry) <= allowed for entry in got)
    assert PROFILES["kumomta"] == ("jsonl",)  # KumoMTA's suppression API takes JSON only


def test_powermta_one_address_per_line_without_header() -> None:
    assert export(RECORDS, "powermta", "csv") == (
        "kim@example.com\nLee@example.org\nmax@example.net\n"
    )


def test_ses_csv_headerless_address_reason_and_jsonl_field_names() -> None:
    assert export(RECORDS, "ses", "csv") == (
        "kim@example.com,BOUNCE\nLee@example.org,BOUNCE\nmax@example.net,COMPLAINT\n"
    )
    # The SES Developer Guide's newline-delimited JSON: emailAddress and reason, camel case.
    assert export(RECORDS, "ses", "jsonl") == (
        '{"emailAddress": "kim@example.com", "reason": "BOUNCE"}\n'
        '{"emailAddress": "Lee@example.org", "reason": "BOUNCE"}\n'
        '{"emailAddress": "max@example.net", "reason": "COMPLAINT"}\n'
    )


def test_sendgrid_csv_and_request_bodies() -> None:
    assert export(RECORDS, "sendgrid", "csv") == (
        "email,created\n"
        f"kim@example.com,{T_SOFT}\n"
        f"Lee@example.org,{T_HARD}\n"
        f"max@example.net,{T_COMPLAINT}\n"
    )
    # Each line a whole body of POST /v3/asm/suppressions/global: recipient_emails only.
    assert lines(export(RECORDS, "sendgrid", "jsonl")) == [
        {"recipient_emails": ["kim@example.com"]},
        {"recipient_emails": ["Lee@example.org"]},
        {"recipient_emails": ["max@example.net"]},
    ]


def test_mailgun_bounces_import_leaves_complaints_to_their_own_list() -> None:
    assert export(RECORDS, "mailgun", "csv") == (
        "address,code,error,created_at\n"
        'kim@example.com,550,452 4.2.2 full,"Fri, 06 Mar 2026 09:00:00 +0000"\n'
        'Lee@example.org,550,"550 5.1.1 ""lee"": no such user, sorry",'
        '"Sat, 07 Mar 2026 10:30:00 +0000"\n'
    )
    assert lines(export([SOFT, COMPLAINT], "mailgun", "jsonl")) == [
        {
            "address": "kim@example.com",
            "code": "550",
            "error": "452 4.2.2 full",
            "created_at": "Fri, 06 Mar 2026 09:00:00 +0000",
        }
    ]


def test_mailgun_complaints_import() -> None:
    assert export(RECORDS, "mailgun-complaints", "csv") == (
        'address,created_at\nmax@example.net,"Sun, 08 Mar 2026 00:00:05 +0000"\n'
    )
    assert lines(export(RECORDS, "mailgun-complaints", "jsonl")) == [
        {"address": "max@example.net", "created_at": "Sun, 08 Mar 2026 00:00:05 +0000"}
    ]


def test_postmark_suppression_items() -> None:
    assert export(RECORDS, "postmark", "jsonl") == (
        '{"EmailAddress": "kim@example.com"}\n'
        '{"EmailAddress": "Lee@example.org"}\n'
        '{"EmailAddress": "max@example.net"}\n'
    )


@pytest.mark.parametrize(
    ("profile", "fmt"),
    [(p, f) for p in PROFILES for f in ("csv", "jsonl") if f not in PROFILES[p]],
)
def test_a_format_the_profile_does_not_take_is_refused(profile: str, fmt: str) -> None:
    with pytest.raises(ValueError, match=f"{profile} takes"):
        export(RECORDS, profile, fmt)


def test_empty_list_is_a_header_or_nothing() -> None:
    assert export([], "mailgun", "csv") == "address,code,error,created_at\n"
    assert export([], "ses", "csv") == ""
    assert export([], "postmark", "jsonl") == ""


def _many(n: int) -> list[dict[str, Any]]:
    return [dict(SOFT, address=f"u{i}@example.com", key=f"u{i}@example.com") for i in range(n)]


def test_size_warnings_at_the_documented_limits() -> None:
    at_limit = export(_many(100_000), "ses", "csv")
    assert size_warnings(at_limit, "ses", "csv") == []
    over = export(_many(100_001), "ses", "jsonl")
    (warning,) = size_warnings(over, "ses", "jsonl")
    assert "100,001 rows" in warning and "100,000 addresses" in warning
    big = "address,code,error,created_at\n" + "x" * (25 * 1024 * 1024)
    (warning,) = size_warnings(big, "mailgun", "csv")
    assert "25MB" in warning
    assert size_warnings(big, "generic", "csv") == []


def test_cli_export_writes_the_shape_and_warns_past_a_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from bouncewatch.commands import suppressions

    monkeypatch.setattr(suppressions, "load_settings", lambda: None)
    monkeypatch.setattr(suppressions, "_current", lambda args, settings: _many(100_001))
    args = argparse.Namespace(profile="ses", format="csv")
    assert suppressions.run_export(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("u0@example.com,BOUNCE\nu1@example.com,BOUNCE\n")
    assert "ses csv: 100,001 rows" in err
    assert suppressions.run_export(argparse.Namespace(profile="kumomta", format="csv")) == 2
    assert "--profile kumomta takes --format jsonl" in capsys.readouterr().err
