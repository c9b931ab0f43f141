"""Console receiver: prints each notification to stdout.

The embedded ``dev --demo`` mode and a first run without Slack or SMTP rely on it, so it
prints the same text as the email's text part: what people see there is what they get later.
"""

from __future__ import annotations

import sys
from typing import TextIO

from alerts.receivers import Delivery, ThreadRef
from alerts.render.email import render_text
from alerts.routing import ConsoleConfig, Integration

RULE = "─" * 72


class ConsoleSender:
    def __init__(self, integration: Integration, stream: TextIO | None = None) -> None:
        self._key = integration.key
        config = integration.config
        self._runbook_url = config.runbook_url if isinstance(config, ConsoleConfig) else None
        self._stream = stream

    @property
    def key(self) -> str:
        return self._key

    async def send(self, delivery: Delivery) -> ThreadRef | None:
        # sys.stdout is looked up at send time so that pytest's capture and the demo's
        # redirection both see the output.
        stream = self._stream or sys.stdout
        text = render_text(delivery.transitions, runbook_url=self._runbook_url)
        stream.write(f"{RULE}\n{text}{RULE}\n")
        stream.flush()
        return None

    async def aclose(self) -> None:
        return None
