"""A plain-SMTP aiosmtpd server on a fixed free loopback port that can be stopped and
started again on the same port, as a relay restart looks to a client.

It runs in a thread of the test process; every mail it accepts is parsed and kept, and
every connection it answered is counted, so a test can tell a relay that was reached from
one that was down. :attr:`Inbox.hold` keeps the server's answer to a mail back for a while
after the mail was accepted, so a test can catch a client with a message in flight.
"""

from __future__ import annotations

import asyncio
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.ports import free_port


class Inbox:
    """aiosmtpd handler keeping each accepted mail, parsed, with its envelope."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        #: time.monotonic() of each accepted mail, in the order of ``messages``.
        self.accepted_at: list[float] = []
        #: Seconds the "250" answer to each accepted mail is held back.
        self.hold = 0.0
        #: Mails accepted whose answer is being held back, now.
        self.in_flight = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.accepted_at.append(time.monotonic())
            hold = self.hold
            if hold:
                self.in_flight += 1
        if hold:
            try:
                await asyncio.sleep(hold)
            finally:
                with self._lock:
                    self.in_flight -= 1
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)


class SmtpServer:
    """aiosmtpd on ``127.0.0.1:port``; :meth:`stop` then :meth:`start` reuse the port."""

    def __init__(self, port: int | None = None) -> None:
        self.inbox = Inbox()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpServer:
        if self._controller is None:
            controller = Controller(self.inbox, hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
