"""Slack receiver: a bot (chat.postMessage, threads, chat.update) or an incoming webhook.

Bot mode posts the first message of an incident to the channel, later ones into its thread,
and edits the first message (chat.update) so its header shows the incident as it stands.
Webhook mode, for teams without a bot, posts every message on its own (webhooks cannot
thread or edit).

Within one call, slack-sdk's retry handlers retry connection errors, 5xx and a 429 whose
Retry-After is short; anything longer surfaces as a :class:`DeliveryError` carrying the
Retry-After, and the pipeline's outbox waits that long instead of blocking the worker.
slack-sdk's webhook client consults retry handlers only for a 429 and connection errors, so
a webhook's 5xx goes straight to the outbox.

An incoming-webhook URL is a credential (whoever has it can post to the channel), yet
slack-sdk writes it into its DEBUG log lines and, whenever its logger's level is unset, into
INFO lines about retries; error texts can carry it too (a proxy's 404 page echoes the path).
The clients therefore log through :data:`SDK_LOG`, whose filter masks every secret it was
given, and every error text leaving this module goes through :func:`redact`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerts.receivers import Delivery, DeliveryError, Sender, ThreadRef
from alerts.render.slack_blocks import SlackMessage, render_slack
from alerts.routing import Integration, SlackConfig, SlackMode
from schemas.settings import Settings

log = logging.getLogger(__name__)

MASK = "***"


class _Redact(logging.Filter):
    """Masks registered secrets in every record of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret:
            self.secrets.add(secret)

    def redact(self, text: str) -> str:
        # Longest first: a full URL goes before its own path.
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_REDACT = _Redact()
#: The logger handed to slack-sdk's clients (records propagate to the root as usual).
SDK_LOG = logging.getLogger(f"{__name__}.sdk")
SDK_LOG.addFilter(_REDACT)


def _secret_webhook(url: str) -> None:
    """Register a webhook URL (and its path, the secret part) to be masked everywhere."""
    _REDACT.add(url)
    path = urlsplit(url).path
    if len(path.strip("/")) > 0:
        _REDACT.add(path)


def redact(text: str) -> str:
    """``text`` with every registered Slack secret masked."""
    return _REDACT.redact(text)


#: Slack ``error`` values worth retrying later; every other error is a configuration or
#: payload problem that retrying soon will not fix (``channel_not_found``, ``invalid_auth``).
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for name, value in dict(headers).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


class ShortRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Honour a 429's Retry-After inside the call only when it is short.

    slack-sdk's handler sleeps whatever Slack asks; a minute-long sleep would stall every
    other alert the worker handles, so longer waits go back to the outbox.
    """

    def __init__(self, max_retry_count: int = 2, max_wait: float = 5.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _retry_after(response.headers)
        return wait is None or wait <= self.max_wait


class ServerErrorRetryHandler(AsyncRetryHandler):
    """5xx with backoff. slack-sdk's own handler only knows 500 and 503; Slack's edge also
    answers 502 and 504 during incidents."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def retry_handlers(max_inline_wait: float = 5.0, backoff: float = 0.5) -> list[AsyncRetryHandler]:
    interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=1, interval_calculator=interval),
        ShortRateLimitRetryHandler(max_retry_count=2, max_wait=max_inline_wait),
        ServerErrorRetryHandler(max_retry_count=2, interval_calculator=interval),
    ]


def _api_error(exc: SlackApiError, method: str) -> DeliveryError:
    response = exc.response
    status = getattr(response, "status_code", 0)
    data = getattr(response, "data", None)
    error = data.get("error", "") if isinstance(data, dict) else ""
    retryable = status == 429 or status >= 500 or error in RETRYABLE_ERRORS
    return DeliveryError(
        f"{method}: HTTP {status} {error or '(no error field)'}",
        retryable=retryable,
        retry_after=_retry_after(getattr(response, "headers", None)) if status == 429 else None,
    )


_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError, SlackClientError)


class SlackBotSender:
    """chat.postMessage and chat.update with a bot token."""

    def __init__(
        self,
        key: str,
        config: SlackConfig,
        *,
        token: str,
        channel: str,
        base_url: str = "https://slack.com/api/",
        timeout: int = 15,
        handlers: list[AsyncRetryHandler] | None = None,
    ) -> None:
        self._key = key
        self._config = config
        self._channel = channel
        # No shared aiohttp session: slack-sdk then opens one per call, so the sender is not
        # tied to the event loop it was built on and needs no closing.
        # slack-sdk masks the token in the headers it logs; this covers any other place.
        _REDACT.add(token)
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=timeout,
            logger=SDK_LOG,
            retry_handlers=handlers if handlers is not None else retry_handlers(),
        )

    @property
    def key(self) -> str:
        return self._key

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _api_error(exc, method) from exc
        except _TRANSPORT_ERRORS as exc:
            raise DeliveryError(redact(f"{method}: {type(exc).__name__}: {exc}")) from exc
        data = response.data
        if not isinstance(data, dict):
            raise DeliveryError(f"{method}: unexpected response body", retryable=True)
        return data

    async def send(self, delivery: Delivery) -> ThreadRef | None:
        message = render_slack(delivery.transitions, runbook_url=self._config.runbook_url)
        thread = delivery.reply_to
        if thread is None or not thread.ts or not thread.channel:
            data = await self._call("chat.postMessage", channel=self._channel, **_payload(message))
            # chat.update needs the channel ID, which Slack returns even for a #name.
            return ThreadRef(channel=str(data["channel"]), ts=str(data["ts"]))

        await self._call(
            "chat.postMessage", channel=thread.channel, thread_ts=thread.ts, **_payload(message)
        )
        if delivery.parent:
            parent = render_slack(delivery.parent, runbook_url=self._config.runbook_url)
            try:
                await self._call(
                    "chat.update", channel=thread.channel, ts=thread.ts, **_payload(parent)
                )
            except Exception as exc:
                # The reply is delivered; failing here would send it again (or, for an
                # unexpected error, set aside a message that went out). A stale header is
                # the lesser harm, and the next update edits it again.
                log.warning(
                    "slack %s: chat.update of the first message failed: %s",
                    self.key,
                    redact(f"{type(exc).__name__}: {exc}"),
                )
        return None

    async def aclose(self) -> None:
        return None


def _payload(message: SlackMessage) -> dict[str, Any]:
    return {
        "text": message.text,
        "blocks": message.blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


class WebhookError(RuntimeError):
    """slack-sdk's webhook client raised something unexpected; the text is redacted."""


class SlackWebhookSender:
    """Incoming webhook: one message per notification, no threads, no edits."""

    def __init__(
        self,
        key: str,
        config: SlackConfig,
        *,
        url: str,
        timeout: int = 15,
        handlers: list[AsyncRetryHandler] | None = None,
    ) -> None:
        self._key = key
        self._config = config
        _secret_webhook(url)
        self._client = AsyncWebhookClient(
            url=url,
            timeout=timeout,
            logger=SDK_LOG,
            retry_handlers=handlers if handlers is not None else retry_handlers(),
        )

    @property
    def key(self) -> str:
        return self._key

    async def send(self, delivery: Delivery) -> ThreadRef | None:
        message = render_slack(delivery.transitions, runbook_url=self._config.runbook_url)
        try:
            response = await self._client.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except _TRANSPORT_ERRORS as exc:
            # Not chained: the original exception's text (and a traceback logging it) may
            # carry the URL.
            raise DeliveryError(redact(f"webhook: {type(exc).__name__}: {exc}")) from None
        except Exception as exc:
            raise WebhookError(redact(f"webhook: {type(exc).__name__}: {exc}")) from None
        status = response.status_code
        if status == 200:
            return None
        raise DeliveryError(
            # Redacted before cutting, so a cut cannot leave half a secret behind.
            redact(f"webhook: HTTP {status} {response.body}")[:240],
            retryable=status == 429 or status >= 500,
            retry_after=_retry_after(response.headers) if status == 429 else None,
        )

    async def aclose(self) -> None:
        return None


class SlackConfigError(ValueError):
    pass


def slack_sender(integration: Integration, settings: Settings) -> Sender:
    """The Slack sender the settings allow for this integration's config."""
    config = integration.config
    if not isinstance(config, SlackConfig):
        raise TypeError(f"{integration.key} is not a Slack integration")
    token = settings.slack_token.get_secret_value() if settings.slack_token else None
    webhook = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
    mode = config.mode
    if mode is SlackMode.AUTO:
        mode = SlackMode.BOT if token else SlackMode.WEBHOOK
    if mode is SlackMode.BOT:
        channel = config.channel or settings.slack_channel
        if not token or not channel:
            raise SlackConfigError(
                f"{integration.key}: bot mode needs BOUNCEWATCH_SLACK_TOKEN and a channel "
                "(slack_configs[].channel or BOUNCEWATCH_SLACK_CHANNEL)"
            )
        return SlackBotSender(
            integration.key, config, token=token, channel=channel, base_url=settings.slack_api_url
        )
    if not webhook:
        raise SlackConfigError(
            f"{integration.key}: webhook mode needs BOUNCEWATCH_SLACK_WEBHOOK_URL"
        )
    return SlackWebhookSender(integration.key, config, url=webhook)
