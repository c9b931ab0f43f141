"""Result types of the domain core, frozen and cheap: they sit on the path of every event."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.vocabulary import BounceType, Category, Outcome


@dataclass(frozen=True, slots=True)
class Classification:
    """What one SMTP reply means."""

    outcome: Outcome
    bounce_type: BounceType
    category: Category
    reason: str  # a short human explanation
    isp_code: str | None = None  # the receiver's own code when its text carries one: TSS04, S3150
    rule_id: str | None = None  # which rule of the rules table decided (for --explain)


@dataclass(frozen=True, slots=True)
class Isp:
    """A receiving mailbox provider: a stable key and a name for people."""

    key: str  # gmail, microsoft, yahoo, apple, ..., other
    name: str
