"""The notifications file: parsing, matchers, the routing tree and the default route."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from alerts.routing import (
    IntegrationKind,
    Matcher,
    NotifyConfig,
    NotifyConfigError,
    alert_labels,
    default_config,
    load_config,
    resolve_config,
)
from schemas.alert import Severity, TransitionKind
from schemas.settings import Settings, SmtpSecurity
from tests.support.alert_samples import followup, gmail_throttling, microsoft_blocklist

EXAMPLE = """
receivers:
  - name: deliverability
    slack_configs:
      - channel: "#deliverability"
    email_configs:
      - to: postmaster@example.com, deliverability@example.com
  - name: oncall
    slack_configs:
      - channel: "#oncall"
        runbook_url: https://wiki.example.com/runbooks/deliverability
  - name: acme
    email_configs:
      - to: [ops@acme.example]
        send_resolved: false
route:
  receiver: deliverability
  group_by: [rule]
  group_wait: 30s
  routes:
    - matchers: ['severity="critical"', 'isp=~"gmail|microsoft"']
      receiver: oncall
      group_wait: 0s
      continue: true
    - matchers: ['tenant="acme"']
      receiver: acme
      repeat_interval: 4h
"""


@pytest.fixture
def config(tmp_path: Path) -> NotifyConfig:
    path = tmp_path / "notify.yaml"
    path.write_text(EXAMPLE)
    return load_config(path)


def test_example_file_parses(config: NotifyConfig) -> None:
    assert [r.name for r in config.receivers] == ["deliverability", "oncall", "acme"]
    deliverability = config.receiver("deliverability")
    assert deliverability.email_configs[0].to == [
        "postmaster@example.com",
        "deliverability@example.com",
    ]
    keys = [i.key for i in config.integrations()]
    assert keys == [
        "deliverability/slack/0",
        "deliverability/email/0",
        "oncall/slack/0",
        "acme/email/0",
    ]


def test_critical_microsoft_goes_to_oncall(config: NotifyConfig) -> None:
    # As in Alertmanager: a matching child takes the alert from its parent, `continue` or
    # not; `continue` only lets the following siblings match too.
    routes = config.routes_for(microsoft_blocklist())
    assert [r.receiver for r in routes] == ["oncall"]
    assert routes[0].group_wait == timedelta(0)
    assert routes[0].group_by == ("rule",)


def test_continue_lets_later_siblings_match(config: NotifyConfig) -> None:
    routes = config.routes_for(microsoft_blocklist(labels={"tenant": "acme"}))
    assert [r.receiver for r in routes] == ["oncall", "acme"]
    assert routes[1].group_wait == timedelta(seconds=30)


def test_warning_gmail_goes_to_the_default_only(config: NotifyConfig) -> None:
    assert [r.receiver for r in config.routes_for(gmail_throttling())] == ["deliverability"]


def test_first_matching_child_wins_without_continue(config: NotifyConfig) -> None:
    t = gmail_throttling(labels={"tenant": "acme"})
    routes = config.routes_for(t)
    assert [r.receiver for r in routes] == ["acme"]
    assert routes[0].repeat_interval == timedelta(hours=4)


def test_pending_transitions_are_not_routed_unless_asked(config: NotifyConfig) -> None:
    pending = followup(gmail_throttling(), TransitionKind.PENDING)
    assert config.routes_for(pending) == []


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('isp="gmail"', {"isp": "gmail"}, True),
        ("isp=gmail", {"isp": "yahoo"}, False),
        ('isp!="gmail"', {"isp": "yahoo"}, True),
        ('isp=~"gmail|yahoo"', {"isp": "yahoo"}, True),
        # Anchored, as in Alertmanager: a prefix is not a match.
        ('isp=~"gmail"', {"isp": "gmail-workspace"}, False),
        ('isp!~"gmail.*"', {"isp": "microsoft"}, True),
        # A missing label is the empty string.
        ('tenant!="acme"', {}, True),
        ('tenant=""', {}, True),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.model_validate(text).matches(labels) is expected


def test_matcher_rejects_bad_regex_and_garbage() -> None:
    with pytest.raises(ValidationError):
        Matcher.model_validate('isp=~"("')
    with pytest.raises(ValidationError):
        Matcher.model_validate("just words")


def test_labels_identity_wins_over_free_labels() -> None:
    t = microsoft_blocklist(labels={"severity": "warning", "team": "mail"})
    labels = alert_labels(t)
    assert labels["severity"] == Severity.CRITICAL.value
    assert labels["team"] == "mail"
    assert labels["source_ip"] == "203.0.113.9"


def test_unknown_receiver_and_duplicates_are_errors() -> None:
    with pytest.raises(ValidationError, match="no receiver named 'nobody'"):
        NotifyConfig.model_validate(
            {
                "receivers": [{"name": "a", "console_configs": [{}]}],
                "route": {"receiver": "a", "routes": [{"receiver": "nobody"}]},
            }
        )
    with pytest.raises(ValidationError, match="unique"):
        NotifyConfig.model_validate(
            {"receivers": [{"name": "a"}, {"name": "a"}], "route": {"receiver": "a"}}
        )


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("receivers: [\n")
    with pytest.raises(NotifyConfigError, match=r"bad\.yaml"):
        load_config(path)
    with pytest.raises(NotifyConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def _kinds(settings: Settings) -> list[IntegrationKind]:
    return [i.kind for i in default_config(settings).integrations()]


def test_default_route_from_settings() -> None:
    assert _kinds(Settings()) == [IntegrationKind.CONSOLE]
    assert _kinds(Settings(slack_token=SecretStr("xoxb-1"), slack_channel="#a")) == [
        IntegrationKind.SLACK
    ]
    assert _kinds(Settings(slack_webhook_url=SecretStr("https://hooks.slack.com/x"))) == [
        IntegrationKind.SLACK
    ]
    # A relay without recipients sends nothing, so it is not a receiver.
    assert _kinds(Settings(smtp_host="relay")) == [IntegrationKind.CONSOLE]
    both = Settings(slack_token=SecretStr("xoxb-1"), smtp_host="relay", smtp_to="a@example.com")
    assert _kinds(both) == [IntegrationKind.SLACK, IntegrationKind.EMAIL]
    assert resolve_config(Settings(), None).route.receiver == "default"


def _smtp(security: SmtpSecurity, **credentials: Any) -> Settings:
    return Settings(
        smtp_host="relay.example.com",
        smtp_to="postmaster@example.com",
        smtp_security=security,
        **credentials,
    )


def test_a_password_over_plain_smtp_is_refused_at_load(tmp_path: Path) -> None:
    login = {"smtp_username": "bouncewatch", "smtp_password": SecretStr("s3cret")}
    with pytest.raises(NotifyConfigError, match="password in clear") as refused:
        resolve_config(_smtp(SmtpSecurity.NONE, **login), None)
    assert "default/email/0" in str(refused.value) and "allow_plaintext_auth" in str(refused.value)
    with pytest.raises(NotifyConfigError, match="password in clear"):
        resolve_config(_smtp(SmtpSecurity.NONE, smtp_username="bouncewatch"), None)
    # Fine: encrypted, or plain without a login.
    resolve_config(_smtp(SmtpSecurity.STARTTLS, **login), None)
    resolve_config(_smtp(SmtpSecurity.TLS, **login), None)
    resolve_config(_smtp(SmtpSecurity.NONE), None)
    # Allowed explicitly, for the receiver that says so only.
    path = tmp_path / "notify.yaml"
    path.write_text(
        "receivers:\n"
        "  - name: local\n"
        "    email_configs: [{allow_plaintext_auth: true}]\n"
        "route: {receiver: local}\n"
    )
    assert resolve_config(_smtp(SmtpSecurity.NONE, **login), path).receivers[0].name == "local"
    path.write_text(path.read_text().replace("true", "false"))
    with pytest.raises(NotifyConfigError, match="local/email/0"):
        resolve_config(_smtp(SmtpSecurity.NONE, **login), path)
