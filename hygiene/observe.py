"""Classified events to hygiene observations (``hygiene.core``), grouped by recipients
partition: what one ingest flush sends to the recipients topic, and what replay feeds.

Deliveries are the bulk of the traffic and nearly all go to addresses without state, which
the recipients stage answers from its presence filter without reading them further. So a
partition's deliveries travel apart from its other observations, as two flat lists (keys and
event times): the stage tests each key against its filter and builds an observation only for
the few that pass (``hygiene.bundles.sequence``). Each other observation carries how many of the
partition's deliveries came before it, which restores the order of the flush. Sender-side
soft bounces make no observation at all.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from zlib import crc32

from aggregation.buckets import CATEGORY_NAMES
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

#: Read for every failure an observer sees, as globals (``aggregation.buckets`` says why).
_DELIVERED, _HARD = Outcome.DELIVERED, BounceType.HARD

#: An event's (source IP, sending domain, tenant), each None when unknown or unread; None
#: for none of them.
Labels = tuple[str | None, str | None, str | None] | list[str | None] | None

#: Longest reply text an observation carries (the evidence of a suppression record).
MAX_TEXT = 512
#: Distinct clean recipient domains an Observer remembers (emptied when full).
CLEAN_DOMAINS = 65_536
#: The recipients message format with deliveries apart (``Bundle.message``). Version 1, a
#: single list ``obs`` of every observation, is still read (``Bundle.from_message``).
FORMAT = 2
#: Bytes of JSON a delivery costs beyond its key, and a generous bound on what another
#: observation costs beyond its key and text (kind, time, ISP, category, domain, labels).
DELIVERY_BYTES = 24
OBSERVATION_BYTES = 192


@dataclass(slots=True)
class Bundle:
    """One recipients partition's observations of a flush, in their order: the deliveries as
    parallel lists ``keys`` and ``times``, every other observation in ``others`` with, at the
    same index of ``at``, the number of the deliveries that came before it."""

    keys: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    others: list[Sequence[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys) + len(self.others)

    def message(self) -> dict[str, Any]:
        """The JSON value of a recipients message (``FORMAT``)."""
        return {"v": FORMAT, "dk": self.keys, "dt": self.times, "at": self.at, "obs": self.others}

    @classmethod
    def from_message(cls, value: Mapping[str, Any]) -> Bundle:
        """A recipients message's observations, in either format. In version 1 every
        observation, deliveries too, is in ``obs``; they are parted here, so that an index
        in ``hygiene.bundles.sequence`` is the one version 1 stamped: a worker upgraded
        mid-stream reads its predecessor's messages as the predecessor did."""
        if "v" in value:
            return cls(value["dk"], value["dt"], value["at"], value["obs"])
        bundle = cls()
        for obs in value.get("obs") or ():
            if obs[1] == DELIVERY:
                bundle.keys.append(obs[0])
                bundle.times.append(obs[2])
            else:
                bundle.at.append(len(bundle.keys))
                bundle.others.append(obs)
        return bundle

    def pieces(self, max_bytes: int) -> list[Bundle]:
        """The bundle cut, in order, into bundles of about ``max_bytes`` of JSON at most
        (itself when it fits; an observation larger than that alone in its piece): halves of
        the sequence, again and again, until each half fits."""
        keys, times, at, others = self.keys, self.times, self.at, self.others
        if len(self) <= 1:
            return [self]
        # Sizes of any run of deliveries or others from two prefix sums, summed once at C
        # speed: no Python step per delivery, and none per level of halving.
        key_bytes = list(accumulate(map(len, keys), initial=0))
        other_bytes = list(accumulate(map(_observation_bytes, others), initial=0))
        cuts: list[tuple[int, int, int, int]] = []

        def halve(d0: int, d1: int, j0: int, j1: int) -> None:
            """Deliveries ``d0:d1`` and others ``j0:j1``, one piece or halved."""
            n = d1 - d0 + j1 - j0
            size = (
                key_bytes[d1] - key_bytes[d0] + DELIVERY_BYTES * (d1 - d0)
                + other_bytes[j1] - other_bytes[j0]
            )  # fmt: skip
            if n <= 1 or size <= max_bytes:
                cuts.append((d0, d1, j0, j1))
                return
            half = n // 2
            # Others before the half: those with fewer than ``half`` observations before them.
            j = bisect_left(range(j0, j1), half, key=lambda j: at[j] - d0 + j - j0) + j0
            d = d0 + half - (j - j0)
            halve(d0, d, j0, j)
            halve(d, d1, j, j1)

        halve(0, len(keys), 0, len(others))
        if len(cuts) == 1:
            return [self]
        return [
            Bundle(keys[d0:d1], times[d0:d1], [a - d0 for a in at[j0:j1]], others[j0:j1])
            for d0, d1, j0, j1 in cuts
        ]


def _observation_bytes(obs: Sequence[Any]) -> int:
    """About the bytes of JSON of an observation other than a delivery, at most."""
    return OBSERVATION_BYTES + len(obs[0]) + _text_bytes(obs)


def _text_bytes(obs: Sequence[Any]) -> int:
    text = obs[5] if obs[1] in (SOFT, HARD) and len(obs) > 5 else ""
    return len(text) if isinstance(text, str) else 0


class Observer:
    """Collects the observations of one flush by recipients partition, in event order."""

    __slots__ = ("_bundles", "_clean", "_hash_key", "_soft", "partitions")

    def __init__(self, rules: HygieneRules, partitions: int, hash_key: bytes | None = None):
        self._soft = rules.soft_categories
        self._hash_key = hash_key
        self.partitions = partitions
        self._bundles = [Bundle() for _ in range(partitions)]
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
        # hygiene.core.recipient_partition, inlined: this runs once per delivered event.
        bundle = self._bundles[crc32(key.encode("utf-8", "surrogatepass")) % self.partitions]
        bundle.keys.append(key)
        bundle.times.append(t)

    def _add(self, obs: tuple[Any, ...]) -> None:
        bundle = self._bundles[crc32(obs[0].encode("utf-8", "surrogatepass")) % self.partitions]
        bundle.at.append(len(bundle.keys))
        bundle.others.append(obs)

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
        if c.outcome is _DELIVERED:
            self.delivery(recipient, domain, t)
            return
        category = CATEGORY_NAMES[c.category]
        if c.bounce_type is _HARD and c.category in HARD_CATEGORIES:
            kind = HARD
        elif category in self._soft:
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
                category,
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

    def __len__(self) -> int:
        return sum(map(len, self._bundles))

    def drain(self) -> dict[int, Bundle]:
        """The observations by recipients partition (those with any); then empty."""
        out = {p: bundle for p, bundle in enumerate(self._bundles) if len(bundle)}
        self._bundles = [Bundle() for _ in range(self.partitions)]
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
