"""The line every benchmark prints first: what machine the figures come from."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe(load: bool = False) -> str:
    """Cores, CPU model and Python; with ``load``, the load averages too."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    line = (
        f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
        f"({platform.python_implementation()})"
    )
    if load:
        line += f" load(1m,5m,15m)={', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    return line
