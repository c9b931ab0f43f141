"""A text sparkline: the trend over recent buckets in one line, for Slack, email and consoles.

Text rather than a chart image: it needs no image host or file upload scope, renders the same
in every client and in the golden files, and a dozen buckets read fine as eight block heights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"
#: Shown for a bucket without a value (no attempts, so no rate).
GAP = " "


def sparkline(values: Sequence[float], *, floor: float | None = 0.0) -> str:
    """One character per value, scaled between ``floor`` (or the minimum) and the maximum.

    Rates are scaled from zero by default so that 4.9% → 5.1% does not look like a cliff;
    pass ``floor=None`` to scale from the smallest value instead.
    """
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return GAP * len(values)
    low = min(finite) if floor is None else min(floor, min(finite))
    high = max(finite)
    span = high - low
    chars = []
    for value in values:
        if not math.isfinite(value):
            chars.append(GAP)
        elif span <= 0:
            # Flat: with a floor every value sits on it (all zero); without one, draw mid-height
            # so a steady non-zero rate does not look like nothing.
            chars.append(BARS[0] if floor is not None else BARS[3])
        else:
            index = round((value - low) / span * (len(BARS) - 1))
            chars.append(BARS[max(0, min(len(BARS) - 1, index))])
    return "".join(chars)
