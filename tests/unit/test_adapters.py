"""Input adapters: every format's documented samples, batches, detection, and bad input.

Samples live in tests/data/formats/ (see its README for the document each follows).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.adapters import (
    FORMATS,
    Decoded,
    EventError,
    StreamDecoder,
    decode_line,
    decode_message,
)
from delivery.adapters.postfix import Clock
from schemas.event import DeliveryEvent
from schemas.vocabulary import SourceStatus

DATA = Path(__file__).resolve().parent.parent / "data" / "formats"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def only_event(decoded: Decoded) -> DeliveryEvent:
    assert decoded.errors == []
    assert len(decoded.events) == 1
    return decoded.events[0]


def only_error(decoded: Decoded) -> EventError:
    assert decoded.events == []
    assert len(decoded.errors) == 1, decoded.errors
    return decoded.errors[0]


def summary(event: DeliveryEvent) -> dict[str, Any]:
    data = event.model_dump(exclude_none=True)
    reply = data.pop("reply")
    data.update({f"reply.{k}": v for k, v in reply.items() if v is not None})
    return data


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# (file, position of the event in the file's decoded events, expected subset of fields)
SAMPLES: list[tuple[str, int, dict[str, Any]]] = [
    (
        "bouncewatch/deferred.json",
        0,
        {
            "event_time": utc(2026, 11, 24, 6, 0, 5),
            "recipient": "ana.souza@gmail.com",
            "reply.code": 421,
            "reply.enhanced": "4.7.28",
            "status": SourceStatus.DEFERRED,
            "attempt": 2,
            "tenant": "shop",
            "source_format": "bouncewatch",
        },
    ),
    (
        "kumomta/delivery.json",
        0,
        {
            "event_time": utc(2026, 11, 24, 6, 0, 3),
            "recipient": "ana.souza@gmail.com",
            "sender": "bounces@mail.shop.example",
            "sending_domain": "mail.shop.example",
            "source_ip": "192.0.2.10",
            "pool": "marketing",
            "mx_host": "gmail-smtp-in.l.google.com",
            "reply.code": 250,
            "reply.enhanced": "2.0.0",
            "status": SourceStatus.DELIVERED,
            "message_id": "1d98076abbbc11ed940250ebf67f93bd",
            "tenant": "shop",
            "campaign": "black-friday",
            "source_format": "kumomta",
        },
    ),
    (
        "kumomta/transient_failure.json",
        0,
        {
            "reply.code": 421,
            "reply.enhanced": "4.7.28",
            "status": SourceStatus.DEFERRED,
            "attempt": 2,
            # meta is empty: tenant and campaign come from the queue name
            "tenant": "shop",
            "campaign": "black-friday",
        },
    ),
    (
        "kumomta/bounce.json",
        0,
        {
            "recipient": "old.customer@hotmail.com",
            "source_ip": "2001:db8::25",
            "mx_host": "hotmail-com.olc.protection.outlook.com",
            "reply.code": 550,
            "reply.enhanced": "5.5.0",
            "status": SourceStatus.BOUNCED,
        },
    ),
    (
        "kumomta/expiration.json",
        0,
        {"reply.code": 551, "reply.enhanced": "5.4.7", "status": SourceStatus.EXPIRED},
    ),
    (
        "powermta/acct.csv",
        0,
        {
            "event_time": utc(2026, 11, 24, 6, 0, 3),
            "recipient": "ana.souza@gmail.com",
            "sender": "bounces@mail.shop.example",
            "source_ip": "192.0.2.10",
            "pool": "marketing",
            "mx_host": "gmail-smtp-in.l.google.com",
            "reply.code": 250,
            "reply.enhanced": "2.0.0",
            "status": SourceStatus.DELIVERED,
            "campaign": "bf-2026",
            "source_format": "powermta",
        },
    ),
    (
        "powermta/acct.csv",
        1,
        {
            "recipient": "mei.chen@yahoo.com",
            "reply.code": 421,
            "reply.enhanced": "4.7.0",
            "status": SourceStatus.DEFERRED,
            "mx_host": "mta7.am0.yahoodns.net",
        },
    ),
    (
        "powermta/acct.csv",
        2,
        {"reply.code": 550, "reply.enhanced": "5.1.1", "status": SourceStatus.BOUNCED},
    ),
    (
        "powermta/acct.csv",
        3,
        {
            "event_time": utc(2026, 11, 24, 6, 0, 7),  # timeLogged as unix seconds
            "reply.enhanced": "4.4.7",
            "status": SourceStatus.EXPIRED,
            "pool": "mta-ip-11",  # no vmtaPool: the vmta
        },
    ),
    (
        "powermta/no_header.csv",
        0,
        {
            "event_time": datetime(2026, 11, 24, 6, 0, 3, tzinfo=timezone(timedelta(hours=1))),
            "recipient": "li.wei@outlook.com",
            "source_ip": "192.0.2.12",
            "pool": "transactional",
            "status": SourceStatus.DELIVERED,
        },
    ),
    (
        "postfix/mail.log",
        0,
        {
            "event_time": utc(2026, 11, 24, 6, 0, 1),
            "recipient": "ana.souza@gmail.com",
            "sender": "news@mail.shop.example",  # remembered from the qmgr line
            "mx_host": "gmail-smtp-in.l.google.com",
            "reply.code": 250,
            "status": SourceStatus.DELIVERED,
            "message_id": "4Yc0R81XZ2z9v",
            "source_format": "postfix",
        },
    ),
    (
        "postfix/mail.log",
        1,
        {"reply.code": 421, "reply.enhanced": "4.7.28", "status": SourceStatus.DEFERRED},
    ),
    (
        "postfix/mail.log",
        2,
        {
            "recipient": "old.customer@example.net",
            "mx_host": "mx.example.net",
            "reply.code": 550,
            "reply.enhanced": "5.1.1",
            "reply.text": "550 5.1.1 <old.customer@example.net>: Recipient address rejected: "
            "User unknown in virtual mailbox table",
            "status": SourceStatus.BOUNCED,
        },
    ),
    (
        "postfix/mail.log",
        3,
        {
            "reply.enhanced": "4.4.1",
            "reply.text": "connect to mx.unreachable.example[203.0.113.9]:25: Connection timed out",
            "pool": "postfix-pool2",
            "status": SourceStatus.DEFERRED,
        },
    ),
    (
        "postfix/mail.log",
        4,
        {
            "event_time": datetime(2026, 11, 24, 6, 0, 32, 481920, tzinfo=UTC),
            "reply.code": 250,
            "reply.enhanced": "2.6.0",
        },
    ),
    (
        "ses/bounce_permanent.json",
        0,
        {
            "event_time": datetime(2026, 11, 24, 6, 0, 6, 477000, tzinfo=UTC),
            "recipient": "old.customer@gmail.com",
            "sender": "news@mail.shop.example",  # display name dropped
            "sending_domain": "mail.shop.example",
            "reply.code": 550,
            "reply.enhanced": "5.1.1",
            "status": SourceStatus.BOUNCED,
            "message_id": "0102019a1b2c3d4e-aaaabbbb-cccc-dddd-eeee-ffff00001111-000000",
            "source_format": "ses",
        },
    ),
    (
        "ses/bounce_permanent.json",
        1,
        # status says 5.0.0; the receiver's reply is more precise
        {"recipient": "gone@yahoo.com", "reply.code": 554, "reply.enhanced": "5.7.9"},
    ),
    (
        "ses/suppressed_in_sns.json",
        0,
        {
            "recipient": "complainer@hotmail.com",
            "status": SourceStatus.SUPPRESSED,
            "tenant": "shop",
            "campaign": "black-friday",
        },
    ),
    (
        "ses/delivery.json",
        0,
        {
            "recipient": "li.wei@outlook.com",
            "source_ip": "54.240.0.1",
            "reply.code": 250,
            "reply.enhanced": "2.6.0",
            "status": SourceStatus.DELIVERED,
        },
    ),
    (
        "ses/delivery_delay.json",
        0,
        {
            "recipient": "mei.chen@yahoo.com",
            "reply.code": 421,
            "reply.enhanced": "4.7.0",
            "status": SourceStatus.DEFERRED,
        },
    ),
    (
        "sendgrid/events.json",
        0,
        {
            "event_time": utc(2026, 11, 24, 6, 0, 2),
            "recipient": "bruno.lima@gmail.com",
            "source_ip": "149.72.0.10",
            "pool": "marketing_pool",
            "reply.code": 421,
            "reply.enhanced": "4.7.28",
            "status": SourceStatus.DEFERRED,
            "attempt": 3,
            "tenant": "shop",
            "campaign": "black-friday",
            "source_format": "sendgrid",
        },
    ),
    (
        "sendgrid/events.json",
        1,
        {"reply.code": 250, "status": SourceStatus.DELIVERED, "campaign": "welcome"},
    ),
    (
        "sendgrid/events.json",
        2,
        {"reply.code": 550, "reply.enhanced": "5.1.1", "status": SourceStatus.BOUNCED},
    ),
    (
        "sendgrid/events.json",
        3,
        {"reply.code": 554, "reply.enhanced": "5.7.9", "status": SourceStatus.BOUNCED},
    ),
    (
        "sendgrid/events.json",
        4,
        {"reply.text": "Unsubscribed Address", "status": SourceStatus.SUPPRESSED},
    ),
    (
        "mailgun/delivered.json",
        0,
        {
            "event_time": datetime(2026, 11, 24, 6, 0, 3, 153125, tzinfo=UTC),
            "recipient": "ana.souza@gmail.com",
            "sender": "bounce@mg.shop.example",
            "source_ip": "198.61.254.17",
            "mx_host": "gmail-smtp-in.l.google.com",
            "reply.code": 250,
            "status": SourceStatus.DELIVERED,
            "message_id": "20261124055959.1.4A7D468E9BC18C5D@mg.shop.example",
            "tenant": "shop",
            "campaign": "black-friday",
            "source_format": "mailgun",
        },
    ),
    (
        "mailgun/failed_permanent.json",
        0,
        {"reply.code": 550, "reply.enhanced": "5.1.1", "status": SourceStatus.BOUNCED},
    ),
    (
        "mailgun/failed_temporary.json",
        0,
        {
            "reply.code": 421,
            "reply.enhanced": "4.7.0",
            "status": SourceStatus.DEFERRED,
            "attempt": 2,
            "campaign": "black-friday",
        },
    ),
    (
        "postmark/bounce_hard.json",
        0,
        {
            "event_time": datetime(
                2026, 11, 24, 6, 0, 6, 273539, tzinfo=timezone(timedelta(hours=-5))
            ),
            "recipient": "old.customer@gmail.com",
            "sender": "news@mail.shop.example",
            "pool": "broadcast",
            "reply.code": 550,
            "reply.enhanced": "5.1.1",
            "status": SourceStatus.BOUNCED,
            "tenant": "shop",
            "campaign": "black-friday",
            "source_format": "postmark",
        },
    ),
    (
        "postmark/bounce_transient.json",
        0,
        {
            "sender": "no-reply@mail.shop.example",
            "reply.code": 451,
            "reply.enhanced": "4.7.650",
            "status": SourceStatus.DEFERRED,
        },
    ),
    (
        "postmark/delivery.json",
        0,
        {
            "recipient": "ana.souza@gmail.com",
            "reply.code": 250,
            "status": SourceStatus.DELIVERED,
            "campaign": "onboarding",
        },
    ),
]


@pytest.mark.parametrize(("name", "position", "expected"), SAMPLES)
def test_documented_samples_map_to_events(
    name: str, position: int, expected: dict[str, Any]
) -> None:
    decoded = decode_message(sample(name))
    assert decoded.errors == []
    got = summary(decoded.events[position])
    assert {k: got.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    ("name", "fmt", "events", "skipped", "feedback"),
    [
        ("bouncewatch/deferred.json", "bouncewatch", 1, 0, 0),
        ("bouncewatch/batch.ndjson", "bouncewatch", 3, 0, 0),
        ("kumomta/delivery.json", "kumomta", 1, 0, 0),
        ("kumomta/reception.json", "kumomta", 0, 1, 0),
        ("kumomta/feedback.json", "kumomta", 0, 0, 1),
        ("powermta/acct.csv", "powermta", 4, 1, 0),
        ("powermta/no_header.csv", "powermta", 1, 0, 0),
        ("powermta/feedback.csv", "powermta", 1, 0, 2),
        ("postfix/mail.log", "postfix", 5, 7, 0),
        ("ses/bounce_permanent.json", "ses", 2, 0, 0),
        ("ses/suppressed_in_sns.json", "ses", 1, 0, 0),
        ("ses/complaint.json", "ses", 0, 0, 1),
        ("ses/complaint_in_sns.json", "ses", 0, 0, 1),
        ("sendgrid/events.json", "sendgrid", 5, 2, 0),
        ("sendgrid/spamreport.json", "sendgrid", 0, 0, 1),
        ("mailgun/opened.json", "mailgun", 0, 1, 0),
        ("mailgun/failed_temporary.json", "mailgun", 1, 0, 0),
        ("mailgun/complained.json", "mailgun", 0, 0, 1),
        ("postmark/spam_complaint.json", "postmark", 0, 0, 1),
        ("postmark/delivery.json", "postmark", 1, 0, 0),
        ("arf/yahoo_abuse.eml", "arf", 0, 0, 1),
        ("arf/microsoft_redacted.eml", "arf", 0, 0, 1),
        ("arf/not_spam.eml", "arf", 0, 0, 1),
    ],
)
def test_detection_agrees_with_configured_format(
    name: str, fmt: str, events: int, skipped: int, feedback: int
) -> None:
    auto = decode_message(sample(name))
    configured = decode_message(sample(name), fmt)
    for decoded in (auto, configured):
        assert decoded.errors == []
        assert len(decoded.events) == events
        assert decoded.skipped == skipped
        assert len(decoded.feedback) == feedback
        assert {e.source_format for e in decoded.events} <= {fmt}
        assert {f.source_format for f in decoded.feedback} <= {fmt}
    assert auto.events == configured.events
    assert auto.feedback == configured.feedback


def test_formats_are_the_registry_in_order() -> None:
    assert FORMATS == (
        "bouncewatch",
        "kumomta",
        "powermta",
        "postfix",
        "ses",
        "sendgrid",
        "mailgun",
        "postmark",
        "dsn",
        "arf",
    )


# --- batches ---------------------------------------------------------------------------


def native(recipient: str = "a@gmail.com", **extra: Any) -> dict[str, Any]:
    return {"event_time": "2026-11-24T06:00:00Z", "recipient": recipient, **extra}


def test_native_json_array_batch() -> None:
    batch = [native(f"user{i}@gmail.com") for i in range(100)]
    decoded = decode_message(json.dumps(batch).encode())
    assert decoded.errors == []
    assert [e.recipient for e in decoded.events] == [f"user{i}@gmail.com" for i in range(100)]


def test_bad_item_in_native_batch_spares_the_rest() -> None:
    batch = [native("a@gmail.com"), native("b@gmail.com", reply={"code": "abc"}), native()]
    decoded = decode_message(json.dumps(batch).encode())
    assert len(decoded.events) == 2
    error = decoded.errors[0]
    assert error.index == 1
    assert error.field == "reply.code"
    assert error.format == "bouncewatch"
    assert error.reason.startswith("reply.code: Input should be a valid integer")
    assert error.reason.endswith("(got 'abc')")


def test_ndjson_batch_of_kumomta_records_with_line_indexes() -> None:
    lines = [
        sample("kumomta/delivery.json").strip(),
        b"",
        sample("kumomta/reception.json").strip(),
        sample("kumomta/transient_failure.json").strip(),
        b'{"type": "Bounce", "recipient": "x@gmail.com"}',
    ]
    decoded = decode_message(b"\n".join(lines))
    assert [e.status for e in decoded.events] == [SourceStatus.DELIVERED, SourceStatus.DEFERRED]
    assert decoded.skipped == 1
    assert [(e.index, e.field) for e in decoded.errors] == [(4, "response")]


def test_mixed_formats_in_one_array_are_detected_per_item() -> None:
    kumo = json.loads(sample("kumomta/delivery.json"))
    postmark = json.loads(sample("postmark/delivery.json"))
    decoded = decode_message(json.dumps([native(), kumo, postmark]).encode())
    assert decoded.errors == []
    assert [e.source_format for e in decoded.events] == ["bouncewatch", "kumomta", "postmark"]


def test_powermta_message_with_header_uses_its_column_order() -> None:
    payload = (
        b"type,rcpt,timeLogged,dsnStatus,dsnDiag\n"
        b"t,mei.chen@yahoo.com,2026-11-24 06:00:04-0000,4.7.0 (other),smtp;421 4.7.0 [TSS04]\n"
    )
    event = only_event(decode_message(payload))
    assert event.recipient == "mei.chen@yahoo.com"
    assert event.reply.code == 421
    assert event.status is SourceStatus.DEFERRED


def test_stream_decoder_keeps_powermta_header_across_lines() -> None:
    decoder = StreamDecoder()
    assert decoder.feed_line("type,rcpt,timeLogged,dsnStatus\n") == Decoded([], [])
    decoded = decoder.feed_line("d,ana@gmail.com,2026-11-24 06:00:03-0000,2.0.0 (success)\n")
    assert only_event(decoded).recipient == "ana@gmail.com"
    # without the header, the same line does not fit the default columns
    error = only_error(decode_line("d,ana@gmail.com,2026-11-24 06:00:03-0000,2.0.0 (success)"))
    assert error.format == "powermta"
    assert "header" in error.reason


def test_stream_decoder_reads_a_mail_log_with_senders() -> None:
    decoder = StreamDecoder("postfix")
    events = []
    for line in sample("postfix/mail.log").decode().splitlines():
        decoded = decoder.feed_line(line)
        assert decoded.errors == []
        events.extend(decoded.events)
    assert [e.sender for e in events[:3]] == ["news@mail.shop.example"] * 3
    # a line read alone has no qmgr line before it
    line = sample("postfix/mail.log").decode().splitlines()[3]
    assert only_event(decode_line(line)).sender is None


def test_decode_line_reads_single_json_lines() -> None:
    assert only_event(decode_line(json.dumps(native()))).recipient == "a@gmail.com"
    assert decode_line("   \n") == Decoded([], [])


# --- Postfix timestamps ----------------------------------------------------------------

LINE = (
    "{stamp} mx1 postfix/smtp[2211]: 4Yc0R81XZ2z9v: to=<a@gmail.com>, relay=x[192.0.2.1]:25,"
    " delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 OK)"
)


def test_postfix_bsd_timestamp_takes_year_and_zone_from_parameters() -> None:
    tz = timezone(timedelta(hours=-3))
    decoded = decode_message(LINE.format(stamp="Mar  2 10:00:00").encode(), year=2025, tz=tz)
    assert only_event(decoded).event_time == datetime(2025, 3, 2, 10, tzinfo=tz)


def test_postfix_bsd_timestamp_in_the_future_belongs_to_last_year() -> None:
    clock = Clock(now=datetime(2027, 1, 1, 0, 5, tzinfo=UTC))
    assert clock.resolve("Dec", "31", "23:59:00") == utc(2026, 12, 31, 23, 59)
    assert clock.resolve("Jan", "1", "00:04:00") == utc(2027, 1, 1, 0, 4)


def test_postfix_rfc3339_timestamp_is_used_as_is() -> None:
    line = LINE.format(stamp="2026-11-24T06:00:00.5+01:00")
    expected = datetime(2026, 11, 24, 6, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1)))
    assert only_event(decode_line(line)).event_time == expected


def test_postfix_invalid_date_names_the_timestamp() -> None:
    error = only_error(decode_line(LINE.format(stamp="Feb 30 10:00:00"), "postfix"))
    assert error.field == "timestamp"
    assert error.reason.startswith("postfix: timestamp: not a valid date")


# --- malformed input -------------------------------------------------------------------


def kumo(**changes: Any) -> bytes:
    record = json.loads(sample("kumomta/delivery.json"))
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("payload", "fmt", "field", "reason_start"),
    [
        # not JSON / not text we know
        (b"\xff\xfe{}", "auto", None, "payload is not UTF-8: byte 0"),
        (b'{"event_time": ', "auto", None, "not valid JSON: Expecting value at line 1"),
        (b"hello world", "auto", None, "unknown format: not JSON"),
        (b"hello world", "kumomta", None, "not JSON: expected an object or array"),
        (b"", "auto", None, "empty message"),
        (b"[1]", "auto", None, "expected a JSON object (got int 1)"),
        (b'{"foo": 1}', "auto", None, "unknown format: no adapter recognises"),
        (b"{}", "nonesuch", None, "unknown format 'nonesuch'"),
        # native
        (json.dumps({"recipient": "a@gmail.com"}).encode(), "bouncewatch", "event_time",
         "event_time: Field required"),
        (json.dumps(native(event_time="2026-11-24T06:00:00")).encode(), "auto", "event_time",
         "event_time: Input should have timezone info"),
        (json.dumps(native(event_time="yesterday")).encode(), "auto", "event_time",
         "event_time: Input should be a valid datetime"),
        (json.dumps(native(recipient="nobody")).encode(), "auto", "recipient",
         "recipient: Value error, recipient has no valid domain"),
        (json.dumps(native(reply={"enhanced": "5.1"})).encode(), "auto", "reply.enhanced",
         "reply.enhanced: Value error, not an RFC 3463"),
        (json.dumps(native(status="lost")).encode(), "auto", "status", "status: Input should be"),
        (json.dumps(native(attempt=0)).encode(), "auto", "attempt", "attempt: Input should be"),
        # KumoMTA: the format's own field names
        (kumo(response={"code": "abc", "content": "x"}), "auto", "response.code",
         "kumomta: response.code: Input should be a valid integer"),
        (kumo(response={"code": 250, "enhanced_code": {"class": 2}}), "kumomta",
         "response.enhanced_code", "kumomta: response.enhanced_code: expected {class"),
        (kumo(timestamp="yesterday"), "kumomta", "timestamp",
         "kumomta: timestamp: not a unix time or ISO 8601 timestamp (got 'yesterday')"),
        (kumo(timestamp=None), "kumomta", "timestamp", "kumomta: timestamp: missing required"),
        (kumo(recipient="no-domain"), "kumomta", "recipient",
         "kumomta: recipient: Value error, recipient has no valid domain"),
        (kumo(num_attempts=-1), "kumomta", "num_attempts", "kumomta: num_attempts: Input should"),
        (kumo(response="250 OK"), "kumomta", "response", "kumomta: response: expected a JSON obj"),
        # SES
        (json.dumps({"Type": "Notification", "Message": "{nope"}).encode(), "auto", "Message",
         "ses: Message: SNS Message is not JSON"),
        (json.dumps({"notificationType": "Bounce", "mail": {}, "bounce": {
            "timestamp": "2026-11-24T06:00:00Z", "bouncedRecipients": [{}]}}).encode(),
         "ses", "bounce.bouncedRecipients[0].emailAddress",
         "ses: bounce.bouncedRecipients[0].emailAddress: missing required field"),
        (json.dumps({"eventType": "Delivery", "mail": {}, "delivery": {
            "timestamp": "2026-11-24T06:00:00", "recipients": ["a@gmail.com"]}}).encode(),
         "ses", "delivery.timestamp", "ses: delivery.timestamp: timestamp has no timezone"),
        # SendGrid
        (json.dumps([{"event": "deferred", "sg_event_id": "x", "email": "a@gmail.com",
                      "timestamp": 1795500000, "attempt": "many"}]).encode(), "auto", "attempt",
         "sendgrid: attempt: Input should be a valid integer"),
        (json.dumps([{"event": "delivered", "sg_event_id": "x", "timestamp": 1795500000}]).encode(),
         "auto", "email", "sendgrid: email: missing required field"),
        # Mailgun
        (json.dumps({"event-data": {"event": "failed", "severity": "bad", "recipient": "a@b.com",
                                    "timestamp": 1795500000}}).encode(), "auto",
         "event-data.severity", "mailgun: event-data.severity: expected 'temporary'"),
        (json.dumps({"event-data": {"event": "delivered", "recipient": "a@b.com",
                                    "timestamp": True}}).encode(), "auto",
         "event-data.timestamp", "mailgun: event-data.timestamp: not a timestamp"),
        # Postmark
        (json.dumps({"RecordType": "Delivery", "Recipient": "a@gmail.com"}).encode(), "auto",
         "DeliveredAt", "postmark: DeliveredAt: missing required field"),
        (json.dumps({"RecordType": "Bounce", "Type": "HardBounce", "Email": "a@gmail.com",
                     "BouncedAt": "2026-11-24T06:00:00Z", "Details": "x" * 5000}).encode(),
         "auto", "Details", "postmark: Details: String should have at most 4096 characters"),
        # PowerMTA and Postfix
        (b"d,only,three", "powermta", None, "powermta: record has 3 columns but the header has"),
        (b"type,rcpt,timeLogged\nd,a@gmail.com,24/11/2026", "auto", "timeLogged",
         "powermta: timeLogged: not a unix time or ISO 8601"),
        (b"Nov 24 06:00:00 mx1 postfix/smtp: garbage", "postfix", None,
         "postfix: not a Postfix syslog line"),
    ],
)  # fmt: skip
def test_bad_input_gives_an_error_naming_the_field(
    payload: bytes, fmt: str, field: str | None, reason_start: str
) -> None:
    error = only_error(decode_message(payload, fmt))
    # every payload here is one item on its last line; text lines are indexed by line number
    assert error.index == payload.count(b"\n")
    assert error.field == field
    assert error.reason.startswith(reason_start), error.reason


def test_error_carries_the_format_it_was_read_as() -> None:
    assert only_error(decode_message(kumo(timestamp="x"))).format == "kumomta"
    assert only_error(decode_message(b'{"foo": 1}')).format is None


def test_unknown_format_never_raises_in_stream_decoder() -> None:
    error = only_error(StreamDecoder("nonesuch").feed_line("{}"))
    assert error.reason.startswith("unknown format 'nonesuch'")


def test_leading_whitespace_is_accepted() -> None:
    payload = b"  \n" + json.dumps(native()).encode()
    assert only_event(decode_message(payload)).recipient == "a@gmail.com"


def test_mailgun_codes_outside_smtp_range_keep_only_the_text() -> None:
    payload = json.dumps(
        {
            "event-data": {
                "event": "failed",
                "severity": "permanent",
                "reason": "suppress-bounce",
                "recipient": "gone@gmail.com",
                "timestamp": 1795500000.5,
                "delivery-status": {
                    "code": 605,
                    "message": "Not delivering to previously bounced address",
                },
            }
        }
    ).encode()
    event = only_event(decode_message(payload))
    assert event.reply.code is None
    assert event.reply.text == "Not delivering to previously bounced address"
    assert event.status is SourceStatus.SUPPRESSED


# --- robustness ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    decoded = decode_message(payload)
    assert isinstance(decoded, Decoded)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=12,
)
keys_of_formats = st.sampled_from(
    [
        "event_time", "recipient", "type", "response", "timestamp", "notificationType", "mail",
        "bounce", "Type", "Message", "event", "sg_event_id", "event-data", "RecordType",
        "delivery-status", "Email", "BouncedAt", "email",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys_of_formats, json_values, max_size=6), st.sampled_from(FORMATS))
def test_arbitrary_objects_never_raise(record: dict[str, Any], fmt: str) -> None:
    payload = json.dumps(record).encode()
    for chosen in ("auto", fmt):
        decoded = decode_message(payload, chosen)
        assert len(decoded.events) + len(decoded.errors) + decoded.skipped >= 1
