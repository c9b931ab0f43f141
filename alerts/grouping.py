"""group_wait: transitions of one group that arrive close together become one message.

When Gmail, Yahoo and Microsoft all start throttling within seconds, the route's
``group_by: [rule]`` puts the three transitions in one group; the group opens on the first,
collects for ``group_wait`` and is then flushed as one batch. A flushed group is closed; the
next transition opens a new one, so a resolution waits ``group_wait`` too and resolutions
across ISPs are batched the same way.

Pure: ``now`` is a parameter, and the state is plain data with ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.alert import AlertTransition


def group_key(integration: str, labels: tuple[tuple[str, str], ...]) -> str:
    # JSON keeps label values with commas or equals signs unambiguous.
    return f"{integration}|{json.dumps(labels, separators=(',', ':'))}"


@dataclass
class Group:
    integration: str
    labels: tuple[tuple[str, str], ...]
    opened_at: datetime
    flush_at: datetime
    transitions: list[AlertTransition] = field(default_factory=list)

    @property
    def key(self) -> str:
        return group_key(self.integration, self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "labels": [list(pair) for pair in self.labels],
            "opened_at": self.opened_at.isoformat(),
            "flush_at": self.flush_at.isoformat(),
            "transitions": [t.model_dump(mode="json") for t in self.transitions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Group:
        return cls(
            integration=data["integration"],
            labels=tuple((str(k), str(v)) for k, v in data["labels"]),
            opened_at=datetime.fromisoformat(data["opened_at"]),
            flush_at=datetime.fromisoformat(data["flush_at"]),
            transitions=[AlertTransition.model_validate(t) for t in data["transitions"]],
        )


class Grouper:
    """The open groups, with the keys changed since the last :meth:`take_changes`."""

    def __init__(self, groups: list[Group] | None = None) -> None:
        self._groups: dict[str, Group] = {g.key: g for g in groups or []}
        self._changed: set[str] = set()

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(list(self._groups.values()))

    def contains(self, integration: str, transition: AlertTransition) -> bool:
        return any(
            g.integration == integration
            and any(
                t.fingerprint == transition.fingerprint and t.sequence == transition.sequence
                for t in g.transitions
            )
            for g in self._groups.values()
        )

    def add(
        self,
        integration: str,
        labels: tuple[tuple[str, str], ...],
        transition: AlertTransition,
        group_wait: timedelta,
        now: datetime,
    ) -> Group:
        """Put a transition in its group, opening the group if needed."""
        key = group_key(integration, labels)
        group = self._groups.get(key)
        if group is None:
            group = Group(integration, labels, opened_at=now, flush_at=now + group_wait)
            self._groups[key] = group
        group.transitions.append(transition)
        self._changed.add(key)
        return group

    def due(self, now: datetime) -> list[Group]:
        """Close and return the groups whose wait is over, oldest first."""
        ready = sorted(
            (g for g in self._groups.values() if g.flush_at <= now),
            key=lambda g: (g.flush_at, g.key),
        )
        for group in ready:
            del self._groups[group.key]
            self._changed.add(group.key)
        return ready

    def next_due(self) -> datetime | None:
        return min((g.flush_at for g in self._groups.values()), default=None)

    def take_changes(self) -> dict[str, dict[str, Any] | None]:
        changes: dict[str, dict[str, Any] | None] = {}
        for key in sorted(self._changed):
            group = self._groups.get(key)
            changes[key] = group.to_dict() if group else None
        self._changed.clear()
        return changes

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {key: group.to_dict() for key, group in self._groups.items()}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> Grouper:
        return cls([Group.from_dict(value) for value in data.values()])

    def restore(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self._groups.pop(key, None)
        else:
            self._groups[key] = Group.from_dict(value)


def rounds(transitions: list[AlertTransition]) -> list[list[AlertTransition]]:
    """Split a batch so each message holds at most one transition per alert, in order.

    Gmail firing and then resolving within one group_wait must still be two messages, the
    resolution threaded under the firing one, so the n-th transition of each alert goes into
    the n-th round.
    """
    result: list[list[AlertTransition]] = []
    seen: dict[str, int] = {}
    for transition in sorted(transitions, key=lambda t: (t.started_at, t.sequence)):
        n = seen.get(transition.fingerprint, 0)
        seen[transition.fingerprint] = n + 1
        if n == len(result):
            result.append([])
        result[n].append(transition)
    return result
