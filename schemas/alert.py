"""The alert-transition message: what the rule evaluator emits and the notifiers consume.

It crosses Kafka (the alert topic, keyed by ``fingerprint``), so it is a pydantic model with a
JSON Schema. ``(fingerprint, sequence)`` identifies one transition: the notifier's delivery log
dedups on it, so a transition consumed twice after a crash is delivered once.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.vocabulary import Category


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class TransitionKind(StrEnum):
    PENDING = "pending"  # condition true, waiting out `for`; not notified by default
    FIRING = "firing"  # first notification
    SEVERITY_CHANGED = "severity_changed"  # escalated or de-escalated while firing
    REMINDER = "still_firing"  # repeat_interval elapsed, still firing
    RESOLVED = "resolved"


class ReplySample(BaseModel):
    """One of the most frequent replies behind an alert."""

    model_config = ConfigDict(frozen=True)

    category: Category
    code: int | None = None
    enhanced: str | None = None
    isp_code: str | None = None
    text: str = Field(description="One sample text of this reply")
    count: int = Field(ge=0)


class SourceCount(BaseModel):
    """One sending domain, IP or campaign and how many complaints name it."""

    model_config = ConfigDict(frozen=True)

    name: str
    count: int = Field(ge=0)


class ComplaintEvidence(BaseModel):
    """What a complaint alert shows besides the rate: the counts, the provider's limit, and
    what sent the mail people complained about."""

    model_config = ConfigDict(frozen=True)

    complaints: int = Field(ge=0, description="Spam complaints received in the window")
    delivered: int = Field(ge=0, description="Delivered attempts in the window")
    other_feedback: int = Field(
        default=0, ge=0, description="Feedback that is no complaint (not-spam, opt-out)"
    )
    provider_limit: float | None = Field(
        default=None,
        description="The complaint rate the mailbox provider asks senders to stay under",
    )
    provider_limit_source: str = Field(default="", description="Where that limit is published")
    top_sending_domains: list[SourceCount] = Field(default_factory=list)
    top_source_ips: list[SourceCount] = Field(default_factory=list)
    top_campaigns: list[SourceCount] = Field(default_factory=list)


class AlertTransition(BaseModel):
    """One change of one alert's state."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str = Field(description="Stable id of the alert: hash of rule and group labels")
    sequence: int = Field(ge=1, description="Counts the transitions of this fingerprint")
    kind: TransitionKind
    state: AlertState
    severity: Severity
    rule: str
    rule_type: str = Field(description="threshold or spike")
    isp: str = Field(description="ISP key, e.g. gmail")
    isp_name: str = Field(description="ISP display name, e.g. Gmail")
    group: dict[str, str] = Field(
        default_factory=dict, description="Extra group_by labels: source_ip, sending_domain, tenant"
    )
    metric: str = Field(description="e.g. soft_bounce_rate or category_rate(throttled)")
    value: float = Field(description="The metric over the window when evaluated")
    threshold: float | None = Field(default=None, description="The limit (threshold rules)")
    baseline: float | None = Field(default=None, description="The key's own baseline (spike rules)")
    attempts: int = Field(
        ge=0,
        description="The volume in the window: delivery attempts, or delivered attempts for "
        "complaint metrics (the rate's denominator)",
    )
    window_seconds: int = Field(gt=0)
    event_time: AwareDatetime = Field(description="Event time of the evaluation (bucket end)")
    started_at: AwareDatetime = Field(description="When the alert first went pending")
    cause: Category | None = Field(default=None, description="Dominant failure category")
    categories: dict[str, int] = Field(
        default_factory=dict, description="Failed attempts per category in the window"
    )
    top_replies: list[ReplySample] = Field(default_factory=list)
    trend: list[float] = Field(
        default_factory=list, description="The metric per recent bucket, oldest first"
    )
    summary: str = Field(default="", description="One line saying what happened")
    recommended_action: str = Field(default="")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict, description="e.g. runbook_url")
    complaints: ComplaintEvidence | None = Field(
        default=None, description="Complaint metrics only: the counts, limit and top sources"
    )
