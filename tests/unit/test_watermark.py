"""Event-time progress: the time check of each input, and the minimum over all inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from aggregation.buckets import event_seconds, event_times
from aggregation.watermark import InputProgress, Progress, TimeBounds
from delivery.adapters import Decoded
from schemas.event import DeliveryEvent

NOW = 1_800_000_000.0
BOUNDS = TimeBounds(max_ahead_seconds=3600, max_behind_seconds=600)


def event(t: float) -> DeliveryEvent:
    return DeliveryEvent.model_validate(
        {
            "event_time": datetime.fromtimestamp(t, UTC).isoformat(),
            "recipient": "a@gmail.com",
            "reply": {"code": 250, "text": "ok"},
        }
    )


def one_by_one(times: list[float], latest: float | None) -> tuple[list[float], list[int]]:
    """The rule, event by event: refused if ahead of the clock or behind the latest kept."""
    kept, refused = [], []
    for index, t in enumerate(times):
        if t > NOW + 3600 or (latest is not None and t < latest - 600):
            refused.append(index)
            continue
        kept.append(t)
        latest = t if latest is None else max(latest, t)
    return kept, refused


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(-2000, 5000), min_size=1, max_size=12),
    before=st.none() | st.integers(-1500, 1500),
)
def test_the_time_check_keeps_and_refuses_as_the_rule_says(
    offsets: list[int], before: int | None
) -> None:
    inputs = InputProgress(BOUNDS)
    if before is not None:
        inputs.admit(Decoded([event(NOW + before)], []), "in:0", NOW)
    times = [NOW + o for o in offsets]
    decoded, kept_times = inputs.admit(Decoded([event(t) for t in times], []), "in:0", NOW)
    want_kept, want_refused = one_by_one(times, None if before is None else NOW + before)
    assert kept_times == want_kept
    assert [e.event_time.timestamp() for e in decoded.events] == want_kept
    assert [e.index for e in decoded.errors] == want_refused
    assert all(e.field == "event_time" for e in decoded.errors)


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.lists(st.integers(-2000, 5000), min_size=0, max_size=4), min_size=1, max_size=6
    ),
    before=st.none() | st.integers(-1500, 1500),
)
def test_messages_admitted_together_fare_as_one_by_one(
    messages: list[list[int]], before: int | None
) -> None:
    """``admit_all`` (a slice of messages) keeps, refuses and moves the progress exactly as
    ``admit`` of each message in turn, and each refusal stays with its own message."""
    together, alone = InputProgress(BOUNDS), InputProgress(BOUNDS)
    if before is not None:
        for inputs in (together, alone):
            inputs.admit(Decoded([event(NOW + before)], []), "in:0", NOW)
    decoded = [Decoded([event(NOW + o) for o in offsets], []) for offsets in messages]
    times = event_times(e for d in decoded for e in d.events)
    got, got_times = together.admit_all(decoded, "in:0", NOW, times)
    want_times: list[float] = []
    for message, result in zip(decoded, got, strict=True):
        kept, times = alone.admit(message, "in:0", NOW)
        want_times += times
        assert [e.event_time for e in result.events] == [e.event_time for e in kept.events]
        assert [(e.index, e.reason) for e in result.errors] == [
            (e.index, e.reason) for e in kept.errors
        ]
    assert got_times == want_times
    assert together.latest("in:0") == alone.latest("in:0")
    assert together.refused == alone.refused


def test_a_refusal_names_the_clock_or_the_progress() -> None:
    inputs = InputProgress(BOUNDS)
    decoded, _ = inputs.admit(
        Decoded([event(NOW), event(4102444800.0), event(0.0)], []), "in:0", NOW
    )
    ahead, behind = (e.reason for e in decoded.errors)
    assert "2100-01-01T00:00:00Z is more than 1h ahead of the clock" in ahead
    assert "1970-01-01T00:00:00Z is more than 600s behind its input's progress" in behind
    assert inputs.refused == {"ahead": 1, "behind": 1}
    assert inputs.latest("in:0") == NOW


def test_event_time_is_the_slowest_input_idle_ones_left_out() -> None:
    progress = Progress()
    progress.update(0, {"of": 3, "sources": {"in:0": [100.0, False], "in:1": [50.0, False]}})
    assert progress.event_time(0) is None  # in:2 not heard of yet
    progress.update(0, {"of": 3, "sources": {"in:2": [None, False]}})
    assert progress.event_time(0) is None  # in:2 has data, none read yet
    progress.update(0, {"of": 3, "sources": {"in:2": [80.0, False]}})
    assert progress.event_time(0) == 50.0
    progress.update(0, {"of": 3, "sources": {"in:1": [40.0, True]}})  # never moves back
    assert progress.event_time(0) == 80.0
    for source in ("in:0", "in:2"):
        progress.update(0, {"of": 3, "sources": {source: [None, True]}})
    assert progress.event_time(0) == 100.0  # all idle: the latest read anywhere
    assert progress.event_time(1) is None  # another partials partition knows nothing yet


def test_an_input_goes_idle_only_read_to_its_end_and_quiet() -> None:
    inputs = InputProgress(BOUNDS, idle_seconds=10)
    inputs.assign(["in:0"], NOW)
    assert not inputs.idle("in:0", NOW + 60)  # not known to be read to its end
    inputs.set_caught_up("in:0", True)
    assert not inputs.idle("in:0", NOW + 5) and inputs.idle("in:0", NOW + 10)
    inputs.admit(Decoded([event(NOW)], []), "in:0", NOW + 20)
    assert not inputs.idle("in:0", NOW + 25)
    record = inputs.record(NOW + 25, partitions=4)
    assert record == {"of": 4, "sources": {"in:0": [NOW, False]}}


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(None)
    ),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
    written=st.sampled_from(["Z", "+00:00", "offset", "stdlib-utc", "zoneinfo"]),
)
def test_event_seconds_is_timestamp_for_every_time_zone_events_carry(
    moment: datetime, offset_minutes: int, written: str
) -> None:
    if written == "stdlib-utc":
        aware = moment.replace(tzinfo=UTC)
    elif written == "zoneinfo":
        aware = moment.replace(tzinfo=ZoneInfo("Europe/Paris"))
    else:
        suffix = {"Z": "Z", "+00:00": "+00:00"}.get(written)
        if suffix is None:
            sign = "+" if offset_minutes >= 0 else "-"
            suffix = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
        aware = TypeAdapter(datetime).validate_json(f'"{moment.isoformat()}{suffix}"')
        expected = moment.replace(tzinfo=timezone(timedelta(minutes=0)))
        if suffix not in ("Z", "+00:00"):
            expected = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
        assert aware == expected
    assert event_seconds(aware) == aware.timestamp()
    event = DeliveryEvent(event_time=aware, recipient="someone@example.com")
    assert event_times([event]) == [aware.timestamp()]
