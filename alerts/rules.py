"""Alert rules: the YAML file's model, its loader, and what the rules ask of aggregation.

A rules file::

    settings:            # optional; every field has a default
      bucket: 1m
      allowed_lateness: 5m
      evaluation_delay: 1m
      repeat_interval: 4h
    rules:
      - name: soft-bounce-rate
        type: threshold            # or spike
        metric: soft_bounce_rate
        ...

A bad file is refused as a whole, each problem reported with its line and column
(``RulesError``). Overrides per ISP are validated at load as complete rules, so a typo inside
``overrides.gmail`` is found before the service starts, not when Gmail first has traffic.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aggregation.buckets import (
    ISP_KEY_SPEC,
    AggregationConfig,
    KeySpec,
    default_evaluation_delay,
)
from aggregation.metrics import Metric, parse_metric
from alerts.state import severity_rank
from schemas.alert import Severity
from schemas.durations import DurationSeconds as Duration
from schemas.durations import format_duration
from schemas.yaml_problems import Problem, ProblemsError, parse_yaml, problem_at, problems_from

# --------------------------------------------------------------------------- models

Comparison = Literal[">", ">=", "<", "<="]
GroupDimension = Literal["source_ip", "sending_domain", "tenant"]
_ISP_KEY = r"^[a-z0-9][a-z0-9_.-]*$"
#: Fields an ``overrides.<isp>`` entry may not change: they define which keys the rule reads.
_NOT_OVERRIDABLE = frozenset({"name", "type", "overrides", "scope", "group_by"})


class ScopeExcept(BaseModel):
    """``scope: {except: [other]}``: every ISP but these."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    except_: list[Annotated[str, Field(pattern=_ISP_KEY)]] = Field(alias="except", min_length=1)


class Baseline(BaseModel):
    """The period before the current window that a spike is measured against."""

    model_config = ConfigDict(extra="forbid")
    period: Duration = Field(description="Length of the baseline, a multiple of the window")
    aggregate: Literal["mean", "median"] = Field(
        default="median", description="How the baseline windows' values are combined"
    )


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    description: str = ""
    metric: str = Field(description="soft_bounce_rate, category_rate(throttled), ...")
    window: Duration = Field(default=900, gt=0)
    min_attempts: int = Field(
        default=100,
        ge=0,
        description="The volume needed in the window for the rule to judge: attempts, or "
        "delivered messages for complaint metrics (the rate's denominator, Metric.volume)",
    )
    confidence: Literal["none", "wilson"] = Field(
        default="none",
        description="wilson: judge a rate by its 95 % Wilson bound, so few attempts weigh less",
    )
    for_: Duration = Field(default=0, alias="for", description="How long the condition must hold")
    hysteresis: float | None = Field(
        default=None,
        ge=0,
        description="How far back past a threshold the value must go to clear it (metric "
        "units; spike rules: factor units). Default: a tenth of each threshold",
    )
    repeat_interval: Duration | None = Field(
        default=None, description="Reminder period while firing; settings.repeat_interval if unset"
    )
    scope: Literal["all"] | list[Annotated[str, Field(pattern=_ISP_KEY)]] | ScopeExcept = "all"
    group_by: list[GroupDimension] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    overrides: dict[Annotated[str, Field(pattern=_ISP_KEY)], dict[str, Any]] = Field(
        default_factory=dict, description="Per ISP key: any parameter but name/type/scope/group_by"
    )
    severity: Severity = Field(
        default=Severity.WARNING, description="Severity of a single-level rule (value or factor)"
    )

    _resolved: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return parse_metric(value).text

    @field_validator("overrides")
    @classmethod
    def _overridable(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for isp, params in value.items():
            bad = sorted(set(params) & _NOT_OVERRIDABLE)
            if bad:
                raise ValueError(f"overrides.{isp} may not change {', '.join(bad)}")
        return value

    @cached_property
    def parsed_metric(self) -> Metric:
        return parse_metric(self.metric)

    @property
    def volume_guard(self) -> int:
        """The volume a window needs for the rule to judge it: ``min_attempts``, and at least
        one (a rate over nothing is no rate)."""
        return max(self.min_attempts, 1)

    @cached_property
    def key_spec(self) -> KeySpec:
        return KeySpec.of(self.group_by)

    def in_scope(self, isp: str) -> bool:
        if self.scope == "all":
            return True
        if isinstance(self.scope, ScopeExcept):
            return isp not in self.scope.except_
        return isp in self.scope

    def for_isp(self, isp: str) -> Self:
        """This rule with ``overrides[isp]`` applied (validated at load, so it cannot fail)."""
        if isp not in self.overrides:
            return self
        resolved: Self | None = self._resolved.get(isp)
        if resolved is None:
            resolved = self._resolved[isp] = self.with_override(isp)
        return resolved

    def with_override(self, isp: str) -> Self:
        base = self.model_dump(by_alias=True, exclude={"overrides"}, exclude_unset=True)
        base["name"], base["type"] = self.name, getattr(self, "type")  # noqa: B009
        for field_name, value in self.overrides[isp].items():
            if isinstance(value, dict) and isinstance(base.get(field_name), dict):
                base[field_name] = {**base[field_name], **value}
            else:
                base[field_name] = value
        return type(self).model_validate(base)

    def base_thresholds(self) -> dict[Severity, float]:
        raise NotImplementedError

    @cached_property
    def levels(self) -> list[tuple[Severity, float]]:
        """(severity, threshold) of every level, the most severe first: the order in which
        an evaluation tries them (worked out once, as it runs at every bucket boundary)."""
        return sorted(self.base_thresholds().items(), key=lambda lv: -severity_rank(lv[0]))

    def hysteresis_for(self, severity: Severity) -> float:
        if self.hysteresis is not None:
            return self.hysteresis
        return abs(self.base_thresholds()[severity]) * 0.1

    @property
    def span_seconds(self) -> int:
        """How far back from the evaluation time this rule reads."""
        return self.window


def _check_levels(
    value: float | None,
    severities: dict[Severity, float] | None,
    severity: Severity,
    ascending: bool,
    what: str,
) -> dict[Severity, float]:
    if (value is None) == (severities is None):
        raise ValueError(f"give either `{what}` (with `severity`) or `severities`, not both")
    levels = {severity: value} if value is not None else dict(severities or {})
    if not levels:
        raise ValueError("severities must name warning, critical or both")
    if Severity.WARNING in levels and Severity.CRITICAL in levels:
        warning, critical = levels[Severity.WARNING], levels[Severity.CRITICAL]
        if (critical <= warning) if ascending else (critical >= warning):
            word = "above" if ascending else "below"
            raise ValueError(f"the critical {what} must be {word} the warning one")
    return levels


class ThresholdRule(_Rule):
    """Fires when the metric over the window compares to a fixed limit."""

    type: Literal["threshold"]
    comparison: Comparison = ">="
    value: float | None = Field(default=None, description="The limit of a single-level rule")
    severities: dict[Severity, float] | None = Field(
        default=None, description="Limits per severity: {warning: 0.1, critical: 0.25}"
    )

    @model_validator(mode="after")
    def _levels(self) -> ThresholdRule:
        _check_levels(
            self.value, self.severities, self.severity, self.comparison in (">", ">="), "value"
        )
        return self

    def base_thresholds(self) -> dict[Severity, float]:
        if self.value is not None:
            return {self.severity: self.value}
        return dict(self.severities or {})


class SpikeRule(_Rule):
    """Fires when the metric jumps against the same key's own recent baseline.

    Fires when ``current >= factor * baseline`` and ``current - baseline >= min_delta``,
    with at least ``min_attempts`` in the window and ``min_baseline_attempts`` in the
    baseline period.
    """

    type: Literal["spike"]
    baseline: Baseline
    factor: float | None = Field(default=None, gt=1, description="Single-level factor")
    severities: dict[Severity, Annotated[float, Field(gt=1)]] | None = Field(
        default=None, description="Factor per severity: {warning: 2, critical: 4}"
    )
    min_delta: float = Field(
        default=0.0, ge=0, description="Least absolute rise over the baseline (metric units)"
    )
    min_baseline_attempts: int | None = Field(
        default=None, ge=0, description="Attempts needed in the baseline period; min_attempts"
    )

    @model_validator(mode="after")
    def _levels(self) -> SpikeRule:
        _check_levels(self.factor, self.severities, self.severity, True, "factor")
        if self.baseline.period < self.window or self.baseline.period % self.window:
            raise ValueError("baseline.period must be a whole number of windows")
        return self

    def base_thresholds(self) -> dict[Severity, float]:
        if self.factor is not None:
            return {self.severity: self.factor}
        return dict(self.severities or {})

    @property
    def baseline_min_attempts(self) -> int:
        if self.min_baseline_attempts is None:
            return self.min_attempts
        return self.min_baseline_attempts

    @property
    def span_seconds(self) -> int:
        return self.window + self.baseline.period

    def combine(self, values: Sequence[float]) -> float:
        if self.baseline.aggregate == "median":
            return float(statistics.median(values))
        return float(statistics.fmean(values))


Rule = Annotated[ThresholdRule | SpikeRule, Field(discriminator="type")]


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: Duration = Field(default=60, gt=0, description="Bucket length; windows are multiples")
    allowed_lateness: Duration = Field(
        default=300,
        description="How late an event may arrive and still be counted; later ones are "
        "counted as late events, in no bucket",
    )
    evaluation_delay: Duration = Field(
        default=60,
        description="How long after a bucket ends the rules evaluate it; at most "
        "allowed_lateness. Default 1m, or allowed_lateness when that is shorter",
    )
    repeat_interval: Duration = Field(
        default=4 * 3600, gt=0, description="Reminder period of firing alerts"
    )
    evidence: Duration = Field(
        default=3600, gt=0, description="How long buckets keep reply samples for alerts"
    )

    @field_validator("bucket")
    @classmethod
    def _divides_day(cls, value: int) -> int:
        if 86400 % value:
            raise ValueError("the bucket must divide a day (e.g. 30s, 1m, 5m)")
        return value

    @field_validator("evaluation_delay")
    @classmethod
    def _within_lateness(cls, value: int, info: ValidationInfo) -> int:
        # A field validator (not a model one) so the error points at this field's line.
        # allowed_lateness is declared first, so it is in info.data unless it was invalid.
        lateness = info.data.get("allowed_lateness")
        if lateness is not None and value > lateness:
            raise ValueError(
                f"evaluation_delay ({format_duration(value)}) must not exceed allowed_lateness "
                f"({format_duration(lateness)}): a bucket cannot stop accepting events before "
                "it is evaluated"
            )
        return value

    @model_validator(mode="after")
    def _default_delay(self) -> RuleSettings:
        # Left unset, the delay follows a short lateness down instead of refusing the file:
        # `allowed_lateness: 0` alone is a complete, valid choice.
        if "evaluation_delay" not in self.model_fields_set:
            self.evaluation_delay = default_evaluation_delay(self.allowed_lateness)
        return self


class RuleSet(BaseModel):
    """A whole rules file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    settings: RuleSettings = Field(default_factory=RuleSettings)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        seen: set[str] = set()
        bucket = self.settings.bucket
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}")
            seen.add(rule.name)
            if rule.window % bucket:
                raise ValueError(
                    f"rule {rule.name!r}: window {format_duration(rule.window)} is not a "
                    f"multiple of the bucket ({format_duration(bucket)})"
                )
        return self

    def key_specs(self) -> set[KeySpec]:
        """Aggregation key families the rules read: always the ISP alone, plus group_bys."""
        return {ISP_KEY_SPEC} | {rule.key_spec for rule in self.rules}

    def retention_seconds(self) -> int:
        """Buckets needed behind the watermark: the longest span any rule (or override) reads."""
        spans = [self.settings.bucket]
        for rule in self.rules:
            spans.append(rule.span_seconds)
            spans.extend(rule.for_isp(isp).span_seconds for isp in rule.overrides)
        return max(spans) + self.settings.bucket

    def aggregation_config(self) -> AggregationConfig:
        return AggregationConfig(
            bucket_seconds=self.settings.bucket,
            lateness_seconds=self.settings.allowed_lateness,
            retention_seconds=self.retention_seconds(),
            evidence_seconds=max(self.settings.evidence, self.settings.bucket),
            evaluation_delay_seconds=self.settings.evaluation_delay,
        )

    def rules_for(self, isp: str, spec: KeySpec) -> list[ThresholdRule | SpikeRule]:
        """The rules (overrides applied) that read keys of this ISP and key family."""
        return [
            rule.for_isp(isp) for rule in self.rules if rule.key_spec == spec and rule.in_scope(isp)
        ]


# --------------------------------------------------------------------------- loading


#: One problem of a rules file (its line, column, field and message).
RuleProblem = Problem


class RulesError(ProblemsError):
    """A rules file that cannot be used; ``problems`` lists every reason found."""


#: pydantic names the member of the rule union in error locations; the file never does.
_UNION_TAGS = ("threshold", "spike")


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate a rules document; raise ``RulesError`` naming each bad line and field."""
    data, root = parse_yaml(text, source, RulesError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError([RuleProblem(source, 1, 1, "", "a rules file is a mapping with `rules:`")])
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesError(problems_from(exc, root, source, hidden=_UNION_TAGS)) from None
    problems: list[RuleProblem] = []
    for index, rule in enumerate(ruleset.rules):
        for isp in rule.overrides:
            where: tuple[str | int, ...] = ("rules", index, "overrides", isp)
            try:
                resolved = rule.with_override(isp)
            except ValidationError as exc:
                problems.extend(problems_from(exc, root, source, where, hidden=_UNION_TAGS))
                continue
            if resolved.window % ruleset.settings.bucket:
                problems.append(
                    problem_at(
                        root,
                        source,
                        (*where, "window"),
                        "the window is not a multiple of the bucket",
                    )
                )
    if problems:
        raise RulesError(problems)
    return ruleset


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(
            [RuleProblem(str(path), None, None, "", exc.strerror or str(exc))]
        ) from None
    return parse_rules(text, str(path))


DEFAULT_RULES_RESOURCE = "default_rules.yaml"


def default_rules_text() -> str:
    return resources.files("alerts").joinpath("data", DEFAULT_RULES_RESOURCE).read_text("utf-8")


def load_default_rules() -> RuleSet:
    """The packaged default rules (``alerts/data/default_rules.yaml``)."""
    return parse_rules(default_rules_text(), "default_rules.yaml")


def isp_rules(ruleset: RuleSet, isps: Iterable[str]) -> Mapping[str, list[str]]:
    """Which rules apply to each ISP's own key (for ``rules validate --explain``)."""
    return {
        isp: [r.name for r in ruleset.rules_for(isp, ISP_KEY_SPEC)] for isp in sorted(set(isps))
    }
