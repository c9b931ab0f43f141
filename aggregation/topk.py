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

    def to_list(self) -> list[Any]:
        return [self.count, self.error, self.sample, self.code, self.enhanced, self.isp_code]

    @classmethod
    def from_list(cls, data: list[Any]) -> ReplyEntry:
        """The entry ``to_list`` gave (JSON keeps its types)."""
        count, error, sample, code, enhanced, isp_code = data
        return cls(count, error, sample, code, enhanced, isp_code)


class TopK:
    """Space-saving summary: at most ``capacity`` reply entries."""

    __slots__ = ("capacity", "entries")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.entries: dict[str, ReplyEntry] = {}

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
        entry = self.entries.get(key)
        if entry is not None:
            entry.count += count
            return
        sample = text.strip()[:SAMPLE_MAX_CHARS]
        if len(self.entries) < self.capacity:
            self.entries[key] = ReplyEntry(count, 0, sample, code, enhanced, isp_code)
            return
        victim_key = min(self.entries, key=lambda k: self.entries[k].count)
        victim = self.entries.pop(victim_key)
        self.entries[key] = ReplyEntry(
            victim.count + count, victim.count, sample, code, enhanced, isp_code
        )

    def merge(self, other: TopK) -> None:
        for key, entry in other.entries.items():
            mine = self.entries.get(key)
            if mine is None:
                self.entries[key] = ReplyEntry(
                    entry.count,
                    entry.error,
                    entry.sample,
                    entry.code,
                    entry.enhanced,
                    entry.isp_code,
                )
            else:
                mine.count += entry.count
                mine.error += entry.error
        self._trim()

    def _trim(self) -> None:
        if len(self.entries) <= self.capacity:
            return
        ranked = sorted(self.entries.items(), key=lambda kv: (-kv[1].count, kv[0]))
        self.entries = dict(ranked[: self.capacity])

    def top(self, n: int) -> list[ReplyEntry]:
        """The ``n`` largest entries, largest first; ties broken by key, so output is stable."""
        ranked = sorted(self.entries.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return [entry for _, entry in ranked[:n]]

    def to_dict(self) -> dict[str, list[Any]]:
        return {key: entry.to_list() for key, entry in self.entries.items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[Any]], capacity: int = DEFAULT_CAPACITY) -> TopK:
        topk = cls(capacity)
        topk.entries = {key: ReplyEntry.from_list(value) for key, value in data.items()}
        return topk
