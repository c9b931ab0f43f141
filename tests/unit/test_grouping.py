"""group_wait batching: pure, with the clock as a parameter."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerts.grouping import Grouper, rounds
from schemas.alert import TransitionKind
from tests.support.alert_samples import T0, followup, gmail_throttling, resolved, yahoo_throttling

LABELS = (("rule", "isp-throttling"),)
WAIT = timedelta(seconds=30)


def test_transitions_within_group_wait_become_one_batch() -> None:
    grouper = Grouper()
    grouper.add("r/slack/0", LABELS, gmail_throttling(), WAIT, T0)
    grouper.add("r/slack/0", LABELS, yahoo_throttling(), WAIT, T0 + timedelta(seconds=20))
    assert grouper.due(T0 + timedelta(seconds=29)) == []
    assert grouper.next_due() == T0 + WAIT
    [group] = grouper.due(T0 + WAIT)
    assert [t.isp for t in group.transitions] == ["gmail", "yahoo"]
    assert len(grouper) == 0
    # A flushed group is closed: the next transition opens a new one with its own wait.
    grouper.add("r/slack/0", LABELS, resolved(gmail_throttling()), WAIT, T0 + timedelta(minutes=5))
    assert grouper.next_due() == T0 + timedelta(minutes=5) + WAIT


def test_groups_are_per_integration_and_labels() -> None:
    grouper = Grouper()
    grouper.add("a/slack/0", LABELS, gmail_throttling(), WAIT, T0)
    grouper.add("b/email/0", LABELS, gmail_throttling(), WAIT, T0)
    grouper.add("a/slack/0", (("rule", "ip-blocklisted"),), gmail_throttling(), WAIT, T0)
    assert len(grouper.due(T0 + WAIT)) == 3


def test_zero_wait_is_due_at_once() -> None:
    grouper = Grouper()
    grouper.add("a/slack/0", LABELS, gmail_throttling(), timedelta(0), T0)
    assert len(grouper.due(T0)) == 1


def test_state_round_trips_and_reports_changes() -> None:
    grouper = Grouper()
    grouper.add("a/slack/0", LABELS, gmail_throttling(), WAIT, T0)
    changes = grouper.take_changes()
    assert len(changes) == 1 and None not in changes.values()
    restored = Grouper()
    for key, value in changes.items():
        restored.restore(key, value)
    assert restored.to_dict() == grouper.to_dict()
    assert restored.contains("a/slack/0", gmail_throttling())
    grouper.due(T0 + WAIT)
    assert list(grouper.take_changes().values()) == [None]
    assert Grouper.from_dict(restored.to_dict()).to_dict() == restored.to_dict()


def test_rounds_keep_one_transition_per_alert_per_message() -> None:
    g1 = gmail_throttling()
    g2 = resolved(g1)
    y1 = yahoo_throttling()
    batch = [g1, y1, g2]
    assert rounds(batch) == [[g1, y1], [g2]]


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=12))
def test_rounds_preserve_every_transition_and_order(fingerprints: list[str]) -> None:
    counters: dict[str, int] = {}
    batch = []
    for fp in fingerprints:
        counters[fp] = counters.get(fp, 0) + 1
        batch.append(
            followup(
                gmail_throttling(), TransitionKind.REMINDER, fingerprint=fp, sequence=counters[fp]
            )
        )
    result = rounds(batch)
    assert sorted((t.fingerprint, t.sequence) for r in result for t in r) == sorted(
        (t.fingerprint, t.sequence) for t in batch
    )
    for n, r in enumerate(result, 1):
        assert len({t.fingerprint for t in r}) == len(r)
        assert all(t.sequence == n for t in r)
