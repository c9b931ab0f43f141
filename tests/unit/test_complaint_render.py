"""A complaint alert as people read it: the rate against the provider's limit, the counts,
the trend, the top sources and the actions, in Slack and in email; and the samples in docs/
are what scripts/render_complaint_alert.py writes from the core's own transition."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from render_complaint_alert import rendered, transition  # noqa: E402

from alerts.render.email import render_email  # noqa: E402
from alerts.render.slack_blocks import render_slack  # noqa: E402


def test_the_docs_samples_are_current() -> None:
    for path, text in rendered().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run .venv/bin/python scripts/render_complaint_alert.py"
        )


def test_email_says_rate_limit_counts_trend_sources_and_actions() -> None:
    email = render_email([transition()])
    assert email.subject.startswith("[FIRING critical] Yahoo / AOL (domain news.shop.example)")
    assert "of 28,800 delivered" in email.subject
    text = email.text
    assert "complaint rate (spam complaints / delivered messages): 0.42% ≥ threshold 0.30%" in text
    assert "122 complaints / 28,800 delivered in the last 1d" in text
    assert "1 other feedback (not-spam, opt-out), not counted" in text
    assert "Yahoo / AOL's limit: 0.30% (the rate is at 141% of it)" in text
    assert "Trend: " in text
    assert "Top IPs: 192.0.2.14 (98), 192.0.2.15 (24)" in text
    assert "Top campaigns: black-friday (98), weekly-news (24)" in text
    assert "Suppress every complainer" in text and "RFC 8058" in text
    assert "(top: black-friday)" in text
    assert "Failed attempts by category" not in text  # a complaint alert is about complaints
    assert "Top campaigns: black-friday (98)" in email.html


def test_slack_has_a_complaints_section() -> None:
    message = render_slack([transition()])
    texts = [
        b["text"]["text"] for b in message.blocks if b.get("type") == "section" and "text" in b
    ]
    (complaints,) = [t for t in texts if t.startswith("*Complaints*")]
    assert "• Top sending domains: news.shop.example (122)" in complaints
    assert any("RFC 8058" in t for t in texts)
    assert json.dumps(message.blocks)  # serializable as sent
