"""Recipients messages applied at least once (hygiene.bundles): a message read again after a
crash changes nothing and decides nothing twice; a decision left pending is published after a
check. (The list folded and exported: test_hygiene_export.py.)"""

from __future__ import annotations

from typing import Any

from hygiene.bundles import PresenceFilter, apply_bundle, published
from hygiene.core import HygieneRules, Recipients

DAY = 86_400.0
T0 = 1_780_000_000.0
KEY = "kim@example.com"


def soft(day: float, key: str = KEY) -> list[Any]:
    return [key, "s", T0 + day * DAY, "gmail", "mailbox_full", "452 4.2.2 full", "example.com"]


def messages() -> list[list[list[Any]]]:
    """Six messages: a bounce a day for KEY, deliveries to others, a delivery to KEY."""
    return [[soft(day), ["other@example.com", "d", T0 + day * DAY]] for day in range(5)] + [
        [[KEY, "d", T0 + 6 * DAY]]
    ]


def test_each_message_twice_gives_the_state_and_the_decision_once() -> None:
    rules = HygieneRules()
    table: dict[str, Any] = {}
    decided = []
    for offset, message in enumerate(messages()):
        for _ in range(2):  # read again, as after a crash before the offset commit
            for pending in apply_bundle(table, offset, message, rules):
                assert not pending.check
                decided.append(pending.record)
                published(table, pending.key)
    twin = Recipients(rules)
    for message in messages():
        twin.feed(message)
    assert decided == [d.record for d in twin.decisions]
    assert len(decided) == 1
    assert {
        k: {f: v for f, v in e.items() if f not in ("o", "ds")} for k, e in table.items()
    } == twin.states


def test_a_decision_cut_short_is_checked_before_it_is_published_again() -> None:
    rules = HygieneRules()
    table: dict[str, Any] = {}
    for offset, message in enumerate(messages()[:4]):
        assert apply_bundle(table, offset, message, rules) == []
    first = apply_bundle(table, 4, messages()[4], rules, clock=lambda: 1000.0)
    assert [p.check for p in first] == [False]
    assert first[0].since_ms == 1_000_000
    # The worker dies before "published": the message is read again.
    again = apply_bundle(table, 4, messages()[4], rules)
    assert [(p.key, p.check, p.record) for p in again] == [(KEY, True, first[0].record)]
    published(table, KEY)
    assert "pend" not in table[KEY]
    assert apply_bundle(table, 4, messages()[4], rules) == []
    # Later messages for the address find it on the list and decide nothing more.
    assert apply_bundle(table, 5, [soft(7)], rules) == []


def test_presence_filter_skips_deliveries_to_addresses_without_state() -> None:
    presence = PresenceFilter(1024)
    table: dict[str, Any] = {}
    counts: dict[tuple[str, str], int] = {}
    apply_bundle(table, 0, [["a@x.org", "d", T0], soft(0)], HygieneRules(), False, presence, counts)
    assert presence.may_have(KEY)
    assert counts == {("delivery", "skipped"): 1, ("soft", "applied"): 1}
    apply_bundle(table, 1, [[KEY, "d", T0 + DAY]], HygieneRules(), False, presence, counts)
    assert table == {}  # the delivery cleared the only bounce: no entry left
    assert counts[("delivery", "applied")] == 1
