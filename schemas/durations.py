"""Durations: the one grammar of every length of time a person writes.

Rules files (``window: 15m``), the notifications file (``group_wait: 30s``), the settings
(``BOUNCEWATCH_NOTIFICATION_LOG_RETENTION=7d``) and ``bouncewatch silence add --for 2h`` all
read durations here, so each accepts what the others accept and refuses it with the same
message. A duration is a whole number of seconds (``90``, ``"90"``) or units in the order
d, h, m, s, each at most once (``30s``, ``5m``, ``1h30m``, ``1d12h``; spaces between them
are ignored). Whole seconds only: buckets are a minute long and nothing downstream counts
finer, so ``2.5`` is a typo more often than a wish.

:data:`Duration` is the pydantic type (a :class:`~datetime.timedelta`, written back as
``1h30m``); :data:`DurationSeconds` is the same grammar for the rule engine, which counts in
whole seconds.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_GRAMMAR = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

#: Said for every value that is not a duration, whatever file or variable it came from.
DURATION_ERROR = (
    "not a duration: {value!r} (whole seconds, or units in the order d, h, m, s: "
    "90, 30s, 5m, 1h30m, 1d)"
)


def parse_seconds(value: Any) -> int:
    """Whole seconds from ``90``, ``"90"``, ``"30s"``, ``"1h30m"``, ``"1d"`` or a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds >= 0 and seconds == int(seconds):
            return int(seconds)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if value >= 0 and value == int(value):
            return int(value)
    elif isinstance(value, str):
        text = "".join(value.split())
        if text.isdigit():
            return int(text)
        match = _GRAMMAR.match(text)
        if text and match:
            days, hours, minutes, seconds_ = (int(g) if g else 0 for g in match.groups())
            return ((days * 24 + hours) * 60 + minutes) * 60 + seconds_
    raise ValueError(DURATION_ERROR.format(value=value))


def parse_duration(value: Any) -> timedelta:
    """The duration a person wrote, as a :class:`~datetime.timedelta` (see the module doc)."""
    return timedelta(seconds=parse_seconds(value))


def format_duration(value: timedelta | int) -> str:
    """The shortest form the grammar reads back: ``15m``, ``2h``, ``1h30m``, ``0s``."""
    total = int(value.total_seconds()) if isinstance(value, timedelta) else int(value)
    if total == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]

DurationSeconds = Annotated[int, BeforeValidator(parse_seconds)]
