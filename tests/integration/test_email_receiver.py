"""The email receiver against a real SMTP server (aiosmtpd) on a free loopback port.

Plain SMTP, STARTTLS with AUTH (a self-signed certificate made by the openssl CLI for the
test) and implicit TLS; the received mails are parsed: subject, multipart text + HTML,
Message-ID / In-Reply-To / References threading. A server restart is ridden out by the
outbox and the mail is delivered once.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.pipeline import Backoff, Notifier, Outcome
from alerts.receivers import Delivery, DeliveryError
from alerts.receivers.email import EmailSender
from alerts.routing import EmailConfig, NotifyConfig
from schemas.alert import TransitionKind
from schemas.settings import SmtpSecurity
from tests.support.alert_samples import T0, followup, hostile, microsoft_blocklist, resolved
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

KEY = "team/email/0"
USER, PASSWORD = "bouncewatch", "s3cret-relay-password"


class Inbox:
    """aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return Certificate(cert, key)


class SmtpServer:
    """A started aiosmtpd Controller that can be stopped and started on the same port."""

    def __init__(self, **options: Any) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.options = options
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def servers() -> Iterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def _start(servers: list[SmtpServer], **options: Any) -> SmtpServer:
    server = SmtpServer(**options)
    servers.append(server)
    return server.start()


def _sender(server: SmtpServer, security: SmtpSecurity, **kwargs: Any) -> EmailSender:
    return EmailSender(
        KEY,
        EmailConfig(),
        host="127.0.0.1",
        port=server.port,
        security=security,
        sender="bouncewatch@alerts.example.com",
        recipients=["postmaster@example.com", "oncall@example.com"],
        timeout=5,
        **kwargs,
    )


def _notifier(sender: EmailSender) -> Notifier:
    config = NotifyConfig.model_validate(
        {
            "receivers": [{"name": "team", "email_configs": [{"to": ["x@example.com"]}]}],
            "route": {"receiver": "team", "group_wait": "0s"},
        }
    )
    return Notifier(config, {KEY: sender}, backoff=Backoff(initial=timedelta(seconds=5), jitter=0))


def _incident(notifier: Notifier) -> None:
    firing = microsoft_blocklist()
    escalated = followup(firing, TransitionKind.REMINDER)

    async def scenario() -> None:
        await notifier.process(firing, T0)
        await notifier.process(escalated, T0 + timedelta(minutes=10))
        await notifier.process(resolved(escalated), T0 + timedelta(minutes=30))

    asyncio.run(scenario())


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_plain_smtp_multipart_and_threading(servers: list[SmtpServer]) -> None:
    server = _start(servers)
    notifier = _notifier(_sender(server, SmtpSecurity.NONE))
    _incident(notifier)
    first, reminder, done = server.inbox.messages
    assert first["Subject"].startswith("[FIRING critical] Microsoft (IP 203.0.113.9)")
    assert "41.2%" in first["Subject"]
    assert done["Subject"].startswith("[RESOLVED] Microsoft")
    assert first.get_content_type() == "multipart/alternative"
    text, html = _parts(first)
    assert "550 5.7.1 S3150" in text and "550 5.7.1 S3150" in html
    assert "Check blocklists and complaints" in text
    assert "<h2" in html
    root = first["Message-ID"]
    assert root and "@alerts.example.com>" in root
    assert first["In-Reply-To"] is None
    for follow_up in (reminder, done):
        assert follow_up["In-Reply-To"] == root
        assert follow_up["References"] == root
        assert follow_up["Message-ID"] != root
    assert server.inbox.envelopes[0] == (
        "bouncewatch@alerts.example.com",
        ["postmaster@example.com", "oncall@example.com"],
    )
    assert notifier.metrics.transitions_of(KEY, Outcome.SENT) == 3


def test_starttls_with_auth(servers: list[SmtpServer], certificate: Certificate) -> None:
    server = _start(
        servers,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    sender = _sender(
        server,
        SmtpSecurity.STARTTLS,
        username=USER,
        password=PASSWORD,
        ssl_context=certificate.client_context(),
    )
    _incident(_notifier(sender))
    assert len(server.inbox.messages) == 3


# The relay of this test accepts what bouncewatch refuses unless told: AUTH without TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_plain_smtp_logs_in_only_when_explicitly_allowed(servers: list[SmtpServer]) -> None:
    server = _start(
        servers, authenticator=_authenticator, auth_required=True, auth_require_tls=False
    )
    with pytest.raises(ValueError, match="password in clear"):
        _sender(server, SmtpSecurity.NONE, username=USER, password=PASSWORD)
    sender = EmailSender(
        KEY,
        EmailConfig(allow_plaintext_auth=True),
        host="127.0.0.1",
        port=server.port,
        security=SmtpSecurity.NONE,
        sender="bouncewatch@alerts.example.com",
        recipients=["postmaster@example.com"],
        username=USER,
        password=PASSWORD,
        timeout=5,
    )
    asyncio.run(sender.send(Delivery(transitions=[microsoft_blocklist()])))
    assert len(server.inbox.messages) == 1


def test_wrong_password_is_a_permanent_error(
    servers: list[SmtpServer], certificate: Certificate
) -> None:
    server = _start(
        servers,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    sender = _sender(
        server,
        SmtpSecurity.STARTTLS,
        username=USER,
        password="wrong",
        ssl_context=certificate.client_context(),
    )
    notifier = _notifier(sender)
    asyncio.run(notifier.process(microsoft_blocklist(), T0))
    [item] = notifier.outbox.ordered()
    assert not item.blocking and "authentication" in (item.last_error or "")
    assert server.inbox.messages == []


def test_untrusted_certificate_is_refused(
    servers: list[SmtpServer], certificate: Certificate
) -> None:
    server = _start(servers, tls_context=certificate.server_context())
    sender = _sender(server, SmtpSecurity.STARTTLS)  # the system CAs do not know it
    with pytest.raises(DeliveryError):
        asyncio.run(sender.send(Delivery(transitions=[microsoft_blocklist()])))
    assert server.inbox.messages == []


def test_implicit_tls(servers: list[SmtpServer], certificate: Certificate) -> None:
    server = _start(servers, ssl_context=certificate.server_context())
    sender = _sender(server, SmtpSecurity.TLS, ssl_context=certificate.client_context())
    _incident(_notifier(sender))
    assert len(server.inbox.messages) == 3


def test_server_restart_is_ridden_out_and_delivered_once(servers: list[SmtpServer]) -> None:
    server = _start(servers)
    notifier = _notifier(_sender(server, SmtpSecurity.NONE))
    firing = microsoft_blocklist()

    async def scenario() -> None:
        await notifier.process(firing, T0)
        server.stop()
        await notifier.process(resolved(firing), T0 + timedelta(minutes=30))
        assert len(notifier.outbox) == 1
        await notifier.retry_due(T0 + timedelta(minutes=30, seconds=5))  # still down
        server.start()
        due = notifier.next_due()
        assert due is not None
        await notifier.retry_due(due)
        await notifier.retry_due(due + timedelta(minutes=10))

    asyncio.run(scenario())
    first, done = server.inbox.messages
    assert done["In-Reply-To"] == first["Message-ID"]
    assert len(notifier.outbox) == 0
    assert notifier.metrics.messages_of(KEY, Outcome.FAILED) == 2


def test_hostile_labels_and_replies_are_delivered_on_one_subject_line(
    servers: list[SmtpServer],
) -> None:
    """A line break in a group label once made the email library refuse the Subject."""
    server = _start(servers)
    notifier = _notifier(_sender(server, SmtpSecurity.NONE))
    asyncio.run(notifier.process(hostile(), T0))
    [mail] = server.inbox.messages
    assert len(notifier.outbox) == 0
    assert mail["Bcc"] is None
    assert server.inbox.envelopes[0][1] == ["postmaster@example.com", "oncall@example.com"]
    assert "shop.example  Bcc: victim@example.com" in str(mail["Subject"])
    text, html = _parts(mail)
    assert "\x1b" not in text and "<!channel>" not in html and "&lt;!channel&gt;" in html
