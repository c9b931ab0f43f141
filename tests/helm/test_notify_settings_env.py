"""The chart passes smtp.allowPlaintextAuth and notifications.logRetention to the worker
(BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH, BOUNCEWATCH_NOTIFICATION_LOG_RETENTION), and the
settings they become are valid."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from alerts.routing import EmailConfig, NotifyConfigError, resolve_config
from schemas.settings import ENV_PREFIX, Settings

from .chart import env_of, render, render_text, worker

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration

SMTP = ("smtp.host=relay.internal", "smtp.to=postmaster@example.com", "smtp.security=none")


def _settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, dict[str, str]]) -> Settings:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, item in env.items():
        if "value" in item and not name.endswith("_FILE"):
            monkeypatch.setenv(name, item["value"])
    return Settings()


def test_defaults_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_of(worker(render(sets=SMTP)))
    assert env["BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH"]["value"] == "false"
    assert env["BOUNCEWATCH_NOTIFICATION_LOG_RETENTION"]["value"] == "7d"
    settings = _settings(monkeypatch, env)
    assert settings.smtp_allow_plaintext_auth is False
    # A user name over plain SMTP is refused unless the chart allows it.
    with_user = _settings(
        monkeypatch, env | {"BOUNCEWATCH_SMTP_USERNAME": {"value": "bouncewatch"}}
    )
    with pytest.raises(NotifyConfigError, match="allow_plaintext_auth"):
        resolve_config(with_user, None)
    assert resolve_config(settings, None).notification_log_retention == timedelta(days=7)


def test_values_set_the_worker_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    sets = (
        *SMTP,
        "smtp.username=bouncewatch",
        "smtp.allowPlaintextAuth=true",
        "notifications.logRetention=36h",
    )
    env = env_of(worker(render(sets=sets)))
    assert env["BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH"]["value"] == "true"
    assert env["BOUNCEWATCH_NOTIFICATION_LOG_RETENTION"]["value"] == "36h"
    config = resolve_config(_settings(monkeypatch, env), None)
    assert config.notification_log_retention == timedelta(hours=36)
    (email,) = [i.config for i in config.integrations() if isinstance(i.config, EmailConfig)]
    assert email.allow_plaintext_auth


@pytest.mark.parametrize(
    "bad", ["smtp.allowPlaintextAuth=yes", "notifications.logRetention=a week"]
)
def test_the_schema_refuses_bad_values(bad: str) -> None:
    done = render_text(sets=(bad,), check=False)
    assert done.returncode != 0 and "schema" in done.stderr.lower(), done.stderr
