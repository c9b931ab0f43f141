"""Classified events to hygiene observations (``hygiene.core``), grouped by recipients
partition: what one ingest flush sends to the recipients topic, and what replay feeds.

Deliveries are the bulk of the traffic, so a delivery costs a normalization check, a dict
lookup and (for the first of its recipient in a flush) one short list. Consecutive
deliveries to one address in a flush collapse into one observation at the latest time
(applying them one by one or at once leaves the same state). Sender-side soft bounces make
no observation at all.
"""

from __future__ import annotations

from typing import Any

from delivery.types import Classification
from hygiene.core import (
    COMPLAINT,
    DELIVERY,
    HARD,
    SOFT,
    HygieneRules,
    recipient_key,
    recipient_partition,
)
from schemas.vocabulary import HARD_CATEGORIES, BounceType, Outcome

#: Longest reply text an observation carries (the evidence of a suppression record).
MAX_TEXT = 512
#: Distinct clean recipient domains an Observer remembers (emptied when full).
CLEAN_DOMAINS = 65_536


class Observer:
    """Collects the observations of one flush, in the order of their events."""

    __slots__ = ("_clean", "_hash_key", "_last", "_soft", "observations", "partitions")

    def __init__(self, rules: HygieneRules, partitions: int, hash_key: bytes | None = None):
        self._soft = rules.soft_categories
        self._hash_key = hash_key
        self.partitions = partitions
        self.observations: list[list[Any]] = []
        #: Each key's last observation in this flush (a delivery is merged into it).
        self._last: dict[str, list[Any]] = {}
        #: Recipient domains as written that are already normalized (no key to build).
        self._clean: set[str] = set()

    def key(self, recipient: str) -> str:
        _local, _, domain = recipient.rpartition("@")
        if self._hash_key is None and domain.islower() and not domain.endswith("."):
            return recipient
        return recipient_key(recipient, self._hash_key)

    def delivery(self, recipient: str, domain: str, t: float) -> None:
        """A delivery to ``recipient`` (``domain``: its domain as written)."""
        if domain in self._clean:
            key = recipient
        else:
            key = self.key(recipient)
            if key is recipient:
                if len(self._clean) >= CLEAN_DOMAINS:
                    self._clean.clear()
                self._clean.add(domain)
        last = self._last.get(key)
        if last is not None and last[1] == DELIVERY:
            if t > last[2]:
                last[2] = t
            return
        obs = [key, DELIVERY, t]
        self._last[key] = obs
        self.observations.append(obs)

    def attempt(
        self, recipient: str, domain: str, t: float, isp: str, c: Classification, text: str
    ) -> None:
        """An attempt other than a plain 2xx: a delivery, or an observation if it speaks of the
        address (``domain`` as the recipient wrote it)."""
        if c.outcome is Outcome.DELIVERED:
            self.delivery(recipient, domain, t)
            return
        if c.bounce_type is BounceType.HARD and c.category in HARD_CATEGORIES:
            kind = HARD
        elif c.category.value in self._soft:
            kind = SOFT
        else:
            return
        key = self.key(recipient)
        obs = [key, kind, t, isp, c.category.value, text[:MAX_TEXT], domain.lower().rstrip(".")]
        self._last[key] = obs
        self.observations.append(obs)

    def complaint(self, recipient: str, domain: str, t: float, isp: str) -> None:
        key = self.key(recipient)
        obs = [key, COMPLAINT, t, isp, domain]
        self._last[key] = obs
        self.observations.append(obs)

    def drain(self) -> dict[int, list[list[Any]]]:
        """The observations by recipients partition, each in event order; then empty."""
        out: dict[int, list[list[Any]]] = {}
        n = self.partitions
        for obs in self.observations:
            out.setdefault(recipient_partition(obs[0], n), []).append(obs)
        self.observations = []
        self._last = {}
        return out
