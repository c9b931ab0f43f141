"""Receivers: one file per integration (Slack, email, console), one small protocol for all.

A :class:`Sender` delivers one message, a :class:`Delivery`, and says where it went. It
does not retry beyond what its client library does within one call, does not dedup and does
not record anything: the pipeline (:mod:`alerts.pipeline`) does those once for every
receiver, as Alertmanager's notify stages do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from alerts.routing import Integration, IntegrationKind, NotifyConfig
from schemas.alert import AlertTransition
from schemas.settings import Settings


@dataclass(frozen=True)
class ThreadRef:
    """Where a message went, so later ones can thread under it."""

    channel: str | None = None  # Slack channel ID
    ts: str | None = None  # Slack message ts
    message_id: str | None = None  # email Message-ID


@dataclass(frozen=True)
class Delivery:
    """One message to send: transitions of one group, under one thread or starting one."""

    transitions: Sequence[AlertTransition]
    #: The thread to reply under; ``None`` to start a new one.
    reply_to: ThreadRef | None = None
    #: The latest state of every alert in the thread's first message, to re-render its header.
    parent: Sequence[AlertTransition] = field(default_factory=tuple)

    @property
    def message_key(self) -> str:
        """Stable across retries, so a retried email keeps its Message-ID."""
        ids = ",".join(sorted(f"{t.fingerprint}:{t.sequence}" for t in self.transitions))
        return hashlib.sha256(ids.encode()).hexdigest()[:24]


class DeliveryError(Exception):
    """A send failed. ``retryable`` says whether trying again can help soon."""

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Sender(Protocol):
    """What every receiver implements."""

    @property
    def key(self) -> str:
        """The integration key (``receiver/kind/index``)."""
        ...

    async def send(self, delivery: Delivery) -> ThreadRef | None:
        """Deliver; return where a new thread started (``None`` for replies or no threads).

        Raises :class:`DeliveryError` when the message was not delivered.
        """
        ...

    async def aclose(self) -> None: ...


def build_sender(integration: Integration, settings: Settings) -> Sender:
    # Imported here: the receiver modules import this one for the shared types.
    from alerts.receivers.console import ConsoleSender
    from alerts.receivers.email import EmailSender
    from alerts.receivers.slack import slack_sender

    if integration.kind is IntegrationKind.SLACK:
        return slack_sender(integration, settings)
    if integration.kind is IntegrationKind.EMAIL:
        return EmailSender.from_settings(integration, settings)
    return ConsoleSender(integration)


def build_senders(config: NotifyConfig, settings: Settings) -> dict[str, Sender]:
    """One sender per integration of the config, by integration key."""
    return {i.key: build_sender(i, settings) for i in config.integrations()}
