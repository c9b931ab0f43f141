"""Bounce mails as input (format ``dsn``): RFC 3464 reports and the older bounce bodies,
mails that are not bounces, auto-detection, and ``bouncewatch classify`` on mail files.

The samples in tests/data/formats/dsn/ follow RFC 3464 and the bounce texts of Postfix,
Exchange Online, qmail-send, Exim, Sendmail 8 (before DSNs), Exchange 2003 and HCL Domino.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bouncewatch.cli import main
from bouncewatch.commands.classify import classify_files
from delivery.adapters import FORMATS, StreamDecoder, decode_mails, decode_message, dsn
from delivery.pipeline import EventReader

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "tests" / "data" / "formats"
DSN = SAMPLES / "dsn"

# file -> per mail: [(recipient, outcome, bounce_type, category)], or the skip reason's start
EXPECTED: dict[str, list[list[tuple[str, str, str, str]] | str]] = {
    "postfix_two_recipients.eml": [
        [
            ("kim.lee@example.com", "bounced", "hard", "user_unknown"),
            ("ops@example-nohost.net", "bounced", "hard", "domain_invalid"),
        ]
    ],
    "exchange_online_ndr.eml": [[("cara@contoso.example", "bounced", "hard", "user_unknown")]],
    "expired_and_delayed.eml": [
        [
            ("sam@example.org", "bounced", "soft", "expired"),
            ("tia@example.net", "deferred", "soft", "mailbox_full"),
        ]
    ],
    "qmail.eml": [
        [
            ("ann@qmail.example", "bounced", "hard", "user_unknown"),
            ("bo@example.com", "bounced", "soft", "mailbox_full"),
        ]
    ],
    "exim.eml": [
        [
            ("cy@example.com", "bounced", "soft", "reputation"),
            ("dee@exim.example", "bounced", "hard", "domain_invalid"),
        ]
    ],
    "sendmail_old.eml": [[("eli@sendmail.example", "bounced", "hard", "user_unknown")]],
    "exchange2003.eml": [[("fay@exchange.example", "bounced", "hard", "user_unknown")]],
    "domino.eml": [[("gus.berg@domino.example", "bounced", "hard", "user_unknown")]],
    "autoreply.eml": ["an auto-reply"],
    "vacation.eml": ["an auto-reply"],
    "challenge.eml": ["a challenge-response request"],
    "read_receipt.eml": ["a read receipt"],
    "bounces.mbox": [
        [
            ("ann@qmail.example", "bounced", "hard", "user_unknown"),
            ("bo@example.com", "bounced", "soft", "mailbox_full"),
        ],
        "an auto-reply",
        [
            ("sam@example.org", "bounced", "soft", "expired"),
            ("tia@example.net", "deferred", "soft", "mailbox_full"),
        ],
    ],
}


def _classify(paths: list[Path], fmt: str = "auto") -> list[dict[str, Any]]:
    out = io.StringIO()
    classify_files(paths, out, EventReader(fmt), explain=True)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_sample_is_listed() -> None:
    assert {p.name for p in DSN.iterdir()} == set(EXPECTED) | {"unreadable_bounce.eml"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    answers = _classify([DSN / name])
    assert all(a["file"] == str(DSN / name) for a in answers)
    for number, want in enumerate(EXPECTED[name], start=1):
        mine = [a for a in answers if a["mail"] == number]
        if isinstance(want, str):
            assert len(mine) == 1 and mine[0]["skipped"].startswith(want), mine
        else:
            got = [(a["recipient"], a["outcome"], a["bounce_type"], a["category"]) for a in mine]
            assert got == want, mine
    assert not any("error" in a for a in answers)


def test_a_bounce_no_reader_understands_is_an_error_not_a_skip() -> None:
    (answer,) = _classify([DSN / "unreadable_bounce.eml"])
    assert answer["format"] == "dsn" and "could not be read" in answer["error"]


def test_report_fields_reach_the_event() -> None:
    ((_, postfix),) = [
        (m.number, m.decoded) for m in decode_mails(_read("postfix_two_recipients.eml"))
    ]
    first = postfix.events[0]
    assert first.mx_host == "mx.example.com"
    assert first.sender == "news@mail.shop.example" and first.sending_domain == "mail.shop.example"
    assert first.message_id == "<20261124055901.8812@mail.shop.example>"
    assert (first.reply.code, first.reply.enhanced) == (550, "5.1.1")
    assert first.reply.text.startswith("550 5.1.1 <kim.lee@example.com>: Recipient address")
    assert first.event_time.isoformat() == "2026-11-24T06:05:10+00:00"  # Arrival-Date
    assert first.source_format == "dsn"
    (mail,) = decode_mails(_read("expired_and_delayed.eml"))
    expired, delayed = mail.decoded.events
    # Action: failed with a 4.x.x Status: the MTA gave up retrying
    assert expired.status is not None and expired.status.value == "expired"
    assert expired.event_time.isoformat() == "2026-11-29T06:05:11+00:00"  # Last-Attempt-Date
    assert delayed.status is not None and delayed.status.value == "deferred"


def _read(name: str) -> bytes:
    return (DSN / name).read_bytes()


def test_decode_message_reads_one_raw_mail_per_kafka_message() -> None:
    for fmt in ("auto", "dsn"):
        decoded = decode_message(_read("postfix_two_recipients.eml"), fmt)
        assert [e.recipient for e in decoded.events] == [
            "kim.lee@example.com",
            "ops@example-nohost.net",
        ]
        assert decoded.errors == []
        skipped = decode_message(_read("autoreply.eml"), fmt)
        assert (skipped.events, skipped.errors, skipped.skipped) == ([], [], 1)
    bad = decode_message(_read("unreadable_bounce.eml"))
    assert bad.events == [] and bad.errors[0].format == "dsn"
    not_mail = decode_message(b'{"code": 550}', "dsn")
    assert not_mail.errors and "not a mail" in not_mail.errors[0].reason


def test_a_mail_in_another_charset_is_read() -> None:
    mail = (
        "From: MAILER-DAEMON@mx.example.de\nTo: b@shop.example\nSubject: failure notice\n"
        "Date: Tue, 24 Nov 2026 06:00:00 +0000\nContent-Type: text/plain; charset=iso-8859-1\n\n"
        "Hi. This is the qmail-send program at mx.example.de.\n\n<jörg@example.de>:\n"
        "Sorry, no mailbox here by that name. Grüße (#5.1.1)\n"
    ).encode("latin-1")
    (event,) = decode_message(mail).events
    assert event.recipient == "jörg@example.de" and "Grüße" in event.reply.text


def test_auto_detection_does_not_read_other_formats_as_mail() -> None:
    mails = ("dsn", "arf")
    others = [p for p in SAMPLES.glob("*/*") if p.parent.name not in mails and p.suffix != ".md"]
    assert len(others) > 20
    for path in others:
        data = path.read_bytes()
        assert not dsn.looks_like(data), path
        decoded = decode_message(data)
        assert not any(e.source_format == "dsn" for e in decoded.events), path
        assert not any(e.format == "dsn" for e in decoded.errors), path
        for line in data.splitlines():
            assert not dsn.looks_like(line), (path, line)
    for text in (
        b"version: 1\nrules: []\n",  # YAML with colons
        b"Subject: only one header\n\nbody",
        b"2026-11-24T06:00:01+00:00 mta postfix/smtp[123]: 4Yc0R: to=<a@b.example>, status=sent",
        b"b,2026-11-24T06:00:01Z,2026-11-24T06:00:00Z,a@shop.example,b@example.com,failed",
        b"type,timeLogged,orig,rcpt,dsnAction,dsnStatus\n",
    ):
        assert not dsn.looks_like(text), text


def test_mbox_separators() -> None:
    mails = dsn.split_mbox(_read("bounces.mbox"))
    assert len(mails) == 3
    # a "From " line inside a body (not after a blank line) does not start a mail
    body = b"From a@b Tue Nov 24 06:00:00 2026\nFrom: a@b\nTo: c@d\n\nFrom here on\n"
    assert len(dsn.split_mbox(body)) == 1


def test_line_readers_refuse_dsn() -> None:
    decoded = StreamDecoder("dsn").feed_line("Final-Recipient: rfc822; a@b.example")
    assert decoded.errors and "read whole" in decoded.errors[0].reason
    assert "dsn" in FORMATS


def test_cli_mail_files_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["classify", "--format", "dsn", str(DSN / "domino.eml")]) == 0
    (answer,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answer["recipient"] == "gus.berg@domino.example" and answer["category"] == "user_unknown"
    # a file that is no mail at all, read as dsn: one line saying so
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n", "utf-8")
    assert main(["classify", "--format", "dsn", str(text)]) == 0
    (answer,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answer == {
        "file": str(text),
        "mail": 1,
        "skipped": "not a mail: no RFC 5322 header block",
    }
    # event files given as paths are read line by line, each answer naming the file
    events = SAMPLES / "bouncewatch" / "batch.ndjson"
    assert main(["classify", str(events)]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answers and all(a["file"] == str(events) for a in answers)
    assert any("outcome" in a for a in answers)
    # stdin as one mail
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(_read("qmail.eml"))))
    assert main(["classify", "--format", "dsn"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["recipient"] for a in answers] == ["ann@qmail.example", "bo@example.com"]
    assert main(["classify", str(tmp_path / "missing.eml")]) == 0
    assert "cannot read" in json.loads(capsys.readouterr().out)["error"]


def test_replay_reads_mail_files_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``replay`` reads a bounce mbox (detected, or with --format dsn; gzipped; on stdin)
    and a feedback report as mails, one event per recipient classify reports."""
    mbox = DSN / "bounces.mbox"
    assert main(["classify", "--format", "dsn", str(mbox)]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    recipients = sum(1 for a in answers if "outcome" in a)
    skipped = sum(1 for a in answers if "skipped" in a)
    assert recipients >= 2 and skipped >= 1
    gz = tmp_path / "bounces.mbox.gz"
    gz.write_bytes(gzip.compress(mbox.read_bytes()))
    for args in ([str(mbox)], ["--format", "dsn", str(mbox)], [str(gz)]):
        assert main(["replay", *args, "--output", "jsonl", "--progress", "never"]) == 0
        err = capsys.readouterr().err
        assert f"{recipients} events" in err, (args, err)
        assert f"{skipped} mails skipped: not bounces" in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(mbox.read_bytes())))
    assert main(["replay", "-", "--output", "jsonl", "--progress", "never"]) == 0
    assert f"{recipients} events" in capsys.readouterr().err
    arf = SAMPLES / "arf" / "yahoo_abuse.eml"
    assert main(["replay", str(arf), "--output", "jsonl", "--progress", "never"]) == 0
    assert "1 events" in capsys.readouterr().err


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: MAILER-DAEMON@x.example\n",
                b"To: a@b.example\n",
                b"Subject: Undeliverable\n",
                b"Date: Tue, 24 Nov 2026 06:00:00 +0000\n",
                b"Date: not a date\n",
                b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
                b"Content-Type: message/delivery-status\n",
                b"\n",
                b"--b\n",
                b"--b--\n",
                b"Final-Recipient: rfc822; a@b.example\n",
                b"Final-Recipient: rfc822;\n",
                b"Action: failed\n",
                b"Action: exploded\n",
                b"Status: 5.1.1\n",
                b"Diagnostic-Code: smtp; 550 5.1.1 no\n",
                b"<a@b.example>:\n",
                b"Hi. This is the qmail-send program at x.\n",
                b"was not delivered to:\n",
                b"\xff\xfe\x00",
            ]
        ),
        max_size=30,
    )
)
def test_any_mail_gives_events_a_skip_or_an_error(parts: list[bytes]) -> None:
    data = b"From: a@b.example\nTo: c@d.example\n" + b"".join(parts)
    for mail in decode_mails(data):
        assert mail.decoded.events or mail.decoded.errors or mail.skipped is not None
    decode_message(data)  # never raises


def test_replay_suppressions_come_from_the_same_read_of_a_mail_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``replay --suppressions`` takes its records from the one pass that reads the file, so
    bounce mails suppress as events do: each permanently bad recipient once, at once."""
    mbox = DSN / "bounces.mbox"
    assert main(["classify", "--format", "dsn", str(mbox)]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    bad = {
        a["recipient"].lower()
        for a in answers
        if a.get("category") in ("user_unknown", "mailbox_disabled", "domain_invalid")
    }
    assert bad, "the sample holds permanent failures"
    out = tmp_path / "suppressions.jsonl"
    args = ["replay", str(mbox), "--suppressions", str(out), "--progress", "never"]
    assert main([*args, "--output", "jsonl"]) == 0
    assert f"{len(bad)} suppression records" in capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["key"].lower() for r in records} == bad
    assert {r["value"]["reason"] for r in records} == {"hard_bounce"}
