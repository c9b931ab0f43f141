"""``streams.topology.Turn``: when the ingest agent lets the event loop run."""

from __future__ import annotations

from streams.topology import Turn


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_turn_is_over_once_its_time_has_passed_and_restarts_from_then() -> None:
    clock = Clock()
    turn = Turn(0.01, clock=clock)
    assert not turn.over()
    clock.now += 0.009
    assert not turn.over()
    clock.now += 0.001
    assert turn.over()
    turn.restart()
    assert not turn.over()
    clock.now += 0.02
    assert turn.over()
