"""A bounded count of the most frequent reply texts (the space-saving algorithm).

Alerts show the replies behind them, but a bucket cannot keep every distinct text: an ISP
that puts a message id or an address in each reply would make the state grow with traffic.
Texts are normalized first (numbers, addresses, ids become placeholders) so one kind of reply
counts as one entry, and at most ``capacity`` entries are kept. Space-saving (Metwally et al.,
2005) evicts the smallest entry and lets the newcomer inherit its count as an error bound,
which keeps every truly frequent reply and tells how much any count may be overstated.
Summaries merge by adding counts and keeping the largest, as Agarwal et al. (2012) show keeps
the same guarantee.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Entries kept per summary; alerts show three to five replies, so ten leaves room for error.
DEFAULT_CAPACITY = 10
#: A sample text is for people; a few lines of SMTP reply are never longer than this.
SAMPLE_MAX_CHARS = 300

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\b(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{0,4}\b", re.IGNORECASE)
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
# Queue ids, message ids and session tokens: long runs mixing digits and letters.
_TOKEN = re.compile(r"\b(?=[a-z0-9_-]*\d)[a-z0-9_-]{8,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\b\d+\b")
_SPACE = re.compile(r"\s+")


def normalize_reply(text: str) -> str:
    """The reply text with its variable parts replaced, so one kind of reply is one key."""
    out = text.lower()
    out = _URL.sub("<url>", out)
    out = _EMAIL.sub("<email>", out)
    out = _IPV4.sub("<ip>", out)
    out = _IPV6.sub("<ip>", out)
    out = _TOKEN.sub("<id>", out)
    out = _NUMBER.sub("<n>", out)
    return _SPACE.sub(" ", out).strip()[:SAMPLE_MAX_CHARS]


def reply_key(code: int | None, enhanced: str | None, text: str) -> str:
    """The identity of a reply: its codes and normalized text."""
    return f"{code or ''}|{enhanced or ''}|{normalize_reply(text)}"


@dataclass(slots=True)
class ReplyEntry:
    """One counted reply: how often, how much of that may be inherited, and one sample."""

    count: int
    error: int
    sample: str
    code: int | None
    enhanced: str | None
    isp_code: str | None


#: A summary holds each entry as a list of ``ReplyEntry``'s fields in order, which is also
#: its stored form: a worker merging a backlog reads and writes tens of thousands a second,
#: and copying a list costs a fraction of building an object from one. Positions:
_COUNT, _ERROR = 0, 1


class TopK:
    """Space-saving summary: at most ``capacity`` reply entries."""

    __slots__ = ("capacity", "entries")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        #: Reply key -> [count, error, sample, code, enhanced, ISP code] (``ReplyEntry``).
        self.entries: dict[str, list[Any]] = {}

    def add(
        self,
        code: int | None,
        enhanced: str | None,
        text: str,
        isp_code: str | None = None,
        count: int = 1,
        key: str | None = None,
    ) -> None:
        """Count one reply; ``key`` is its ``reply_key`` when the caller already has it."""
        if key is None:
            key = reply_key(code, enhanced, text)
        entries = self.entries
        entry = entries.get(key)
        if entry is not None:
            entry[_COUNT] += count
            return
        sample = text.strip()[:SAMPLE_MAX_CHARS]
        if len(entries) < self.capacity:
            entries[key] = [count, 0, sample, code, enhanced, isp_code]
            return
        victim_key = min(entries, key=lambda k: entries[k][_COUNT])
        inherited = entries.pop(victim_key)[_COUNT]
        entries[key] = [inherited + count, inherited, sample, code, enhanced, isp_code]

    def merge(self, other: TopK) -> None:
        entries = self.entries
        for key, entry in other.entries.items():
            mine = entries.get(key)
            if mine is None:
                entries[key] = entry[:]
            else:
                mine[_COUNT] += entry[_COUNT]
                mine[_ERROR] += entry[_ERROR]
        if len(entries) > self.capacity:
            self._trim()

    def _trim(self) -> None:
        self.entries = dict(self._ranked()[: self.capacity])

    def _ranked(self) -> list[tuple[str, list[Any]]]:
        """Entries by count, largest first; ties broken by key, so output is stable."""
        return sorted(self.entries.items(), key=lambda kv: (-kv[1][_COUNT], kv[0]))

    def top(self, n: int) -> list[ReplyEntry]:
        """The ``n`` largest entries, largest first; ties broken by key, so output is stable."""
        return [ReplyEntry(*entry) for _, entry in self._ranked()[:n]]

    def copy(self) -> TopK:
        topk = TopK(self.capacity)
        topk.entries = self.to_dict()
        return topk

    def to_dict(self) -> dict[str, list[Any]]:
        return {key: entry[:] for key, entry in self.entries.items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[Any]], capacity: int = DEFAULT_CAPACITY) -> TopK:
        topk = cls(capacity)
        topk.entries = {key: value[:] for key, value in data.items()}
        return topk
