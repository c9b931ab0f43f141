"""Silences: matching, time range, expiry, and folding the compacted topic."""

from __future__ import annotations

import argparse
import io
import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.routing import Matcher, alert_labels
from alerts.silences import Silence, SilenceState, collectable, fold, muting, new_silence
from bouncewatch.cli import build_parser
from bouncewatch.commands import silence as silence_cli
from tests.support.alert_samples import T0, gmail_throttling, microsoft_blocklist


def _silence(*matchers: str, hours: float = 2, silence_id: str = "s1") -> Silence:
    return new_silence(
        matchers=[Matcher.model_validate(m) for m in matchers],
        ends_at=T0 + timedelta(hours=hours),
        created_by="alice",
        comment="IP warm-up on 203.0.113.9",
        now=T0,
        silence_id=silence_id,
    )


def test_a_silence_mutes_matching_alerts_while_active() -> None:
    silence = _silence('isp="microsoft"', 'source_ip="203.0.113.9"')
    ms = alert_labels(microsoft_blocklist())
    gmail = alert_labels(gmail_throttling())
    assert silence.mutes(ms, T0 + timedelta(minutes=5))
    assert not silence.mutes(gmail, T0 + timedelta(minutes=5))
    assert not silence.mutes(ms, T0 + timedelta(hours=2))  # ends_at is exclusive
    assert muting(ms, [silence], T0) == [silence]


def test_states_and_expiry() -> None:
    later = new_silence(
        matchers=[Matcher.model_validate('rule="isp-throttling"')],
        starts_at=T0 + timedelta(hours=1),
        ends_at=T0 + timedelta(hours=3),
        created_by="bob",
        comment="planned migration",
        now=T0,
    )
    assert later.state(T0) is SilenceState.PENDING
    assert later.state(T0 + timedelta(hours=2)) is SilenceState.ACTIVE
    assert later.state(T0 + timedelta(hours=3)) is SilenceState.EXPIRED
    # Expiring a silence that has not started keeps its range valid.
    expired = later.expire(T0)
    assert expired.state(T0) is SilenceState.EXPIRED
    assert expired.ends_at == T0 and expired.starts_at == T0
    assert expired.updated_at == T0


def test_silence_needs_matchers_and_order() -> None:
    with pytest.raises(ValidationError):
        _silence()
    with pytest.raises(ValidationError, match="before"):
        _silence('isp="gmail"', hours=-1)


def test_fold_takes_the_newest_record_and_honours_tombstones() -> None:
    s1 = _silence('isp="gmail"')
    expired = s1.expire(T0 + timedelta(minutes=30))
    s2 = _silence('isp="yahoo"', silence_id="s2")
    records: list[tuple[str, bytes | None]] = [
        ("s1", s1.to_json()),
        ("s2", s2.to_json()),
        ("s1", expired.to_json()),
        ("s1", s1.to_json()),  # a slow writer's older update arrives late
        ("junk", b"{not json"),
        ("s2", None),
    ]
    current = fold(records)
    assert list(current) == ["s1"]
    assert current["s1"].ends_at == T0 + timedelta(minutes=30)


def test_collectable_after_retention() -> None:
    s = _silence('isp="gmail"')
    assert not collectable(s, T0 + timedelta(hours=3), timedelta(days=1))
    assert collectable(s, T0 + timedelta(days=2), timedelta(days=1))


@given(
    start=st.integers(min_value=0, max_value=10_000),
    length=st.integers(min_value=0, max_value=10_000),
    at=st.integers(min_value=-100, max_value=30_000),
)
def test_expire_is_idempotent_and_never_extends(start: int, length: int, at: int) -> None:
    s = new_silence(
        matchers=[Matcher.model_validate('isp="gmail"')],
        starts_at=T0 + timedelta(seconds=start),
        ends_at=T0 + timedelta(seconds=start + length),
        created_by="c",
        comment="x",
        now=T0,
    )
    now = T0 + timedelta(seconds=at)
    once = s.expire(now)
    assert once.expire(now) == once
    assert once.ends_at <= s.ends_at
    assert once.state(now) is SilenceState.EXPIRED


# --- the CLI, with an in-memory store standing in for the compacted topic -------------------


class MemoryStore:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []

    def read(self) -> dict[str, Silence]:
        return fold(self.records)

    def write(self, silence: Silence) -> None:
        self.records.append((silence.id, silence.to_json()))


def _cli(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["silence", *argv])


def test_cli_add_list_expire() -> None:
    store = MemoryStore()
    out = io.StringIO()
    args = _cli(
        "add", "--isp", "microsoft", "--match", "source_ip=203.0.113.9",
        "--for", "4h", "--comment", "delisting requested", "--author", "alice",
    )  # fmt: skip
    assert silence_cli.add(store, args, T0, out) == 0
    silence_id = out.getvalue().strip()
    [silence] = store.read().values()
    assert silence.id == silence_id
    assert silence.ends_at == T0 + timedelta(hours=4)
    assert silence.created_by == "alice"
    assert silence.mutes(alert_labels(microsoft_blocklist()), T0 + timedelta(hours=1))

    out = io.StringIO()
    assert silence_cli.show(store, _cli("list"), T0 + timedelta(hours=1), out) == 0
    assert silence_id in out.getvalue() and 'isp="microsoft"' in out.getvalue()

    out = io.StringIO()
    later = T0 + timedelta(hours=1)
    assert silence_cli.expire(store, [silence_id, "nope"], later, out) == 1
    assert store.read()[silence_id].state(later) is SilenceState.EXPIRED
    out = io.StringIO()
    silence_cli.show(store, _cli("list"), later, out)
    assert silence_id not in out.getvalue()
    out = io.StringIO()
    silence_cli.show(store, _cli("list", "--all", "--output", "json"), later, out)
    assert json.loads(out.getvalue())[0]["id"] == silence_id


def test_cli_add_refuses_an_empty_or_past_silence(capsys: pytest.CaptureFixture[str]) -> None:
    store = MemoryStore()
    assert silence_cli.add(store, _cli("add", "--for", "1h", "--comment", "x"), T0, io.StringIO())
    assert "--isp" in capsys.readouterr().err
    past = _cli("add", "--isp", "gmail", "--until", "2020-01-01T00:00:00", "--comment", "x")
    assert silence_cli.add(store, past, T0, io.StringIO()) == 2
    assert store.records == []
