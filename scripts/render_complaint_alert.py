"""Render one complaint alert as Slack blocks and as an email, into docs/.

The alert is not written by hand: a day of traffic to Yahoo from one sending domain, with
complaints rising through the afternoon after a campaign, goes through the core (buckets,
the default rules, the evaluator) and the transition it raises is rendered by the same
renderers the receivers use. ``tests/unit/test_complaint_render.py`` checks the files in
docs/ are what this script writes::

    .venv/bin/python scripts/render_complaint_alert.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aggregation.buckets import KeyBuckets, PartialBuilder  # noqa: E402
from alerts.evaluate import Evaluator  # noqa: E402
from alerts.render.email import render_email  # noqa: E402
from alerts.render.slack_blocks import render_slack  # noqa: E402
from alerts.rules import load_default_rules  # noqa: E402
from delivery.classify import default_classifier  # noqa: E402
from schemas.alert import AlertTransition, TransitionKind  # noqa: E402

#: 2026-11-24 00:00 UTC: the day the sample covers.
START = 1795478400
DAY = 86400
KEY = "isp=yahoo|sending_domain=news.shop.example"
SLACK = REPO / "docs" / "complaint-alert-slack.json"
EMAIL = REPO / "docs" / "complaint-alert-email.txt"
#: (campaign, source IP, complaints per hour from hour 10 on): the launch at 10:00 draws
#: most of them; the newsletter's steady trickle is the sender's normal.
CAMPAIGNS = (("black-friday", "192.0.2.14", 7), ("weekly-news", "192.0.2.15", 1))


def transition() -> AlertTransition:
    """The transition the default rules raise at the end of the sample day."""
    rules = load_default_rules()
    kb = KeyBuckets(KEY, rules.aggregation_config())
    builder = PartialBuilder(rules.key_specs())
    delivered = default_classifier().classify(250, None, "ok", None)
    for minute in range(0, 24 * 60, 10):
        t = START + minute * 60
        builder.add(t, "yahoo", delivered, sending_domain="news.shop.example", count=200)
    for hour in range(24):
        for campaign, ip, per_hour in CAMPAIGNS:
            n = per_hour if hour >= 10 else (1 if campaign == "weekly-news" else 0)
            for i in range(n):
                builder.add_feedback(
                    START + hour * 3600 + i * 60,
                    "yahoo",
                    True,
                    sending_domain="news.shop.example",
                    source_ip=ip,
                    campaign=campaign,
                )
    builder.add_feedback(START + 12 * 3600, "yahoo", False, sending_domain="news.shop.example")
    for partial in builder.drain().values():
        if partial.key == KEY:
            kb.merge(partial)
    kb.advance(START + DAY)
    evaluator = Evaluator(rules)
    transitions, _ = evaluator.evaluate(kb, {}, START + DAY)
    return next(t for t in transitions if t.kind is TransitionKind.FIRING)


def rendered() -> dict[Path, str]:
    """The files, exactly as written."""
    t = transition()
    slack = render_slack([t])
    email = render_email([t])
    blocks = {"text": slack.text, "blocks": slack.blocks}
    return {
        SLACK: json.dumps(blocks, indent=2, ensure_ascii=False) + "\n",
        EMAIL: f"Subject: {email.subject}\n\n{email.text}",
    }


def main() -> None:
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
