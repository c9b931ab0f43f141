"""The notification log: what each integration has been told about each alert.

One :class:`Entry` per (integration, fingerprint) holds

- ``accepted``: the highest transition sequence that entered the pipeline for this
  integration (grouped, queued, sent, muted or skipped). A transition consumed again after a
  crash has ``sequence <= accepted`` and is dropped before it can be sent twice;
- ``accepted_state``: the alert's state in that newest transition, which says whether the
  incident is over even when the receiver was not told (``send_resolved: false``);
- ``delivered``: the sequences actually delivered (the last few), the final check before a
  send, so a batch flushed twice is still delivered once;
- the thread ``anchor``: where the first notification of the current incident went (Slack
  channel and ts, email Message-ID), so updates and the resolution thread under it;
- ``latest``: the newest delivered transition, to re-render the first Slack message's header
  with the current state;
- ``muted``: the newest transition a silence held back, sent when the silence ends while the
  alert still fires.

The log is plain data with ``to_dict``/``from_dict``; the Faust layer keeps it in a
changelog-backed table so it survives a crash, restart or rebalance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.alert import AlertState, AlertTransition

#: How many delivered sequences an entry remembers. Re-consumption after a crash replays at
#: most the uncommitted tail of a partition, a handful of transitions per alert.
DELIVERED_MEMORY = 32


@dataclass(frozen=True)
class Anchor:
    """The first notification of an incident, which later ones thread under."""

    started_at: datetime
    channel: str | None = None  # Slack channel ID (chat.update needs the ID, not #name)
    ts: str | None = None  # Slack message ts
    message_id: str | None = None  # email Message-ID, with angle brackets
    members: tuple[str, ...] = ()  # fingerprints shown in that first message

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "channel": self.channel,
            "ts": self.ts,
            "message_id": self.message_id,
            "members": list(self.members),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        return cls(
            started_at=datetime.fromisoformat(data["started_at"]),
            channel=data.get("channel"),
            ts=data.get("ts"),
            message_id=data.get("message_id"),
            members=tuple(data.get("members", ())),
        )


@dataclass
class Entry:
    integration: str
    fingerprint: str
    updated_at: datetime
    accepted: int = 0
    accepted_state: AlertState | None = None
    incident_started_at: datetime | None = None
    delivered: list[int] = field(default_factory=list)
    last_sent_at: datetime | None = None
    last_sent_state: AlertState | None = None
    anchor: Anchor | None = None
    latest: AlertTransition | None = None
    muted: AlertTransition | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "fingerprint": self.fingerprint,
            "updated_at": self.updated_at.isoformat(),
            "accepted": self.accepted,
            "accepted_state": self.accepted_state.value if self.accepted_state else None,
            "incident_started_at": _iso(self.incident_started_at),
            "delivered": list(self.delivered),
            "last_sent_at": _iso(self.last_sent_at),
            "last_sent_state": self.last_sent_state.value if self.last_sent_state else None,
            "anchor": self.anchor.to_dict() if self.anchor else None,
            "latest": self.latest.model_dump(mode="json") if self.latest else None,
            "muted": self.muted.model_dump(mode="json") if self.muted else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(
            integration=data["integration"],
            fingerprint=data["fingerprint"],
            updated_at=datetime.fromisoformat(data["updated_at"]),
            accepted=int(data.get("accepted", 0)),
            accepted_state=(
                AlertState(data["accepted_state"]) if data.get("accepted_state") else None
            ),
            incident_started_at=_from_iso(data.get("incident_started_at")),
            delivered=[int(s) for s in data.get("delivered", [])],
            last_sent_at=_from_iso(data.get("last_sent_at")),
            last_sent_state=(
                AlertState(data["last_sent_state"]) if data.get("last_sent_state") else None
            ),
            anchor=Anchor.from_dict(data["anchor"]) if data.get("anchor") else None,
            latest=AlertTransition.model_validate(data["latest"]) if data.get("latest") else None,
            muted=AlertTransition.model_validate(data["muted"]) if data.get("muted") else None,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def entry_key(integration: str, fingerprint: str) -> str:
    return f"{integration}|{fingerprint}"


class NotificationLog:
    """All entries, with the keys changed since the last :meth:`take_changes`."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries: dict[str, Entry] = {
            entry_key(e.integration, e.fingerprint): e for e in entries
        }
        self._changed: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def get(self, integration: str, fingerprint: str) -> Entry | None:
        return self._entries.get(entry_key(integration, fingerprint))

    def _entry(self, integration: str, fingerprint: str, now: datetime) -> Entry:
        key = entry_key(integration, fingerprint)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Entry(integration, fingerprint, updated_at=now)
        entry.updated_at = now
        self._changed.add(key)
        return entry

    # --- dedup ---------------------------------------------------------------------------

    def is_new(self, integration: str, transition: AlertTransition) -> bool:
        """Has this transition not entered the pipeline of this integration yet?"""
        entry = self.get(integration, transition.fingerprint)
        if entry is None or transition.sequence > entry.accepted:
            return True
        # A lower sequence from a later incident means the evaluator's counter started over
        # (its state was lost): that is news, not a replay.
        return (
            entry.incident_started_at is not None
            and transition.started_at > entry.incident_started_at
        )

    def accept(self, integration: str, transition: AlertTransition, now: datetime) -> None:
        entry = self._entry(integration, transition.fingerprint, now)
        started = entry.incident_started_at
        if started is None or transition.started_at > started:
            # A new incident: its sequences may repeat an earlier one's if the evaluator's
            # counter started over, so the old delivered set no longer says anything.
            entry.delivered = []
            entry.accepted = transition.sequence
            entry.accepted_state = transition.state
            entry.incident_started_at = transition.started_at
        elif transition.sequence >= entry.accepted:
            entry.accepted = transition.sequence
            entry.accepted_state = transition.state

    def was_delivered(self, integration: str, transition: AlertTransition) -> bool:
        entry = self.get(integration, transition.fingerprint)
        return entry is not None and transition.sequence in entry.delivered

    # --- after delivery ------------------------------------------------------------------

    def record_sent(
        self,
        integration: str,
        transitions: Iterable[AlertTransition],
        now: datetime,
        anchor: Anchor | None = None,
    ) -> None:
        """Record a delivered message; ``anchor`` when it opened a new thread."""
        for transition in transitions:
            entry = self._entry(integration, transition.fingerprint, now)
            if transition.sequence not in entry.delivered:
                entry.delivered = [*entry.delivered, transition.sequence][-DELIVERED_MEMORY:]
            entry.last_sent_at = now
            entry.last_sent_state = transition.state
            if anchor is not None:
                entry.anchor = anchor
            if entry.latest is None or _newer(transition, entry.latest):
                entry.latest = transition
            if entry.muted is not None and not _newer(entry.muted, transition):
                entry.muted = None

    def record_muted(self, integration: str, transition: AlertTransition, now: datetime) -> None:
        entry = self._entry(integration, transition.fingerprint, now)
        if entry.muted is None or _newer(transition, entry.muted):
            entry.muted = transition

    def clear_muted(self, integration: str, fingerprint: str, now: datetime) -> None:
        entry = self._entry(integration, fingerprint, now)
        entry.muted = None

    def anchor_for(self, integration: str, transition: AlertTransition) -> Anchor | None:
        """The thread this transition belongs under, if its incident has one."""
        entry = self.get(integration, transition.fingerprint)
        if entry is None or entry.anchor is None:
            return None
        if entry.anchor.started_at != transition.started_at:
            return None  # the anchor belongs to an earlier incident of the same alert
        return entry.anchor

    def set_anchor(self, integration: str, fingerprint: str, anchor: Anchor, now: datetime) -> None:
        self._entry(integration, fingerprint, now).anchor = anchor

    # --- housekeeping --------------------------------------------------------------------

    def gc(self, now: datetime, retention: timedelta) -> list[str]:
        """Forget alerts resolved (or silent) for longer than ``retention``.

        Retention must exceed how far back a transition can be consumed again, or a replayed
        old transition would be news again; days are plenty. An alert is open while its
        newest transition fires (entries written before ``accepted_state`` existed: while
        the receiver last heard it firing) or a silence holds one back.
        """
        removed = []
        for key, entry in list(self._entries.items()):
            state = entry.accepted_state or entry.last_sent_state
            open_alert = state is AlertState.FIRING or entry.muted is not None
            if not open_alert and entry.updated_at + retention <= now:
                del self._entries[key]
                self._changed.add(key)
                removed.append(key)
        return removed

    def take_changes(self) -> dict[str, dict[str, Any] | None]:
        """Entries changed since the last call, by key; ``None`` for a removed one."""
        changes: dict[str, dict[str, Any] | None] = {}
        for key in sorted(self._changed):
            entry = self._entries.get(key)
            changes[key] = entry.to_dict() if entry else None
        self._changed.clear()
        return changes

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {key: entry.to_dict() for key, entry in self._entries.items()}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> NotificationLog:
        return cls(Entry.from_dict(value) for value in data.values())

    def restore(self, key: str, value: dict[str, Any] | None) -> None:
        """Apply one changelog record (table recovery) without marking it changed."""
        if value is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = Entry.from_dict(value)


def _newer(a: AlertTransition, b: AlertTransition) -> bool:
    if a.started_at != b.started_at:
        return a.started_at > b.started_at
    return a.sequence > b.sequence
