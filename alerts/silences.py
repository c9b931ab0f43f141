"""Silences: maintenance windows that mute notifications without touching alert state.

A silence is a set of matchers (all must match), a time range, a comment and who made it.
Silences live in a compacted Kafka topic keyed by id, read into a table by every worker; the
newest record of an id wins, so expiring a silence is writing it again with ``ends_at = now``
(it stays listed as expired, like Alertmanager's, until garbage collection tombstones it).

Nothing here reads the clock: callers pass ``now``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from alerts.routing import Matcher, matches_all


class SilenceState(StrEnum):
    PENDING = "pending"  # starts in the future
    ACTIVE = "active"
    EXPIRED = "expired"


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    matchers: list[Matcher] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)
    updated_at: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return SilenceState.PENDING
        if now >= self.ends_at:
            return SilenceState.EXPIRED
        return SilenceState.ACTIVE

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) is SilenceState.ACTIVE and matches_all(self.matchers, labels)

    def expire(self, now: datetime) -> Silence:
        """This silence ended at ``now`` (or left as is when it already ended)."""
        if self.ends_at <= now:
            return self
        # A silence that has not started yet ends before it starts: keep the range valid.
        return self.model_copy(
            update={"ends_at": now, "starts_at": min(self.starts_at, now), "updated_at": now}
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Silence:
        return cls.model_validate_json(data)


def new_silence(
    *,
    matchers: Iterable[Matcher],
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
    silence_id: str | None = None,
) -> Silence:
    return Silence(
        id=silence_id or uuid.uuid4().hex[:12],
        matchers=list(matchers),
        starts_at=starts_at or now,
        ends_at=ends_at,
        created_by=created_by,
        comment=comment,
        updated_at=now,
    )


def muting(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime) -> list[Silence]:
    """The silences that mute an alert with these labels at ``now``."""
    return [s for s in silences if s.mutes(labels, now)]


def fold(records: Iterable[tuple[str, bytes | None]]) -> dict[str, Silence]:
    """Read a compacted topic's records (key, value) into the current silences.

    A ``None`` value is a tombstone. Records that do not parse are skipped rather than fatal:
    one bad write must not stop every worker from reading the silences after it.
    """
    current: dict[str, Silence] = {}
    for key, value in records:
        if value is None:
            current.pop(key, None)
            continue
        try:
            silence = Silence.from_json(value)
        except ValueError:
            continue
        previous = current.get(silence.id)
        # Compaction keeps the newest record per key, but before it runs a slow writer's
        # older update can follow a newer one; updated_at orders them.
        if previous is None or silence.updated_at >= previous.updated_at:
            current[silence.id] = silence
    return current


def collectable(silence: Silence, now: datetime, retention: timedelta) -> bool:
    """An expired silence older than ``retention``: tombstone it so compaction drops it."""
    return silence.ends_at + retention <= now
