"""The notifier's checkpoint: awaited after each delivered message and before the next send,
so that a worker killed mid-send repeats at most the one message in flight (README,
"Notifications"; the SIGKILL fault figure in tests/integration/test_fault_figures.py)."""

from __future__ import annotations

import asyncio

import pytest

from alerts.pipeline import CheckpointError, Notifier
from tests.support.alert_samples import T0, gmail_throttling, yahoo_throttling
from tests.unit.test_pipeline import KEY, RecordingSender, _config


def test_each_delivered_message_is_checkpointed_before_the_next_is_sent() -> None:
    sender = RecordingSender()
    gmail, yahoo = gmail_throttling(), yahoo_throttling()
    seen: list[tuple[int, bool, bool]] = []
    notifier: Notifier

    async def checkpoint() -> None:
        # What the log holds when the Faust layer writes it: every message sent so far.
        seen.append(
            (
                len(sender.sent),
                notifier.nflog.was_delivered(KEY, gmail),
                notifier.nflog.was_delivered(KEY, yahoo),
            )
        )

    # group_by isp: one message per alert, both sent in one drain.
    notifier = Notifier(
        _config(group_wait="0s", group_by=["isp"]), {KEY: sender}, checkpoint=checkpoint
    )

    async def run() -> None:
        await notifier.process(gmail, T0)
        await notifier.process(yahoo, T0)

    asyncio.run(run())
    assert len(sender.sent) == 2
    first = sender.sent[0].transitions[0]
    assert seen == [(1, first is gmail, first is yahoo), (2, True, True)]


def test_a_failed_checkpoint_stops_the_notifier_instead_of_setting_the_message_aside() -> None:
    sender = RecordingSender()

    async def checkpoint() -> None:
        raise RuntimeError("Cannot flush: Producer not Running")

    notifier = Notifier(_config(group_wait="0s"), {KEY: sender}, checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match="Producer not Running"):
        asyncio.run(notifier.process(gmail_throttling(), T0))
    # The message went out; it is neither set aside nor counted as failed.
    assert len(sender.sent) == 1
    assert notifier.set_aside() == []
