"""The graduation rule and per-recipient state: which addresses go on the suppression list.

Pure and event-time based: the same observations in the same order give the same decisions,
live or replayed. An observation is a short list (it travels as JSON on the recipients topic):

- ``[key, "d", t]``: a delivery to ``key`` at event time ``t``;
- ``[key, "s", t, isp, category, text, domain, labels]``: an address-side soft bounce;
- ``[key, "h", t, isp, category, text, domain, labels]``: a hard bounce that names the
  address bad;
- ``[key, "c", t, isp, domain, labels]``: a spam complaint;
- ``[key, "r", t, by]``: a release (``bouncewatch suppressions release``).

Sender-side causes (throttled, reputation, ...) never become observations at all. ``labels``
(optional, last) is ``[source_ip, sending_domain, tenant]`` of the event: the rules decide
nothing with it; a decision is counted with it in the aggregation keys the event fed
(``suppression_rate``, ``hygiene.observe.suppression_labels``).
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.vocabulary import Category

#: Soft-bounce categories that speak of the address itself (the default of
#: ``BOUNCEWATCH_HYGIENE_SOFT_CATEGORIES``): a full mailbox, a mailbox disabled or over its
#: limits for now, an address or a recipient domain reported unknown or failing for now.
ADDRESS_SIDE_CATEGORIES: frozenset[Category] = frozenset(
    {
        Category.MAILBOX_FULL,
        Category.MAILBOX_DISABLED,
        Category.USER_UNKNOWN,
        Category.DOMAIN_INVALID,
    }
)
#: Categories that say nothing of the address: they never count, whatever the settings say.
SENDER_SIDE_CATEGORIES: frozenset[Category] = frozenset(
    {
        Category.THROTTLED,
        Category.REPUTATION,
        Category.AUTHENTICATION,
        Category.POLICY,
        Category.CONTENT,
        Category.GREYLISTED,
        Category.CONNECTION,
        Category.MESSAGE_TOO_LARGE,
        Category.EXPIRED,
        Category.SUPPRESSED,
        Category.DELIVERED,
    }
)
#: Address-side soft bounces a recipient's state keeps at most (the newest): enough for any
#: sensible rule, and a bound on the entry's size.
MAX_BOUNCES_KEPT = 64
DAY = 86_400

DELIVERY, SOFT, HARD, COMPLAINT, RELEASE = "d", "s", "h", "c", "r"

REASON_SOFT = "soft_bounce_streak"
REASON_HARD = "hard_bounce"
REASON_COMPLAINT = "complaint"
REASONS = (REASON_SOFT, REASON_HARD, REASON_COMPLAINT)


def normalize(address: str) -> str:
    """The address as bouncewatch keys it: the domain lower-cased (and its trailing dot
    dropped), the local part as given (RFC 5321: only the receiving host may fold it)."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower()
    return f"{local}@{domain.lower().rstrip('.')}"


def recipient_key(address: str, hash_key: bytes | None = None) -> str:
    """The key an address goes by in the recipients table and the suppressions topic: the
    normalized address, or its HMAC-SHA256 (hex) under ``hash_key``."""
    address = normalize(address)
    if hash_key is None:
        return address
    return hmac.new(hash_key, address.encode(), hashlib.sha256).hexdigest()


def recipient_partition(key: str, partitions: int) -> int:
    """The recipients (and suppressions) partition of ``key``: CRC-32 of its UTF-8 bytes,
    modulo the partition count. Every writer names the partition explicitly."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class GraduationRule:
    """Soft bounces graduate an address once at least ``min_bounces`` address-side soft
    bounces, on at least ``min_days`` distinct UTC days, came with no delivery after them."""

    min_bounces: int = 5
    min_days: int = 3

    @property
    def name(self) -> str:
        return f"soft_bounces>={self.min_bounces} on >={self.min_days} days, no delivery between"


@dataclass(frozen=True)
class HygieneRules:
    """The graduation rule, its per-domain overrides and the categories that count."""

    default: GraduationRule = field(default_factory=GraduationRule)
    domains: dict[str, GraduationRule] = field(default_factory=dict)
    soft_categories: frozenset[str] = frozenset(c.value for c in ADDRESS_SIDE_CATEGORIES)

    def __post_init__(self) -> None:
        wrong = {c for c in self.soft_categories if c in SENDER_SIDE_CATEGORIES}
        if wrong:
            raise ValueError(f"sender-side categories cannot count: {', '.join(sorted(wrong))}")

    def rule_for(self, domain: str | None) -> GraduationRule:
        if domain and self.domains:
            return self.domains.get(domain, self.default)
        return self.default


def parse_overrides(value: str | None) -> dict[str, GraduationRule]:
    """``domain:bounces:days[,domain:bounces:days...]`` as per-domain rules."""
    rules: dict[str, GraduationRule] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise ValueError(f"expected domain:bounces:days, got {item!r}")
        bounces, days = int(parts[1]), int(parts[2])
        if bounces < 1 or days < 1:
            raise ValueError(f"{item!r}: bounces and days must be at least 1")
        rules[parts[0].lower().rstrip(".")] = GraduationRule(bounces, days)
    return rules


@dataclass(frozen=True)
class Decision:
    """A change the suppression list must publish: a record (suppress) or ``None``
    (the tombstone of a release), with the decision number of its key."""

    key: str
    number: int
    record: dict[str, Any] | None


def _record(
    key: str,
    hashed: bool,
    number: int,
    reason: str,
    category: str,
    t: float,
    rule: str,
    isp: str,
    domain: str | None,
    bounces: list[list[Any]],
    text: str,
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for _, cat in bounces:
        counts[cat] = counts.get(cat, 0) + 1
    return {
        "address": None if hashed else key,
        "key": key,
        "domain": domain,
        "reason": reason,
        "category": category,
        "when": iso(t),
        "rule": rule,
        "decision": number,
        "evidence": {
            "counts": dict(sorted(counts.items())),
            "first_bounce": iso(bounces[0][0]) if bounces else None,
            "last_bounce": iso(bounces[-1][0]) if bounces else None,
            "days": len({int(b[0] // DAY) for b in bounces}),
            "last_reply": text or None,
            "isp": isp,
        },
    }


def apply(
    state: dict[str, Any] | None,
    obs: Sequence[Any],
    rules: HygieneRules,
    hashed: bool = False,
) -> tuple[dict[str, Any] | None, Decision | None]:
    """``obs`` applied to a recipient's ``state`` (None: none yet): the new state (None: no
    state need be kept) and the decision it makes, if any. ``state`` is not modified.

    State: ``b`` the address-side soft bounces since the last delivery ([time, category],
    newest last), ``d`` the latest delivery's time, ``isp``, ``txt`` the last reply text,
    ``dom`` the domain, ``sup`` the number of the decision that suppressed the address (or
    absent), ``n`` decisions made for it so far.
    """
    key, kind, t = obs[0], obs[1], obs[2]
    if kind == DELIVERY:
        if state is None:
            return None, None
        d = state.get("d")
        if d is not None and d >= t:
            return state, None
        new = dict(state, d=t)
        new["b"] = [b for b in state.get("b", ()) if b[0] > t]
        return _trim(new), None
    if kind == RELEASE:
        return release(state), None
    if state is not None and "sup" in state:
        return state, None  # already on the list: nothing to add
    if kind == SOFT and state is not None and state.get("d") is not None and t <= state["d"]:
        return state, None  # a delivery came after it: it no longer counts
    state = dict(state) if state is not None else {}
    n = state.get("n", 0)
    if kind == COMPLAINT:
        isp, domain = obs[3], obs[4]
        bounces = list(state.get("b", ()))
        record = _record(
            key,
            hashed,
            n + 1,
            REASON_COMPLAINT,
            "complaint",
            t,
            "complaint",
            isp,
            domain,
            bounces,
            state.get("txt", ""),
        )
        return _suppressed(state, n + 1, isp, domain), Decision(key, n + 1, record)
    isp, category, text, domain = obs[3], obs[4], obs[5], obs[6]
    if kind == HARD:
        bounces = list(state.get("b", ()))
        record = _record(
            key,
            hashed,
            n + 1,
            REASON_HARD,
            category,
            t,
            f"hard_bounce:{category}",
            isp,
            domain,
            [*bounces, [t, category]],
            text,
        )
        return _suppressed(state, n + 1, isp, domain), Decision(key, n + 1, record)
    # an address-side soft bounce
    bounces = list(state.get("b", ()))
    bounces.append([t, category])
    if len(bounces) > 1 and bounces[-2][0] > t:
        bounces.sort(key=lambda b: b[0])
    del bounces[:-MAX_BOUNCES_KEPT]
    state.update(b=bounces, isp=isp, txt=text, dom=domain)
    rule = rules.rule_for(domain)
    if len(bounces) >= rule.min_bounces and (
        len({int(b[0] // DAY) for b in bounces}) >= rule.min_days
    ):
        record = _record(
            key,
            hashed,
            n + 1,
            REASON_SOFT,
            _main_category(bounces),
            t,
            rule.name,
            isp,
            domain,
            bounces,
            text,
        )
        return _suppressed(state, n + 1, isp, domain), Decision(key, n + 1, record)
    return state, None


def release(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state once released: history gone, the decision count kept (so that a later
    graduation gets a new number); None when nothing is worth keeping."""
    if state is None or not state.get("n"):
        return None
    return {"n": state["n"]}


def _suppressed(state: dict[str, Any], number: int, isp: str, domain: str | None) -> dict[str, Any]:
    # The history is no longer needed once on the list: the record holds the evidence.
    return {"n": number, "sup": number, "isp": isp, "dom": domain}


def _trim(state: dict[str, Any]) -> dict[str, Any] | None:
    """None when ``state`` holds nothing a later observation needs (no bounces left, never
    suppressed): a delivery then leaves no entry behind."""
    if not state.get("b") and "sup" not in state and not state.get("n"):
        return None
    return state


def _main_category(bounces: Iterable[list[Any]]) -> str:
    counts: dict[str, int] = {}
    for _, cat in bounces:
        counts[cat] = counts.get(cat, 0) + 1
    return max(sorted(counts), key=lambda c: counts[c])


@dataclass
class Recipients:
    """Recipient states in a dict, with the decisions in order: the offline twin of the
    worker's ``recipients`` table (``replay --suppressions``, tests)."""

    rules: HygieneRules = field(default_factory=HygieneRules)
    hashed: bool = False
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)

    def feed(
        self,
        observations: Iterable[Sequence[Any]],
        by: list[Sequence[Any]] | None = None,
    ) -> list[Decision]:
        """Apply ``observations`` in order; the decisions they make. ``by``, when given,
        receives the observation behind each decision, in the same order."""
        made: list[Decision] = []
        for obs in observations:
            key = obs[0]
            old = self.states.get(key)
            new, decision = apply(old, obs, self.rules, self.hashed)
            if new is None:
                self.states.pop(key, None)
            elif new is not old:
                self.states[key] = new
            if decision is not None:
                made.append(decision)
                if by is not None:
                    by.append(obs)
        self.decisions.extend(made)
        return made


def rules_from_settings(settings: Any) -> HygieneRules:
    """The rules ``schemas.settings.Settings`` describes (validated there)."""
    return HygieneRules(
        default=GraduationRule(settings.hygiene_min_bounces, settings.hygiene_min_days),
        domains=parse_overrides(settings.hygiene_domain_overrides),
        soft_categories=frozenset(
            c.strip() for c in settings.hygiene_soft_categories.split(",") if c.strip()
        ),
    )


def hash_key_from_settings(settings: Any) -> bytes | None:
    secret = settings.suppression_hash_key
    return None if secret is None else secret.get_secret_value().encode()
