"""Complaints and other feedback from every source: the samples in tests/data/formats/ (each
built from its vendor's documentation, see the README there) read into feedback events."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bouncewatch.cli import main
from bouncewatch.commands.classify import classify_stream
from delivery.adapters import StreamDecoder, decode_mails, decode_message
from delivery.pipeline import EventReader

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "formats"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# (sample, position, expected fields): the complainer, the type, and what the source carries
# of the original message.
EXPECTED: list[tuple[str, int, dict[str, Any]]] = [
    (
        "arf/yahoo_abuse.eml",
        0,
        {
            "recipient": "annoyed.reader@yahoo.com",
            "feedback_type": "abuse",
            "event_time": "2026-11-24T08:15:00+00:00",  # the report's Date
            "sent_at": "2026-11-24T06:02:11+00:00",  # Arrival-Date
            "sender": "news@news.shop.example",  # the original's From
            "sending_domain": "news.shop.example",
            "source_ip": "192.0.2.14",
            "campaign": "black-friday",
            "tenant": "shop",
            "message_id": "<bf2026.8812.a71c@news.shop.example>",
            "reporter": "Yahoo!-Mail-Feedback/2.0",
        },
    ),
    (
        # JMRP redacts the recipient: the provider comes from the report's From
        "arf/microsoft_redacted.eml",
        0,
        {
            "recipient": "hotmail.com",
            "sending_domain": "billing.shop.example",
            "campaign": "invoices",  # Feedback-ID campaign:customer:type:sender
            "tenant": "shop",
            "source_ip": "192.0.2.15",
        },
    ),
    ("arf/not_spam.eml", 0, {"feedback_type": "not-spam", "recipient": "happy.reader@comcast.net"}),
    (
        "kumomta/feedback.json",
        0,
        {
            "recipient": "another.reader@yahoo.com",  # from the supplemental trace header
            "event_time": "2026-11-24T08:15:00+00:00",
            "sent_at": "2026-11-24T06:02:11+00:00",
            "sending_domain": "news.shop.example",
            "source_ip": "192.0.2.14",
            "tenant": "shop",
            "campaign": "black-friday",
        },
    ),
    (
        "powermta/feedback.csv",
        0,
        {
            "recipient": "reader@aol.com",
            "feedback_type": "abuse",
            "event_time": "2026-11-24T08:30:00+00:00",
            "sent_at": "2026-11-24T06:02:00+00:00",
            "source_ip": "192.0.2.16",
            "campaign": "black-friday",
            "message_id": "<bf2026.8814.b21d@news.shop.example>",
        },
    ),
    (
        "powermta/feedback.csv",
        1,
        # no rcpt: the reporting MTA names the provider (Yahoo's MX for AOL)
        {"feedback_type": "opt-out", "recipient": "mx-aol.mail.gm0.yahoodns.net"},
    ),
    (
        "ses/complaint.json",
        0,
        {
            "recipient": "annoyed@yahoo.com",
            "feedback_type": "abuse",
            "event_time": "2026-11-24T06:10:00+00:00",
            "sending_domain": "mail.shop.example",
        },
    ),
    (
        "ses/complaint_in_sns.json",
        0,
        {
            "recipient": "moved@hotmail.com",
            "feedback_type": "not-spam",
            "source_ip": "192.0.2.19",
            "campaign": "black-friday",
        },
    ),
    (
        "sendgrid/spamreport.json",
        0,
        {
            "recipient": "annoyed@gmail.com",
            "feedback_type": "abuse",
            "source_ip": "192.0.2.17",
            "campaign": "black-friday",
            "tenant": "shop",
        },
    ),
    (
        "mailgun/complained.json",
        0,
        {
            "recipient": "annoyed@outlook.com",
            "sender": "news@mail.shop.example",  # the original From header
            "source_ip": "192.0.2.18",
            "campaign": "black-friday",
            "tenant": "shop",
        },
    ),
    (
        "postmark/spam_complaint.json",
        0,
        {
            "recipient": "annoyed@yahoo.com",
            "event_time": "2026-11-24T07:00:00+00:00",
            "sending_domain": "mail.shop.example",
            "campaign": "black-friday",
        },
    ),
]


@pytest.mark.parametrize(("name", "position", "expected"), EXPECTED)
def test_documented_samples_map_to_feedback_events(
    name: str, position: int, expected: dict[str, Any]
) -> None:
    decoded = decode_message(sample(name))
    assert decoded.errors == []
    got = decoded.feedback[position].model_dump(mode="json")
    got = {k: v.replace("Z", "+00:00") if isinstance(v, str) else v for k, v in got.items()}
    assert {k: got.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("arf/yahoo_abuse.eml", True),
        ("arf/not_spam.eml", False),
        ("ses/complaint_in_sns.json", False),
        ("sendgrid/spamreport.json", True),
    ],
)
def test_not_spam_and_opt_out_are_no_complaints(name: str, complaint: bool) -> None:
    (event,) = decode_message(sample(name)).feedback
    assert event.is_complaint is complaint


def test_opt_out_through_a_feedback_loop_is_no_complaint() -> None:
    decoder = StreamDecoder("powermta")
    feedback = []
    for line in sample("powermta/feedback.csv").decode().splitlines():
        feedback.extend(decoder.feed_line(line).feedback)
    assert [f.is_complaint for f in feedback] == [True, False]


def test_an_unreadable_report_is_an_error_with_its_reason() -> None:
    for fmt in ("auto", "arf", "dsn"):
        decoded = decode_message(sample("arf/unreadable.eml"), fmt)
        assert decoded.feedback == [] and decoded.events == []
        (error,) = decoded.errors
        assert "Feedback-Type: missing required field" in error.reason
        assert error.field == "Feedback-Type"


def test_arf_format_refuses_a_mail_that_is_no_report() -> None:
    (error,) = decode_message(sample("dsn/postfix_two_recipients.eml"), "arf").errors
    assert error.format == "arf" and "not an RFC 5965 feedback report" in error.reason


def test_a_bounce_mailbox_with_reports_in_it() -> None:
    """An mbox of a bounce and a report: the bounce's attempts and the report's complaint."""
    mbox = (
        b"From MAILER-DAEMON Tue Nov 24 06:00:00 2026\n"
        + sample("dsn/postfix_two_recipients.eml")
        + b"\nFrom feedback@arf.mail.yahoo.com Tue Nov 24 08:15:00 2026\n"
        + sample("arf/yahoo_abuse.eml")
    )
    first, second = decode_mails(mbox)
    assert len(first.decoded.events) == 2 and first.decoded.feedback == []
    assert second.decoded.events == [] and len(second.decoded.feedback) == 1
    assert second.skipped is None


def test_auto_detection_with_complaints_mixed_into_the_topic() -> None:
    """One topic: delivery events and every kind of feedback record, each message detected."""
    messages = [
        sample("kumomta/delivery.json"),
        sample("kumomta/feedback.json"),
        sample("sendgrid/events.json"),
        sample("sendgrid/spamreport.json"),
        sample("mailgun/complained.json"),
        sample("postmark/spam_complaint.json"),
        sample("ses/complaint_in_sns.json"),
        sample("arf/yahoo_abuse.eml"),
        sample("dsn/postfix_two_recipients.eml"),
        sample("powermta/feedback.csv"),
    ]
    events = feedback = 0
    for payload in messages:
        decoded = decode_message(payload)
        assert decoded.errors == [], payload[:60]
        events += len(decoded.events)
        feedback += len(decoded.feedback)
    assert (events, feedback) == (1 + 5 + 2 + 1, 8)
    # newline-delimited JSON of both kinds in one message
    mixed = (
        json.dumps(json.loads(sample("kumomta/delivery.json")))
        + "\n"
        + json.dumps(json.loads(sample("kumomta/feedback.json")))
    ).encode()
    decoded = decode_message(mixed)
    assert (len(decoded.events), len(decoded.feedback), decoded.errors) == (1, 1, [])


def test_classify_prints_feedback_events_with_their_fields() -> None:
    line = json.dumps(json.loads(sample("sendgrid/spamreport.json")))
    out = io.StringIO()
    classify_stream([line + "\n"], out, EventReader())
    (answer,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert answer["line"] == 1
    assert answer["feedback_type"] == "abuse" and answer["complaint"] is True
    assert answer["isp"] == "gmail"
    assert (answer["source_ip"], answer["campaign"]) == ("192.0.2.17", "black-friday")


def test_classify_reads_a_report_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", str(SAMPLES / "arf" / "microsoft_redacted.eml")]) == 0
    (answer,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert answer["mail"] == 1
    assert (answer["isp"], answer["complaint"], answer["format"]) == ("microsoft", True, "arf")
    assert answer["sending_domain"] == "billing.shop.example"


def test_the_benchmark_complaint_records_are_each_one_complaint() -> None:
    """scripts/bench_stream.py --complaints mixes these in: every source, each readable."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from bench import traffic

    events = traffic.events(1200)
    records = traffic.complaints(events, 0.01)
    assert len(records) == 12
    formats = []
    for payload in records:
        decoded = decode_message(payload)
        assert decoded.errors == [] and decoded.events == []
        (event,) = decoded.feedback
        assert event.is_complaint
        formats.append(event.source_format)
    assert sorted(set(formats)) == ["arf", "kumomta", "mailgun", "postmark", "sendgrid", "ses"]
    mixed = traffic.interleave(traffic.batches(events, 100), records)
    assert len(mixed) == 24 and mixed[1] == records[0] and mixed[-1] == records[-1]


@pytest.mark.parametrize("command", ["replay", "classify"])
def test_format_help_comes_from_the_registry(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from delivery.adapters import REGISTRY

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fmt in REGISTRY:
        assert f"{fmt.name}: {' '.join(fmt.summary.split())}" in text, fmt.name
