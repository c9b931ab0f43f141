"""Messages built to break the reader: deep nesting, broken UTF-8, huge fields, and whatever
an adapter did not foresee. Each must come back as an error entry naming the reason (the
worker dead-letters it) and never as an exception; ``bouncewatch classify`` writes an error
line for it and goes on."""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest

import delivery.adapters as adapters
from bouncewatch.commands import classify
from bouncewatch.commands.classify import classify_stream
from delivery.adapters import Decoded, StreamDecoder, decode_line, decode_message
from delivery.adapters.common import MAX_DEPTH, NestingError, loads, nested_deeper_than, show
from delivery.pipeline import EventReader

DEPTH = 100_000
TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"
TEN_MB = 10 * 1024 * 1024

NESTED: dict[str, bytes] = {
    "open brackets": b"[" * DEPTH,
    "closed brackets": b"[" * DEPTH + b"]" * DEPTH,
    "nested objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    # "event_time" sends it down the native fast path first
    "nested event_time": b'{"event_time":' * DEPTH + b"1" + b"}" * DEPTH,
    "deep value in an event": b'{"event_time":"2024-05-01T10:00:00Z","recipient":'
    + b"[" * DEPTH
    + b"]" * DEPTH
    + b"}",
}

GOOD_EVENT = {
    "event_time": "2024-05-01T10:00:00Z",
    "recipient": "someone@gmail.com",
    "status": "deferred",
    "reply": {"code": 421, "enhanced": "4.7.28", "text": "421-4.7.28 unusual rate"},
}
GOOD = json.dumps(GOOD_EVENT).encode()


def ten_mb_field(field: str) -> bytes:
    event: dict[str, Any] = json.loads(GOOD)
    if field == "reply.text":
        event["reply"]["text"] = "x" * TEN_MB
    else:
        event[field] = "x" * TEN_MB
    return json.dumps(event).encode()


def assert_unread(decoded: Decoded, reason: str) -> None:
    assert decoded.events == []
    assert [e.reason for e in decoded.errors] == [reason]


@pytest.mark.parametrize("fmt", ["auto", "bouncewatch", "kumomta", "ses"])
@pytest.mark.parametrize("name", sorted(NESTED))
def test_deep_nesting_is_an_error_not_a_crash(name: str, fmt: str) -> None:
    payload = NESTED[name]
    assert_unread(decode_message(payload, fmt), TOO_DEEP)
    assert_unread(decode_line(payload.decode(), fmt), TOO_DEEP)


def test_deep_nesting_inside_a_batch_costs_only_its_line() -> None:
    payload = GOOD + b"\n" + b'{"a":' * DEPTH + b"}" * DEPTH + b"\n" + GOOD
    decoded = decode_message(payload)
    assert len(decoded.events) == 2
    assert [(e.index, e.reason) for e in decoded.errors] == [(1, TOO_DEEP)]


def test_nesting_orjson_accepts_is_read_and_shown_briefly() -> None:
    # 1000 levels: orjson parses it (its limit is 1024) but repr() of it recurses too deep
    payload = b"[" + b"[" * 1000 + b"]" * 1000 + b"]"
    decoded = decode_message(payload)
    assert decoded.events == []
    [error] = decoded.errors
    assert error.reason == "expected a JSON object (got list <list nested too deep to show>)"
    assert show(orjson.loads("[" * 1000 + "]" * 1000)) == "<list nested too deep to show>"


def test_loads_refuses_deep_nesting_before_the_standard_library_recurses() -> None:
    with pytest.raises(NestingError, match=TOO_DEEP):
        loads("[" * DEPTH)
    # what orjson refuses for another reason still reaches the lenient standard library
    assert loads("[" * 100 + "NaN" + "]" * 100) is not None
    with pytest.raises(NestingError):
        loads("[" * (MAX_DEPTH + 1) + "NaN" + "]" * (MAX_DEPTH + 1))


def test_depth_check_skips_brackets_inside_strings() -> None:
    brackets = "[{" * DEPTH
    assert not nested_deeper_than(json.dumps({"text": brackets, "escaped": '\\"' + brackets}), 8)
    assert nested_deeper_than("[" * 9 + "]" * 9, 8)
    assert not nested_deeper_than("[" * 8 + "]" * 8 + "[]" * 100, 8)


@pytest.mark.parametrize("fmt", ["auto", "bouncewatch", "kumomta"])
def test_broken_utf8_names_the_byte(fmt: str) -> None:
    payload = GOOD.replace(b"someone", b"some\xff\xfeone")
    byte = payload.index(0xFF)
    decoded = decode_message(payload, fmt)
    assert decoded.events == []
    assert [e.reason for e in decoded.errors] == [
        f"payload is not UTF-8: byte {byte} (b'\\xff'): invalid start byte"
    ]


@pytest.mark.parametrize(
    ("field", "named"), [("recipient", "recipient"), ("reply.text", "reply.text")]
)
def test_ten_megabyte_field_is_refused_with_a_short_reason(field: str, named: str) -> None:
    payload = ten_mb_field(field)
    for decoded in (decode_message(payload), decode_line(payload.decode())):
        assert decoded.events == []
        [error] = decoded.errors
        assert error.field == named
        assert len(error.reason) < 300  # quotes the start of the value, not 10 MB of it


def test_ten_megabyte_text_line_is_refused_with_a_short_reason() -> None:
    decoded = decode_message(b"x" * TEN_MB)
    assert decoded.events == []
    assert len(decoded.errors[0].reason) < 300


class Unforeseen(Exception):
    """Stands for a bug an input finds: its text quotes the input, as such texts often do."""


def explode(*args: object, **kwargs: object) -> Any:
    raise Unforeseen("secret-payload-contents")


def test_unforeseen_adapter_exception_costs_only_its_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(adapters._JSON_CONVERTERS, "kumomta", explode)
    kumo = {"type": "Delivery", "recipient": "a@gmail.com", "timestamp": 1714557600}
    payload = json.dumps([GOOD_EVENT, kumo, GOOD_EVENT]).encode()
    decoded = decode_message(payload)
    assert len(decoded.events) == 2
    assert [(e.index, e.reason, e.format) for e in decoded.errors] == [
        (1, "kumomta: could not be read: Unforeseen", "kumomta")
    ]


@pytest.mark.parametrize("fmt", ["auto", "kumomta", "postfix"])
def test_unforeseen_exception_anywhere_becomes_an_error(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(adapters, "_json_text", explode)
    monkeypatch.setattr(StreamDecoder, "_feed", explode)
    expected_format = None if fmt == "auto" else fmt
    payloads = [b'{"a": 1}', b"not json"] if fmt == "auto" else [b'{"a": 1}']
    for decoded in (
        *(decode_message(payload, fmt) for payload in payloads),
        StreamDecoder(fmt).feed_line('{"a": 1}'),
    ):
        assert decoded.events == []
        assert [(e.reason, e.format) for e in decoded.errors] == [
            ("could not be read: Unforeseen", expected_format)
        ]


def test_reader_goes_on_after_a_hostile_message() -> None:
    reader = EventReader()
    assert reader.read(NESTED["nested objects"]).errors
    assert reader.read_line(NESTED["open brackets"].decode()).errors
    assert len(reader.read(GOOD).events) == 1
    assert len(reader.read_line(GOOD.decode()).events) == 1


def classify_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    out = io.StringIO()
    classify_stream([line + b"\n" for line in lines], out, EventReader())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_classify_writes_an_error_line_and_goes_on() -> None:
    hostile = [
        NESTED["open brackets"],
        NESTED["nested objects"],
        b'{"code":' * DEPTH,  # the plain reply form is tried first
        b'{"code": 550, "text": "\xff"}',
        ten_mb_field("recipient"),
        b'{"code": 550, "text": "' + b"x" * TEN_MB + b'"}',
    ]
    answers = classify_lines([*hostile, GOOD])
    assert [a["line"] for a in answers] == list(range(1, len(hostile) + 2))
    errors = [a["error"] for a in answers[:-1]]
    assert errors[:3] == [TOO_DEEP] * 3
    assert errors[3].startswith("line is not UTF-8")
    assert all(len(e) < 300 for e in errors)
    assert answers[-1]["outcome"] == "deferred"


def test_classify_survives_an_unforeseen_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    real = classify.classify_line

    def flaky(line: str, number: int, reader: EventReader, *, explain: bool = False) -> Any:
        if number == 1:
            explode()
        return real(line, number, reader, explain=explain)

    monkeypatch.setattr(classify, "classify_line", flaky)
    answers = classify_lines([GOOD, GOOD])
    assert answers[0] == {
        "line": 1,
        "error": "could not be read: Unforeseen",
        "field": None,
        "format": None,
    }
    assert answers[1]["outcome"] == "deferred"
