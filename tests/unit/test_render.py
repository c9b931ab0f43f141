"""Rendered Slack blocks and emails against golden files, reviewed like code.

To regenerate after an intended change: ``BOUNCEWATCH_UPDATE_GOLDEN=1 pytest
tests/unit/test_render.py`` and read the diff.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.render.email import render_email
from alerts.render.slack_blocks import render_slack
from alerts.render.sparkline import BARS, sparkline
from schemas.alert import AlertTransition, TransitionKind
from tests.support.alert_samples import (
    followup,
    gmail_throttling,
    hostile,
    microsoft_blocklist,
    resolved,
    yahoo_throttling,
)

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
UPDATE = os.environ.get("BOUNCEWATCH_UPDATE_GOLDEN") == "1"

CASES: dict[str, Callable[[], list[AlertTransition]]] = {
    "microsoft_blocklist_firing": lambda: [microsoft_blocklist()],
    "throttling_gmail_yahoo_firing": lambda: [gmail_throttling(), yahoo_throttling()],
    "gmail_throttling_resolved": lambda: [resolved(gmail_throttling())],
    "hostile_firing": lambda: [hostile()],
}


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with BOUNCEWATCH_UPDATE_GOLDEN=1 to write it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("case", sorted(CASES))
def test_slack_blocks_golden(case: str) -> None:
    message = render_slack(CASES[case]())
    rendered = json.dumps(
        {"text": message.text, "blocks": message.blocks}, indent=2, ensure_ascii=False
    )
    _check(f"slack_{case}.json", rendered + "\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_email_golden(case: str) -> None:
    content = render_email(CASES[case]())
    _check(f"email_{case}.txt", f"Subject: {content.subject}\n\n{content.text}")
    _check(f"email_{case}.html", content.html)


def test_subject_states_severity_isp_and_the_number() -> None:
    subject = render_email([microsoft_blocklist()]).subject
    assert subject.startswith("[FIRING critical] Microsoft (IP 203.0.113.9)")
    assert "41.2%" in subject and "3,874 attempts" in subject
    assert render_email([resolved(gmail_throttling())]).subject.startswith("[RESOLVED] Gmail")


def test_titles_say_what_the_number_was_judged_against() -> None:
    """A spike and a threshold rule on one metric, at one number, must not read alike."""
    same = {"metric": "soft_bounce_rate", "value": 0.286, "attempts": 6832}
    threshold = gmail_throttling(rule="soft-bounce-rate", threshold=0.10, **same)
    spike = gmail_throttling(
        rule="soft-bounce-spike", rule_type="spike", threshold=None, baseline=0.092, **same
    )
    assert render_email([threshold]).subject == (
        "[FIRING warning] Gmail: soft-bounce rate 28.6% (above 10.0%) of 6,832 attempts"
    )
    assert render_email([spike]).subject == (
        "[FIRING warning] Gmail: soft-bounce rate 28.6% (3.1x its baseline) of 6,832 attempts"
    )
    # The spike resolves at 22.1% while the threshold alert still fires at that number.
    spike_done = resolved(spike, value=0.221, attempts=6500)
    still = followup(threshold, TransitionKind.REMINDER, value=0.221, attempts=6500)
    assert render_email([spike_done]).subject == (
        "[RESOLVED] Gmail: soft-bounce rate 22.1% (2.4x its baseline) of 6,500 attempts"
    )
    assert render_slack([still]).text == (
        "[FIRING warning] Gmail: soft-bounce rate 22.1% (above 10.0%) of 6,500 attempts"
    )
    # A falling threshold (delivered rate below a floor) and a zero baseline.
    floor = gmail_throttling(metric="delivered_rate", value=0.82, threshold=0.9)
    assert "delivered rate 82.0% (below 90.0%)" in render_email([floor]).subject
    fresh = gmail_throttling(rule_type="spike", threshold=None, baseline=0.0)
    assert "18.4% (above its baseline 0.0%)" in render_email([fresh]).subject


def test_html_escapes_reply_text() -> None:
    t = gmail_throttling(summary="<script>alert(1)</script> & more")
    html = render_email([t]).html
    assert "<script>" not in html and "&lt;script&gt;" in html
    blocks = json.dumps(render_slack([t]).blocks)
    assert "<script>" not in blocks and "&lt;script&gt;" in blocks


def _mrkdwn_texts(blocks: list[dict[str, Any]]) -> Iterator[str]:
    for block in blocks:
        for element in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(element, dict) and element.get("type") == "mrkdwn":
                yield element["text"]


def _controls(text: str, allowed: str = "") -> set[str]:
    return {c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in allowed}


SLACK_SPECIALS = ("<!channel>", "<!here>", "<@U024BE7LH>", "<https://evil.example")


def test_slack_neutralises_hostile_remote_text() -> None:
    message = render_slack([hostile()])
    texts = [message.text, *_mrkdwn_texts(message.blocks)]
    for text in texts:
        for special in SLACK_SPECIALS:
            assert special not in text
        assert not _controls(text, allowed="\n"), text[:200]
        assert len(text) <= 3000
    assert "&lt;!here&gt;" in message.text  # the fallback text is escaped too
    everything = "\n".join(texts)
    assert "&lt;!channel&gt;" in everything and "&lt;@U024BE7LH&gt;" in everything
    # The sample stays inside one code block: its own fences cannot close it, and the
    # summary's cannot open one.
    [sample] = [t for t in texts if "*Top replies*" in t]
    fenced = sample[sample.index("```") :]
    assert fenced.count("```") == 2 and fenced.endswith("```")
    assert sum(t.count("```") for t in texts) == 2
    assert "line1  Subject: injected" in fenced  # one line, the break gone
    assert sample.split("\n")[1].count("`") == 2  # nor can the reply code close its span
    assert fenced.endswith("…```")  # 10 kB capped
    header = message.blocks[0]["text"]["text"]
    assert not _controls(header) and len(header) <= 150


def test_email_neutralises_hostile_remote_text() -> None:
    content = render_email([hostile()])
    assert not _controls(content.subject) and len(content.subject) < 400
    assert not _controls(content.text, allowed="\n")
    assert not _controls(content.html, allowed="\n")
    assert "<!channel>" not in content.html and "<b>bold</b>" not in content.html
    assert "<https://evil.example" not in content.html
    assert "&lt;!channel&gt;" in content.html and "&lt;b&gt;bold&lt;/b&gt;" in content.html
    sample = next(line for line in content.text.splitlines() if "Sample:" in line)
    assert "line1  Subject: injected  Bcc: victim@example.com" in sample
    # Capped: 10 kB of reply and 10 kB of summary are not mailed in full.
    assert len(sample) < 1100 and len(content.text) < 5000 and len(content.html) < 8000


def test_slack_limits_hold_for_a_rule_firing_everywhere() -> None:
    many = [
        gmail_throttling(fingerprint=f"fp{i}", isp=f"isp{i}", isp_name=f"ISP number {i} " * 8)
        for i in range(40)
    ]
    message = render_slack(many)
    assert len(message.blocks) <= 50
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= 150
    for block in message.blocks:
        text = block.get("text")
        if isinstance(text, dict):
            assert len(text["text"]) <= 3000


def test_runbook_comes_from_the_rule_or_the_receiver() -> None:
    blocks = json.dumps(
        render_slack([microsoft_blocklist()], runbook_url="https://rb.example/x").blocks
    )
    assert "<https://rb.example/x|Runbook>" in blocks
    own = json.dumps(render_slack([gmail_throttling()], runbook_url="https://rb.example/x").blocks)
    assert "runbooks.example.com/deliverability/throttling" in own
    assert "rb.example/x" not in own


def test_header_of_a_group_reflects_current_states() -> None:
    g, y = gmail_throttling(), yahoo_throttling()
    header = render_slack([resolved(g), y]).blocks[0]["text"]["text"]
    assert header.startswith("🟠 Firing") and "(1 of 2 firing)" in header
    header = render_slack([resolved(g), resolved(y)]).blocks[0]["text"]["text"]
    assert header.startswith("✅ Resolved")


def test_sparkline_examples() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([1.0, math.nan, 1.0]) == "█ █"
    assert sparkline([5, 5], floor=None) == "▄▄"


@given(st.lists(st.floats(min_value=0, max_value=1e6) | st.just(math.nan), max_size=40))
def test_sparkline_is_one_bar_per_value_and_the_max_is_full(values: list[float]) -> None:
    line = sparkline(values)
    assert len(line) == len(values)
    assert set(line) <= set(BARS) | {" "}
    finite = [v for v in values if not math.isnan(v)]
    if finite and max(finite) > 0:
        assert line[values.index(max(finite))] == BARS[-1]
