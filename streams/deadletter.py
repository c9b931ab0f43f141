"""Dead-letter records: the original message bytes, untouched, with the reason in headers.

The value is kept byte for byte so an operator can fix the producer and re-publish the
dead-lettered messages as they were. Headers say why and where each came from. A batch
message with some bad items is dead-lettered whole, with the bad items' indexes, while its
good items are counted; the header ``bouncewatch-counted`` says how many, so a re-publish
can be judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from delivery.adapters import EventError

#: Headers are bounded: Kafka messages have a size limit and a reason is for people.
MAX_REASON_BYTES = 2048


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(
    *,
    key: bytes | None,
    value: bytes,
    errors: Sequence[EventError],
    counted: int,
    topic: str,
    partition: int,
    offset: int,
) -> DeadLetter:
    reasons = "; ".join(
        f"[{error.index}] {error.reason}" if len(errors) > 1 or error.index else error.reason
        for error in errors
    )
    fields = ",".join(sorted({error.field for error in errors if error.field}))
    formats = ",".join(sorted({error.format for error in errors if error.format}))
    headers = [
        ("bouncewatch-error", _header(reasons, MAX_REASON_BYTES)),
        ("bouncewatch-error-fields", _header(fields, MAX_REASON_BYTES)),
        ("bouncewatch-format", _header(formats, MAX_REASON_BYTES)),
        ("bouncewatch-bad-items", ",".join(str(e.index) for e in errors).encode()),
        ("bouncewatch-counted", str(counted).encode()),
        ("bouncewatch-source", f"{topic}/{partition}/{offset}".encode()),
    ]
    return DeadLetter(key=key, value=value, headers=headers)


def _header(text: str, limit: int) -> bytes:
    """``text`` as a UTF-8 header of at most ``limit`` bytes that decodes as UTF-8.

    Reasons quote the input (a field named as it was sent), so they may hold unpaired
    surrogates, which are escaped; the cut falls between characters, never inside one.
    """
    encoded = text.encode("utf-8", "backslashreplace")[:limit]
    return encoded.decode("utf-8", "ignore").encode()
