"""Counting equal events once per flush (``EventGroups``) yields the very same partials.

The reference is what the ingest did before grouping: one ``PartialBuilder.add`` per event, in
order. Both ways read the scenarios in tests/data/scenarios (in file order, which is not
event-time order for every file, and sorted), as single-event messages and in batches, and
must give equal ``Partial.to_dict()`` output, metric tally and progress.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.buckets import Partial, PartialBuilder
from aggregation.ingest import BatchTally, Engine, EventGroups, IngestBatch, read_messages
from alerts.rules import parse_rules
from delivery.adapters import decode_message
from schemas.vocabulary import BounceType

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"
NAMES = sorted(p.name.removesuffix(".jsonl.gz") for p in SCENARIOS.glob("*.jsonl.gz"))


def engine() -> Engine:
    return Engine.packaged()


def events_of(name: str, ordered: bool) -> list[dict[str, Any]]:
    with gzip.open(SCENARIOS / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    if ordered:
        events.sort(key=lambda e: datetime.fromisoformat(e["event_time"]))
    return events


def payloads(events: list[dict[str, Any]], per_message: int) -> list[bytes]:
    if per_message == 1:
        return [json.dumps(e).encode() for e in events]
    return [
        json.dumps(events[i : i + per_message]).encode() for i in range(0, len(events), per_message)
    ]


def per_event(
    eng: Engine, builder: PartialBuilder, messages: list[bytes]
) -> tuple[dict[str, Partial], BatchTally]:
    """The ingest before grouping: every event added to the builder on its own."""
    tally = BatchTally()
    for offset, payload in enumerate(messages):
        decoded = decode_message(payload, eng.input_format)
        for event in decoded.events:
            t = event.event_time.timestamp()
            newest = tally.progress.get("in:0")
            if newest is None or t > newest:
                tally.progress["in:0"] = t
            if tally.earliest is None or t < tally.earliest:
                tally.earliest = t
            reply = event.reply
            classification = eng.classifier.classify(
                reply.code, reply.enhanced, reply.text, event.status
            )
            isp = eng.resolver.resolve(event.recipient_domain, event.mx_host)
            builder.add(
                t,
                isp.key,
                classification,
                code=reply.code,
                enhanced=reply.enhanced,
                text=reply.text,
                source_ip=event.source_ip,
                sending_domain=event.sending_domain,
                tenant=event.tenant,
            )
            tally.events[(event.source_format, classification.outcome.value, isp.key)] += 1
            if classification.bounce_type is BounceType.SOFT:
                tally.soft[isp.key] += 1
        builder.note_offset("in:0", offset)
        tally.skipped += decoded.skipped
    return builder.drain(), tally


def grouped(
    eng: Engine, builder: PartialBuilder, messages: list[bytes]
) -> tuple[dict[str, Partial], BatchTally, int]:
    tally = BatchTally()
    groups = EventGroups(eng)
    for offset, payload in enumerate(messages):
        read_messages(eng, builder, [(payload, offset)], "in:0", tally, groups)
    distinct = len(groups)
    groups.feed(builder, tally)
    return builder.drain(), tally, distinct


def as_dicts(partials: dict[str, Partial]) -> dict[str, Any]:
    return {key: p.to_dict() for key, p in partials.items()}


def top_entries(partials: dict[str, Partial]) -> dict[str, Any]:
    """Reply entries with their order, which ``==`` on dicts would not compare."""
    return {
        key: {
            start: {cat: list(topk.entries.items()) for cat, topk in c.replies.items()}
            for start, c in p.buckets.items()
        }
        for key, p in partials.items()
    }


@pytest.mark.parametrize("per_message", [1, 100])
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_grouped_partials_equal_per_event_partials(
    name: str, ordered: bool, per_message: int
) -> None:
    eng = engine()
    messages = payloads(events_of(name, ordered), per_message)
    want, want_tally = per_event(eng, eng.builder(), messages)
    got, got_tally, distinct = grouped(eng, eng.builder(), messages)
    assert as_dicts(got) == as_dicts(want)
    assert top_entries(got) == top_entries(want)
    assert got_tally.events == want_tally.events
    assert got_tally.soft == want_tally.soft
    assert got_tally.progress == want_tally.progress
    assert got_tally.earliest == want_tally.earliest
    assert got_tally.skipped == want_tally.skipped
    assert distinct < sum(want_tally.events.values())


@pytest.mark.parametrize("capacity", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_grouping_keeps_space_saving_order_when_a_summary_overflows(
    name: str, capacity: int
) -> None:
    # With room for fewer replies than a bucket sees, eviction depends on event order:
    # the events with a reply are then added one by one.
    eng = engine()
    messages = payloads(events_of(name, ordered=False), 100)

    def builder() -> PartialBuilder:
        return PartialBuilder(eng.rules.key_specs(), eng.config.bucket_seconds, capacity)

    want, _ = per_event(eng, builder(), messages)
    got, _, _ = grouped(eng, builder(), messages)
    assert as_dicts(got) == as_dicts(want)
    assert top_entries(got) == top_entries(want)


def test_unique_delivered_texts_collapse_into_one_group() -> None:
    eng = engine()
    events = [
        {
            "event_time": f"2026-03-02T08:00:{i:02d}+00:00",
            "recipient": f"user{i}@gmail.com",
            "sending_domain": "mail.shop.example",
            "source_ip": "192.0.2.10",
            "reply": {"code": 250, "enhanced": "2.0.0", "text": f"OK {i}abcdef12 - gsmtp"},
            "status": "delivered",
        }
        for i in range(50)
    ]
    messages = payloads(events, 100)
    want, want_tally = per_event(eng, eng.builder(), messages)
    got, got_tally, distinct = grouped(eng, eng.builder(), messages)
    assert distinct == 1
    assert as_dicts(got) == as_dicts(want)
    assert (
        got_tally.events
        == want_tally.events
        == Counter({("bouncewatch", "delivered", "gmail"): 50})
    )


def test_ingest_batch_feeds_its_groups_at_its_flush() -> None:
    eng = engine()
    # Four minutes of events: less than MAX_FLUSH_SPAN_SECONDS, so one flush at the end.
    events = [e for e in events_of(NAMES[0], ordered=True) if e["event_time"] < "2026-03-02T08:04"]
    messages = payloads(events, 1)
    want, want_tally = per_event(eng, eng.builder(), messages)
    reader = IngestBatch(eng)
    for offset, payload in enumerate(messages):
        _, chunk = reader.read(payload, "in:0", offset)
        assert chunk is None
    chunk = reader.flush()
    assert as_dicts(chunk.partials) == as_dicts(want)
    assert chunk.tally.events == want_tally.events
    # The progress record names the input's latest event time, as the tally has it.
    assert {s: v[0] for s, v in chunk.progress["sources"].items()} == want_tally.progress
    assert reader.flush().partials == {}


def test_eviction_order_is_kept() -> None:
    # Capacity 2 and replies A B C A A: one by one, C evicts A and A then evicts B
    # (A 3 with error 1); counted per group first, A would never be evicted (error 0).
    eng = engine()
    texts = ["try later alpha", "try later beta", "try later gamma"]
    events = [
        {
            "event_time": f"2026-03-02T08:00:{i:02d}+00:00",
            "recipient": f"user{i}@gmail.com",
            "sending_domain": "mail.shop.example",
            "source_ip": "192.0.2.10",
            "reply": {"code": 421, "enhanced": "4.7.0", "text": texts[which]},
            "status": "deferred",
        }
        for i, which in enumerate([0, 1, 2, 0, 0])
    ]
    messages = payloads(events, 100)

    def builder() -> PartialBuilder:
        return PartialBuilder(eng.rules.key_specs(), eng.config.bucket_seconds, 2)

    want, _ = per_event(eng, builder(), messages)
    got, _, _ = grouped(eng, builder(), messages)
    assert as_dicts(got) == as_dicts(want)
    assert top_entries(got) == top_entries(want)
    errors = [
        entry[1]  # its error: the count it may have inherited
        for p in want.values()
        for c in p.buckets.values()
        for topk in c.replies.values()
        for entry in topk.entries.values()
    ]
    assert errors and all(errors)


def rules_grouping_by(dims: list[list[str]]) -> str:
    rules = [
        f"""
  - name: r{i}
    type: threshold
    metric: soft_bounce_rate
    group_by: {group}
    window: 5m
    min_attempts: 1
    severities: {{warning: 0.5}}
"""
        for i, group in enumerate(dims)
    ]
    return "rules:" + "".join(rules) if rules else "rules: []"


_DOMAINS = ["gmail.com", "GMail.com", "yahoo.com.", "outlook.com", "corp.example", "mx.example"]
_MX = [None, None, "aspmx.l.google.com", "corp-com.mail.protection.outlook.com"]
_REPLIES = [
    {"code": 250, "text": "OK 12ab - gsmtp"},
    {"code": 250, "enhanced": "2.0.0", "text": "Ok: queued as AB12"},
    {"code": 221},
    {"enhanced": "2.0.0", "text": "delivered"},
    {"code": 421, "enhanced": "4.7.28", "text": "rate limited, try again later"},
    {"code": 450, "enhanced": "4.2.1", "text": "mailbox busy"},
    {"code": 550, "enhanced": "5.1.1", "text": "user unknown"},
    {"code": 554, "text": "blocked using Spamhaus"},
    {"text": "connection timed out"},
    {},
]
_STATUSES = [None, None, "delivered", "deferred", "bounced", "expired", "suppressed"]


@st.composite
def native_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    out = []
    for _ in range(n):
        event: dict[str, Any] = {
            "event_time": f"2026-03-02T08:{draw(st.integers(0, 7)):02d}:"
            f"{draw(st.integers(0, 59)):02d}.{draw(st.integers(0, 999)):03d}+00:00",
            "recipient": f"u{draw(st.integers(0, 9))}@{draw(st.sampled_from(_DOMAINS))}",
            "reply": draw(st.sampled_from(_REPLIES)),
        }
        for name, values in (
            ("mx_host", _MX),
            ("status", _STATUSES),
            ("source_ip", [None, "192.0.2.1", "192.0.2.2"]),
            ("sending_domain", [None, "a.example", "b.example"]),
            ("tenant", [None, "t1", "t2"]),
        ):
            value = draw(st.sampled_from(values))
            if value is not None:
                event[name] = value
        out.append(event)
    return out


@settings(max_examples=60, deadline=None)
@given(
    events=native_events(),
    group_bys=st.lists(
        st.lists(st.sampled_from(["source_ip", "sending_domain", "tenant"]), min_size=1),
        max_size=2,
    ),
    per_message=st.sampled_from([1, 7, 100]),
)
def test_grouped_partials_equal_per_event_partials_for_any_events(
    events: list[dict[str, Any]], group_bys: list[list[str]], per_message: int
) -> None:
    # Statuses, MX hosts, domain spellings and labels the rules may or may not group by:
    # the delivered shortcut and the labels kept must not change a single count.
    eng = Engine.packaged(parse_rules(rules_grouping_by(group_bys)))
    messages = payloads(events, per_message)
    want, want_tally = per_event(eng, eng.builder(), messages)
    got, got_tally, _ = grouped(eng, eng.builder(), messages)
    assert as_dicts(got) == as_dicts(want)
    assert top_entries(got) == top_entries(want)
    assert got_tally.events == want_tally.events
    assert got_tally.progress == want_tally.progress


def test_flushing_in_steps_gives_the_chunk_a_flush_gives() -> None:
    eng = engine()
    messages = payloads(events_of(NAMES[0], ordered=False), 50)
    whole, stepped = IngestBatch(eng), IngestBatch(eng)
    for offset, payload in enumerate(messages):
        whole.add(payload, "in:0", offset)
        stepped.add(payload, "in:0", offset)
    groups = len(stepped._groups)
    steps = list(stepped.flushing(step=32))
    chunk, pauses = steps[-1], steps[:-1]
    assert chunk is not None and all(p is None for p in pauses)
    assert len(pauses) >= groups // 32 > 5  # fed in pieces
    want = whole.flush()
    assert as_dicts(chunk.partials) == as_dicts(want.partials)
    assert chunk.tally.events == want.tally.events


def test_messages_read_in_slices_give_what_they_give_one_by_one() -> None:
    """``add_messages`` (the worker's slices) counts what ``add`` of each message counts, and
    each message keeps its own errors: a bad one in the middle of a slice is the one
    dead-lettered, the good ones around it are counted."""
    eng = engine()
    events = [e for e in events_of(NAMES[0], ordered=True) if e["event_time"] < "2026-03-02T08:04"]
    good = payloads(events, 1)
    bad = b'{"event_time": "2026-03-02T08:01:00Z", "recipient": "no-domain"}'
    messages = [*good[:7], bad, *good[7:]]
    want, want_tally = per_event(eng, eng.builder(), good)
    reader = IngestBatch(eng)
    read: list[Any] = []
    for start in range(0, len(messages), 5):
        part = [(m, start + i) for i, m in enumerate(messages[start : start + 5])]
        read += reader.add_messages(part, "in:0")
    assert len(read) == len(messages)
    assert [i for i, d in enumerate(read) if d.errors] == [7]
    assert all(len(d.events) == 1 for i, d in enumerate(read) if i != 7)
    chunk = reader.flush()
    # Offsets of every message, the bad one included: a re-sent partial is merged once.
    assert all(p.sources == {"in:0": [0, len(messages) - 1]} for p in chunk.partials.values())
    for partial in (*chunk.partials.values(), *want.values()):
        partial.sources = {}
    assert as_dicts(chunk.partials) == as_dicts(want)
    assert chunk.tally.events == want_tally.events


def test_a_fetch_is_cut_into_slices_by_messages_and_bytes() -> None:
    from streams.ingest import SLICE_BYTES, SLICE_MESSAGES, slices

    def records(*sizes: int) -> list[tuple[bytes, int]]:
        return [(b"x" * n, i) for i, n in enumerate(sizes)]

    small = records(*[10] * (2 * SLICE_MESSAGES + 3))
    assert list(slices(small)) == [
        (0, SLICE_MESSAGES),
        (SLICE_MESSAGES, 2 * SLICE_MESSAGES),
        (2 * SLICE_MESSAGES, 2 * SLICE_MESSAGES + 3),
    ]
    half = SLICE_BYTES // 2
    # Two halves fit; a third starts a slice; a message larger than a slice goes alone.
    assert list(slices(records(half, half, half, 3 * SLICE_BYTES, 1))) == [
        (0, 2),
        (2, 3),
        (3, 4),
        (4, 5),
    ]
    assert list(slices(records())) == []
    # A tombstone (read as no bytes) is a message of its own.
    assert list(slices(records(0))) == [(0, 1)]
