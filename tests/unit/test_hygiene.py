"""The graduation rule and per-recipient state (hygiene.core), and the observations the
ingest makes of classified events (hygiene.observe)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from delivery.classify import default_classifier
from hygiene.bundles import sequence
from hygiene.core import (
    REASON_COMPLAINT,
    REASON_HARD,
    REASON_SOFT,
    GraduationRule,
    HygieneRules,
    Recipients,
    normalize,
    parse_overrides,
    recipient_key,
    recipient_partition,
)
from hygiene.observe import Observer
from schemas.vocabulary import SourceStatus

DAY = 86_400.0
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
ADDR = "Kim.Doe@Example.COM"
KEY = "Kim.Doe@example.com"


def soft(day: float, category: str = "mailbox_full", key: str = KEY) -> list[object]:
    t = T0 + day * DAY
    return [key, "s", t, "other", category, "452 4.2.2 mailbox full", "example.com"]


def delivery(day: float, key: str = KEY) -> list[object]:
    return [key, "d", T0 + day * DAY]


def test_normalize_lowercases_the_domain_only() -> None:
    assert normalize(ADDR) == KEY
    assert normalize(" Kim@Example.com. ") == "Kim@example.com"
    assert recipient_key(ADDR) == KEY
    hashed = recipient_key(ADDR, b"secret")
    assert hashed == recipient_key("Kim.Doe@example.com", b"secret") != KEY
    assert len(hashed) == 64
    assert recipient_partition(KEY, 8) == recipient_partition(KEY, 8) < 8


def test_mailbox_full_on_five_days_graduates_exactly_once() -> None:
    r = Recipients()
    decisions = r.feed(soft(day) for day in range(5))
    assert len(decisions) == 1
    record = decisions[0].record
    assert record is not None
    assert record["reason"] == REASON_SOFT
    assert record["category"] == "mailbox_full"
    assert record["evidence"]["counts"] == {"mailbox_full": 5}
    assert record["evidence"]["days"] == 5
    assert record["evidence"]["first_bounce"] == "2026-03-02T09:00:00Z"
    assert record["evidence"]["last_bounce"] == "2026-03-06T09:00:00Z"
    assert record["when"] == "2026-03-06T09:00:00Z"
    assert record["decision"] == 1
    # More bounces after graduation change nothing and decide nothing.
    assert r.feed(soft(day) for day in range(5, 12)) == []
    assert len(r.decisions) == 1


def test_five_bounces_on_two_days_are_not_enough() -> None:
    r = Recipients()
    assert r.feed(soft(day) for day in (0, 0.1, 0.2, 1, 1.1, 1.2)) == []
    # A third day makes it.
    assert len(r.feed([soft(2)])) == 1


def test_throttled_for_a_week_never_graduates() -> None:
    # Sender-side causes make no observation at all (hygiene.observe), and the core
    # refuses to be told they count.
    classifier = default_classifier()
    replies = [
        (421, "4.7.0", "Try again later, closing connection."),
        (
            421,
            "4.7.0",
            "[TSS04] Messages from 1.2.3.4 temporarily deferred due to unexpected "
            "volume or user complaints",
        ),
    ]
    observer = Observer(HygieneRules(), 8)
    r = Recipients()
    for hour in range(7 * 24):
        c = classifier.classify(*replies[hour % 2], None)
        assert c.category.value in ("throttled", "reputation")
        observer.attempt(ADDR, "example.com", T0 + hour * 3600, "yahoo", c, "421 4.7.0 ...")
        r.feed(obs for bundle in observer.drain().values() for _, obs in sequence(bundle))
    assert r.decisions == []
    assert r.states == {}
    with pytest.raises(ValueError, match="sender-side"):
        HygieneRules(soft_categories=frozenset({"throttled"}))


def test_a_delivery_in_between_resets() -> None:
    r = Recipients()
    observations = [soft(0), soft(1), soft(2), delivery(2.5), soft(3), soft(4)]
    assert r.feed(observations) == []
    assert len(r.states[KEY]["b"]) == 2
    # three more days after the delivery: five since it, on five days
    assert len(r.feed([soft(5), soft(6), soft(7)])) == 1


def test_a_delivery_to_an_address_without_state_keeps_nothing() -> None:
    r = Recipients()
    r.feed([delivery(0), delivery(1)])
    assert r.states == {}
    r.feed([soft(2), delivery(3)])
    assert r.states == {}  # the delivery removed the only bounce: no entry left


def test_a_late_delivery_only_clears_bounces_before_it() -> None:
    r = Recipients()
    r.feed([soft(0), soft(1), soft(3), delivery(2)])  # the delivery's event time is day 2
    assert [b[0] for b in r.states[KEY]["b"]] == [T0 + 3 * DAY]
    r.feed([soft(1.5)])  # older than the delivery: no longer counts
    assert len(r.states[KEY]["b"]) == 1


def test_hard_user_unknown_suppresses_at_once() -> None:
    r = Recipients()
    obs = [KEY, "h", T0, "gmail", "user_unknown", "550 5.1.1 no such user", "example.com"]
    decisions = r.feed([obs])
    assert len(decisions) == 1
    record = decisions[0].record
    assert record is not None
    assert record["reason"] == REASON_HARD
    assert record["rule"] == "hard_bounce:user_unknown"
    assert record["evidence"]["last_reply"] == "550 5.1.1 no such user"
    assert record["evidence"]["isp"] == "gmail"
    assert r.feed([obs]) == []


def test_complaint_suppresses_at_once() -> None:
    r = Recipients()
    decisions = r.feed([[KEY, "c", T0, "yahoo", "example.com"]])
    assert len(decisions) == 1
    assert decisions[0].record is not None
    assert decisions[0].record["reason"] == REASON_COMPLAINT


def test_release_lets_an_address_graduate_again_with_a_new_number() -> None:
    r = Recipients()
    r.feed(soft(day) for day in range(5))
    r.feed([[KEY, "r", T0 + 6 * DAY, "ops"]])
    assert r.states[KEY] == {"n": 1}
    again = r.feed(soft(day) for day in range(10, 15))
    assert [d.number for d in again] == [2]


def test_per_domain_override() -> None:
    rules = HygieneRules(domains=parse_overrides("example.com:2:2"))
    r = Recipients(rules)
    decisions = r.feed([soft(0), soft(1)])
    assert len(decisions) == 1
    assert decisions[0].record is not None
    assert decisions[0].record["rule"] == GraduationRule(2, 2).name
    with pytest.raises(ValueError):
        parse_overrides("example.com:2")


def test_hashed_records_carry_no_address() -> None:
    key = recipient_key(ADDR, b"k")
    r = Recipients(hashed=True)
    decisions = r.feed([[key, "c", T0, "yahoo", "example.com"]])
    assert decisions[0].record is not None
    assert decisions[0].record["address"] is None
    assert decisions[0].record["key"] == key


def test_observer_sorts_classified_events() -> None:
    classifier = default_classifier()
    full = classifier.classify(
        452, "4.2.2", "The email account that you tried to reach is over quota", None
    )
    unknown = classifier.classify(
        550,
        "5.1.1",
        "The email account that you tried to reach does not exist",
        SourceStatus.BOUNCED,
    )
    assert full.category.value == "mailbox_full"
    observer = Observer(HygieneRules(), 4)
    observer.delivery(ADDR, "Example.COM", T0)
    observer.delivery("kim.doe@example.com", "example.com", T0 + 1)  # local part kept
    observer.delivery(ADDR, "Example.COM", T0 + 5)
    observer.attempt(ADDR, "example.com", T0 + 6, "gmail", full, "452 4.2.2 over quota")
    observer.attempt("x@example.com", "example.com", T0 + 7, "gmail", unknown, "550 5.1.1")
    by_partition = observer.drain()
    flat = [obs for bundle in by_partition.values() for _, obs in sequence(bundle)]
    kinds = sorted((o[0], o[1]) for o in flat)
    assert kinds == [
        (KEY, "d"),
        (KEY, "d"),
        (KEY, "s"),
        ("kim.doe@example.com", "d"),
        ("x@example.com", "h"),
    ]
    mine = by_partition[recipient_partition(KEY, 4)]
    # Deliveries travel apart, keys and times; each other observation knows its place.
    assert [tuple(o[:3]) for _, o in sequence(mine) if o[0] == KEY] == [
        (KEY, "d", T0),
        (KEY, "d", T0 + 5),
        (KEY, "s", T0 + 6),
    ]
    assert len(observer) == 0
