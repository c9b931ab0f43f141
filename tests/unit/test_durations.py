"""One duration grammar: rules, the notifications file, settings and silences read it alike."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from alerts.routing import NotifyConfig
from alerts.rules import RulesError, parse_rules
from bouncewatch.commands.silence import silence_from_args
from schemas.durations import DURATION_ERROR, format_duration, parse_duration, parse_seconds
from schemas.settings import Settings


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90", 90),
        (90, 90),
        (30.0, 30),
        (0, 0),
        ("30s", 30),
        ("5m", 300),
        ("4h", 14400),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1d12h", 129600),
        (" 1h 30m ", 5400),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_seconds(value) == seconds
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "bad", ["5 minutes", "", "-1", -1, True, 1.5, "m", "30m1h", "1h1h", "soon", None]
)
def test_bad_durations_say_the_one_message(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_seconds(bad)
    assert str(info.value) == DURATION_ERROR.format(value=bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (90, "1m30s"), (900, "15m"), (5400, "1h30m"), (86400, "1d")]
)
def test_format_reads_back(seconds: int, text: str) -> None:
    assert format_duration(seconds) == format_duration(timedelta(seconds=seconds)) == text
    assert parse_seconds(text) == seconds


def test_every_reader_refuses_alike() -> None:
    expected = DURATION_ERROR.format(value="a week")
    with pytest.raises(RulesError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_rules("settings: {bucket: a week}")
    with pytest.raises(ValidationError) as routing:
        NotifyConfig.model_validate(
            {
                "receivers": [{"name": "team"}],
                "route": {"receiver": "team", "group_wait": "a week"},
            }
        )
    assert expected in str(routing.value)
    with pytest.raises(ValidationError) as settings:
        Settings(notification_log_retention="a week")  # type: ignore[arg-type]
    assert expected in str(settings.value)
    args = argparse.Namespace(
        match=[], isp="gmail", rule=None, starts=None, ends_at=None, duration="a week"
    )
    with pytest.raises(ValueError, match="not a duration: 'a week'"):
        silence_from_args(args, datetime(2026, 1, 1, tzinfo=UTC))


def test_settings_write_the_duration_back_as_written() -> None:
    settings = Settings(notification_log_retention="1d12h")  # type: ignore[arg-type]
    assert settings.notification_log_retention == timedelta(hours=36)
    assert settings.model_dump(mode="json")["notification_log_retention"] == "1d12h"
