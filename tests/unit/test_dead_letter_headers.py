"""Dead-letter headers decode as UTF-8 whatever the input: a reason cut at its byte limit
never ends inside a character, and a field named with an unpaired surrogate (JSON allows
"\\udc80") is escaped instead of raising out of the ingest loop, which then read the same
message again after every restart. The hostile-input fault figure found the first; the
second was found beside it, and the figure now sends such messages too."""

from __future__ import annotations

from delivery.adapters import EventError
from streams.deadletter import MAX_REASON_BYTES, dead_letter


def _headers(reason: str, field: str | None = None) -> dict[str, bytes]:
    letter = dead_letter(
        key=None,
        value=b"x",
        errors=[EventError(index=0, reason=reason, field=field, format=None)],
        counted=0,
        topic="t",
        partition=0,
        offset=1,
    )
    return dict(letter.headers)


def test_a_long_reason_is_cut_between_characters() -> None:
    # One byte, then two-byte characters: the limit falls inside one of them.
    header = _headers("x" + "\u00e9" * MAX_REASON_BYTES)["bouncewatch-error"]
    assert len(header) < MAX_REASON_BYTES
    assert header.decode() == "x" + "\u00e9" * (MAX_REASON_BYTES // 2 - 1)


def test_unpaired_surrogates_are_escaped() -> None:
    headers = _headers("unknown field reply.\udc80", field="reply.\udc80")
    assert headers["bouncewatch-error"].decode() == "unknown field reply.\\udc80"
    assert headers["bouncewatch-error-fields"].decode() == "reply.\\udc80"
