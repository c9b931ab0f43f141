"""The notification log: dedup by (integration, fingerprint, sequence), thread anchors."""

from __future__ import annotations

from datetime import timedelta

from alerts.nflog import Anchor, NotificationLog
from schemas.alert import TransitionKind
from tests.support.alert_samples import T0, followup, gmail_throttling, resolved

KEY = "team/slack/0"


def test_a_transition_is_accepted_once() -> None:
    nflog = NotificationLog()
    firing = gmail_throttling()
    assert nflog.is_new(KEY, firing)
    nflog.accept(KEY, firing, T0)
    assert not nflog.is_new(KEY, firing)
    assert nflog.is_new("other/email/0", firing)  # per integration
    reminder = followup(firing, TransitionKind.REMINDER)
    assert nflog.is_new(KEY, reminder)
    nflog.accept(KEY, reminder, T0)
    # Consumed again after a crash: the earlier sequence is not news either.
    assert not nflog.is_new(KEY, firing)


def test_a_new_incident_restarting_the_sequence_is_news() -> None:
    nflog = NotificationLog()
    first = gmail_throttling(sequence=7)
    nflog.accept(KEY, first, T0)
    nflog.record_sent(KEY, [first], T0)
    again = gmail_throttling(sequence=1, started_at=first.started_at + timedelta(hours=5))
    assert nflog.is_new(KEY, again)
    nflog.accept(KEY, again, T0)
    assert not nflog.was_delivered(KEY, again)


def test_record_sent_keeps_anchor_latest_and_delivered() -> None:
    nflog = NotificationLog()
    firing = gmail_throttling()
    anchor = Anchor(started_at=firing.started_at, channel="C1", ts="1.1", members=("a",))
    nflog.record_sent(KEY, [firing], T0, anchor=anchor)
    assert nflog.was_delivered(KEY, firing)
    assert nflog.anchor_for(KEY, resolved(firing)) == anchor
    done = resolved(firing)
    nflog.record_sent(KEY, [done], T0 + timedelta(minutes=30))
    entry = nflog.get(KEY, firing.fingerprint)
    assert entry is not None
    assert entry.latest == done
    assert entry.delivered == [1, 2]
    assert entry.anchor == anchor  # replies keep the thread's anchor
    # The next incident of the same alert starts a new thread.
    later = gmail_throttling(sequence=3, started_at=firing.started_at + timedelta(hours=2))
    assert nflog.anchor_for(KEY, later) is None


def test_muted_is_cleared_by_a_newer_delivery() -> None:
    nflog = NotificationLog()
    firing = gmail_throttling()
    nflog.record_muted(KEY, firing, T0)
    entry = nflog.get(KEY, firing.fingerprint)
    assert entry is not None and entry.muted == firing
    nflog.record_sent(KEY, [firing], T0)
    assert entry.muted is None


def test_round_trip_and_changes() -> None:
    nflog = NotificationLog()
    firing = gmail_throttling()
    nflog.accept(KEY, firing, T0)
    nflog.record_sent(KEY, [firing], T0, anchor=Anchor(firing.started_at, message_id="<m@x>"))
    nflog.record_muted(KEY, resolved(firing), T0)
    changes = nflog.take_changes()
    assert nflog.take_changes() == {}
    restored = NotificationLog()
    for key, value in changes.items():
        restored.restore(key, value)
    assert restored.to_dict() == nflog.to_dict()
    assert NotificationLog.from_dict(nflog.to_dict()).to_dict() == nflog.to_dict()


def test_gc_forgets_closed_alerts_only() -> None:
    nflog = NotificationLog()
    firing = gmail_throttling()
    other = gmail_throttling(fingerprint="ffff")
    nflog.record_sent(KEY, [firing], T0)
    nflog.record_sent(KEY, [resolved(other)], T0)
    nflog.take_changes()
    removed = nflog.gc(T0 + timedelta(days=8), timedelta(days=7))
    assert removed == [f"{KEY}|ffff"]
    assert nflog.get(KEY, firing.fingerprint) is not None  # still firing: kept
    assert nflog.take_changes() == {f"{KEY}|ffff": None}


def test_gc_goes_by_the_newest_accepted_state_not_the_last_sent_one() -> None:
    nflog = NotificationLog()
    firing = gmail_throttling()
    nflog.accept(KEY, firing, T0)
    nflog.record_sent(KEY, [firing], T0)
    # The resolution was accepted but not sent (send_resolved: false): the incident is over.
    done = resolved(firing)
    nflog.accept(KEY, done, T0 + timedelta(minutes=30))
    restored = NotificationLog.from_dict(nflog.to_dict())
    assert restored.get(KEY, firing.fingerprint) == nflog.get(KEY, firing.fingerprint)
    assert restored.gc(T0 + timedelta(days=7), timedelta(days=7)) == []
    assert restored.gc(T0 + timedelta(days=7, minutes=30), timedelta(days=7)) == [
        f"{KEY}|{firing.fingerprint}"
    ]
