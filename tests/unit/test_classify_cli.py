"""``bouncewatch classify``: every format sample, the plain reply form, bad lines, order,
``--explain``; in-process and as a subprocess. Also the shared ``EventReader``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bouncewatch.cli import main
from bouncewatch.commands.classify import classify_stream
from delivery.pipeline import EventReader

ROOT = Path(__file__).resolve().parent.parent.parent
FORMATS = ROOT / "tests" / "data" / "formats"
SAMPLES = sorted(p for p in FORMATS.glob("*/*") if p.suffix in (".json", ".ndjson", ".csv", ".log"))
# samples that hold no delivery attempt: each gives "skipped" or feedback answers only
NO_ATTEMPT = {
    "reception.json",
    "opened.json",
    "spam_complaint.json",
    "complaint.json",
    "complaint_in_sns.json",
    "feedback.json",
    "spamreport.json",
    "complained.json",
}


def as_lines(path: Path) -> list[str]:
    """A pretty-printed JSON sample compacted to one line; line formats as they are."""
    if path.suffix == ".json":
        return [json.dumps(json.loads(path.read_text("utf-8")))]
    return path.read_text("utf-8").splitlines()


def run(lines: list[str], explain: bool = False) -> list[dict[str, Any]]:
    out = io.StringIO()
    classify_stream([line + "\n" for line in lines], out, EventReader(), explain=explain)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def events(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in answers if "outcome" in a]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_format_sample(path: Path) -> None:
    lines = as_lines(path)
    answers = run(lines)
    assert [a for a in answers if "error" in a] == []
    numbers = [a["line"] for a in answers]
    assert numbers == sorted(numbers)
    assert set(numbers) == set(range(1, len(lines) + 1))  # every input line answered
    found = events(answers)
    if path.name in NO_ATTEMPT:
        assert found == []
        return
    assert found
    for answer in found:
        assert answer["outcome"] in ("delivered", "deferred", "bounced")
        assert answer["bounce_type"] in ("none", "soft", "hard")
        assert answer["category"] and answer["reason"] and answer["isp"]
        assert "isp_code" in answer


def test_known_samples_read_as_documented() -> None:
    answers = events(run(as_lines(FORMATS / "bouncewatch" / "batch.ndjson")))
    yahoo = next(a for a in answers if a["recipient"] == "j.smith@yahoo.com")
    assert (yahoo["outcome"], yahoo["isp"], yahoo["isp_code"]) == ("deferred", "yahoo", "TSS04")
    kumo = events(run(as_lines(FORMATS / "kumomta" / "transient_failure.json")))
    assert [(a["isp"], a["category"], a["isp_code"]) for a in kumo] == [
        ("gmail", "reputation", "4.7.28")
    ]


def test_plain_reply_with_bare_domain() -> None:
    line = json.dumps(
        {
            "code": 421,
            "enhanced": "4.7.0",
            "text": "421 4.7.0 [TSS04] Messages from 192.0.2.11 temporarily deferred due to "
            "unexpected volume or user complaints",
            "recipient": "yahoo.com",
        }
    )
    [answer] = run([line])
    assert answer == {
        "line": 1,
        "recipient": "yahoo.com",
        "outcome": "deferred",
        "bounce_type": "soft",
        "category": answer["category"],
        "reason": answer["reason"],
        "isp": "yahoo",
        "isp_code": "TSS04",
    }


def test_plain_reply_without_recipient_and_with_mx() -> None:
    no_recipient, by_mx = run(
        [
            json.dumps({"text": "550 5.1.1 <a@b.example>: user unknown"}),
            json.dumps({"code": 250, "recipient": "shop.example", "mx_host": "aspmx.l.google.com"}),
        ]
    )
    assert (no_recipient["outcome"], no_recipient["bounce_type"], no_recipient["isp"]) == (
        "bounced",
        "hard",
        None,
    )
    assert (by_mx["outcome"], by_mx["isp"]) == ("delivered", "gmail")


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"code": "abc", "recipient": "gmail.com"}', "code", "valid integer"),
        ('{"code": 421, "enhanced": "4.7", "recipient": "gmail.com"}', "enhanced", "RFC 3463"),
        ('{"code": 550, "recipient": "nodomain"}', "recipient", "no valid domain"),
        ('{"code": 550, "status": "lost"}', "status", "Input should be"),
        ('{"code": 550, "colour": "red"}', "colour", "unknown field"),
        (
            '{"event_time": "2026-11-24T06:00:00Z", "recipient": "a@gmail.com", "attempt": 0}',
            "attempt",
            "attempt: Input should be",
        ),
        ('{"event_time": "yesterday", "recipient": "a@gmail.com"}', "event_time", "datetime"),
        (
            '{"event_time": "2026-11-24T06:00:00Z", "recipient": "a@gmail.com", '
            '"reply": {"enhanced": "5.1"}}',
            "reply.enhanced",
            "RFC 3463",
        ),
    ],
)
def test_bad_event_names_the_field(line: str, field: str, words: str) -> None:
    [answer] = run([line])
    assert answer["field"] == field
    assert words in answer["error"]
    assert field.rpartition(".")[2] in answer["error"]


def test_bad_lines_do_not_stop_the_run_and_order_is_kept() -> None:
    good = json.dumps({"code": 550, "text": "5.1.1 user unknown", "recipient": "gmail.com"})
    lines = [good, "not an event at all", "{broken json", "", good, "[1, 2]", good]
    answers = run(lines)
    assert [a["line"] for a in answers] == [1, 2, 3, 4, 5, 6, 6, 7]
    assert ["error" in a for a in answers] == [False, True, True, False, False, True, True, False]
    assert answers[3] == {"line": 4, "skipped": "blank line"}
    assert "not valid JSON" in answers[2]["error"]


def test_invalid_utf8_line_is_an_error_line() -> None:
    out = io.StringIO()
    good = b'{"code": 250, "recipient": "gmail.com"}\n'
    classify_stream([good, b"\xff\xfe\n", good], out, EventReader())
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [("error" in a, a["line"]) for a in answers] == [(False, 1), (True, 2), (False, 3)]


def test_explain_names_the_rule() -> None:
    gmail = (
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
        "requires all senders to authenticate with either SPF or DKIM. - gsmtp"
    )
    lines = [json.dumps({"code": 550, "text": gmail, "recipient": "gmail.com"})]
    [plain] = run(lines)
    [explained] = run(lines, explain=True)
    assert "rule" not in plain
    assert explained["rule"] and isinstance(explained["rule"], str)
    assert explained["category"] == "authentication"
    [delivered] = run([json.dumps({"code": 250, "recipient": "gmail.com"})], explain=True)
    assert delivered["rule"] == "smtp.2xx"


@pytest.mark.integration  # runs bouncewatch in a child Python
def test_subprocess_mixed_input() -> None:
    ses = as_lines(FORMATS / "ses" / "bounce_permanent.json")[0]
    stdin = "\n".join(
        [
            json.dumps({"code": 421, "text": "421 4.7.0 try again later", "recipient": "aol.com"}),
            "garbage",
            ses,
            *as_lines(FORMATS / "powermta" / "acct.csv")[:3],
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "bouncewatch.cli", "classify", "--explain"],
        input=stdin.encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    lines = [a["line"] for a in answers]
    assert lines == sorted(lines) and set(lines) == {1, 2, 3, 4, 5, 6}
    assert answers[0]["isp"] == "yahoo" and "rule" in answers[0]
    assert "error" in answers[1]
    assert any(a["line"] == 3 and "outcome" in a for a in answers)


def test_in_process_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'{"code": 452, "recipient": "a@icloud.com"}\nbad\n'))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["classify"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["line"] for a in answers] == [1, 2]
    assert answers[0]["isp"] == "apple" and answers[0]["outcome"] == "deferred"


def test_event_reader_reads_messages_and_batches() -> None:
    reader = EventReader()
    batch = (FORMATS / "bouncewatch" / "batch.ndjson").read_bytes()
    read = reader.read(batch)
    assert read.errors == []
    assert {e.isp.key for e in read.events} >= {"microsoft", "yahoo"}
    assert all(e.classification.outcome for e in read.events)
    bad = reader.read(b'[{"event_time": "2026-11-24T06:00:00Z", "recipient": "x"}]')
    assert bad.events == [] and bad.errors[0].field == "recipient"
