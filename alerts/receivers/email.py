"""Email receiver: multipart text + HTML over SMTP (STARTTLS, implicit TLS or plain).

stdlib ``smtplib`` in a worker thread rather than aiosmtplib: one alert mail every few
minutes does not need an async SMTP client, and it saves a dependency. A connection per
message keeps the sender free of connection state that a relay restart would break.

Threading: the first mail of an incident gets a Message-ID that later mails name in
``In-Reply-To`` and ``References``. Message-IDs are derived from the transitions, so a mail
sent again after a crash carries the same ID and mail systems that dedup on it (Gmail does)
show it once.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from alerts.receivers import Delivery, DeliveryError, ThreadRef
from alerts.render.email import render_email
from alerts.routing import EmailConfig, Integration, plaintext_auth_refused
from schemas.settings import Settings, SmtpSecurity


class EmailSender:
    def __init__(
        self,
        key: str,
        config: EmailConfig,
        *,
        host: str,
        port: int,
        security: SmtpSecurity,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not recipients:
            raise ValueError(f"{key}: no recipients (email_configs[].to or BOUNCEWATCH_SMTP_TO)")
        refused = plaintext_auth_refused(
            key, security, username, password, config.allow_plaintext_auth
        )
        if refused:
            raise ValueError(refused)
        self._key = key
        self._config = config
        self._host = host
        self._port = port
        self._security = security
        self._sender = sender
        self._recipients = list(recipients)
        self._username = username
        self._password = password
        self._ssl_context = ssl_context
        self._timeout = timeout

    @classmethod
    def from_settings(cls, integration: Integration, settings: Settings) -> EmailSender:
        config = integration.config
        if not isinstance(config, EmailConfig):
            raise TypeError(f"{integration.key} is not an email integration")
        if not settings.smtp_host:
            raise ValueError(f"{integration.key}: email needs BOUNCEWATCH_SMTP_HOST")
        return cls(
            integration.key,
            config,
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            sender=config.from_ or settings.smtp_from,
            recipients=config.to or settings.smtp_recipients,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )

    @property
    def key(self) -> str:
        return self._key

    def _domain(self) -> str:
        return self._sender.rpartition("@")[2] or "bouncewatch.invalid"

    def build_message(self, delivery: Delivery) -> EmailMessage:
        content = render_email(delivery.transitions, runbook_url=self._config.runbook_url)
        message = EmailMessage()
        message["Subject"] = content.subject
        message["From"] = self._sender
        message["To"] = ", ".join(self._recipients)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{delivery.message_key}.bouncewatch@{self._domain()}>"
        thread = delivery.reply_to
        if thread is not None and thread.message_id:
            message["In-Reply-To"] = thread.message_id
            message["References"] = thread.message_id
        message["X-Bouncewatch-Alerts"] = ", ".join(
            f"{t.fingerprint}#{t.sequence}" for t in delivery.transitions
        )
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        return message

    async def send(self, delivery: Delivery) -> ThreadRef | None:
        message = self.build_message(delivery)
        await asyncio.to_thread(self._send_sync, message)
        if delivery.reply_to is not None and delivery.reply_to.message_id:
            return None
        return ThreadRef(message_id=str(message["Message-ID"]))

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _send_sync(self, message: EmailMessage) -> None:
        try:
            smtp: smtplib.SMTP
            if self._security is SmtpSecurity.TLS:
                smtp = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=self._timeout, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with smtp:
                smtp.ehlo()
                if self._security is SmtpSecurity.STARTTLS:
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message, from_addr=self._sender, to_addrs=self._recipients)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"smtp: authentication failed: {exc.smtp_code}", retryable=False
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryError(
                f"smtp: recipients refused {codes}", retryable=all(c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"smtp: {exc.smtp_code} {exc.smtp_error!r}", retryable=exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Refused connections, resets, timeouts, TLS failures: the relay may be back soon.
            raise DeliveryError(f"smtp: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        return None
