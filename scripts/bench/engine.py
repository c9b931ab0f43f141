"""The worker's ingest core as the in-process benchmarks (``bench_core.py``,
``bench_hygiene.py``) build it: the packaged rules, reply table and ISP table, and list
hygiene's default rule when asked."""

from __future__ import annotations

from aggregation.ingest import Engine
from hygiene.core import HygieneRules

#: Partitions of the recipients (and partials) topic: ``bench_stream.py``'s default.
PARTITIONS = 8


def engine(hygiene: bool = False) -> Engine:
    return Engine.packaged(
        hygiene=HygieneRules() if hygiene else None, recipient_partitions=PARTITIONS
    )
