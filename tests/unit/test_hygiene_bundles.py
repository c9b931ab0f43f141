"""Recipients messages applied at least once (hygiene.bundles): a message read again after a
crash changes nothing and decides nothing twice; a decision left pending is published after a
check. (The list folded and exported: test_hygiene_export.py.)"""

from __future__ import annotations

from typing import Any

import orjson

from delivery.types import Classification
from hygiene.bundles import PresenceFilter, apply_bundle, published, sequence
from hygiene.core import HygieneRules, Recipients
from hygiene.observe import Bundle, Observer
from schemas.vocabulary import BounceType, Category, Outcome
from streams.ingest import observation_bundles

DAY = 86_400.0
T0 = 1_780_000_000.0
KEY = "kim@example.com"


def listed(observations: list[Any]) -> Bundle:
    """A recipients message holding ``observations`` (in the first format: one list)."""
    return Bundle.from_message({"obs": observations})


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
            for pending in apply_bundle(table, offset, listed(message), rules):
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
        assert apply_bundle(table, offset, listed(message), rules) == []
    first = apply_bundle(table, 4, listed(messages()[4]), rules, clock=lambda: 1000.0)
    assert [p.check for p in first] == [False]
    assert first[0].since_ms == 1_000_000
    # The worker dies before "published": the message is read again.
    again = apply_bundle(table, 4, listed(messages()[4]), rules)
    assert [(p.key, p.check, p.record) for p in again] == [(KEY, True, first[0].record)]
    published(table, KEY)
    assert "pend" not in table[KEY]
    assert apply_bundle(table, 4, listed(messages()[4]), rules) == []
    # Later messages for the address find it on the list and decide nothing more.
    assert apply_bundle(table, 5, listed([soft(7)]), rules) == []


def test_presence_filter_skips_deliveries_to_addresses_without_state() -> None:
    presence = PresenceFilter(1024)
    table: dict[str, Any] = {}
    counts: dict[tuple[str, str], int] = {}
    apply_bundle(
        table, 0, listed([["a@x.org", "d", T0], soft(0)]), HygieneRules(), False, presence, counts
    )
    assert presence.may_have(KEY)
    assert counts == {("delivery", "skipped"): 1, ("soft", "applied"): 1}
    apply_bundle(table, 1, listed([[KEY, "d", T0 + DAY]]), HygieneRules(), False, presence, counts)
    assert table == {}  # the delivery cleared the only bounce: no entry left
    assert counts[("delivery", "applied")] == 1


def interleaved() -> list[list[Any]]:
    """Deliveries and bounces to a few addresses in one flush's order: KEY's streak is cut by
    a delivery between its bounces, so an order lost would decide."""
    out: list[list[Any]] = []
    for day in range(8):
        out.append([f"other{day}@example.com", "d", T0 + day * DAY])
        out.append(soft(day))
        if day == 3:
            out.append([KEY, "d", T0 + 3.5 * DAY])
        out.append(["gone@example.com", "h", T0 + day, "gmail", "user_unknown", "550", "x.org"])
    return out


def test_deliveries_apart_keep_the_order_and_the_stamps_of_one_list() -> None:
    """The second format (deliveries as flat lists) read from JSON gives the observations of
    the first in the same order with the same indexes, and so the same table and decisions."""
    observations = interleaved()
    parted = Bundle.from_message({"obs": observations})
    assert len(parted.keys) == 9 and parted.at[0] == 1
    wire = Bundle.from_message(orjson.loads(orjson.dumps(parted.message())))
    assert [(i, list(o)) for i, o in sequence(wire)] == list(enumerate(observations))
    tables: list[dict[str, Any]] = [{}, {}]
    decided: list[list[Any]] = [[], []]
    for n, bundle in enumerate((parted, wire)):
        for pending in apply_bundle(tables[n], 0, bundle, HygieneRules(), clock=lambda: 1.0):
            decided[n].append(pending.record)
    assert tables[0] == tables[1]
    assert decided[0] == decided[1] and [r["key"] for r in decided[0]] == ["gone@example.com"]
    # The delivery read after KEY's bounces would have let its streak decide.
    reset = [o for o in observations if o[:2] == [KEY, "d"]]
    moved = [o for o in observations if o not in reset] + reset
    assert [d.key for d in Recipients().feed(moved)] == ["gone@example.com", KEY]


def test_the_filter_skips_only_deliveries_and_never_a_reset() -> None:
    presence = PresenceFilter(1024)
    observer = Observer(HygieneRules(), 1)
    unknown = Classification(Outcome.BOUNCED, BounceType.SOFT, Category.MAILBOX_FULL, "over quota")
    for day in range(2):
        observer.attempt(KEY, "example.com", T0 + day * DAY, "gmail", unknown, "452 4.2.2")
    for n in range(50):
        observer.delivery(f"a{n}@example.com", "example.com", T0)
    observer.delivery(KEY, "example.com", T0 + 3 * DAY)
    table: dict[str, Any] = {}
    counts: dict[tuple[str, str], int] = {}
    bundle = observer.drain()[0]
    apply_bundle(table, 0, bundle, HygieneRules(), False, presence, counts)
    assert counts == {
        ("soft", "applied"): 2,
        ("delivery", "applied"): 1,
        ("delivery", "skipped"): 50,
    }
    assert table == {}  # the delivery reset KEY's history after its two bounces


def test_a_large_bundle_goes_in_pieces_that_keep_the_order() -> None:
    observations = [
        [f"someone.{n}@example.com", "d", T0 + n] if n % 7 else soft(n / 10, key=f"b{n}@x.org")
        for n in range(3000)
    ]
    bundle = Bundle.from_message({"obs": observations})
    pieces = bundle.pieces(16 * 1024)
    assert len(pieces) > 5
    sizes = [len(orjson.dumps(p.message())) for p in pieces]
    assert max(sizes) <= 16 * 1024 and min(sizes[:-1]) > 8 * 1024  # never over, not tiny
    assert [list(o) for p in pieces for _, o in sequence(p)] == observations
    assert bundle.pieces(len(orjson.dumps(bundle.message())) * 2) == [bundle]


def test_an_observation_larger_than_a_piece_travels_alone() -> None:
    observations: list[list[Any]] = [[f"d{n}@example.com", "d", T0 + n] for n in range(64)]
    big = soft(1.0, key="big@example.org")
    big[5] = "x" * 4000
    observations.insert(40, big)
    bundle = Bundle.from_message({"obs": observations})
    pieces = bundle.pieces(1024)
    assert [list(o) for p in pieces for _, o in sequence(p)] == observations
    assert [len(p) for p in pieces if p.others] == [1]
    assert all(len(orjson.dumps(p.message())) <= 1024 for p in pieces if not p.others)


def test_ingest_messages_carry_the_progress_last() -> None:
    bundle = Bundle.from_message({"obs": interleaved()})
    progress = {"of": 1, "sources": {"events:0": [T0, False]}}
    values = [orjson.loads(v) for v in observation_bundles(bundle, progress)]
    assert [("progress" in v, v["v"]) for v in values] == [(True, 2)]
    assert [orjson.loads(v) for v in observation_bundles(None, progress)] == [
        {"v": 2, "dk": [], "dt": [], "at": [], "obs": [], "progress": progress}
    ]
    assert observation_bundles(None, None) == []


def test_ingest_messages_stay_under_kafkas_message_limit() -> None:
    bundle = Bundle.from_message(
        {
            "obs": [
                [f"{'x' * 200}.{n}@example.com", "d", T0 + n / 7]
                if n % 50
                else [*soft(n / 1e5, key=f"{'y' * 200}{n}@x.org")[:5], "z" * 512, "x.org", None]
                for n in range(40_000)
            ]
        }
    )
    values = observation_bundles(bundle, {"of": 1, "sources": {}})
    assert len(values) > 1 and max(map(len, values)) < 1_000_000
