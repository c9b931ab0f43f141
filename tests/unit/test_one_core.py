"""One setting, one meaning: the reply-rules file and the ISP overrides reach the worker's
engine, `replay` and `classify` alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregation.ingest import Engine
from bouncewatch.cli import main
from bouncewatch.commands.replay import read_observations
from schemas.settings import Settings

REPLY_RULES = """
rules:
  - id: acme.quota_words
    pattern: 'box is stuffed'
    category: mailbox_full
    reason: "ACME's wording for an over-quota mailbox"
    source: "ACME postmaster page"
"""
ISPS = "gmail: [corp-on-workspace.example]\n"
EVENT = {
    "event_time": "2026-03-02T08:00:00+00:00",
    "recipient": "someone@corp-on-workspace.example",
    "reply": {"code": 452, "text": "452 sorry, the box is stuffed"},
}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "reply-rules.yaml").write_text(REPLY_RULES)
    (tmp_path / "isps.yaml").write_text(ISPS)
    monkeypatch.setenv("BOUNCEWATCH_REPLY_RULES_FILE", str(tmp_path / "reply-rules.yaml"))
    monkeypatch.setenv("BOUNCEWATCH_ISP_OVERRIDES_FILE", str(tmp_path / "isps.yaml"))
    return tmp_path


def test_the_worker_engine_reads_both_files(files: Path) -> None:
    engine = Engine.from_settings(Settings())
    result = engine.classifier.classify(452, None, EVENT["reply"]["text"], None)
    assert (result.category.value, result.rule_id) == ("mailbox_full", "acme.quota_words")
    assert engine.resolver.resolve("corp-on-workspace.example").key == "gmail"


def test_replay_reads_both_files(files: Path) -> None:
    path = files / "events.jsonl"
    path.write_text(json.dumps(EVENT) + "\n")
    observations, _, _ = read_observations(str(path), "bouncewatch", "never")
    (obs,) = observations
    assert (obs.isp, obs.classification.category.value) == ("gmail", "mailbox_full")


def test_classify_reads_both_files(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = files / "events.jsonl"
    path.write_text(json.dumps(EVENT) + "\n")
    assert main(["classify", "--format", "bouncewatch", str(path)]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (line["isp"], line["category"]) == ("gmail", "mailbox_full"), line
