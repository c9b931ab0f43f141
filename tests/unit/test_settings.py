"""Settings: defaults, secrets masked and read from files, wrong values named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bouncewatch.commands.common import SettingsError, load_settings
from schemas.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BOUNCEWATCH_"):
            monkeypatch.delenv(name)


def test_defaults_are_documented() -> None:
    settings = Settings()
    assert settings.topic_input == "bouncewatch-events"
    assert settings.web_port == 6066
    assert all(field.description for field in Settings.model_fields.values())


def test_secret_is_masked_in_repr_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOUNCEWATCH_SLACK_TOKEN", "xoxb-very-secret")
    settings = Settings()
    assert "xoxb-very-secret" not in repr(settings)
    assert "xoxb-very-secret" not in str(settings.model_dump())
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings %s", settings)
    assert "xoxb-very-secret" not in caplog.text
    assert settings.slack_token is not None
    assert settings.slack_token.get_secret_value() == "xoxb-very-secret"


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("BOUNCEWATCH_SMTP_PASSWORD_FILE", str(secret))
    settings = Settings()
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "s3cret"


def test_unreadable_secret_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BOUNCEWATCH_SMTP_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="BOUNCEWATCH_SMTP_PASSWORD_FILE"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BOUNCEWATCH_WEB_PORT", "not-a-port"),
        ("BOUNCEWATCH_WEB_PORT", "70000"),
        ("BOUNCEWATCH_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("BOUNCEWATCH_STORE", "redis://x"),
        ("BOUNCEWATCH_LOG_LEVEL", "LOUD"),
        ("BOUNCEWATCH_APP_ID", "has spaces"),
    ],
)
def test_wrong_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError):
        load_settings()
    err = capsys.readouterr().err
    assert variable in err


def test_sasl_needs_mechanism_and_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOUNCEWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BOUNCEWATCH_KAFKA_SASL_PASSWORD", "pw-secret")
    with pytest.raises(SettingsError):
        load_settings()
    err = capsys.readouterr().err
    assert "BOUNCEWATCH_KAFKA_SASL_MECHANISM" in err
    assert "pw-secret" not in err
