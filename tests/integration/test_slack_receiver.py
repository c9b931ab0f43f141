"""The real slack-sdk client against a local stand-in of the Slack Web API.

Covers: first message, thread reply, chat.update of the first message, 429 with Retry-After
(short: retried in the call; long: back to the outbox), 5xx, an outage (connection refused)
that the outbox rides out and delivers exactly once, and incoming-webhook mode.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from alerts.pipeline import Backoff, Notifier, Outcome
from alerts.receivers import Delivery, DeliveryError
from alerts.receivers.slack import SlackBotSender, SlackWebhookSender, retry_handlers
from alerts.routing import NotifyConfig, SlackConfig, SlackMode
from schemas.alert import TransitionKind
from tests.support.alert_samples import (
    T0,
    followup,
    gmail_throttling,
    resolved,
    yahoo_throttling,
)
from tests.support.slack_standin import (
    TOKEN,
    WEBHOOK_PATH,
    Scripted,
    SlackStandIn,
    api_error,
    channel_id,
    rate_limited,
    server_error,
)

pytestmark = pytest.mark.integration

KEY = "team/slack/0"
CHANNEL = "#deliverability"


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    server = SlackStandIn().start()
    try:
        yield server
    finally:
        server.stop()


def _bot(standin: SlackStandIn, *, max_inline_wait: float = 5.0) -> SlackBotSender:
    return SlackBotSender(
        KEY,
        SlackConfig(channel=CHANNEL),
        token=TOKEN,
        channel=CHANNEL,
        base_url=standin.base_url,
        timeout=5,
        # Short backoff keeps the suite quick; the handlers are the production ones.
        handlers=retry_handlers(max_inline_wait=max_inline_wait, backoff=0.05),
    )


def _notifier(sender: SlackBotSender | SlackWebhookSender, mode: str = "bot") -> Notifier:
    config = NotifyConfig.model_validate(
        {
            "receivers": [{"name": "team", "slack_configs": [{"channel": CHANNEL, "mode": mode}]}],
            "route": {"receiver": "team", "group_wait": "0s"},
        }
    )
    return Notifier(config, {KEY: sender}, backoff=Backoff(initial=timedelta(seconds=5), jitter=0))


def test_first_message_thread_replies_and_header_update(standin: SlackStandIn) -> None:
    notifier = _notifier(_bot(standin))
    firing = gmail_throttling()
    reminder = followup(firing, TransitionKind.REMINDER)
    done = resolved(reminder)

    async def scenario() -> None:
        await notifier.process(firing, T0)
        await notifier.process(reminder, T0 + timedelta(minutes=10))
        await notifier.process(done, T0 + timedelta(minutes=30))

    asyncio.run(scenario())
    first, reply1, reply2 = standin.posted()
    assert first["channel"] == channel_id(CHANNEL)
    assert "thread_ts" not in first
    assert reply1["thread_ts"] == first["ts"] == reply2["thread_ts"]
    assert reply2["blocks"][0]["text"]["text"].startswith("✅ Resolved · Gmail")
    updates = standin.calls("chat.update", ok_only=True)
    assert len(updates) == 2
    # chat.update went to the channel ID Slack returned, and the header now says resolved.
    assert updates[-1].body["channel"] == first["channel"]
    assert first["blocks"][0]["text"]["text"].startswith("✅ Resolved")
    assert first.get("edited")
    assert notifier.metrics.transitions_of(KEY, Outcome.SENT) == 3


def test_429_with_short_retry_after_is_retried_in_the_call(standin: SlackStandIn) -> None:
    standin.script("chat.postMessage", rate_limited(retry_after=1))
    sender = _bot(standin)
    started = time.monotonic()
    asyncio.run(sender.send(Delivery(transitions=[gmail_throttling()])))
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0  # Retry-After honoured
    assert [r.answered for r in standin.calls("chat.postMessage")] == [429, 200]
    assert len(standin.posted()) == 1


def test_429_with_long_retry_after_goes_back_to_the_outbox(standin: SlackStandIn) -> None:
    standin.script("chat.postMessage", rate_limited(retry_after=30))
    notifier = _notifier(_bot(standin, max_inline_wait=5))
    asyncio.run(notifier.process(gmail_throttling(), T0))
    assert standin.posted() == []
    [item] = notifier.outbox.ordered()
    assert item.next_attempt_at >= T0 + timedelta(seconds=30)
    assert "429" in (item.last_error or "")
    asyncio.run(notifier.retry_due(T0 + timedelta(seconds=31)))
    assert len(standin.posted()) == 1 and len(notifier.outbox) == 0


def test_5xx_is_retried_with_backoff(standin: SlackStandIn) -> None:
    standin.script("chat.postMessage", server_error(503), server_error(502))
    asyncio.run(_bot(standin).send(Delivery(transitions=[gmail_throttling()])))
    assert [r.answered for r in standin.calls("chat.postMessage")] == [503, 502, 200]
    assert len(standin.posted()) == 1


def test_persistent_5xx_and_api_errors_raise(standin: SlackStandIn) -> None:
    standin.script("chat.postMessage", *[server_error(500)] * 3, api_error("channel_not_found"))
    sender = _bot(standin)
    with pytest.raises(DeliveryError) as retryable:
        asyncio.run(sender.send(Delivery(transitions=[gmail_throttling()])))
    assert retryable.value.retryable
    with pytest.raises(DeliveryError) as permanent:
        asyncio.run(sender.send(Delivery(transitions=[gmail_throttling()])))
    assert not permanent.value.retryable
    assert "channel_not_found" in str(permanent.value)


def test_outage_keeps_messages_and_delivers_each_exactly_once(standin: SlackStandIn) -> None:
    notifier = _notifier(_bot(standin))
    firing = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(firing, T0)
        standin.go_down()
        try:
            reminder = followup(firing, TransitionKind.REMINDER)
            await notifier.process(reminder, T0 + timedelta(seconds=1))
            await notifier.process(resolved(reminder), T0 + timedelta(seconds=2))
            # Retries during a 30-second outage fail and stay queued, in order.
            for second in (6, 16, 36):
                await notifier.retry_due(T0 + timedelta(seconds=second))
            assert len(notifier.outbox) == 2
        finally:
            standin.come_up()
        due = notifier.next_due()
        assert due is not None
        await notifier.retry_due(due)
        await notifier.retry_due(due + timedelta(minutes=10))  # nothing left to send

    asyncio.run(scenario())
    first, reminder_msg, resolved_msg = standin.posted()
    assert reminder_msg["thread_ts"] == first["ts"] == resolved_msg["thread_ts"]
    assert resolved_msg["blocks"][0]["text"]["text"].startswith("✅ Resolved")
    assert len(notifier.outbox) == 0
    assert notifier.metrics.transitions_of(KEY, Outcome.SENT) == 3


def test_webhook_mode_posts_without_threads(standin: SlackStandIn) -> None:
    sender = SlackWebhookSender(
        KEY,
        SlackConfig(mode=SlackMode.WEBHOOK),
        url=standin.webhook_url,
        timeout=5,
        handlers=retry_handlers(backoff=0.05),
    )
    standin.script("webhook", rate_limited(retry_after=1))
    notifier = _notifier(sender, mode="webhook")
    firing = gmail_throttling()

    async def scenario() -> None:
        await notifier.process(firing, T0)
        await notifier.process(resolved(firing), T0 + timedelta(minutes=30))

    asyncio.run(scenario())
    assert [r.answered for r in standin.calls("webhook")] == [429, 200, 200]
    assert len(standin.webhook_messages) == 2
    assert standin.webhook_messages[1]["blocks"][0]["text"]["text"].startswith("✅ Resolved")
    assert standin.calls("chat.postMessage") == []


def test_webhook_outage_goes_to_the_outbox(standin: SlackStandIn) -> None:
    sender = SlackWebhookSender(
        KEY,
        SlackConfig(mode=SlackMode.WEBHOOK),
        url=standin.webhook_url,
        timeout=5,
        handlers=retry_handlers(backoff=0.05),
    )
    notifier = _notifier(sender, mode="webhook")
    # An outage outlasts the inline retries: slack-sdk's webhook client retried 5xx answers
    # with our handlers from 3.48 on (two retries), earlier versions went straight on.
    standin.script("webhook", *[server_error(503)] * 3)
    asyncio.run(notifier.process(gmail_throttling(), T0))
    assert len(notifier.outbox) == 1
    assert len(standin.calls("webhook")) in (1, 3)
    standin.unscript("webhook")  # the outage is over
    asyncio.run(notifier.retry_due(T0 + timedelta(seconds=10)))
    assert len(notifier.outbox) == 0 and len(standin.webhook_messages) == 1


def test_webhook_url_is_never_logged_nor_stored(
    standin: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = WEBHOOK_PATH.rsplit("/", 1)[-1]
    sender = SlackWebhookSender(
        KEY,
        SlackConfig(mode=SlackMode.WEBHOOK),
        url=standin.webhook_url,
        timeout=5,
        handlers=retry_handlers(backoff=0.05),
    )
    notifier = _notifier(sender, mode="webhook")
    errors: list[str] = []

    async def scenario() -> None:
        # A 429 retried within the call: slack-sdk logs the retry, naming the URL.
        standin.script("webhook", rate_limited(retry_after=1))
        await notifier.process(gmail_throttling(), T0)
        # A proxy's 404 page echoing the requested path, stored as the item's error.
        page = f"<html><body>The requested URL {WEBHOOK_PATH} was not found.</body></html>"
        standin.script("webhook", Scripted(404, page))
        await notifier.process(yahoo_throttling(), T0 + timedelta(seconds=1))
        [item] = notifier.outbox.ordered()
        errors.append(item.last_error or "")
        standin.go_down()
        try:
            await notifier.retry_due(T0 + timedelta(hours=1))
        finally:
            standin.come_up()
        [item] = notifier.outbox.ordered()
        errors.append(item.last_error or "")
        await notifier.retry_due(T0 + timedelta(hours=2))

    asyncio.run(scenario())
    assert len(standin.webhook_messages) == 2 and len(notifier.outbox) == 0
    assert "HTTP 404" in errors[0] and "ClientConnectorError" in errors[1]
    assert not any(secret in e for e in errors), errors
    formatter = logging.Formatter()
    logged = [formatter.format(r) for r in caplog.records]
    # slack-sdk's DEBUG request lines were captured: the check below is not vacuous.
    assert any("Sending a request" in line for line in logged)
    leaks = [line for line in logged if secret in line]
    assert leaks == []
    assert not any(secret in repr(r.args) or secret in str(r.msg) for r in caplog.records)
