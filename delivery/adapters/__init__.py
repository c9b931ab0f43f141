"""Input adapters: turn what MTAs and ESPs emit into ``DeliveryEvent``s and ``FeedbackEvent``s.

One module per format; each documents its source and field mapping and declares its
``FORMAT`` (``common.InputFormat``). ``REGISTRY`` below lists them, once: the order of
detection, ``--format`` choices, the settings' validation and the help text all come from
it, so adding a format is one new module and one line there. A mail (``dsn``, ``arf``) is
one whole mail, read as bytes; "auto" recognises one by its RFC 5322 header block, which no
other format opens with, and reads a feedback report (RFC 5965) as ``arf`` and any other mail
as ``dsn``. This module picks the adapter, by the topic's configured format or by sniffing
each message, and handles batches: a Kafka message may hold one event, a JSON array of them,
newline-delimited JSON, or several lines of a text format (Postfix log, PowerMTA CSV with or
without its header).

Complaints and other feedback (an ARF report, a KumoMTA Feedback record, an SES Complaint,
a SendGrid spamreport ...) are no delivery attempts: they come out in ``Decoded.feedback``,
apart from ``events``, so that nothing about them costs the delivery events anything.

Nothing here raises on bad input: every problem becomes an ``EventError`` that names the
field, as the source format names it ("kumomta: response.code: ..."), and records that are
neither delivery attempts nor feedback (opens, receptions ...) are counted in ``skipped``. An
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
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from pydantic import TypeAdapter, ValidationError

from delivery.adapters import (
    arf,
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
    InputFormat,
    NestingError,
    loads,
    show,
    validation_reason,
)
from schemas.event import DeliveryEvent, FeedbackEvent

__all__ = [
    "FORMATS",
    "INPUT_FORMATS",
    "REGISTRY",
    "Decoded",
    "EventError",
    "StreamDecoder",
    "decode_line",
    "decode_mails",
    "decode_message",
    "format_help",
]

#: Every input format. Within a kind (JSON, text, mail), detection tries them in this order,
#: first match wins: the native event is the most specific test and the common case, and
#: PowerMTA's record-type prefix is more specific than Postfix's syslog line. The first mail
#: format reads any mail (bounces and feedback reports) under "auto".
REGISTRY: tuple[InputFormat, ...] = (
    native.FORMAT,
    kumomta.FORMAT,
    powermta.FORMAT,
    postfix.FORMAT,
    ses.FORMAT,
    sendgrid.FORMAT,
    mailgun.FORMAT,
    postmark.FORMAT,
    dsn.FORMAT,
    arf.FORMAT,
)
FORMATS: tuple[str, ...] = tuple(f.name for f in REGISTRY)
AUTO = "auto"
#: What a format setting or option may say: a format, or "auto" to detect each message.
INPUT_FORMATS: tuple[str, ...] = (AUTO, *FORMATS)
_BY_NAME: Mapping[str, InputFormat] = {f.name: f for f in REGISTRY}
_TEXT = tuple(f for f in REGISTRY if f.kind == "text")
_TEXT_FORMATS = frozenset(f.name for f in _TEXT)
#: Formats read a whole mail at a time (a file, or an mbox of many), not line by line.
MAIL_FORMATS = frozenset(f.name for f in REGISTRY if f.kind == "mail")


def reads_mails(fmt: str, head: bytes) -> bool:
    """Whether a file in ``fmt`` whose first bytes are ``head`` is read as mails (one, or an
    mbox of many) rather than line by line: a mail format, or ``auto`` and a mail header."""
    return fmt in MAIL_FORMATS or (fmt == "auto" and dsn.looks_like(head))


_AUTO_MAIL = next(f for f in REGISTRY if f.kind == "mail")


def format_help() -> str:
    """One line per choice of ``--format``, for help texts."""
    lines = [f"{AUTO}: detected per message or line"]
    lines.extend(f"{f.name}: {f.summary}" for f in REGISTRY)
    return "; ".join(lines)


@dataclass(frozen=True, slots=True)
class EventError:
    """One item of a message that could not be read."""

    index: int  # position of the item within the message (0 for a single event)
    reason: str  # human readable, names the field
    field: str | None  # dotted path of the bad field when known, as the format names it
    format: str | None  # the format it was read as, when known


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one message (or line) held: delivery events, feedback (complaints and the rest),
    errors, and how many records that are neither it skipped."""

    events: list[DeliveryEvent]
    errors: list[EventError]
    skipped: int = 0
    feedback: list[FeedbackEvent] = field(default_factory=list)


_Convert = Callable[[dict[str, Any]], Converted]

_JSON_CONVERTERS: Mapping[str, _Convert] = {f.name: f.convert for f in REGISTRY if f.kind == "json"}
_DETECTORS: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = tuple(
    (f.name, f.looks_like) for f in REGISTRY if f.kind == "json"
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

    __slots__ = ("errors", "events", "feedback", "skipped")

    def __init__(self) -> None:
        self.events: list[DeliveryEvent] = []
        self.errors: list[EventError] = []
        self.skipped = 0
        self.feedback: list[FeedbackEvent] = []

    def error(self, index: int, reason: str, field: str | None, fmt: str | None) -> None:
        self.errors.append(EventError(index, reason, field, fmt))

    def result(self) -> Decoded:
        return Decoded(self.events, self.errors, self.skipped, self.feedback)


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
            if draft.feedback:
                out.feedback.append(FeedbackEvent.model_validate(draft.fields))
            else:
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
        reader = _BY_NAME[fmt] if fmt in MAIL_FORMATS else _AUTO_MAIL
        name = reader.name
        if fmt == AUTO and b"feedback-report" in bytes(payload[:65536]).lower():
            name = arf.NAME  # read by the same reader, but its errors are the report's
        _run(lambda: reader.convert(bytes(payload)), name, 0, out)
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
    if fmt in MAIL_FORMATS:
        return True
    if fmt != AUTO:
        return False
    # a JSON payload is never a mail; lstrip copies, so only pay for it on leading blanks
    head = payload[:1] if payload[:1] not in b" \t\r\n" else payload.lstrip()[:1]
    return head not in (b"{", b"[") and _AUTO_MAIL.looks_like(payload)


@dataclass(frozen=True, slots=True)
class MailDecoded:
    """One mail of a file: its position (from 1), its events and errors, or why it is not a
    bounce (``skipped``)."""

    number: int
    decoded: Decoded
    skipped: str | None


def decode_mails(data: bytes) -> list[MailDecoded]:
    """Every mail of a file (one mail, or many in an mbox), each read as a bounce or, when it
    is one, a feedback report."""
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
            _emit(read.drafts, arf.NAME if _is_feedback(read.drafts) else dsn.NAME, 0, out)
        results.append(MailDecoded(number, out.result(), read.skipped))
    return results


def _is_feedback(drafts: Converted) -> bool:
    return bool(drafts) and drafts is not None and drafts[0].feedback


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
    """Reads a file line by line, keeping what later lines need (each text format's state:
    the PowerMTA CSV headers, the envelope sender of each Postfix queue id). In "auto" mode
    each line is sniffed: JSON (one object or array per line), else each text format of the
    registry in its order."""

    def __init__(
        self,
        fmt: str = AUTO,
        *,
        year: int | None = None,
        tz: tzinfo = UTC,
        powermta_header: tuple[str, ...] | None = None,
    ) -> None:
        self.fmt = fmt
        self._year = year
        self._tz = tz
        self._states: dict[str, Any] = {}
        if powermta_header is not None:
            self._state(powermta.FORMAT).header = powermta_header
        # in "auto" mode, the text format of the first recognised line sticks, so that the
        # other daemons' lines of a mail log are skipped rather than reported
        self._text_format: InputFormat | None = None

    def _state(self, fmt: InputFormat) -> Any:
        state = self._states.get(fmt.name)
        if state is None and fmt.new_state is not None:
            state = self._states[fmt.name] = fmt.new_state(self._year, self._tz)
        return state

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
        name = self.fmt
        if name != AUTO and name not in _BY_NAME:
            out.errors.extend(_unknown_format(name).errors)
            return
        line = line.rstrip("\r\n")
        stripped = line.lstrip()
        if not stripped:
            return
        fmt: InputFormat | None = _BY_NAME.get(name)
        if fmt is None:  # auto
            if stripped[0] in "{[":
                _json_text(stripped, AUTO, out, index, ndjson=False)
                return
            fmt = next((f for f in _TEXT if f.looks_like(line)), None)
            if fmt is not None:
                self._text_format = fmt
            elif self._text_format is not None:
                fmt = self._text_format
            else:
                known = ", ".join(f.name for f in _TEXT)
                out.error(
                    index,
                    f"unknown format: not JSON and not a line of any text format ({known}) "
                    f"(got {show(stripped, 60)})",
                    None,
                    None,
                )
                return
        if fmt.kind == "mail":
            out.error(
                index,
                f"{fmt.name}: a mail is read whole (one per message or file), not line by line",
                None,
                fmt.name,
            )
            return
        if fmt.kind == "text":
            state = self._state(fmt)
            convert = fmt.convert
            _run(lambda: convert(line, state), fmt.name, index, out)
            return
        if stripped[0] not in "{[":
            out.error(
                index,
                f"not JSON: expected an object or array (got {show(stripped, 40)})",
                None,
                fmt.name,
            )
            return
        _json_text(stripped, fmt.name, out, index, ndjson=False)
