"""``bouncewatch classify --evaluate``: scoring labelled replies, and the held-out floor.

The held-out split of tests/data/replies is scored exactly as a user's file would be; the
floor is what the packaged rules reached on it, so a change that loses ground fails here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bouncewatch.cli import main
from bouncewatch.commands.classify import evaluate_stream
from delivery.evaluation import LabelError, parse_expected, render_text
from delivery.pipeline import EventReader

ROOT = Path(__file__).resolve().parent.parent.parent
HELDOUT = ROOT / "tests" / "data" / "replies" / "heldout.jsonl"
NATIVE = ROOT / "tests" / "data" / "formats" / "bouncewatch" / "deferred.json"

#: Held-out figures of the packaged rules (329 replies): category 0.9574, bounce type 0.9909,
#: outcome 0.9939. The rules never looked at the file.
FLOOR = {"outcome": 0.9939, "bounce_type": 0.9909, "category": 0.9574}


def _score(lines: list[str]) -> dict[str, Any]:
    return evaluate_stream([line + "\n" for line in lines], EventReader()).report()


def test_heldout_split_meets_the_floor() -> None:
    with HELDOUT.open("rb") as lines:
        report = evaluate_stream(lines, EventReader()).report()
    assert report["errors"] == []
    assert report["scored"] >= 200
    for measure, floor in FLOOR.items():
        assert report["accuracy"][measure] >= floor, (measure, report["confusions"])


def _line(expected: dict[str, str], **reply: Any) -> str:
    return json.dumps({**reply, "expected": expected, "family": "test", "source": "T"})


def test_precision_recall_and_confusions() -> None:
    lines = [
        _line(
            {"outcome": "bounced", "bounce_type": "hard", "category": "user_unknown"},
            code=550,
            text="550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
        ),
        # labelled mailbox_full, read as user_unknown: a confusion in category and bounce type
        _line(
            {"outcome": "bounced", "bounce_type": "soft", "category": "mailbox_full"},
            code=550,
            text="550 5.1.1 No such user here",
        ),
        _line({"category": "throttled"}, code=421, text="421 4.7.0 Too many connections"),
    ]
    report = _score(lines)
    assert report["scored"] == 3
    assert report["accuracy"]["outcome"] == 1.0
    assert report["accuracy"]["bounce_type"] == 0.5
    assert report["accuracy"]["category"] == pytest.approx(2 / 3, abs=1e-3)
    user = report["categories"]["user_unknown"]
    assert (user["expected"], user["predicted"], user["precision"], user["recall"]) == (
        1,
        2,
        0.5,
        1.0,
    )
    assert report["categories"]["mailbox_full"]["recall"] == 0.0
    assert report["categories"]["mailbox_full"]["precision"] is None  # never predicted
    first = report["confusions"][0]
    # the costly mistake comes first: a soft failure read as hard
    assert (first["measure"], first["expected"], first["got"], first["line"]) == (
        "bounce_type",
        "soft",
        "hard",
        2,
    )
    assert first["rule"] and "No such user" in first["example"]
    assert {(c["measure"], c["expected"], c["got"]) for c in report["confusions"]} == {
        ("bounce_type", "soft", "hard"),
        ("category", "mailbox_full", "user_unknown"),
    }
    text = render_text(report)
    assert "category     accuracy 66.7%" in text
    assert "mailbox_full -> user_unknown" in text


def test_event_lines_are_scored_and_bad_lines_reported() -> None:
    event = json.loads(NATIVE.read_text("utf-8"))
    lines = [
        json.dumps({**event, "expected": {"category": "reputation", "outcome": "deferred"}}),
        json.dumps({"code": 550, "text": "550 no"}),  # no label
        _line({"category": "nonsense"}, code=550, text="550 x"),
        _line({"colour": "red"}, code=550, text="550 x"),
        "not json at all",
        _line({"category": "user_unknown"}, code=999, text="999 x"),
        "",
    ]
    report = _score(lines)
    assert report["scored"] == 1 and report["accuracy"]["category"] == 1.0
    errors = {e["line"]: e["error"] for e in report["errors"]}
    assert set(errors) == {2, 3, 4, 5, 6}
    assert "'expected'" in errors[2] and "nonsense" in errors[3] and "colour" in errors[4]
    assert "code" in errors[6]


def test_parse_expected() -> None:
    assert parse_expected({"category": "policy"}).category is not None
    for bad in ([], {}, {"bounce_type": "medium"}):
        with pytest.raises(LabelError):
            parse_expected(bad)


def test_cli_evaluate_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "labelled.jsonl"
    path.write_text(
        _line({"category": "user_unknown"}, code=550, text="550 5.1.1 User unknown") + "\n",
        "utf-8",
    )
    assert main(["classify", "--evaluate", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == {"category": 1.0}
    assert main(["classify", "--evaluate", str(path)]) == 0
    assert "scored 1 replies" in capsys.readouterr().out
    assert main(["classify", "--evaluate", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    line = _line({"outcome": "deferred"}, code=451, text="451 4.3.0 try again") + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(line.encode())))
    assert main(["classify", "--evaluate", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == {"outcome": 1.0}
