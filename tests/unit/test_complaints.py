"""Complaints counted and judged: Counts, the ingest, the complaint metrics, the evaluator and
the default complaint rules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aggregation.buckets import COMPLAINT_SOURCES, Counts, KeyBuckets, PartialBuilder
from aggregation.ingest import Engine, IngestBatch
from aggregation.metrics import parse_metric
from alerts.evaluate import Evaluator
from alerts.rules import load_default_rules, parse_rules
from alerts.state import AlertStateRecord
from delivery.classify import default_classifier
from schemas.alert import Severity

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "formats"
DAY = 86400


def test_feedback_counts_apart_from_attempts_and_survives_storage() -> None:
    counts = Counts()
    counts.add_feedback(True, "news.shop.example", "192.0.2.14", "black-friday", count=3)
    counts.add_feedback(False, "news.shop.example", "192.0.2.14", "black-friday")
    assert (counts.attempts, counts.complaints, counts.feedback) == (0, 3, 1)
    assert counts.top_complaint_sources("d:") == [("news.shop.example", 3)]
    assert counts.top_complaint_sources("c:") == [("black-friday", 3)]
    stored = Counts.from_dict(json.loads(json.dumps(counts.to_dict())))
    assert stored == counts
    total = Counts()
    total.merge(counts)
    total.merge(stored)
    assert (total.complaints, total.feedback) == (6, 2)
    assert total.top_complaint_sources("i:") == [("192.0.2.14", 6)]
    # a bucket without feedback stores nothing more than before
    assert set(Counts(attempts=1).to_dict()) == {"a"}


def test_complaint_sources_per_bucket_are_bounded() -> None:
    counts = Counts()
    for n in range(COMPLAINT_SOURCES + 10):
        counts.add_feedback(True, f"d{n}.example", None, None)
    assert counts.complaints == COMPLAINT_SOURCES + 10
    assert len(counts.complaint_sources) == COMPLAINT_SOURCES


def test_complaint_rate_is_over_delivered_attempts() -> None:
    metric = parse_metric("complaint_rate")
    counts = Counts(attempts=2000, delivered=1000, complaints=3)
    assert metric.value(counts) == pytest.approx(0.003)
    assert metric.volume(counts) == 1000
    assert metric.definition == "spam complaints / delivered messages"
    assert metric.format(0.0021) == "0.21%"
    count = parse_metric("complaint_count")
    assert (count.value(counts), count.is_rate) == (3.0, False)
    # the other rates keep their denominator
    assert parse_metric("soft_bounce_rate").volume(counts) == 2000


def engine(rules: str | None = None) -> Engine:
    return Engine.packaged(parse_rules(rules) if rules else None)


def delivered(recipient: str, domain: str, at: str = "2026-11-24T08:00:00Z") -> dict[str, Any]:
    return {
        "event_time": at,
        "recipient": recipient,
        "sending_domain": domain,
        "reply": {"code": 250, "text": "ok"},
    }


def test_the_ingest_counts_complaints_in_every_key_of_their_labels() -> None:
    batch = IngestBatch(engine())
    payloads = [
        json.dumps([delivered(f"u{i}@yahoo.com", "news.shop.example") for i in range(4)]).encode(),
        (SAMPLES / "arf" / "yahoo_abuse.eml").read_bytes(),
        (SAMPLES / "arf" / "not_spam.eml").read_bytes(),
    ]
    chunks = []
    for offset, payload in enumerate(payloads):
        decoded, chunk = batch.read(payload, "events:0", offset)
        assert decoded.errors == []
        chunks.extend([chunk] if chunk is not None else [])
    chunks.append(batch.flush())

    def total(key: str) -> Counts:
        out = Counts()
        for chunk in chunks:
            for counts in chunk.partials[key].buckets.values() if key in chunk.partials else ():
                out.merge(counts)
        return out

    isp = total("isp=yahoo")
    assert (isp.attempts, isp.delivered, isp.complaints) == (4, 4, 1)
    assert isp.top_complaint_sources("c:") == [("black-friday", 1)]
    domain = total("isp=yahoo|sending_domain=news.shop.example")
    assert (domain.delivered, domain.complaints) == (4, 1)
    # not-spam from a Comcast user: counted apart, at Comcast, as no complaint
    comcast = total("isp=comcast")
    assert (comcast.complaints, comcast.feedback, comcast.attempts) == (0, 1, 0)
    tallied = sum((c.tally.events for c in chunks), start=Counter[tuple[str, str, str]]())
    assert tallied[("arf", "complaint", "yahoo")] == 1
    assert tallied[("arf", "feedback", "comcast")] == 1


def buckets_with(delivered_per_hour: int, complaints: int) -> KeyBuckets:
    """A day of one key: ``delivered_per_hour`` each hour, ``complaints`` in the last."""
    config = load_default_rules().aggregation_config()
    kb = KeyBuckets("isp=yahoo|sending_domain=news.shop.example", config)
    builder = PartialBuilder(load_default_rules().key_specs())
    ok = default_classifier().classify(250, None, "ok", None)
    for hour in range(24):
        builder.add(hour * 3600, "yahoo", ok, sending_domain="news.shop.example",
                    count=delivered_per_hour)  # fmt: skip
    for n in range(complaints):
        builder.add_feedback(23 * 3600 + n, "yahoo", True, sending_domain="news.shop.example",
                             campaign="black-friday")  # fmt: skip
    for partial in builder.drain().values():
        if partial.key == kb.key:
            kb.merge(partial)
    kb.advance(DAY)
    return kb


def judge(kb: KeyBuckets) -> tuple[Severity | None, int]:
    evaluator = Evaluator(load_default_rules())
    (rule,) = [r for r in evaluator.rules_for_key(kb.key) if r.metric == "complaint_rate"]
    assert rule.name == "complaint-rate-per-domain"
    record = AlertStateRecord("fp", rule.name, kb.key)
    j = evaluator.judge(rule, kb, DAY, record)
    return j.active, j.attempts


@pytest.mark.parametrize(
    ("per_hour", "complaints", "severity"),
    [
        (1000, 23, None),  # 23 / 24,000 = 0.096 %
        (1000, 24, Severity.WARNING),  # 0.10 %
        (1000, 71, Severity.WARNING),  # 0.296 %
        (1000, 72, Severity.CRITICAL),  # 0.30 %
        # 1 complaint in 200 delivered (0.5 %) is below the volume a rate means anything at
        (200 // 24 + 1, 1, None),
        # 4,800 delivered a day: under the 5,000 guard, whatever the rate
        (200, 30, None),
    ],
)
def test_default_complaint_rule_levels_and_volume_guard(
    per_hour: int, complaints: int, severity: Severity | None
) -> None:
    active, volume = judge(buckets_with(per_hour, complaints))
    assert active is severity
    assert volume == per_hour * 24  # the volume is delivered messages


def test_a_complaint_alert_carries_its_evidence_and_actions() -> None:
    kb = buckets_with(1000, 80)
    evaluator = Evaluator(load_default_rules())
    transitions, _ = evaluator.evaluate(kb, {}, DAY)
    (t,) = [t for t in transitions if t.kind.value == "firing"]
    assert t.metric == "complaint_rate" and t.severity is Severity.CRITICAL
    assert t.attempts == 24_000
    evidence = t.complaints
    assert evidence is not None
    assert (evidence.complaints, evidence.delivered) == (80, 24_000)
    assert evidence.provider_limit == pytest.approx(0.003)
    assert [(c.name, c.count) for c in evidence.top_campaigns] == [("black-friday", 80)]
    assert [(c.name, c.count) for c in evidence.top_sending_domains] == [("news.shop.example", 80)]
    assert "Suppress every complainer" in t.recommended_action
    assert "RFC 8058" in t.recommended_action and "black-friday" in t.recommended_action
    assert "80 complaints / 24,000 delivered" in t.summary
    assert t.top_replies == [] and t.categories == {}


def test_status_reports_what_the_rules_read_with_its_meaning() -> None:
    """/status asks the same definitions: each metric over its rule's window."""
    kb = buckets_with(1000, 30)
    shown = Evaluator(load_default_rules()).metric_status(kb)
    # the rules of a per-domain key: complaints and new hard bounces (none here)
    assert set(shown) == {"complaint_rate", "suppression_rate(hard_bounce)"}
    assert shown["suppression_rate(hard_bounce)"]["value"] == 0
    rate = shown["complaint_rate"]
    assert rate["value"] == pytest.approx(30 / 24_000)
    assert (rate["volume"], rate["volume_label"]) == (24_000, "delivered messages")
    assert rate["definition"] == "spam complaints / delivered messages"
    assert (rate["window_seconds"], rate["shown"]) == (DAY, "0.12%")


def test_a_complaint_with_a_wrong_clock_is_refused_like_an_attempt() -> None:
    from aggregation.watermark import InputProgress, TimeBounds
    from delivery.adapters import decode_message

    inputs = InputProgress(TimeBounds())
    decoded = decode_message((SAMPLES / "sendgrid" / "spamreport.json").read_bytes())
    sent = decoded.feedback[0].event_time.timestamp()
    kept, _ = inputs.admit(decoded, "events:0", now=sent - 2 * 3600)  # two hours ahead
    assert kept.feedback == []
    (error,) = kept.errors
    assert error.field == "event_time" and "ahead of the clock" in error.reason
    assert inputs.refused["ahead"] == 1
    kept, _ = inputs.admit(decoded, "events:0", now=sent)
    assert len(kept.feedback) == 1 and kept.errors == []
    assert inputs.latest("events:0") == sent  # it moves the partition's progress


def test_the_backtest_report_charts_complaint_rates_over_delivered() -> None:
    from alerts.replay import FEEDBACK, Observation
    from alerts.report.series import count, rule_series

    rules = load_default_rules()
    ok = default_classifier().classify(250, None, "ok", None)
    deferred = default_classifier().classify(421, "4.7.0", "try later", None)
    # two days of 10 delivered and 10 deferred a minute, and 12 complaints on the second day
    obs = [Observation(6.0 * i, "yahoo", ok, 250, None, "", None, "d.example", None)
           for i in range(28_800)]  # fmt: skip
    # deferrals are attempts, not deliveries: they must not dilute the complaint rate
    obs += [Observation(6.0 * i + 1, "yahoo", deferred, 421, "4.7.0", "try later", None,
                        "d.example", None) for i in range(28_800)]  # fmt: skip
    obs += [Observation(DAY + 3600.0 * i + 2, "yahoo", FEEDBACK, None, None, "", None,
                        "d.example", None, True, "spring") for i in range(12)]  # fmt: skip
    obs.sort(key=lambda o: o.t)
    rule = next(r for r in rules.rules if r.name == "complaint-rate")
    series = rule_series(count(obs, [rules]), rule, "isp=yahoo", 10_000)
    assert series is not None and series.volume_label == "delivered"
    last = [v for v in series.values if v is not None][-1]
    assert last == pytest.approx(12 / 14_400)  # the last day's complaints / its deliveries
