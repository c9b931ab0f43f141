"""The notification pipeline with a recording sender: grouping, threads, dedup across a
restart, silences and their expiry, the outbox and its backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.pipeline import Backoff, DeliveryMetrics, Notifier, Outcome
from alerts.receivers import Delivery, DeliveryError, ThreadRef, build_senders
from alerts.routing import Matcher, NotifyConfig, default_config
from alerts.silences import Silence, new_silence
from schemas.alert import TransitionKind
from schemas.settings import Settings
from tests.support.alert_samples import (
    T0,
    followup,
    gmail_throttling,
    microsoft_blocklist,
    resolved,
    yahoo_throttling,
)

KEY = "team/slack/0"


class RecordingSender:
    def __init__(self, key: str = KEY, threads: bool = True) -> None:
        self.key = key
        self.threads = threads
        self.sent: list[Delivery] = []
        self.failures: list[DeliveryError] = []
        #: Fingerprints whose message the receiver's library refuses, every time.
        self.refused: set[str] = set()
        self.refusals = 0

    async def send(self, delivery: Delivery) -> ThreadRef | None:
        if self.failures:
            raise self.failures.pop(0)
        if any(t.fingerprint in self.refused for t in delivery.transitions):
            self.refusals += 1
            # What email.message raises for a header value with a line break in it.
            raise ValueError("Header values may not contain linefeed or carriage return")
        self.sent.append(delivery)
        if delivery.reply_to is None and self.threads:
            return ThreadRef(channel="C1", ts=f"{len(self.sent)}.0")
        return None

    async def aclose(self) -> None:
        return None


def _config(group_wait: str = "30s", **route: Any) -> NotifyConfig:
    return NotifyConfig.model_validate(
        {
            "receivers": [{"name": "team", "slack_configs": [{"channel": "#alerts"}]}],
            "route": {"receiver": "team", "group_wait": group_wait, **route},
        }
    )


def _log_keys(notifier: Notifier) -> set[str]:
    return {f"{e.integration}|{e.fingerprint}" for e in notifier.nflog}


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def _notifier(
    sender: RecordingSender, silences: list[Silence] | None = None, **route: Any
) -> Notifier:
    return Notifier(_config(**route), {KEY: sender}, silences=lambda: silences or [])


def test_one_rule_across_isps_within_group_wait_is_one_message() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender)

    async def scenario() -> None:
        await notifier.process(gmail_throttling(), T0)
        await notifier.process(yahoo_throttling(), T0 + timedelta(seconds=10))
        await notifier.process(microsoft_blocklist(), T0 + timedelta(seconds=10))
        assert sender.sent == []
        await notifier.tick(T0 + timedelta(seconds=30))
        assert [[t.isp for t in d.transitions] for d in sender.sent] == [["gmail", "yahoo"]]
        await notifier.tick(T0 + timedelta(seconds=40))

    _run(scenario())
    assert [[t.isp for t in d.transitions] for d in sender.sent] == [
        ["gmail", "yahoo"],
        ["microsoft"],
    ]
    assert notifier.metrics.transitions_of(KEY, Outcome.SENT) == 3


def test_updates_thread_under_the_first_message_and_rerender_its_header() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender, group_wait="0s")
    g1, y1 = gmail_throttling(), yahoo_throttling()
    done = resolved(g1)

    async def scenario() -> None:
        # group_wait 0: each transition is its own message
        await notifier.process(g1, T0)
        await notifier.process(y1, T0)
        await notifier.process(done, T0 + timedelta(minutes=30))

    _run(scenario())
    first, second, third = sender.sent
    assert first.reply_to is None and second.reply_to is None
    assert third.reply_to == ThreadRef(channel="C1", ts="1.0")
    assert [t.kind for t in third.parent] == [TransitionKind.RESOLVED]


def test_firing_and_resolved_in_one_group_wait_are_two_messages_in_order() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender)
    g1 = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(g1, T0)
        await notifier.process(resolved(g1), T0 + timedelta(seconds=5))
        await notifier.tick(T0 + timedelta(seconds=30))

    _run(scenario())
    kinds = [[t.kind for t in d.transitions] for d in sender.sent]
    assert kinds == [[TransitionKind.FIRING], [TransitionKind.RESOLVED]]
    assert sender.sent[1].reply_to is not None


def test_no_duplicate_after_a_restart_from_the_persisted_state() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender, group_wait="0s")
    table: dict[str, dict[str, Any]] = {}

    def persist(n: Notifier) -> None:
        for key, value in n.take_changes().items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    g1 = gmail_throttling()
    _run(notifier.process(g1, T0))
    persist(notifier)
    # The worker restarts and consumes the same transition again (offset not committed).
    sender2 = RecordingSender()
    restarted = _notifier(sender2, group_wait="0s")
    restarted.restore(table.items())
    _run(restarted.process(g1, T0 + timedelta(seconds=5)))
    assert sender2.sent == []
    assert restarted.metrics.transitions_of(KEY, Outcome.DEDUPLICATED) == 1
    # The resolution still threads under the first message from before the restart.
    _run(restarted.process(resolved(g1), T0 + timedelta(minutes=30)))
    assert sender2.sent[0].reply_to == ThreadRef(channel="C1", ts="1.0")


def test_a_grouped_transition_survives_a_restart_before_its_flush() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender)
    _run(notifier.process(gmail_throttling(), T0))
    table = {k: v for k, v in notifier.take_changes().items() if v is not None}
    assert any(k.startswith("group:") for k in table)
    sender2 = RecordingSender()
    restarted = _notifier(sender2)
    restarted.restore(table.items())
    _run(restarted.tick(T0 + timedelta(seconds=30)))
    assert len(sender2.sent) == 1


def test_failed_send_stays_in_the_outbox_with_backoff_until_delivered_once() -> None:
    sender = RecordingSender()
    notifier = Notifier(
        _config(group_wait="0s"),
        {KEY: sender},
        backoff=Backoff(initial=timedelta(seconds=5), jitter=0),
    )
    sender.failures = [DeliveryError("down"), DeliveryError("down"), DeliveryError("down")]
    g1 = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(g1, T0)
        assert len(notifier.outbox) == 1
        assert notifier.next_due() == T0 + timedelta(seconds=5)
        await notifier.retry_due(T0 + timedelta(seconds=4))  # not due: nothing tried
        assert len(sender.failures) == 2
        await notifier.retry_due(T0 + timedelta(seconds=5))
        assert notifier.next_due() == T0 + timedelta(seconds=15)
        # A newer transition waits behind the failing one, keeping the order.
        await notifier.process(resolved(g1), T0 + timedelta(seconds=6))
        await notifier.retry_due(T0 + timedelta(seconds=15))
        assert notifier.next_due() == T0 + timedelta(seconds=35)
        await notifier.retry_due(T0 + timedelta(seconds=35))
        await notifier.retry_due(T0 + timedelta(seconds=60))

    _run(scenario())
    kinds = [d.transitions[0].kind for d in sender.sent]
    assert kinds == [TransitionKind.FIRING, TransitionKind.RESOLVED]
    assert sender.sent[1].reply_to is not None
    assert len(notifier.outbox) == 0
    assert notifier.metrics.messages_of(KEY, Outcome.FAILED) == 3


def test_retry_after_is_honoured_and_permanent_errors_do_not_block_others() -> None:
    backoff = Backoff(initial=timedelta(seconds=5), jitter=0)
    assert backoff.delay("x", 1, DeliveryError("429", retry_after=30)) == timedelta(seconds=30)
    assert backoff.delay("x", 10, DeliveryError("5xx")) == timedelta(minutes=5)
    sender = RecordingSender()
    notifier = Notifier(_config(group_wait="0s"), {KEY: sender}, backoff=backoff)
    sender.failures = [DeliveryError("invalid_blocks", retryable=False)]

    async def scenario() -> None:
        await notifier.process(gmail_throttling(), T0)
        await notifier.process(yahoo_throttling(), T0 + timedelta(seconds=1))

    _run(scenario())
    assert [d.transitions[0].isp for d in sender.sent] == ["yahoo"]
    assert len(notifier.outbox) == 1  # kept, not dropped


def test_an_unexpected_error_sets_the_item_aside_and_the_others_go_on() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender, group_wait="0s")
    bad = gmail_throttling()
    sender.refused.add(bad.fingerprint)

    async def scenario() -> None:
        await notifier.process(bad, T0)
        await notifier.process(yahoo_throttling(), T0 + timedelta(seconds=1))
        await notifier.process(microsoft_blocklist(), T0 + timedelta(seconds=2))
        for minutes in (1, 10, 60):
            await notifier.tick(T0 + timedelta(minutes=minutes))

    _run(scenario())
    assert [d.transitions[0].isp for d in sender.sent] == ["yahoo", "microsoft"]
    assert sender.refusals == 1  # not tried again on every tick
    [item] = notifier.outbox.ordered()
    assert item.set_aside_at == T0 and not item.blocking
    assert notifier.next_due() is None
    [report] = notifier.set_aside()
    assert report["alerts"] == [f"{bad.fingerprint}#1"]
    assert report["error"] == (
        "ValueError: Header values may not contain linefeed or carriage return"
    )
    assert notifier.metrics.messages_of(KEY, Outcome.SET_ASIDE) == 1
    assert notifier.metrics.transitions_of(KEY, Outcome.SET_ASIDE) == 1
    assert notifier.outbox_sizes() == {KEY: 1}  # still in the outbox, for an operator

    # It stays set aside across a restart.
    table = {k: v for k, v in notifier.take_changes().items() if v is not None}
    restarted = _notifier(RecordingSender(), group_wait="0s")
    restarted.restore(table.items())
    assert restarted.set_aside() == [report]


def test_a_set_aside_item_does_not_hold_up_the_next_transition_of_its_alert() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender, group_wait="0s")
    firing = gmail_throttling()
    sender.refused.add(firing.fingerprint)

    async def scenario() -> None:
        await notifier.process(firing, T0)
        sender.refused.clear()
        await notifier.process(resolved(firing), T0 + timedelta(minutes=30))

    _run(scenario())
    assert [d.transitions[0].kind for d in sender.sent] == [TransitionKind.RESOLVED]
    assert len(notifier.set_aside()) == 1


def _silence(now_hours: float = 1) -> Silence:
    return new_silence(
        matchers=[Matcher.model_validate('isp="gmail"')],
        ends_at=T0 + timedelta(hours=now_hours),
        created_by="alice",
        comment="Gmail warm-up",
        now=T0,
    )


def test_silenced_alerts_send_nothing_and_are_sent_when_the_silence_ends() -> None:
    sender = RecordingSender()
    silences = [_silence()]
    notifier = _notifier(sender, silences, group_wait="0s")
    g1 = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(g1, T0)
        await notifier.process(yahoo_throttling(), T0)
        await notifier.process(followup(g1, TransitionKind.REMINDER), T0 + timedelta(minutes=30))
        assert [d.transitions[0].isp for d in sender.sent] == ["yahoo"]
        await notifier.tick(T0 + timedelta(minutes=59))
        assert len(sender.sent) == 1
        await notifier.tick(T0 + timedelta(hours=1))  # the silence ends; Gmail still fires
        await notifier.tick(T0 + timedelta(hours=1, seconds=10))

    _run(scenario())
    assert [d.transitions[0].isp for d in sender.sent] == ["yahoo", "gmail"]
    assert sender.sent[1].transitions[0].kind is TransitionKind.REMINDER
    assert notifier.metrics.transitions_of(KEY, Outcome.SILENCED) == 2


def test_resolved_during_silence_without_a_firing_notification_sends_nothing() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender, [_silence()], group_wait="0s")
    g1 = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(g1, T0)
        await notifier.process(resolved(g1), T0 + timedelta(minutes=30))
        await notifier.tick(T0 + timedelta(hours=2))

    _run(scenario())
    assert sender.sent == []


def test_send_resolved_false_and_repeat_interval() -> None:
    config = NotifyConfig.model_validate(
        {
            "receivers": [
                {"name": "team", "slack_configs": [{"channel": "#a", "send_resolved": False}]}
            ],
            "route": {"receiver": "team", "group_wait": "0s", "repeat_interval": "4h"},
        }
    )
    sender = RecordingSender()
    notifier = Notifier(config, {KEY: sender})
    g1 = gmail_throttling()
    r1 = followup(g1, TransitionKind.REMINDER)
    r2 = followup(r1, TransitionKind.REMINDER)

    async def scenario() -> None:
        await notifier.process(g1, T0)
        await notifier.process(r1, T0 + timedelta(hours=1))  # within 4h: thinned out
        await notifier.process(r2, T0 + timedelta(hours=4))
        await notifier.process(resolved(r2), T0 + timedelta(hours=5))

    _run(scenario())
    assert [d.transitions[0].sequence for d in sender.sent] == [1, 3]
    assert notifier.metrics.transitions_of(KEY, Outcome.SKIPPED) == 2


def test_the_tick_forgets_resolved_alerts_after_the_retention() -> None:
    sender = RecordingSender()
    notifier = _notifier(sender, group_wait="0s")
    gmail, yahoo = gmail_throttling(), yahoo_throttling()
    table: dict[str, dict[str, Any]] = {}

    def persist() -> None:
        for key, value in notifier.take_changes().items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    async def scenario() -> None:
        await notifier.process(gmail, T0)
        await notifier.process(yahoo, T0)
        await notifier.process(resolved(gmail), T0 + timedelta(minutes=30))
        persist()
        await notifier.tick(T0 + timedelta(days=7, minutes=29))  # not yet 7 days
        assert len(notifier.nflog) == 2
        await notifier.tick(T0 + timedelta(days=7, minutes=31))  # due, but within GC_INTERVAL
        assert len(notifier.nflog) == 2
        await notifier.tick(T0 + timedelta(days=7, minutes=40))
        persist()

    _run(scenario())
    # Yahoo still fires: kept, with its thread. Gmail's entry is gone from the table too.
    assert _log_keys(notifier) == {f"{KEY}|{yahoo.fingerprint}"}
    assert f"log:{KEY}|{gmail.fingerprint}" not in table
    assert f"log:{KEY}|{yahoo.fingerprint}" in table


def test_retention_is_configured_and_covers_unsent_resolutions() -> None:
    config = NotifyConfig.model_validate(
        {
            "receivers": [
                {"name": "team", "slack_configs": [{"channel": "#a", "send_resolved": False}]}
            ],
            "route": {"receiver": "team", "group_wait": "0s"},
            "notification_log_retention": "1d",
        }
    )
    notifier = Notifier(config, {KEY: RecordingSender()})
    g1 = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(g1, T0)
        # The receiver hears the firing only: the log's last *sent* state stays firing.
        await notifier.process(resolved(g1), T0 + timedelta(minutes=30))
        await notifier.tick(T0 + timedelta(days=1))
        assert len(notifier.nflog) == 1
        await notifier.tick(T0 + timedelta(days=1, minutes=30))

    _run(scenario())
    assert len(notifier.nflog) == 0
    with pytest.raises(ValueError, match="at least 1h"):
        NotifyConfig.model_validate(
            {
                "receivers": [{"name": "a"}],
                "route": {"receiver": "a"},
                "notification_log_retention": "10m",
            }
        )


def test_metrics_are_prometheus_counters_in_the_registry_passed_in() -> None:
    registry = CollectorRegistry()
    sender = RecordingSender()
    config = _config(group_wait="0s")
    notifier = Notifier(config, {KEY: sender}, silences=list, metrics=DeliveryMetrics(registry))
    _run(notifier.process(gmail_throttling(), T0))
    labels = {"integration": KEY, "outcome": "sent"}
    assert registry.get_sample_value("bouncewatch_notification_transitions_total", labels) == 1
    assert registry.get_sample_value("bouncewatch_notification_messages_total", labels) == 1
    assert notifier.metrics.transitions_of(KEY, Outcome.SENT) == 1
    assert notifier.outbox_sizes() == {KEY: 0}


def test_default_console_receiver_prints_the_text(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings()
    config = default_config(settings)
    notifier = Notifier(config, build_senders(config, settings))
    _run(notifier.process(gmail_throttling(), T0))
    assert capsys.readouterr().out == ""  # waiting out group_wait
    _run(notifier.tick(T0 + timedelta(seconds=30)))
    out = capsys.readouterr().out
    assert "[FIRING warning] Gmail: throttled rate 18.4% (above 5.0%) of 12,480 attempts" in out
    assert "421 4.7.28" in out
