"""ISP resolution: a recipient domain, and the MX host when the event carries one, to an ISP.

The knowledge lives in ``delivery/data/isps.yaml``; this module compiles it into three dicts
and answers in this order:

1. the domain or one of its parent domains is listed (``nc.rr.com`` falls under ``rr.com``);
2. the domain (or a parent) is a regional family member, a listed label followed by a public
   suffix (``hotmail.co.uk``, ``yahoo.com.br``); when the MX host names a *different* known ISP the
   MX wins, because a family is a guess from a name and the MX says who really receives;
3. the MX host ends with a listed MX suffix (custom domains on Microsoft 365, Google
   Workspace, behind Proofpoint, ...);
4. the unknown policy: ``other``, or the domain as its own key.

It runs on every event, so answers are kept in a bounded LRU cache keyed on the raw
arguments: a hit costs one C-level dict lookup, and normalization happens only on a miss.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from delivery.types import Isp

__all__ = ["OTHER", "IspResolver", "default_resolver", "load_resolver", "normalize_domain"]

OTHER = Isp("other", "Other")

UnknownPolicy = Literal["other", "domain"]

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MX_PREFIX = "mx:"
_FAMILY_SUFFIX = ".*"

# Second-level labels under which country-code registries sell names (co.uk, com.br, ne.jp).
# Together with "any single TLD" this recognises the public suffixes regional webmail domains
# sit under without shipping the whole Public Suffix List.
_SECOND_LEVEL = frozenset(
    {"co", "com", "net", "org", "ne", "or", "ac", "gov", "edu", "gob", "go", "nom", "web", "ltd"}
)
_LABEL = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def _is_public_suffix(rest: str) -> bool:
    first, dot, last = rest.partition(".")
    if not dot:
        return bool(_LABEL.match(first))
    return first in _SECOND_LEVEL and len(last) == 2 and last.isalpha()


def normalize_domain(value: str) -> str:
    """Lower-case a domain (or the domain of an address), without trailing dot, IDNA-encoded."""
    domain = value.strip().rpartition("@")[2].rstrip(".").lower()
    if not domain.isascii():
        # an unencodable name cannot match a listed one; keep it as given
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return domain


def _normalize_mx(value: str) -> str:
    # MTAs report the MX in several shapes: "mx.example.com.", "[mx.example.com]",
    # "mx.example.com:25", "gmail-smtp-in.l.google.com (142.250.1.27)" (PowerMTA dsnMta).
    parts = value.strip().split()
    if not parts:
        return ""
    host = parts[0].strip("[]<>()")
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name.strip("[]")
    return host.rstrip(".").lower()


def _parents(name: str) -> Iterable[str]:
    """The name and each parent of at least two labels: a.b.c.d, b.c.d, c.d."""
    while True:
        yield name
        dot = name.find(".")
        if dot < 0 or name.find(".", dot + 1) < 0:
            return
        name = name[dot + 1 :]


@dataclass
class _Tables:
    isps: dict[str, Isp] = field(default_factory=dict)
    domains: dict[str, Isp] = field(default_factory=dict)
    families: dict[str, Isp] = field(default_factory=dict)
    mx: dict[str, Isp] = field(default_factory=dict)

    def isp(self, key: str, name: str | None = None) -> Isp:
        if not _KEY.match(key):
            raise ValueError(f"ISP key must be lowercase letters, digits, '_' or '-': {key!r}")
        known = self.isps.get(key)
        if known is None or (name is not None and name != known.name):
            known = OTHER if key == OTHER.key and name is None else Isp(key, name or key)
            self.isps[key] = known
            # entries compiled earlier hold the old object; keep one Isp per key
            for table in (self.domains, self.families, self.mx):
                for entry, isp in table.items():
                    if isp.key == key:
                        table[entry] = known
        return known

    def add(self, key: str, entries: Iterable[str], kind: str | None = None) -> None:
        """Add entries; ``kind`` None reads each string's own form (``mx:``, ``label.*``)."""
        isp = self.isp(key)
        for raw in entries:
            if not isinstance(raw, str) or not raw.strip():
                raise ValueError(f"ISP {key!r}: entries must be non-empty strings, got {raw!r}")
            entry = raw.strip().lower()
            entry_kind = kind
            if entry_kind is None:
                if entry.startswith(_MX_PREFIX):
                    entry_kind, entry = "mx", entry[len(_MX_PREFIX) :].strip()
                elif entry.endswith(_FAMILY_SUFFIX):
                    entry_kind, entry = "families", entry[: -len(_FAMILY_SUFFIX)]
                else:
                    entry_kind = "domains"
            if entry_kind == "mx":
                self.mx[_normalize_mx(entry.removeprefix("*."))] = isp
            elif entry_kind == "families":
                label = entry.removesuffix(_FAMILY_SUFFIX)
                if not label or "." in label:
                    raise ValueError(f"ISP {key!r}: a family is one label like 'hotmail': {raw!r}")
                self.families[label] = isp
            else:
                self.domains[normalize_domain(entry)] = isp


def _compile(data: Mapping[str, Any], tables: _Tables, *, source: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping of ISP key to entries")
    for key, spec in data.items():
        key = str(key)
        if isinstance(spec, str):
            raise ValueError(f"{source}: ISP {key!r}: give a list of entries, not one string")
        if isinstance(spec, Sequence):
            tables.add(key, spec)
            continue
        if not isinstance(spec, Mapping):
            raise ValueError(f"{source}: ISP {key!r}: expected a list or a mapping")
        unknown_fields = set(spec) - {"name", "domains", "families", "mx"}
        if unknown_fields:
            raise ValueError(f"{source}: ISP {key!r}: unknown fields {sorted(unknown_fields)}")
        name = spec.get("name")
        tables.isp(key, None if name is None else str(name))
        for kind in ("domains", "families", "mx"):
            entries = spec.get(kind) or []
            if isinstance(entries, str) or not isinstance(entries, Sequence):
                raise ValueError(f"{source}: ISP {key!r}: {kind} must be a list")
            tables.add(key, entries, kind)


class IspResolver:
    """Resolves recipient domains (and MX hosts) to ISPs; build it with ``load_resolver``."""

    def __init__(
        self,
        *,
        isps: Mapping[str, Isp],
        domains: Mapping[str, Isp],
        families: Mapping[str, Isp],
        mx: Mapping[str, Isp],
        unknown: UnknownPolicy = "other",
        cache_size: int = 65_536,
    ) -> None:
        if unknown not in ("other", "domain"):
            raise ValueError(f"unknown policy must be 'other' or 'domain', got {unknown!r}")
        self._isps = dict(isps)
        self._domains = dict(domains)
        self._families = dict(families)
        self._mx = dict(mx)
        self._unknown = unknown
        self._cached: Callable[[str, str | None], Isp] = functools.lru_cache(maxsize=cache_size)(
            self._resolve
        )
        self._knows: Callable[[str], bool] = functools.lru_cache(maxsize=cache_size)(
            self._knows_uncached
        )

    @property
    def isps(self) -> Mapping[str, Isp]:
        """Every known ISP by key, for validating rule files and listing in docs."""
        return self._isps

    def name(self, key: str) -> str:
        """The display name of an ISP key (``isps.yaml``'s ``name``); an unknown key (a
        domain keyed by itself under ``BOUNCEWATCH_ISP_UNKNOWN=domain``) is its own name."""
        isp = self._isps.get(key)
        return isp.name if isp is not None else key

    def resolve(self, domain: str, mx_host: str | None = None) -> Isp:
        return self._cached(domain, mx_host)

    def cache_info(self) -> Any:
        return self._cached.cache_info()  # type: ignore[attr-defined]

    def knows(self, domain: str) -> bool:
        """Whether ``domain`` itself names an ISP (its MX could not change the answer but
        for a regional family, whose MX is looked up only if the event names it)."""
        return self._knows(domain)

    def _knows_uncached(self, domain: str) -> bool:
        name = normalize_domain(domain)
        for candidate in _parents(name):
            if candidate in self._domains:
                return True
            label, _, rest = candidate.partition(".")
            if label in self._families and _is_public_suffix(rest):
                return True
        return False

    def _resolve(self, domain: str, mx_host: str | None) -> Isp:
        name = normalize_domain(domain)
        mx = _normalize_mx(mx_host) if mx_host else ""
        for candidate in _parents(name):
            isp = self._domains.get(candidate)
            if isp is not None:
                return isp
        for candidate in _parents(name):
            label, _, rest = candidate.partition(".")
            family = self._families.get(label)
            if family is not None and _is_public_suffix(rest):
                by_mx = self._by_mx(mx)
                return by_mx if by_mx is not None and by_mx.key != family.key else family
        by_mx = self._by_mx(mx)
        if by_mx is not None:
            return by_mx
        if self._unknown == "domain" and name:
            return Isp(name, name)
        return OTHER

    def _by_mx(self, mx: str) -> Isp | None:
        if not mx:
            return None
        for candidate in _parents(mx):
            isp = self._mx.get(candidate)
            if isp is not None:
                return isp
        return None


def _packaged() -> Mapping[str, Any]:
    text = importlib.resources.files("delivery").joinpath("data/isps.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise ValueError("delivery/data/isps.yaml: expected a mapping")
    return data


def load_resolver(
    overrides: Mapping[str, Sequence[str]] | Path | None = None,
    unknown: UnknownPolicy = "other",
) -> IspResolver:
    """The packaged ISP table plus the user's overrides, which win over packaged entries.

    ``overrides`` maps an ISP key (a known one or a new one) to entries: ``example.com`` (a
    domain and its subdomains), ``label.*`` (a regional family), ``mx:host.suffix`` (an MX
    suffix). Key ``other`` sends entries to the catch-all. A YAML file may use that short form
    or the packaged form (``name``, ``domains``, ``families``, ``mx``), which can also rename.
    """
    tables = _Tables()
    tables.isps[OTHER.key] = OTHER
    _compile(_packaged(), tables, source="delivery/data/isps.yaml")
    if isinstance(overrides, Path):
        data = yaml.safe_load(overrides.read_text("utf-8")) or {}
        _compile(data, tables, source=str(overrides))
    elif overrides is not None:
        _compile(overrides, tables, source="ISP overrides")
    return IspResolver(
        isps=tables.isps,
        domains=tables.domains,
        families=tables.families,
        mx=tables.mx,
        unknown=unknown,
    )


@functools.cache
def default_resolver() -> IspResolver:
    """The packaged table without overrides, built once per process."""
    return load_resolver()
