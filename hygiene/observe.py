"""Classified events to hygiene observations (``hygiene.core``), grouped by recipients
partition: what one ingest flush sends to the recipients topic, and what replay feeds.

Deliveries are the bulk of the traffic, so a delivery costs a normalization check, a dict
lookup and (for the first of its recipient in a flush) one short list. Consecutive
deliveries to one address in a flush collapse into one observation at the latest time
(applying them one by one or at once leaves the same state). Sender-side soft bounces make
no observation at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zlib import crc32

from delivery.types import Classification
from hygiene.core import (
    COMPLAINT,
    DELIVERY,
    HARD,
    SOFT,
    HygieneRules,
    recipient_key,
)
from schemas.vocabulary import HARD_CATEGORIES, BounceType, Outcome

#: An event's (source IP, sending domain, tenant), each None when unknown or unread; None
#: for none of them.
Labels = tuple[str | None, str | None, str | None] | list[str | None] | None

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
        #: Tuples (short-lived: the garbage collector stops tracking those of plain values).
        self.observations: list[tuple[Any, ...]] = []
        #: Where each key's last observation in this flush is (a delivery merges into it).
        self._last: dict[str, int] = {}
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
        observations = self.observations
        at = self._last.get(key)
        if at is not None:
            last = observations[at]
            if last[1] == DELIVERY:
                if t > last[2]:
                    observations[at] = (key, DELIVERY, t)
                return
        self._last[key] = len(observations)
        observations.append((key, DELIVERY, t))

    def _add(self, obs: tuple[Any, ...]) -> None:
        self._last[obs[0]] = len(self.observations)
        self.observations.append(obs)

    def attempt(
        self,
        recipient: str,
        domain: str,
        t: float,
        isp: str,
        c: Classification,
        text: str,
        labels: Labels = None,
    ) -> None:
        """An attempt other than a plain 2xx: a delivery, or an observation if it speaks of the
        address (``domain`` as the recipient wrote it). ``labels``: the event's (source IP,
        sending domain, tenant), where a decision it makes is counted (``hygiene.core``)."""
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
        if labels is not None and not any(labels):
            labels = None  # no rule groups by any: the ISP's key alone
        self._add(
            (
                key,
                kind,
                t,
                isp,
                c.category.value,
                text[:MAX_TEXT],
                domain.lower().rstrip("."),
                labels,
            )
        )

    def complaint(
        self, recipient: str, domain: str, t: float, isp: str, labels: Labels = None
    ) -> None:
        if labels is not None and not any(labels):
            labels = None
        self._add((self.key(recipient), COMPLAINT, t, isp, domain, labels))

    def drain(self) -> dict[int, list[tuple[Any, ...]]]:
        """The observations by recipients partition, each in event order; then empty.
        (``hygiene.core.recipient_partition``, inlined.)"""
        n = self.partitions
        out: dict[int, list[tuple[Any, ...]]] = {p: [] for p in range(n)}
        for obs in self.observations:
            out[crc32(obs[0].encode("utf-8", "surrogatepass")) % n].append(obs)
        out = {p: part for p, part in out.items() if part}
        self.observations = []
        self._last = {}
        return out


def suppression_labels(obs: Sequence[Any]) -> tuple[str | None, str | None, str | None]:
    """(source IP, sending domain, tenant) of the event behind a deciding observation: where
    its suppression is counted (``PartialBuilder.add_suppression``). Observations written
    before they carried labels count in the ISP's key only."""
    at = 5 if obs[1] == COMPLAINT else 7
    labels = obs[at] if len(obs) > at else None
    if not labels:
        return None, None, None
    source_ip, sending_domain, tenant = labels
    return source_ip, sending_domain, tenant
