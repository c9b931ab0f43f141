"""``bouncewatch silence`` against a real broker: write, read back, expire."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from alerts.routing import Matcher
from alerts.silences import SilenceState, new_silence
from bouncewatch.commands.silence import KafkaSilenceStore
from schemas.settings import Settings
from tests.support.alert_samples import T0

pytestmark = pytest.mark.integration


def test_silences_round_trip_through_the_compacted_topic(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(prefix="silences")
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_silences=topic)
    store = KafkaSilenceStore(settings, timeout_s=20)
    assert store.read() == {}
    silence = new_silence(
        matchers=[Matcher.model_validate('isp="gmail"')],
        ends_at=T0 + timedelta(hours=2),
        created_by="alice",
        comment="warm-up",
        now=T0,
    )
    store.write(silence)
    store.write(silence.expire(T0 + timedelta(minutes=5)))
    current = store.read()
    assert list(current) == [silence.id]
    assert current[silence.id].state(T0 + timedelta(minutes=6)) is SilenceState.EXPIRED
