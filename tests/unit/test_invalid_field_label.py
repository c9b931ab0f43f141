"""bouncewatch_invalid_events{field=...}: the field an input error names is input, so the
label keeps only field-shaped names, folds list indexes and stops at a bounded number of
values; the 10,000 hostile messages of the fault figure once put raw input bytes (U+2028,
unpaired surrogates, a new series per random key) into /metrics through it."""

from __future__ import annotations

from prometheus_client import generate_latest

from streams.metrics import INVALID_FIELD_LABELS, WorkerMetrics


def test_field_names_are_kept_and_list_indexes_folded() -> None:
    metrics = WorkerMetrics()
    assert metrics.invalid_field("event_time") == "event_time"
    assert metrics.invalid_field("event-data.timestamp") == "event-data.timestamp"
    assert metrics.invalid_field("delivery.recipients[12]") == "delivery.recipients[]"
    assert metrics.invalid_field(None) == ""


def test_input_bytes_never_reach_a_label() -> None:
    metrics = WorkerMetrics()
    for name in ["reply.\u2028x", "reply.\x96\U0004d7ef", "reply.)", "reply.\t", "a" * 200]:
        assert metrics.invalid_field(name) == "other", name


def test_labels_are_bounded_whatever_the_input_sends() -> None:
    metrics = WorkerMetrics()
    for n in range(10 * INVALID_FIELD_LABELS):
        metrics.invalid_events.labels(metrics.invalid_field(f"reply.key{n}")).inc()
    page = generate_latest(metrics.registry).decode()
    series = [line for line in page.split("\n") if line.startswith("bouncewatch_invalid_events")]
    assert len(series) == INVALID_FIELD_LABELS + 1  # and "other"
    assert 'field="other"} 900.0' in page
