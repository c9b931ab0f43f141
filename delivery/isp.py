"""ISP resolution: a recipient domain, and the MX host when the event carries one, to an ISP.

The knowledge lives in ``delivery/data/isps.yaml``, validated (as the user's overrides are) by
the pydantic models below, each mistake reported with its line and field as the rules file's
are (``schemas.yaml_problems``). This module compiles it into three dicts and answers in this
order:

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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from delivery.types import Isp
from schemas.yaml_problems import Problem, ProblemsError, parse_yaml, problems_from

__all__ = [
    "OTHER",
    "IspResolver",
    "IspSpec",
    "IspTableError",
    "default_resolver",
    "load_resolver",
    "normalize_domain",
    "parse_isp_table",
]

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
        """Add validated entries; ``kind`` None reads each string's own form (``mx:``,
        ``label.*``)."""
        isp = self.isp(key)
        for entry in entries:
            entry_kind = kind
            if entry_kind is None:
                if entry.startswith(_MX_PREFIX):
                    entry_kind, entry = "mx", entry[len(_MX_PREFIX) :].strip()
                elif entry.endswith(_FAMILY_SUFFIX):
                    entry_kind = "families"
                else:
                    entry_kind = "domains"
            if entry_kind == "mx":
                self.mx[_normalize_mx(entry.removeprefix("*."))] = isp
            elif entry_kind == "families":
                self.families[entry.removesuffix(_FAMILY_SUFFIX)] = isp
            else:
                self.domains[normalize_domain(entry)] = isp


# --------------------------------------------------------------------------- the file's models


class IspTableError(ProblemsError):
    """An ISP table (``isps.yaml`` or the user's overrides) that cannot be used; each
    problem names its line and field, as the rules file's do."""


def _entry(value: str) -> str:
    entry = value.strip().lower()
    if not entry or entry in (_MX_PREFIX, _FAMILY_SUFFIX):
        raise ValueError("an entry must be a non-empty domain, label.* or mx:host")
    if entry.endswith(_FAMILY_SUFFIX):
        _family(entry)
    return entry


def _family(value: str) -> str:
    label = value.strip().lower().removesuffix(_FAMILY_SUFFIX)
    if not label or "." in label:
        raise ValueError(f"a family is one label like 'hotmail', not {value!r}")
    return label


def _key(value: str) -> str:
    if not _KEY.match(value):
        raise ValueError(f"an ISP key is lowercase letters, digits, '_' or '-', not {value!r}")
    return value


Entry = Annotated[str, AfterValidator(_entry)]
Family = Annotated[str, AfterValidator(_family)]
IspKey = Annotated[str, AfterValidator(_key)]


class IspSpec(BaseModel):
    """One ISP of ``isps.yaml``: the long form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, description="for people")
    domains: list[Entry] = Field(default_factory=list)
    families: list[Family] = Field(default_factory=list)
    mx: list[Entry] = Field(default_factory=list)


def _form(value: Any) -> str | None:
    if isinstance(value, Mapping | IspSpec):
        return "spec"
    if isinstance(value, list | tuple):
        return "entries"
    return None


#: The long form (``name``, ``domains``, ``families``, ``mx``) or the overrides' short form, a
#: list of entries whose own shape says their kind (``example.com``, ``label.*``, ``mx:host``).
IspValue = Annotated[
    Annotated[IspSpec, Tag("spec")] | Annotated[list[Entry], Tag("entries")],
    Discriminator(
        _form,
        custom_error_type="isp_form",
        custom_error_message="give a mapping (name, domains, families, mx) or a list of entries",
    ),
]
#: The tags pydantic puts in error locations; the file never spells them.
_FORMS = ("spec", "entries")

IspTable = TypeAdapter(dict[IspKey, IspValue])


def parse_isp_table(data: Any, source: str, root: yaml.Node | None = None) -> dict[str, Any]:
    """Validate an ISP table; ``root`` (its YAML node tree) places each problem on its line."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise IspTableError([Problem(source, 1, 1, "", "expected a mapping of ISP key to entries")])
    try:
        return IspTable.validate_python({str(k): v for k, v in data.items()})
    except ValidationError as exc:
        raise IspTableError(problems_from(exc, root, source, hidden=_FORMS)) from None


def _read_isp_file(text: str, source: str) -> dict[str, Any]:
    data, root = parse_yaml(text, source, IspTableError)
    return parse_isp_table(data, source, root)


def _compile(table: Mapping[str, IspSpec | list[str]], tables: _Tables) -> None:
    for key, spec in table.items():
        if isinstance(spec, IspSpec):
            tables.isp(key, spec.name)
            tables.add(key, spec.domains, "domains")
            tables.add(key, spec.families, "families")
            tables.add(key, spec.mx, "mx")
        else:
            tables.add(key, spec)


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


def _packaged() -> dict[str, Any]:
    text = importlib.resources.files("delivery").joinpath("data/isps.yaml").read_text("utf-8")
    return _read_isp_file(text, "delivery/data/isps.yaml")


def load_resolver(
    overrides: Mapping[str, Sequence[str]] | Path | None = None,
    unknown: UnknownPolicy = "other",
) -> IspResolver:
    """The packaged ISP table plus the user's overrides, which win over packaged entries.

    ``overrides`` maps an ISP key (a known one or a new one) to entries: ``example.com`` (a
    domain and its subdomains), ``label.*`` (a regional family), ``mx:host.suffix`` (an MX
    suffix). Key ``other`` sends entries to the catch-all. A YAML file may use that short form
    or the packaged form (``name``, ``domains``, ``families``, ``mx``), which can also rename.
    Either is validated whole before use: ``IspTableError`` names each bad line and field.
    """
    tables = _Tables()
    tables.isps[OTHER.key] = OTHER
    _compile(_packaged(), tables)
    if isinstance(overrides, Path):
        _compile(_read_isp_file(overrides.read_text("utf-8"), str(overrides)), tables)
    elif overrides is not None:
        _compile(parse_isp_table(overrides, "ISP overrides"), tables)
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
