"""Input adapters: turn what MTAs and ESPs emit into ``DeliveryEvent``s.

One module per format (``native``, ``kumomta``, ``powermta``, ``postfix``, ``ses``,
``sendgrid``, ``mailgun``, ``postmark``, ``dsn``); each documents its source and field
mapping. A ``dsn`` message is one whole bounce mail (RFC 3464 or an older bounce body), read
as bytes; "auto" recognises one by its RFC 5322 header block, which no other format opens
with. This
module picks the adapter, by the topic's configured format or by sniffing each message, and
handles batches: a Kafka message may hold one event, a JSON array of them, newline-delimited
JSON, or several lines of a text format (Postfix log, PowerMTA CSV with or without its header).

Nothing here raises on bad input: every problem becomes an ``EventError`` that names the
field, as the source format names it ("kumomta: response.code: ..."), and records that are
not delivery attempts (opens, receptions, complaints ...) are counted in ``skipped``. An
exception nobody foresaw (a bug, or input hostile enough to find one) becomes an error too:
"could not be read: <exception type>", for the item when an adapter raised it, else for the
whole message, whose events are then dropped so that its dead letter holds them all.

Index of an item: its position in a JSON array; the line number (from 0) in newline-delimited
JSON or text; 0 for a single event. Events drawn from one item (an SES bounce with three
recipients) share its index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from pydantic import TypeAdapter, ValidationError

from delivery.adapters import (
    dsn,
    kumomta,
    mailgun,
    native,
    postfix,
    postmark,
    powermta,
    sendgrid,
    ses,
)
from delivery.adapters.common import (
    Converted,
    FormatError,
    NestingError,
    loads,
    show,
    validation_reason,
)
from schemas.event import DeliveryEvent

__all__ = [
    "FORMATS",
    "INPUT_FORMATS",
    "Decoded",
    "EventError",
    "StreamDecoder",
    "decode_line",
    "decode_mails",
    "decode_message",
]

FORMATS: tuple[str, ...] = (
    "bouncewatch",
    "kumomta",
    "powermta",
    "postfix",
    "ses",
    "sendgrid",
    "mailgun",
    "postmark",
    "dsn",
)
AUTO = "auto"
#: What a format setting or option may say: a format, or "auto" to detect each message.
INPUT_FORMATS: tuple[str, ...] = (AUTO, *FORMATS)
_TEXT_FORMATS = frozenset({"powermta", "postfix"})


@dataclass(frozen=True, slots=True)
class EventError:
    """One item of a message that could not be read."""

    index: int  # position of the item within the message (0 for a single event)
    reason: str  # human readable, names the field
    field: str | None  # dotted path of the bad field when known, as the format names it
    format: str | None  # the format it was read as, when known


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one message (or line) held: events, errors, and how many non-attempts it skipped."""

    events: list[DeliveryEvent]
    errors: list[EventError]
    skipped: int = 0


_Convert = Callable[[dict[str, Any]], Converted]

_JSON_CONVERTERS: Mapping[str, _Convert] = {
    native.NAME: native.convert,
    kumomta.NAME: kumomta.convert,
    ses.NAME: ses.convert,
    sendgrid.NAME: sendgrid.convert,
    mailgun.NAME: mailgun.convert,
    postmark.NAME: postmark.convert,
}
# First match wins; the native event is the most specific test and the common case.
_DETECTORS: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = (
    (native.NAME, native.looks_like),
    (kumomta.NAME, kumomta.looks_like),
    (ses.NAME, ses.looks_like),
    (sendgrid.NAME, sendgrid.looks_like),
    (mailgun.NAME, mailgun.looks_like),
    (postmark.NAME, postmark.looks_like),
)

_NATIVE_BATCH: TypeAdapter[list[DeliveryEvent]] = TypeAdapter(list[DeliveryEvent])


def detect(record: Mapping[str, Any]) -> str | None:
    """The format of one JSON object, from its keys; ``None`` when no adapter knows it."""
    for name, looks_like in _DETECTORS:
        if looks_like(record):
            return name
    return None


class _Out:
    """Accumulates one decode call's results; cheaper than building Decoded piecemeal."""

    __slots__ = ("errors", "events", "skipped")

    def __init__(self) -> None:
        self.events: list[DeliveryEvent] = []
        self.errors: list[EventError] = []
        self.skipped = 0

    def error(self, index: int, reason: str, field: str | None, fmt: str | None) -> None:
        self.errors.append(EventError(index, reason, field, fmt))

    def result(self) -> Decoded:
        return Decoded(self.events, self.errors, self.skipped)


def _unknown_format(fmt: str) -> Decoded:
    return Decoded(
        [],
        [
            EventError(
                0,
                f"unknown format {fmt!r}; expected 'auto' or one of {', '.join(FORMATS)}",
                None,
                None,
            )
        ],
    )


def _emit(converted: Converted, name: str, index: int, out: _Out) -> None:
    if converted is None:
        out.skipped += 1
        return
    prefix = "" if name == native.NAME else name + ": "
    for draft in converted:
        try:
            out.events.append(DeliveryEvent.model_validate(draft.fields))
        except ValidationError as exc:
            reason, bad = validation_reason(exc, draft.origin, prefix)
            out.error(index, reason, bad, name)


def _run(convert: Callable[[], Converted], name: str, index: int, out: _Out) -> None:
    try:
        converted = convert()
    except FormatError as exc:
        where = f"{exc.field}: " if exc.field else ""
        out.error(index, f"{name}: {where}{exc.reason}", exc.field, name)
        return
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        # a shape the adapter did not foresee; report it rather than lose the batch
        out.error(index, f"{name}: malformed record: {type(exc).__name__}: {exc}", None, name)
        return
    except Exception as exc:
        # anything else is a bug the record found; only the type, as the text may quote it
        out.error(index, _unreadable(exc, name), None, name)
        return
    _emit(converted, name, index, out)


def _unreadable(exc: Exception, name: str | None = None) -> str:
    prefix = f"{name}: " if name else ""
    return f"{prefix}could not be read: {type(exc).__name__}"


def _json_item(item: object, fmt: str, index: int, out: _Out) -> None:
    if not isinstance(item, dict):
        out.error(
            index,
            f"expected a JSON object (got {type(item).__name__} {show(item, 40)})",
            None,
            None if fmt == AUTO else fmt,
        )
        return
    name = detect(item) if fmt == AUTO else fmt
    if name is None:
        keys = ", ".join(sorted(item)[:8])
        out.error(
            index,
            f"unknown format: no adapter recognises a JSON object with keys [{keys}]",
            None,
            None,
        )
        return
    convert = _JSON_CONVERTERS[name]
    _run(lambda: convert(item), name, index, out)


def _json_text(text: str, fmt: str, out: _Out, index: int = 0, ndjson: bool = True) -> None:
    """One JSON value (object or array), or newline-delimited JSON when ``ndjson``."""
    # JSON strings cannot hold a raw newline, so "}\n{" is never inside one valid value
    if ndjson and ("}\n{" in text or "}\r\n{" in text):
        _ndjson(text, fmt, out, index)
        return
    try:
        value = loads(text)
    except NestingError as exc:
        out.error(index, str(exc), None, None if fmt == AUTO else fmt)
        return
    except json.JSONDecodeError as exc:
        if ndjson and exc.msg == "Extra data":
            _ndjson(text, fmt, out, index)
            return
        out.error(
            index,
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            None,
            None if fmt == AUTO else fmt,
        )
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _json_item(item, fmt, index + i, out)
    else:
        _json_item(value, fmt, index, out)


def _ndjson(text: str, fmt: str, out: _Out, index: int) -> None:
    native_ok = fmt in (AUTO, native.NAME)
    for lineno, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        if native_ok and '"event_time"' in line:
            try:
                out.events.append(DeliveryEvent.model_validate_json(line))
                continue
            except ValidationError:
                pass  # the general path below reports the error or reads another format
        _json_text(line, fmt, out, index + lineno, ndjson=False)


def decode_message(
    payload: bytes, fmt: str = AUTO, *, year: int | None = None, tz: tzinfo = UTC
) -> Decoded:
    """Decode one Kafka message: a single event or a batch, in ``fmt`` or detected.

    ``year`` and ``tz`` complete BSD syslog timestamps of Postfix lines (see ``postfix``).
    Never raises on bad input.
    """
    try:
        return _decode_message(payload, fmt, year, tz)
    except Exception as exc:
        # One message must not stop the worker, whatever it holds; the partial result is
        # dropped, so that its dead letter holds every event and none is counted twice.
        return Decoded([], [EventError(0, _unreadable(exc), None, None if fmt == AUTO else fmt)])


def _decode_message(payload: bytes, fmt: str, year: int | None, tz: tzinfo) -> Decoded:
    if fmt != AUTO and fmt not in FORMATS:
        return _unknown_format(fmt)
    if fmt in (AUTO, native.NAME):
        fast = _native_fast_path(payload, fmt)
        if fast is not None:
            return fast
    out = _Out()
    if _is_mail(payload, fmt):
        # a mail is bytes in any charset its parts declare: no UTF-8 test of the whole
        _run(lambda: dsn.convert_mail(bytes(payload)), dsn.NAME, 0, out)
        return out.result()
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        out.error(
            0,
            f"payload is not UTF-8: byte {exc.start} ({exc.object[exc.start : exc.start + 1]!r}): "
            f"{exc.reason}",
            None,
            None if fmt == AUTO else fmt,
        )
        return out.result()
    except TypeError:
        out.error(0, f"payload must be bytes (got {type(payload).__name__})", None, None)
        return out.result()
    stripped = text.lstrip()
    if not stripped:
        out.error(0, "empty message", None, None if fmt == AUTO else fmt)
        return out.result()
    if fmt in _TEXT_FORMATS or (fmt == AUTO and stripped[0] not in "{["):
        decoder = StreamDecoder(fmt, year=year, tz=tz)
        for lineno, line in enumerate(text.splitlines()):
            if line.strip():
                decoder._feed(line, out, lineno)
        return out.result()
    if stripped[0] not in "{[":
        out.error(0, f"not JSON: expected an object or array (got {show(stripped, 40)})", None, fmt)
        return out.result()
    _json_text(text, fmt, out)
    return out.result()


def _is_mail(payload: bytes, fmt: str) -> bool:
    if not isinstance(payload, bytes | bytearray):
        return False
    if fmt == dsn.NAME:
        return True
    if fmt != AUTO:
        return False
    # a JSON payload is never a mail; lstrip copies, so only pay for it on leading blanks
    head = payload[:1] if payload[:1] not in b" \t\r\n" else payload.lstrip()[:1]
    return head not in (b"{", b"[") and dsn.looks_like(payload)


@dataclass(frozen=True, slots=True)
class MailDecoded:
    """One mail of a file: its position (from 1), its events and errors, or why it is not a
    bounce (``skipped``)."""

    number: int
    decoded: Decoded
    skipped: str | None


def decode_mails(data: bytes) -> list[MailDecoded]:
    """Every mail of a file (one mail, or many in an mbox), each read as a bounce."""
    results = []
    for number, mail in enumerate(dsn.split_mbox(data), start=1):
        out = _Out()
        try:
            read: dsn.MailRead | FormatError = dsn.read_mail(mail)
        except FormatError as exc:
            read = exc
        except Exception as exc:
            # one mail that finds a bug must not end the file; only the type, as in _run
            out.error(0, _unreadable(exc, dsn.NAME), None, dsn.NAME)
            results.append(MailDecoded(number, out.result(), None))
            continue
        if isinstance(read, FormatError):
            where = f"{read.field}: " if read.field else ""
            out.error(0, f"{dsn.NAME}: {where}{read.reason}", read.field, dsn.NAME)
            results.append(MailDecoded(number, out.result(), None))
            continue
        if read.skipped is None:
            _emit(read.drafts, dsn.NAME, 0, out)
        results.append(MailDecoded(number, out.result(), read.skipped))
    return results


def _native_fast_path(payload: bytes, fmt: str) -> Decoded | None:
    """Validate bouncewatch events straight from JSON bytes, without building dicts first.

    Only a guess in "auto" mode (the bytes mention "event_time"); any failure falls back to
    the general path, which also produces the per-item errors."""
    if not isinstance(payload, bytes | bytearray):
        return None
    # lstrip copies the whole payload; only pay for it when there is leading whitespace
    head = payload[:1] if payload[:1] not in b" \t\r\n" else payload.lstrip()[:1]
    if fmt == AUTO and b'"event_time"' not in payload:
        return None
    try:
        if head == b"{":
            return Decoded([DeliveryEvent.model_validate_json(payload)], [])
        if head == b"[":
            return Decoded(_NATIVE_BATCH.validate_json(payload), [])
    except ValidationError:
        return None
    return None


def decode_line(
    line: str, fmt: str = AUTO, *, year: int | None = None, tz: tzinfo = UTC
) -> Decoded:
    """Decode one line of a file with no memory of earlier lines (PowerMTA records are read
    with the default header). Use ``StreamDecoder`` to read a file line by line."""
    return StreamDecoder(fmt, year=year, tz=tz).feed_line(line)


class StreamDecoder:
    """Reads a file line by line, keeping what later lines need: the PowerMTA CSV header and
    the envelope sender of each Postfix queue id. In "auto" mode each line is sniffed: JSON
    (one object or array per line), a PowerMTA header or record, or a Postfix log line."""

    def __init__(
        self,
        fmt: str = AUTO,
        *,
        year: int | None = None,
        tz: tzinfo = UTC,
        powermta_header: tuple[str, ...] | None = None,
    ) -> None:
        self.fmt = fmt
        self.clock = postfix.Clock(year, tz)
        self.header: tuple[str, ...] = powermta_header or powermta.DEFAULT_HEADER
        self._senders: dict[str, str] = {}
        # in "auto" mode, the text format of the first recognised line sticks, so that the
        # other daemons' lines of a mail log are skipped rather than reported
        self._text_format: str | None = None

    def feed_line(self, line: str) -> Decoded:
        """The events of one line. Never raises on bad input (see ``decode_message``)."""
        out = _Out()
        try:
            self._feed(line, out, 0)
        except Exception as exc:
            fmt = None if self.fmt == AUTO else self.fmt
            return Decoded([], [EventError(0, _unreadable(exc), None, fmt)])
        return out.result()

    def _feed(self, line: str, out: _Out, index: int) -> None:
        fmt = self.fmt
        if fmt != AUTO and fmt not in FORMATS:
            out.errors.extend(_unknown_format(fmt).errors)
            return
        line = line.rstrip("\r\n")
        stripped = line.lstrip()
        if not stripped:
            return
        if fmt == AUTO:
            if stripped[0] in "{[":
                _json_text(stripped, AUTO, out, index, ndjson=False)
                return
            if powermta.looks_like(line):
                fmt = self._text_format = powermta.NAME
            elif postfix.looks_like(line):
                fmt = self._text_format = postfix.NAME
            elif self._text_format is not None:
                fmt = self._text_format
            else:
                out.error(
                    index,
                    "unknown format: not JSON, not a PowerMTA CSV record and not a Postfix "
                    f"log line (got {show(stripped, 60)})",
                    None,
                    None,
                )
                return
        if fmt == dsn.NAME:
            out.error(
                index,
                "dsn: a bounce mail is read whole (one per message or file), not line by line",
                None,
                fmt,
            )
            return
        if fmt == powermta.NAME:
            if powermta.is_header(line):
                self.header = powermta.parse_header(line)
                return
            header = self.header
            _run(lambda: powermta.convert_line(line, header), fmt, index, out)
        elif fmt == postfix.NAME:
            _run(lambda: postfix.convert_line(line, self.clock, self._senders), fmt, index, out)
        else:
            if stripped[0] not in "{[":
                out.error(
                    index,
                    f"not JSON: expected an object or array (got {show(stripped, 40)})",
                    None,
                    fmt,
                )
                return
            _json_text(stripped, fmt, out, index, ndjson=False)
