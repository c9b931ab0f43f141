"""``bouncewatch dev`` shows bouncewatch's own lines and the alerts, the libraries' lines from
WARNING up unless ``--verbose``; the worker's logging keeps its libraries as before."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import pytest

from bouncewatch.cli import build_parser
from bouncewatch.commands.dev import console_logging
from schemas.settings import Settings
from streams import logs
from streams.app import create_app
from streams.logs import LIBRARY_LOGGERS, logging_config

# a logger of each library, as they name theirs, and two of ours
LIBRARY_CHILDREN = (
    "faust.worker",
    "mode.supervisors",
    "aiokafka.consumer.group_coordinator",
    "kafka.net.manager",
    "aiohttp.access",
)
OURS = ("bouncewatch.topics", "streams.topology")


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """dictConfig changes process-wide state: put back what these tests touch."""
    monkeypatch.setattr(logs, "_library_logs", "worker")
    names = (*LIBRARY_LOGGERS, *LIBRARY_CHILDREN, *OURS)
    levels = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    root.setLevel(root_level)
    root.handlers[:] = root_handlers


def emit_all(level: int) -> None:
    for name in (*LIBRARY_CHILDREN, *OURS):
        logging.getLogger(name).log(level, "line from %s", name)


def shown(err: str) -> set[str]:
    return {line.rsplit(" ", 1)[1] for line in err.splitlines() if "line from " in line}


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_dev_console_hides_library_info_lines(
    capsys: pytest.CaptureFixture[str], level: str
) -> None:
    console_logging(level, verbose=False)
    emit_all(logging.INFO)
    assert shown(capsys.readouterr().err) == set(OURS)
    emit_all(logging.WARNING)
    assert shown(capsys.readouterr().err) == {*LIBRARY_CHILDREN, *OURS}


def test_dev_verbose_shows_library_info_lines(capsys: pytest.CaptureFixture[str]) -> None:
    console_logging("INFO", verbose=True)
    emit_all(logging.INFO)
    assert shown(capsys.readouterr().err) == {*LIBRARY_CHILDREN, *OURS}
    emit_all(logging.DEBUG)
    assert shown(capsys.readouterr().err) == set()


def test_dev_quiet_libraries_respect_a_higher_level(capsys: pytest.CaptureFixture[str]) -> None:
    console_logging("ERROR", verbose=False)
    emit_all(logging.WARNING)
    assert shown(capsys.readouterr().err) == set()


@pytest.mark.parametrize("verbose", [False, True])
def test_faust_gets_the_dev_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    """Faust applies the app's logging_config again when its worker starts: it must carry
    the same choice as the console config dev applied first."""
    console_logging("INFO", verbose=verbose)
    app = create_app(Settings(app_id="dev-log-test", data_dir=tmp_path, log_format="text"))
    logging.config.dictConfig(dict(app.conf.logging_config))
    emit_all(logging.INFO)
    expected = {*LIBRARY_CHILDREN, *OURS} if verbose else set(OURS)
    assert shown(capsys.readouterr().err) == expected


@pytest.mark.parametrize("level", ["INFO", "DEBUG", "WARNING"])
def test_worker_config_is_unchanged(level: str) -> None:
    # the worker keeps Faust's INFO lines (rebalances); only aiokafka is held back
    aiokafka = "DEBUG" if level == "DEBUG" else "WARNING"
    assert logging_config(level, "json")["loggers"] == {"aiokafka": {"level": aiokafka}}


def test_dev_verbose_flag() -> None:
    assert build_parser().parse_args(["dev"]).verbose is False
    assert build_parser().parse_args(["dev", "--verbose"]).verbose is True
