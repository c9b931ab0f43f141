"""Pieces every input adapter shares: the draft an adapter returns, format-level errors, and
the parsers for timestamps and SMTP reply text that several formats need.

An adapter turns one source record into zero or more *drafts*: keyword arguments for
``DeliveryEvent`` plus a map from event fields back to the source's own field names, so that
a validation error can name the field the way the sender of the record knows it.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import accumulate
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from schemas.event import DeliveryEvent


def _fast_json() -> Callable[[str], Any]:
    # orjson parses about three times faster than the standard library; it is optional
    try:
        loads: Callable[[str], Any] = importlib.import_module("orjson").loads
    except ImportError:
        return json.loads
    return loads


_fast_loads = _fast_json()


#: Deepest nesting handed to the standard library's parser. It recurses once per level, so a
#: hostile text (``[`` a hundred thousand times) raises RecursionError, not JSONDecodeError,
#: and takes Python's stack near its limit (about 1000 frames) on the way. orjson refuses more
#: than 1024 levels without recursing in Python; only what it refuses reaches this check, so
#: a text between 512 and 1024 levels deep is read when it is otherwise valid. Delivery
#: events nest a handful of levels.
MAX_DEPTH = 512

# A JSON string, escapes included: its brackets do not nest anything.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class NestingError(ValueError):
    """JSON nested deeper than ``MAX_DEPTH``, refused before a recursive parser sees it."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether the brackets of a JSON text (outside its strings) nest beyond ``limit``.

    Linear and without recursion: about 0.3 s for 6 MB of small objects, less for long
    strings. The brackets of an unterminated string count, so an invalid text may be called
    too deep rather than invalid."""
    # no text can nest deeper than it has opening brackets, and counting them is nearly free
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def loads(text: str) -> Any:
    """Parse JSON, fast when orjson is installed, with the standard library's errors and
    leniency either way: a text orjson refuses is parsed again by ``json``, which either
    accepts it (NaN, huge integers) or raises the ``JSONDecodeError`` our messages quote.

    Raises ``NestingError`` (a ``ValueError``) rather than let the standard library recurse
    through a text nested deeper than ``MAX_DEPTH``."""
    if _fast_loads is not json.loads:
        try:
            return _fast_loads(text)
        except ValueError:
            pass  # parsed again below, for the standard library's leniency and messages
    if nested_deeper_than(text, MAX_DEPTH):
        raise NestingError
    return json.loads(text)


class Draft(NamedTuple):
    """Keyword arguments for one ``DeliveryEvent`` (or, with ``feedback``, one
    ``FeedbackEvent``) and where each came from in the source."""

    fields: dict[str, Any]
    origin: Mapping[str, str]  # event field (dotted) -> the source format's field name
    feedback: bool = False  # a complaint or other feedback report, not a delivery attempt


class FormatError(Exception):
    """A record that its format's own rules reject: missing or malformed source field."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


#: The result of converting one source record: drafts, or ``None`` when the record is neither
#: a delivery attempt nor feedback (an open, a reception ...) and is skipped.
Converted = list[Draft] | None


@dataclass(frozen=True, slots=True)
class InputFormat:
    """One input format, as the registry in ``delivery.adapters`` lists it.

    ``kind`` says how a message of it is read: ``json`` (an object, an array or
    newline-delimited objects; ``looks_like(record)`` and ``convert(record)``), ``text`` (line
    by line, with per-file state; ``looks_like(line)``, ``new_state(year, tz)`` and
    ``convert(line, state)``) or ``mail`` (one whole mail; ``looks_like(payload)`` and
    ``convert(payload)``).
    """

    name: str
    kind: Literal["json", "text", "mail"]
    summary: str  # a few words for --help: what writes it
    looks_like: Callable[[Any], bool]
    convert: Callable[..., Converted]
    new_state: Callable[[int | None, tzinfo], Any] | None = None


def feedback_draft(fields: dict[str, Any], origin: Mapping[str, str]) -> list[Draft]:
    """The drafts of one feedback record: one per complainer (``recipient`` may be a list)."""
    recipients = fields.get("recipient")
    if isinstance(recipients, list) and recipients:
        return [Draft({**fields, "recipient": r}, origin, True) for r in recipients]
    return [Draft(fields, origin, True)]


def feedback_type(value: object, default: str = "abuse") -> str:
    """A feedback type as RFC 5965 writes it (``abuse``, ``not-spam``), lower case."""
    text = opt_str(value)
    return text.strip().lower().replace("_", "-") if text and text.strip() else default


def show(value: object, limit: int = 80) -> str:
    """A short repr for error messages: enough to recognise the value, never a whole payload."""
    try:
        text = repr(value)
    except RecursionError:
        # orjson builds values up to 1024 levels deep; repr recurses once per level
        return f"<{type(value).__name__} nested too deep to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require(record: Mapping[str, Any], key: str, where: str = "") -> Any:
    """The value of a field the format always carries; its absence is a format error."""
    value = record.get(key)
    if value is None or value == "":
        raise FormatError(where + key, "missing required field")
    return value


def as_dict(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(field, f"expected a JSON object (got {show(value)})")
    return value


def parse_time(value: object, field: str) -> datetime:
    """A timezone-aware time from a unix timestamp (seconds, int or float, or digits) or an
    ISO 8601 / RFC 3339 string. Naive ISO strings are rejected: guessing their zone would
    shift every bucket by hours."""
    if isinstance(value, bool):
        raise FormatError(field, f"not a timestamp (got {show(value)})")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise FormatError(field, f"unix timestamp out of range (got {show(value)})") from None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text), field)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise FormatError(
                field, f"not a unix time or ISO 8601 timestamp (got {show(value)})"
            ) from None
        if parsed.tzinfo is None:
            raise FormatError(field, f"timestamp has no timezone (got {show(value)})")
        return parsed
    raise FormatError(field, f"not a timestamp (got {show(value)})")


# "smtp; 550 5.1.1 ...", "550-5.1.1 ...", "421 4.7.28 ...", "250 OK": an optional diagnostic
# type (RFC 3464 section 2.3.6), the reply code, then an optional enhanced code.
_REPLY = re.compile(
    r"^\s*(?:smtp\s*;\s*)?(?P<code>[2-5]\d\d)(?:[ -](?P<enh>[245]\.\d{1,3}\.\d{1,3})\b)?",
    re.IGNORECASE,
)
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_LEADING_ENHANCED = re.compile(r"^\s*(?:smtp\s*;\s*)?([245]\.\d{1,3}\.\d{1,3})\b", re.IGNORECASE)


def parse_reply(text: str) -> tuple[int | None, str | None]:
    """The reply code and enhanced code at the start of a reply or diagnostic text."""
    match = _REPLY.match(text)
    if match is not None:
        return int(match["code"]), match["enh"]
    # some ESPs (Mailgun) pass the reply text without its code: "5.1.1 The email account ..."
    leading = _LEADING_ENHANCED.match(text)
    return None, leading[1] if leading else None


def strip_diagnostic_type(text: str) -> str:
    """``smtp; 550 ...`` -> ``550 ...``: the RFC 3464 diagnostic-type prefix is not the reply."""
    head, sep, tail = text.partition(";")
    if sep and head.strip().lower() in {"smtp", "x-postfix", "x-unix"}:
        return tail.strip()
    return text


def first_enhanced(text: str | None) -> str | None:
    """The first RFC 3463 code in a free text such as PowerMTA's "5.1.1 (bad mailbox)"."""
    if not text:
        return None
    match = _ENHANCED.search(text)
    return match[1] if match else None


def pick_enhanced(explicit: str | None, from_text: str | None) -> str | None:
    """Prefer the source's own enhanced-code field, except when it is a generic X.0.0 and the
    receiver's reply text is more precise (SendGrid and PowerMTA often report 5.0.0)."""
    if explicit and not (explicit.endswith(".0.0") and from_text):
        return explicit
    return from_text or explicit


def smtp_code(value: int | None) -> int | None:
    """Drop codes outside RFC 5321's range: ESPs use 6xx for their own refusals (Mailgun 605
    "previously bounced"); the text still says why."""
    if value is not None and 200 <= value <= 599:
        return value
    return None


def address_of(value: object) -> str | None:
    """The bare address of ``"Shop" <news@shop.example>`` or ``news@shop.example``."""
    text = opt_str(value)
    if text is None or "<" not in text:
        return text
    inner = text[text.rfind("<") + 1 :].partition(">")[0].strip()
    return inner or None


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rpartition("@")[2].strip().strip(">").lower().rstrip(".")
    return domain or None


def host_without_port(address: str | None) -> str | None:
    """``10.0.0.1:53210`` -> ``10.0.0.1``; ``[2001:db8::1]:25`` -> ``2001:db8::1``."""
    if not address:
        return None
    if address.startswith("["):
        return address[1:].partition("]")[0] or None
    if address.count(":") == 1:
        return address.partition(":")[0] or None
    return address


def first_str(value: object) -> str | None:
    """A tag value that may be a string or a list of strings (SES tags, SendGrid category)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0] or None
    return None


def opt_str(value: object) -> str | None:
    """A string field that may be absent, empty or of another scalar type (ids as numbers)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def validation_reason(
    error: ValidationError, origin: Mapping[str, str], prefix: str
) -> tuple[str, str | None]:
    """A human reason and the first bad field, named as the source format names it."""
    parts: list[str] = []
    first: str | None = None
    for detail in error.errors(include_url=False):
        loc = ".".join(str(p) for p in detail["loc"])
        field = _source_field(loc, origin)
        if first is None:
            first = field
        text = f"{prefix}{field}: {detail['msg']}" if field else f"{prefix}{detail['msg']}"
        if detail["type"] != "missing":
            text += f" (got {show(detail['input'])})"
        parts.append(text)
    return "; ".join(parts), first


def _source_field(loc: str, origin: Mapping[str, str]) -> str:
    if loc in origin:
        return origin[loc]
    # a nested location such as reply.code may only be mapped by its parent, reply
    head = loc.partition(".")[0]
    return origin.get(head, loc)


def build(draft: Draft) -> DeliveryEvent:
    """Validate a draft; raises ``ValidationError`` for the caller to turn into an error."""
    return DeliveryEvent.model_validate(draft.fields)
