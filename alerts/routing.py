"""Where notifications go: receivers and the routing tree of the notifications file.

The file (``BOUNCEWATCH_NOTIFY_FILE``) follows Alertmanager's layout so that people who know
Alertmanager can read it at a glance::

    receivers:
      - name: deliverability
        slack_configs:
          - channel: "#deliverability"
        email_configs:
          - to: [postmaster@example.com]
      - name: oncall
        slack_configs:
          - channel: "#oncall"
            runbook_url: https://wiki.example.com/runbooks/deliverability
    route:
      receiver: deliverability
      group_by: [rule]
      group_wait: 30s
      routes:
        - matchers: ['severity="critical"', 'isp=~"gmail|microsoft"']
          receiver: oncall
          continue: true
    notification_log_retention: 7d   # the default

Connection details (the Slack token, the SMTP relay) stay in the deployment settings; the
file only says who gets what. Without a file, :func:`default_config` builds one receiver from
the settings, so a plain ``helm install`` with a Slack token already alerts somewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.alert import AlertTransition, TransitionKind
from schemas.durations import Duration

# Re-exported: the renderers read format_duration from here.
from schemas.durations import format_duration as format_duration
from schemas.settings import LogRetention, Settings, SmtpSecurity

# --- Matchers -------------------------------------------------------------------------------


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher(BaseModel):
    """One label condition, written as in Alertmanager: ``isp="gmail"``, ``rule=~"gmail-.*"``.

    Regular expressions are anchored (the whole value must match), as in Alertmanager, so
    ``isp=~"gmail"`` does not also match ``gmail-workspace``.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    op: MatchOp = MatchOp.EQ
    value: str

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        match = _MATCHER.match(data)
        if not match:
            raise ValueError(f'not a matcher: {data!r} (expected name="value", name=~"regex")')
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return {"name": name, "op": op, "value": value}

    @model_validator(mode="after")
    def _valid_regex(self) -> Matcher:
        if self.op in (MatchOp.RE, MatchOp.NRE):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"{self.name}{self.op}: bad regular expression: {exc}") from exc
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label matches as the empty string, as in Alertmanager, so that
        # `tenant!="acme"` also matches alerts that carry no tenant at all.
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return actual == self.value
        if self.op is MatchOp.NE:
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op is MatchOp.RE else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op.value}"{self.value}"'


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def alert_labels(transition: AlertTransition) -> dict[str, str]:
    """The labels routes and silences match on.

    The alert's own identity (rule, ISP, severity, cause) wins over free-form labels so that a
    rule file cannot make a critical alert look like a warning to the router.
    """
    labels = dict(transition.labels)
    labels.update(transition.group)
    labels.update(
        {
            "rule": transition.rule,
            "rule_type": transition.rule_type,
            "isp": transition.isp,
            "severity": transition.severity.value,
            "metric": transition.metric,
            "cause": transition.cause.value if transition.cause else "",
        }
    )
    return labels


# --- Receivers ------------------------------------------------------------------------------


class SlackMode(StrEnum):
    AUTO = "auto"  # bot when a token is set, else the incoming webhook
    BOT = "bot"
    WEBHOOK = "webhook"


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str | None = Field(
        default=None, description="Channel ID or #name; BOUNCEWATCH_SLACK_CHANNEL when unset"
    )
    mode: SlackMode = Field(
        default=SlackMode.AUTO,
        description="`bot` (chat.postMessage, threads), `webhook` (no threads) or `auto`",
    )
    runbook_url: str | None = Field(
        default=None, description="Runbook link when the rule carries no runbook_url annotation"
    )
    send_resolved: bool = True


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: list[str] = Field(
        default_factory=list, description="Recipients; BOUNCEWATCH_SMTP_TO when empty"
    )
    from_: str | None = Field(
        default=None, alias="from", description="From address; BOUNCEWATCH_SMTP_FROM when unset"
    )
    runbook_url: str | None = None
    send_resolved: bool = True
    allow_plaintext_auth: bool = Field(
        default=False,
        description=(
            "Log in to the relay even with BOUNCEWATCH_SMTP_SECURITY=none, which sends the "
            "password in clear; only for a relay on localhost or a network you trust"
        ),
    )

    @field_validator("to", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value


class ConsoleConfig(BaseModel):
    """Prints notifications to stdout: the embedded demo and a first look without Slack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runbook_url: str | None = None
    send_resolved: bool = True


class IntegrationKind(StrEnum):
    SLACK = "slack"
    EMAIL = "email"
    CONSOLE = "console"


IntegrationConfig = SlackConfig | EmailConfig | ConsoleConfig


@dataclass(frozen=True)
class Integration:
    """One delivery target: a receiver's n-th Slack, email or console config.

    ``key`` names it in the notification log and the outbox, so it must stay stable across
    restarts: it is built from the receiver's name and the config's position, like
    Alertmanager's integration identity.
    """

    receiver: str
    kind: IntegrationKind
    index: int
    config: IntegrationConfig

    @property
    def key(self) -> str:
        return f"{self.receiver}/{self.kind.value}/{self.index}"


class Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[^/|]+$")
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    console_configs: list[ConsoleConfig] = Field(default_factory=list)

    def integrations(self) -> list[Integration]:
        found = [
            Integration(self.name, IntegrationKind.SLACK, i, c)
            for i, c in enumerate(self.slack_configs)
        ]
        found += [
            Integration(self.name, IntegrationKind.EMAIL, i, c)
            for i, c in enumerate(self.email_configs)
        ]
        found += [
            Integration(self.name, IntegrationKind.CONSOLE, i, c)
            for i, c in enumerate(self.console_configs)
        ]
        return found


# --- The routing tree -----------------------------------------------------------------------


class Route(BaseModel):
    """A node of the routing tree; unset fields are inherited from the parent."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | None = None
    matchers: list[Matcher] = Field(default_factory=list)
    group_by: list[str] | None = Field(
        default=None, description="Labels whose values form a group; `[...]` groups nothing"
    )
    group_wait: Duration | None = Field(
        default=None, description="How long to collect a group's first transitions"
    )
    repeat_interval: Duration | None = Field(
        default=None,
        description=(
            "Minimum time between two reminders of one alert to one receiver. The rule "
            "evaluator emits the reminders; this only thins them out for a noisy receiver."
        ),
    )
    notify_pending: bool | None = Field(
        default=None, description="Also notify `pending` transitions (off by default)"
    )
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)


@dataclass(frozen=True)
class RouteOptions:
    """A matched route with everything inherited filled in."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    repeat_interval: timedelta | None
    notify_pending: bool

    def group_labels(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        if self.group_by == ("...",):
            # Alertmanager's "group by everything": each alert is its own group.
            return tuple(sorted(labels.items()))
        return tuple((name, labels.get(name, "")) for name in self.group_by)


ROOT_DEFAULTS = RouteOptions(
    receiver="",
    group_by=("rule",),
    group_wait=timedelta(seconds=30),
    repeat_interval=None,
    notify_pending=False,
)


def _inherit(node: Route, parent: RouteOptions) -> RouteOptions:
    return RouteOptions(
        receiver=node.receiver or parent.receiver,
        group_by=tuple(node.group_by) if node.group_by is not None else parent.group_by,
        group_wait=node.group_wait if node.group_wait is not None else parent.group_wait,
        repeat_interval=(
            node.repeat_interval if node.repeat_interval is not None else parent.repeat_interval
        ),
        notify_pending=(
            node.notify_pending if node.notify_pending is not None else parent.notify_pending
        ),
    )


class NotifyConfig(BaseModel):
    """The whole notifications file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: list[Receiver]
    route: Route
    notification_log_retention: LogRetention = Field(
        default=timedelta(days=7),
        description=(
            "How long the notification log remembers an alert once its incident resolved "
            "(or it was last heard of, when it never fired); at least 1h"
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> NotifyConfig:
        names = [r.name for r in self.receivers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receiver names must be unique: {', '.join(duplicates)}")
        if not self.route.receiver:
            raise ValueError("route.receiver: the top-level route needs a receiver")
        known = set(names)
        for path, node in _walk(self.route, "route"):
            if node.receiver and node.receiver not in known:
                raise ValueError(f"{path}.receiver: no receiver named {node.receiver!r}")
        return self

    def receiver(self, name: str) -> Receiver:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)

    def integrations(self) -> list[Integration]:
        return [i for r in self.receivers for i in r.integrations()]

    def match(self, labels: Mapping[str, str]) -> list[RouteOptions]:
        """The routes an alert with these labels goes to, first match first.

        Depth first as in Alertmanager: the first matching child wins unless it says
        ``continue``; a node none of whose children match takes the alert itself.
        """
        found = _match(self.route, _inherit(self.route, ROOT_DEFAULTS), labels)
        # The root matches everything, so there is always at least one route; a receiver
        # reached twice through different branches still gets one notification.
        unique: dict[str, RouteOptions] = {}
        for options in found:
            unique.setdefault(options.receiver, options)
        return list(unique.values())

    def routes_for(self, transition: AlertTransition) -> list[RouteOptions]:
        options = self.match(alert_labels(transition))
        if transition.kind is TransitionKind.PENDING:
            options = [o for o in options if o.notify_pending]
        return options


def _walk(node: Route, path: str) -> Iterator[tuple[str, Route]]:
    yield path, node
    for i, child in enumerate(node.routes):
        yield from _walk(child, f"{path}.routes[{i}]")


def _match(node: Route, options: RouteOptions, labels: Mapping[str, str]) -> list[RouteOptions]:
    found: list[RouteOptions] = []
    for child in node.routes:
        if not matches_all(child.matchers, labels):
            continue
        found.extend(_match(child, _inherit(child, options), labels))
        if not child.continue_:
            break
    return found or [options]


# --- Loading --------------------------------------------------------------------------------


class NotifyConfigError(ValueError):
    """The notifications file cannot be read or is invalid; the message says where."""


def load_config(path: Path) -> NotifyConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotifyConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise NotifyConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return NotifyConfig.model_validate(data)
    except ValidationError as exc:
        raise NotifyConfigError(f"{path}: {exc}") from exc


DEFAULT_RECEIVER = "default"


def default_config(settings: Settings) -> NotifyConfig:
    """What to do without a notifications file: tell whoever the settings name.

    Slack when a bot token or webhook is set, email when a relay and recipients are set, both
    when both are; the console otherwise, so an alert is never silently nowhere. The email
    config logs in over plain SMTP only with BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH, and the
    log keeps BOUNCEWATCH_NOTIFICATION_LOG_RETENTION.
    """
    slack = []
    if settings.slack_token is not None or settings.slack_webhook_url is not None:
        slack.append(SlackConfig())
    email = []
    if settings.smtp_host and settings.smtp_recipients:
        email.append(EmailConfig(allow_plaintext_auth=settings.smtp_allow_plaintext_auth))
    console = [] if slack or email else [ConsoleConfig()]
    receiver = Receiver(
        name=DEFAULT_RECEIVER,
        slack_configs=slack,
        email_configs=email,
        console_configs=console,
    )
    return NotifyConfig(
        receivers=[receiver],
        route=Route(receiver=DEFAULT_RECEIVER),
        notification_log_retention=settings.notification_log_retention,
    )


def plaintext_auth_refused(
    key: str,
    security: SmtpSecurity,
    username: str | None,
    password: str | None,
    allowed: bool,
) -> str | None:
    """Why an email integration may not log in as configured, or ``None`` when it may."""
    if security is not SmtpSecurity.NONE or not (username or password) or allowed:
        return None
    return (
        f"{key}: BOUNCEWATCH_SMTP_SECURITY=none with a user name or password would send the "
        "SMTP password in clear; use starttls or tls, or set allow_plaintext_auth: true on "
        "this email config if the relay is on localhost or a network you trust"
    )


def check_against_settings(config: NotifyConfig, settings: Settings) -> None:
    """Refuse what the file and the deployment settings only get wrong together."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    for integration in config.integrations():
        if not isinstance(integration.config, EmailConfig):
            continue
        refused = plaintext_auth_refused(
            integration.key,
            settings.smtp_security,
            settings.smtp_username,
            password,
            integration.config.allow_plaintext_auth,
        )
        if refused:
            raise NotifyConfigError(refused)


def resolve_config(settings: Settings, path: Path | None) -> NotifyConfig:
    """The notifications file when one is given, else :func:`default_config`, checked
    against the settings (:func:`check_against_settings`)."""
    config = load_config(path) if path is not None else default_config(settings)
    check_against_settings(config, settings)
    return config
