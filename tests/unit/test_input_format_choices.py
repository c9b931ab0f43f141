"""An unknown input format is refused at start, with the valid ones, which come from the
adapters' registry: the setting BOUNCEWATCH_INPUT_FORMAT and ``replay --format``."""

from __future__ import annotations

import os

import pytest

from bouncewatch.cli import build_parser
from bouncewatch.commands.common import SettingsError, load_settings
from delivery.adapters import FORMATS, INPUT_FORMATS, decode_message


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BOUNCEWATCH_"):
            monkeypatch.delenv(name)


def test_input_formats_are_auto_and_the_registry() -> None:
    assert ("auto", *FORMATS) == INPUT_FORMATS
    for fmt in INPUT_FORMATS:  # each one is a format decode_message knows
        errors = decode_message(b"{}", fmt).errors
        assert not any("unknown format '" in e.reason for e in errors), fmt


@pytest.mark.parametrize("value", ["kumo", "KumoMTA-json", "json", ""])
def test_setting_refuses_an_unknown_format_with_the_valid_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.setenv("BOUNCEWATCH_INPUT_FORMAT", value)
    with pytest.raises(SettingsError):
        load_settings()
    err = capsys.readouterr().err
    assert "BOUNCEWATCH_INPUT_FORMAT" in err
    assert f"unknown format {value!r}; expected one of {', '.join(INPUT_FORMATS)}" in err


@pytest.mark.parametrize("fmt", INPUT_FORMATS)
def test_setting_accepts_every_format(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setenv("BOUNCEWATCH_INPUT_FORMAT", fmt)
    assert load_settings().input_format == fmt


def test_setting_ignores_case_and_surrounding_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNCEWATCH_INPUT_FORMAT", " KumoMTA\n")
    assert load_settings().input_format == "kumomta"


def test_replay_refuses_an_unknown_format_with_the_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["replay", "events.jsonl", "--format", "kumo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'kumo'" in err
    assert all(repr(fmt) in err for fmt in INPUT_FORMATS)


@pytest.mark.parametrize("fmt", INPUT_FORMATS)
def test_replay_accepts_every_format(fmt: str) -> None:
    args = build_parser().parse_args(["replay", "events.jsonl", "--format", fmt])
    assert args.format == fmt


def test_replay_format_defaults_to_auto() -> None:
    assert build_parser().parse_args(["replay", "events.jsonl"]).format == "auto"
