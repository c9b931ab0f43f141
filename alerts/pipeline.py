"""The notification pipeline: route → group → (silence → repeat → resolved → dedup) → send → record.

Alertmanager's shape: the dispatcher routes each transition to its receivers' integrations
and groups it; a flushed group becomes an outbox item; each item runs through the same small
:class:`Stage` chain for every integration, then its receiver sends it, and what was sent is
recorded in the notification log. An item that cannot be sent stays in the outbox with the
time of its next attempt (exponential backoff, or Slack's Retry-After), so nothing is
dropped; :meth:`Notifier.retry_due` is the timer that tries again.

All state (notification log, open groups, outbox) is plain data that the Faust layer keeps
in a changelog-backed table through :meth:`Notifier.take_changes` and
:meth:`Notifier.restore`. Nothing reads the clock: every entry point takes ``now``. The
counters (:class:`DeliveryMetrics`) are prometheus_client's, defined here where they are
counted, in the registry the worker passes in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from alerts.grouping import Grouper, rounds
from alerts.nflog import Anchor, NotificationLog
from alerts.receivers import Delivery, DeliveryError, Sender, ThreadRef
from alerts.routing import Integration, NotifyConfig, alert_labels
from alerts.silences import Silence, muting
from schemas.alert import AlertState, AlertTransition, TransitionKind

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """Delivery outcomes, the ``outcome`` label of the notifications counter."""

    SENT = "sent"
    FAILED = "failed"  # an attempt failed; the message stays in the outbox
    DEDUPLICATED = "deduplicated"  # consumed or flushed again, already handled
    SILENCED = "silenced"
    SKIPPED = "skipped"  # send_resolved off, or a reminder within repeat_interval
    ORPHANED = "orphaned"  # the integration left the configuration
    #: Sending raised something other than a DeliveryError (a bug, or a message the
    #: receiver's library refuses): the item is kept in the outbox but not tried again.
    SET_ASIDE = "set_aside"


class DeliveryMetrics:
    """The notifier's counters, prometheus_client's own, by integration and outcome.

    They live in ``registry``: the worker passes its own (``streams.metrics``), so /metrics
    exports these very counters; without one they get a registry of their own (tests, a
    notifier outside the worker). A registry holds one ``DeliveryMetrics``: the worker's
    notifiers, one per partition, share it.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.transitions = PromCounter(
            "bouncewatch_notification_transitions",
            "Alert transitions the notifier handled, by integration and outcome",
            ["integration", "outcome"],
            registry=self.registry,
        )
        self.messages = PromCounter(
            "bouncewatch_notification_messages",
            "Notification messages (a Slack post, an email) by integration and outcome",
            ["integration", "outcome"],
            registry=self.registry,
        )

    def count(self, integration: str, outcome: Outcome, n: int = 1) -> None:
        if n:
            self.transitions.labels(integration, outcome.value).inc(n)

    def message(self, integration: str, outcome: Outcome) -> None:
        self.messages.labels(integration, outcome.value).inc()

    def transitions_of(self, integration: str, outcome: Outcome) -> float:
        """How many transitions of ``integration`` ended with ``outcome`` so far."""
        return self._value("bouncewatch_notification_transitions_total", integration, outcome)

    def messages_of(self, integration: str, outcome: Outcome) -> float:
        """How many messages of ``integration`` ended with ``outcome`` so far."""
        return self._value("bouncewatch_notification_messages_total", integration, outcome)

    def _value(self, name: str, integration: str, outcome: Outcome) -> float:
        labels = {"integration": integration, "outcome": outcome.value}
        return self.registry.get_sample_value(name, labels) or 0.0


class CheckpointError(Exception):
    """The notification log could not be made durable after a delivery (Kafka gone, the
    worker stopping). Raised out of the notifier: the agent stops, and the restarted one
    repeats at most that message."""


# --- Outbox ---------------------------------------------------------------------------------


@dataclass
class OutboxItem:
    """Transitions of one group round for one integration, waiting to be delivered."""

    id: str
    serial: int  # delivery order within an integration, kept across restarts
    integration: str
    transitions: list[AlertTransition]
    created_at: datetime
    next_attempt_at: datetime
    repeat_interval: timedelta | None = None
    attempts: int = 0
    last_error: str | None = None
    blocking: bool = True  # a retryable failure: later items of the integration wait
    #: When an unexpected error set the item aside; it then waits for an operator, never
    #: for a retry, so one message nothing can send does not hold up the others.
    set_aside_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "serial": self.serial,
            "integration": self.integration,
            "transitions": [t.model_dump(mode="json") for t in self.transitions],
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "repeat_interval": (
                self.repeat_interval.total_seconds() if self.repeat_interval else None
            ),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "blocking": self.blocking,
            "set_aside_at": self.set_aside_at.isoformat() if self.set_aside_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboxItem:
        repeat = data.get("repeat_interval")
        set_aside = data.get("set_aside_at")
        return cls(
            id=data["id"],
            serial=int(data["serial"]),
            integration=data["integration"],
            transitions=[AlertTransition.model_validate(t) for t in data["transitions"]],
            created_at=datetime.fromisoformat(data["created_at"]),
            next_attempt_at=datetime.fromisoformat(data["next_attempt_at"]),
            repeat_interval=timedelta(seconds=repeat) if repeat is not None else None,
            attempts=int(data.get("attempts", 0)),
            last_error=data.get("last_error"),
            blocking=bool(data.get("blocking", True)),
            set_aside_at=datetime.fromisoformat(set_aside) if set_aside else None,
        )

    def report(self) -> dict[str, Any]:
        """What an operator needs to see about a set-aside item (``/status``)."""
        return {
            "id": self.id,
            "integration": self.integration,
            "alerts": [f"{t.fingerprint}#{t.sequence}" for t in self.transitions],
            "rules": sorted({t.rule for t in self.transitions}),
            "set_aside_at": self.set_aside_at.isoformat() if self.set_aside_at else None,
            "attempts": self.attempts,
            "error": self.last_error,
        }


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap and deterministic jitter.

    The jitter comes from the item's id, not a random generator, so workers retrying
    after a shared Slack outage spread out while tests stay reproducible.
    """

    initial: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    maximum: timedelta = timedelta(minutes=5)
    #: Ceiling for a permanent error (bad token, unknown channel): kept, but tried rarely
    #: until someone fixes the configuration.
    permanent: timedelta = timedelta(minutes=30)
    jitter: float = 0.1

    def delay(self, key: str, attempts: int, error: DeliveryError) -> timedelta:
        if not error.retryable:
            return self.permanent
        seconds = min(
            self.maximum.total_seconds(),
            self.initial.total_seconds() * self.factor ** max(0, attempts - 1),
        )
        digest = hashlib.sha256(f"{key}:{attempts}".encode()).digest()
        spread = (digest[0] / 255.0 * 2 - 1) * self.jitter  # in [-jitter, +jitter]
        seconds *= 1 + spread
        if error.retry_after is not None:
            seconds = max(seconds, error.retry_after)
        return timedelta(seconds=seconds)


class Outbox:
    def __init__(self, items: Iterable[OutboxItem] = ()) -> None:
        self._items: dict[str, OutboxItem] = {i.id: i for i in items}
        self._changed: set[str] = set()

    def __len__(self) -> int:
        return len(self._items)

    def ordered(self) -> list[OutboxItem]:
        return sorted(self._items.values(), key=lambda i: (i.serial, i.id))

    def set_aside(self) -> list[OutboxItem]:
        return [i for i in self.ordered() if i.set_aside_at is not None]

    def next_serial(self) -> int:
        return max((i.serial for i in self._items.values()), default=0) + 1

    def put(self, item: OutboxItem) -> None:
        self._items[item.id] = item
        self._changed.add(item.id)

    def remove(self, item_id: str) -> None:
        if self._items.pop(item_id, None) is not None:
            self._changed.add(item_id)

    def contains(self, integration: str, transition: AlertTransition) -> bool:
        return any(
            i.integration == integration
            and any(
                t.fingerprint == transition.fingerprint and t.sequence == transition.sequence
                for t in i.transitions
            )
            for i in self._items.values()
        )

    def next_due(self) -> datetime | None:
        """The earliest attempt that can happen: items behind a failing one wait for it."""
        due: list[datetime] = []
        blocked: set[str] = set()
        for item in self.ordered():
            if item.integration in blocked or item.set_aside_at is not None:
                continue
            due.append(item.next_attempt_at)
            if item.blocking and item.attempts:
                blocked.add(item.integration)
        return min(due, default=None)

    def take_changes(self) -> dict[str, dict[str, Any] | None]:
        changes: dict[str, dict[str, Any] | None] = {}
        for key in sorted(self._changed):
            item = self._items.get(key)
            changes[key] = item.to_dict() if item else None
        self._changed.clear()
        return changes

    def restore(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self._items.pop(key, None)
        else:
            self._items[key] = OutboxItem.from_dict(value)


def item_id(integration: str, transitions: Sequence[AlertTransition]) -> str:
    ids = ",".join(sorted(f"{t.fingerprint}:{t.sequence}" for t in transitions))
    return hashlib.sha256(f"{integration}|{ids}".encode()).hexdigest()[:20]


# --- Stages ---------------------------------------------------------------------------------


@dataclass
class StageContext:
    """What a stage may look at and record: one integration, one moment."""

    integration: Integration
    now: datetime
    nflog: NotificationLog
    silences: Sequence[Silence]
    metrics: DeliveryMetrics
    repeat_interval: timedelta | None = None


class Stage(Protocol):
    """Transitions in, the ones still to notify out. Every step of the chain is one."""

    def __call__(
        self, ctx: StageContext, transitions: list[AlertTransition]
    ) -> list[AlertTransition]: ...


def mute_stage(ctx: StageContext, transitions: list[AlertTransition]) -> list[AlertTransition]:
    """Silenced transitions send nothing but are remembered, to send when the silence ends."""
    kept = []
    for t in transitions:
        if muting(alert_labels(t), ctx.silences, ctx.now):
            ctx.nflog.record_muted(ctx.integration.key, t, ctx.now)
            ctx.metrics.count(ctx.integration.key, Outcome.SILENCED)
        else:
            kept.append(t)
    return kept


def resolved_stage(ctx: StageContext, transitions: list[AlertTransition]) -> list[AlertTransition]:
    send_resolved = getattr(ctx.integration.config, "send_resolved", True)
    if send_resolved:
        return transitions
    kept = [t for t in transitions if t.kind is not TransitionKind.RESOLVED]
    ctx.metrics.count(ctx.integration.key, Outcome.SKIPPED, len(transitions) - len(kept))
    return kept


def repeat_stage(ctx: StageContext, transitions: list[AlertTransition]) -> list[AlertTransition]:
    """Thin reminders out to the route's repeat_interval, when one is set."""
    if ctx.repeat_interval is None:
        return transitions
    kept = []
    for t in transitions:
        entry = ctx.nflog.get(ctx.integration.key, t.fingerprint)
        recent = (
            entry is not None
            and entry.last_sent_at is not None
            and ctx.now - entry.last_sent_at < ctx.repeat_interval
        )
        if t.kind is TransitionKind.REMINDER and recent:
            ctx.metrics.count(ctx.integration.key, Outcome.SKIPPED)
        else:
            kept.append(t)
    return kept


def dedup_stage(ctx: StageContext, transitions: list[AlertTransition]) -> list[AlertTransition]:
    kept = [t for t in transitions if not ctx.nflog.was_delivered(ctx.integration.key, t)]
    ctx.metrics.count(ctx.integration.key, Outcome.DEDUPLICATED, len(transitions) - len(kept))
    return kept


#: The chain every outbox item runs through just before it is sent, so a silence added or a
#: delivery recorded while it waited still counts.
DEFAULT_STAGES: tuple[Stage, ...] = (mute_stage, resolved_stage, repeat_stage, dedup_stage)


# --- The notifier ---------------------------------------------------------------------------

#: How often :meth:`Notifier.tick` collects the notification log: it walks every entry,
#: and a few minutes' delay on a retention of days changes nothing.
GC_INTERVAL = timedelta(minutes=10)

LOG_PREFIX = "log:"
GROUP_PREFIX = "group:"
OUTBOX_PREFIX = "outbox:"


class Notifier:
    """Routes, groups, dedups and delivers alert transitions; owns the delivery state.

    One per worker. The Faust agent calls :meth:`process` for each consumed transition and
    a timer calls :meth:`tick` (or :meth:`flush_due` and :meth:`retry_due`); after each
    call the agent writes :meth:`take_changes` into its table. Calls are serialised by an
    internal lock, so the agent and the timer may overlap.
    """

    def __init__(
        self,
        config: NotifyConfig,
        senders: Mapping[str, Sender],
        *,
        silences: Callable[[], Iterable[Silence]] = lambda: (),
        stages: Sequence[Stage] = DEFAULT_STAGES,
        backoff: Backoff | None = None,
        nflog: NotificationLog | None = None,
        grouper: Grouper | None = None,
        outbox: Outbox | None = None,
        metrics: DeliveryMetrics | None = None,
        checkpoint: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.senders = dict(senders)
        self.integrations = {i.key: i for i in config.integrations()}
        missing = sorted(set(self.integrations) - set(self.senders))
        if missing:
            raise ValueError(f"no sender for integrations: {', '.join(missing)}")
        self._silences = silences
        self.stages = tuple(stages)
        self.backoff = backoff or Backoff()
        self.nflog = nflog or NotificationLog()
        self.grouper = grouper or Grouper()
        self.outbox = outbox or Outbox()
        self.metrics = metrics or DeliveryMetrics()
        # The repeat_interval of the route that last fed each integration; a route change
        # takes effect with the next transition, soon enough for a thinning knob.
        self._repeat: dict[str, timedelta | None] = {}
        self._last_gc: datetime | None = None
        self._lock = asyncio.Lock()
        #: Awaited after each delivered message, before the next is sent: the Faust layer
        #: writes the notification log there and waits until Kafka has it, so a crash can
        #: repeat only the message in flight (README, "Notifications").
        self.checkpoint = checkpoint

    # --- entry points --------------------------------------------------------------------

    async def process(self, transition: AlertTransition, now: datetime) -> None:
        """Take one consumed transition: route it, group it, and send what is due."""
        async with self._lock:
            self._accept(transition, now)
            await self._flush(now)
            await self._drain(now)

    async def flush_due(self, now: datetime) -> None:
        """Send the groups whose group_wait is over, and alerts whose silence ended."""
        async with self._lock:
            self._unmute(now)
            await self._flush(now)
            await self._drain(now)

    async def retry_due(self, now: datetime) -> None:
        """Try again the outbox items whose next attempt is due."""
        async with self._lock:
            await self._drain(now)

    async def tick(self, now: datetime) -> None:
        """The timer's one call: flush due groups, send unmuted alerts, retry the outbox,
        and now and then forget resolved alerts past the log's retention."""
        await self.flush_due(now)
        if self._last_gc is None or now - self._last_gc >= GC_INTERVAL:
            async with self._lock:
                self.gc(now)

    def next_due(self) -> datetime | None:
        """When :meth:`tick` next has work (a group, a retry), or ``None`` when idle.

        Silences ending are not included; tick every few seconds anyway.
        """
        due = [d for d in (self.grouper.next_due(), self.outbox.next_due()) if d is not None]
        return min(due, default=None)

    # --- routing and grouping ------------------------------------------------------------

    def _accept(self, transition: AlertTransition, now: datetime) -> None:
        labels = alert_labels(transition)
        for route in self.config.routes_for(transition):
            group_labels = route.group_labels(labels)
            for integration in self.config.receiver(route.receiver).integrations():
                key = integration.key
                if not self.nflog.is_new(key, transition):
                    self.metrics.count(key, Outcome.DEDUPLICATED)
                    continue
                self.nflog.accept(key, transition, now)
                self._repeat[key] = route.repeat_interval
                self.grouper.add(key, group_labels, transition, route.group_wait, now)

    async def _flush(self, now: datetime) -> None:
        for group in self.grouper.due(now):
            for batch in rounds(group.transitions):
                self._enqueue(group.integration, batch, now)

    def _enqueue(self, integration: str, batch: list[AlertTransition], now: datetime) -> None:
        if not batch:
            return
        self.outbox.put(
            OutboxItem(
                id=item_id(integration, batch),
                serial=self.outbox.next_serial(),
                integration=integration,
                transitions=batch,
                created_at=now,
                next_attempt_at=now,
                repeat_interval=self._repeat.get(integration),
            )
        )

    def _unmute(self, now: datetime) -> None:
        """An alert whose silence ended while it still fires is sent now.

        One that resolved during the silence is sent too when the receiver last heard it
        firing, so its thread does not stay open forever; otherwise it is forgotten.
        """
        silences = list(self._silences())
        for entry in self.nflog:
            muted = entry.muted
            if muted is None or muting(alert_labels(muted), silences, now):
                continue
            self.nflog.clear_muted(entry.integration, entry.fingerprint, now)
            if entry.integration not in self.integrations:
                continue
            still_open = AlertState.FIRING in (muted.state, entry.last_sent_state)
            if still_open and not self.outbox.contains(entry.integration, muted):
                self._enqueue(entry.integration, [muted], now)

    # --- delivery ------------------------------------------------------------------------

    async def _drain(self, now: datetime) -> None:
        blocked: set[str] = set()
        silences = list(self._silences())
        for item in self.outbox.ordered():
            if item.integration in blocked or item.set_aside_at is not None:
                continue
            integration = self.integrations.get(item.integration)
            if integration is None:
                log.warning("outbox item %s: integration %s is gone", item.id, item.integration)
                self.metrics.count(item.integration, Outcome.ORPHANED, len(item.transitions))
                self.outbox.remove(item.id)
                continue
            if item.next_attempt_at > now:
                if item.blocking and item.attempts:
                    blocked.add(item.integration)  # keep the order of one receiver's messages
                continue
            if await self._deliver(item, integration, silences, now):
                blocked.add(item.integration)

    async def _deliver(
        self,
        item: OutboxItem,
        integration: Integration,
        silences: Sequence[Silence],
        now: datetime,
    ) -> bool:
        """Send one item; say whether the integration's later items must wait for it."""
        ctx = StageContext(
            integration=integration,
            now=now,
            nflog=self.nflog,
            silences=silences,
            metrics=self.metrics,
            repeat_interval=item.repeat_interval,
        )
        transitions = list(item.transitions)
        sender = self.senders[integration.key]
        try:
            for stage in self.stages:
                transitions = stage(ctx, transitions)
                if not transitions:
                    break
            for delivery in self._messages(integration.key, transitions):
                try:
                    thread = await sender.send(delivery)
                except DeliveryError as exc:
                    self._failed(item, transitions, delivery, exc, now)
                    return exc.retryable
                self._record(integration.key, delivery, thread, now)
                await self._checkpoint()
        except CheckpointError:
            raise  # the message went out: setting it aside would hide that it did
        except Exception as exc:
            # Anything else will fail the same way on every tick: retrying it would raise
            # out of every call and stop the whole outbox behind it.
            self._set_aside(item, transitions, exc, now)
            return False
        self.outbox.remove(item.id)
        return False

    async def _checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        try:
            await self.checkpoint()
        except Exception as exc:
            raise CheckpointError(f"{type(exc).__name__}: {exc}") from exc

    def _messages(self, key: str, transitions: list[AlertTransition]) -> list[Delivery]:
        """Split transitions by the thread they belong under; new threads first."""
        fresh: list[AlertTransition] = []
        by_thread: dict[tuple[str | None, str | None, str | None], list[AlertTransition]] = {}
        anchors: dict[tuple[str | None, str | None, str | None], Anchor] = {}
        for t in transitions:
            anchor = self.nflog.anchor_for(key, t)
            if anchor is None:
                fresh.append(t)
                continue
            ref = (anchor.channel, anchor.ts, anchor.message_id)
            by_thread.setdefault(ref, []).append(t)
            anchors.setdefault(ref, anchor)
        deliveries = [Delivery(transitions=fresh)] if fresh else []
        for ref, ts in by_thread.items():
            anchor = anchors[ref]
            deliveries.append(
                Delivery(
                    transitions=ts,
                    reply_to=ThreadRef(channel=ref[0], ts=ref[1], message_id=ref[2]),
                    parent=self._parent(key, anchor, ts),
                )
            )
        return deliveries

    def _parent(
        self, key: str, anchor: Anchor, update: Sequence[AlertTransition]
    ) -> list[AlertTransition]:
        """The latest state of each alert of the thread's first message, this update included."""
        newest = {t.fingerprint: t for t in update}
        parent = []
        for fingerprint in anchor.members:
            entry = self.nflog.get(key, fingerprint)
            current = newest.get(fingerprint) or (entry.latest if entry else None)
            if current is not None:
                parent.append(current)
        return parent

    def _record(
        self, key: str, delivery: Delivery, thread: ThreadRef | None, now: datetime
    ) -> None:
        self.metrics.count(key, Outcome.SENT, len(delivery.transitions))
        self.metrics.message(key, Outcome.SENT)
        if thread is None:
            self.nflog.record_sent(key, delivery.transitions, now)
            return
        members = tuple(t.fingerprint for t in delivery.transitions)
        for t in delivery.transitions:
            anchor = Anchor(
                started_at=t.started_at,
                channel=thread.channel,
                ts=thread.ts,
                message_id=thread.message_id,
                members=members,
            )
            self.nflog.record_sent(key, [t], now, anchor=anchor)

    def _failed(
        self,
        item: OutboxItem,
        passed: list[AlertTransition],
        delivery: Delivery,
        error: DeliveryError,
        now: datetime,
    ) -> None:
        # Messages of this item sent before the failure are recorded; only the rest waits,
        # and what the stages dropped (silenced, skipped) is not tried again.
        remaining = [t for t in passed if not self.nflog.was_delivered(item.integration, t)]
        attempts = item.attempts + 1
        delay = self.backoff.delay(item.id, attempts, error)
        self.outbox.put(
            replace(
                item,
                transitions=remaining,
                attempts=attempts,
                next_attempt_at=now + delay,
                last_error=str(error),
                blocking=error.retryable,
            )
        )
        self.metrics.count(item.integration, Outcome.FAILED, len(delivery.transitions))
        self.metrics.message(item.integration, Outcome.FAILED)
        log.warning(
            "notification to %s failed (attempt %d, next in %.0fs): %s",
            item.integration,
            attempts,
            delay.total_seconds(),
            error,
        )

    def _set_aside(
        self,
        item: OutboxItem,
        passed: list[AlertTransition],
        error: Exception,
        now: datetime,
    ) -> None:
        remaining = [t for t in passed if not self.nflog.was_delivered(item.integration, t)]
        text = f"{type(error).__name__}: {error}"
        self.outbox.put(
            replace(
                item,
                transitions=remaining or item.transitions,
                attempts=item.attempts + 1,
                last_error=text,
                blocking=False,
                set_aside_at=now,
            )
        )
        self.metrics.count(item.integration, Outcome.SET_ASIDE, len(remaining))
        self.metrics.message(item.integration, Outcome.SET_ASIDE)
        log.error(
            "notification %s to %s set aside, it will not be retried: %s",
            item.id,
            item.integration,
            text,
            exc_info=error,
        )

    # --- state ---------------------------------------------------------------------------

    def take_changes(self) -> dict[str, dict[str, Any] | None]:
        """State changed since the last call, by table key; ``None`` means delete the key.

        Keys are ``log:<integration>|<fingerprint>``, ``group:<integration>|<labels>`` and
        ``outbox:<id>``; write each into the notifier's changelog-backed table.
        """
        changes: dict[str, dict[str, Any] | None] = {}
        for prefix, part in (
            (LOG_PREFIX, self.nflog.take_changes()),
            (GROUP_PREFIX, self.grouper.take_changes()),
            (OUTBOX_PREFIX, self.outbox.take_changes()),
        ):
            changes.update({prefix + key: value for key, value in part.items()})
        return changes

    def restore(self, items: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        """Load state from the table (after recovery), e.g. ``restore(table.items())``."""
        for key, value in items:
            if key.startswith(LOG_PREFIX):
                self.nflog.restore(key[len(LOG_PREFIX) :], value)
            elif key.startswith(GROUP_PREFIX):
                self.grouper.restore(key[len(GROUP_PREFIX) :], value)
            elif key.startswith(OUTBOX_PREFIX):
                self.outbox.restore(key[len(OUTBOX_PREFIX) :], value)

    def gc(self, now: datetime, retention: timedelta | None = None) -> list[str]:
        """Forget alerts resolved longer ago than the retention (the config's by default)."""
        self._last_gc = now
        removed = self.nflog.gc(now, retention or self.config.notification_log_retention)
        if removed:
            log.info("notification log: forgot %d resolved alerts", len(removed))
        return removed

    def set_aside(self) -> list[dict[str, Any]]:
        """Items an unexpected error set aside, with that error: for ``/status``."""
        return [item.report() for item in self.outbox.set_aside()]

    def outbox_sizes(self) -> dict[str, int]:
        sizes: Counter[str] = Counter(i.integration for i in self.outbox.ordered())
        return {key: sizes.get(key, 0) for key in sorted(set(self.integrations) | set(sizes))}

    async def aclose(self) -> None:
        for sender in self.senders.values():
            await sender.aclose()
