"""Deployment settings that reach the notification config built without a notifications file:
BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH and BOUNCEWATCH_NOTIFICATION_LOG_RETENTION."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from alerts.routing import EmailConfig, NotifyConfigError, resolve_config
from schemas.settings import Settings, SmtpSecurity

PLAIN_LOGIN: dict[str, Any] = {
    "smtp_host": "relay.internal",
    "smtp_to": "postmaster@example.com",
    "smtp_security": SmtpSecurity.NONE,
    "smtp_username": "bouncewatch",
    "smtp_password": SecretStr("s3cret"),
}


def test_plaintext_smtp_login_is_refused_unless_the_setting_allows_it() -> None:
    assert Settings().smtp_allow_plaintext_auth is False
    with pytest.raises(NotifyConfigError, match="password in clear"):
        resolve_config(Settings(**PLAIN_LOGIN), None)
    config = resolve_config(Settings(**PLAIN_LOGIN, smtp_allow_plaintext_auth=True), None)
    (email,) = [i.config for i in config.integrations() if isinstance(i.config, EmailConfig)]
    assert email.allow_plaintext_auth is True


def test_plaintext_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNCEWATCH_SMTP_ALLOW_PLAINTEXT_AUTH", "true")
    monkeypatch.setenv("BOUNCEWATCH_NOTIFICATION_LOG_RETENTION", "36h")
    settings = Settings(**PLAIN_LOGIN)
    config = resolve_config(settings, None)
    assert config.notification_log_retention == timedelta(hours=36)
    assert all(
        i.config.allow_plaintext_auth
        for i in config.integrations()
        if isinstance(i.config, EmailConfig)
    )


def test_notification_log_retention_setting() -> None:
    assert resolve_config(Settings(), None).notification_log_retention == timedelta(days=7)
    settings = Settings(notification_log_retention="1d12h")
    assert resolve_config(settings, None).notification_log_retention == timedelta(hours=36)
    with pytest.raises(ValidationError, match="at least 1h"):
        Settings(notification_log_retention="30m")
    with pytest.raises(ValidationError, match="not a duration"):
        Settings(notification_log_retention="a week")


def test_a_notifications_file_keeps_its_own_retention_and_plaintext_choice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "receivers:\n  - name: mail\n    email_configs: [{}]\n"
        "route: {receiver: mail}\nnotification_log_retention: 2d\n"
    )
    settings = Settings(
        **PLAIN_LOGIN, smtp_allow_plaintext_auth=True, notification_log_retention="3h"
    )
    with pytest.raises(NotifyConfigError, match="mail/email/0"):
        resolve_config(settings, path)
    settings = Settings(notification_log_retention="3h")
    assert resolve_config(settings, path).notification_log_retention == timedelta(days=2)
