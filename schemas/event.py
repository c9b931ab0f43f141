"""The normalized events every input format is turned into: ``DeliveryEvent`` (one delivery
attempt) and ``FeedbackEvent`` (one complaint or other feedback report).

These are the edge models: input adapters build them, the ingest validates with them, and the
JSON Schema of ``DeliveryEvent`` (``schemas/json/delivery-event.schema.json``) documents
bouncewatch's own format.
Validation is strict about types and ranges so that errors name the field that is wrong.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.vocabulary import OTHER_FEEDBACK_TYPES, SourceStatus

#: Values already validated: validation runs per event, and these values recur constantly.
#: Bounded, since a stream of one-off domains must not grow it without end.
_VALID_DOMAINS: set[str] = set()
_VALID_ENHANCED: set[str] = set()
_VALID_DOMAINS_MAX = 65_536

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$"
)


def _recipient_with_domain(value: str) -> str:
    domain = value.rpartition("@")[2]
    if domain in _VALID_DOMAINS:  # the same few thousand domains recur in every batch
        return value
    normal = domain.lower().rstrip(".")
    if not _DOMAIN.match(normal) or "." not in normal:
        raise ValueError(f"recipient has no valid domain: {value!r}")
    if len(_VALID_DOMAINS) >= _VALID_DOMAINS_MAX:
        _VALID_DOMAINS.clear()
    _VALID_DOMAINS.add(domain)
    return value


class SmtpReply(BaseModel):
    """The receiving server's reply: RFC 5321 code, RFC 3463 enhanced code, and its text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Annotated[int, Field(ge=200, le=599)] | None = Field(
        default=None, description="RFC 5321 reply code (200-599); absent when the source gives none"
    )
    enhanced: str | None = Field(
        default=None, description="RFC 3463 enhanced status code class.subject.detail, e.g. 4.7.28"
    )
    text: str = Field(default="", max_length=4096, description="The reply text as received")

    @field_validator("enhanced")
    @classmethod
    def _enhanced_form(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value in _VALID_ENHANCED:
            return value
        if not _ENHANCED.match(value):
            raise ValueError(
                f"not an RFC 3463 enhanced status code (class.subject.detail): {value!r}"
            )
        if len(_VALID_ENHANCED) < _VALID_DOMAINS_MAX:
            _VALID_ENHANCED.add(value)
        return value


class DeliveryEvent(BaseModel):
    """One delivery attempt to one recipient."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    event_time: AwareDatetime = Field(description="When the attempt happened (timezone-aware)")
    recipient: str = Field(
        min_length=1, max_length=320, description="Recipient address, or only its domain"
    )
    sender: str | None = Field(default=None, max_length=320, description="Envelope sender")
    sending_domain: str | None = Field(default=None, max_length=253)
    source_ip: str | None = Field(default=None, max_length=45, description="Egress IP address")
    pool: str | None = Field(default=None, max_length=128, description="Egress pool or IP pool")
    mx_host: str | None = Field(default=None, max_length=253, description="Receiving MX host")
    reply: SmtpReply = Field(default_factory=SmtpReply)
    status: SourceStatus | None = Field(
        default=None, description="The verdict the MTA or ESP reported, when it reports one"
    )
    attempt: int = Field(default=1, ge=1, le=10_000, description="1 for the first attempt")
    message_id: str | None = Field(default=None, max_length=998)
    tenant: str | None = Field(default=None, max_length=128)
    campaign: str | None = Field(default=None, max_length=256)
    source_format: str = Field(default="bouncewatch", max_length=32)

    @field_validator("recipient")
    @classmethod
    def _recipient_has_domain(cls, value: str) -> str:
        return _recipient_with_domain(value)

    @property
    def recipient_domain(self) -> str:
        return self.recipient.rpartition("@")[2].lower().rstrip(".")


class FeedbackEvent(BaseModel):
    """One feedback report about a message we sent: a spam complaint (abuse, fraud, ...) or
    feedback that is no complaint (not-spam, opt-out), from a feedback loop or an ESP.

    ``event_time`` is when the feedback was given (or, when the source does not say, when it
    was received): complaints are counted in the window they arrive in, against the
    deliveries of that window, as the mailbox providers' dashboards count them.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    event_time: AwareDatetime = Field(description="When the recipient complained (or we heard)")
    recipient: str = Field(
        min_length=1,
        max_length=320,
        description="The complainer's address; only the mailbox provider's domain when the "
        "feedback loop redacts it",
    )
    feedback_type: str = Field(
        default="abuse",
        max_length=64,
        description="RFC 5965 Feedback-Type, lower case: abuse, fraud, virus, other, not-spam, ...",
    )
    sender: str | None = Field(default=None, max_length=320, description="The original sender")
    sending_domain: str | None = Field(default=None, max_length=253)
    source_ip: str | None = Field(
        default=None, max_length=45, description="The IP the original message was sent from"
    )
    tenant: str | None = Field(default=None, max_length=128)
    campaign: str | None = Field(default=None, max_length=256)
    message_id: str | None = Field(default=None, max_length=998)
    sent_at: AwareDatetime | None = Field(
        default=None, description="When the original message was sent, when the source says"
    )
    reporter: str | None = Field(
        default=None, max_length=256, description="Who reported it: User-Agent or the ESP"
    )
    source_format: str = Field(default="bouncewatch", max_length=32)

    @field_validator("recipient")
    @classmethod
    def _recipient_has_domain(cls, value: str) -> str:
        return _recipient_with_domain(value)

    @field_validator("feedback_type")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower() or "abuse"

    @property
    def recipient_domain(self) -> str:
        return self.recipient.rpartition("@")[2].lower().rstrip(".")

    @property
    def mx_host(self) -> str | None:
        """The reporting host when the complainer's address was redacted down to it (a
        feedback loop's MTA names its provider as an MX host would), else None."""
        return None if "@" in self.recipient else self.recipient_domain

    @property
    def is_complaint(self) -> bool:
        """Whether this counts as a spam complaint (not a not-spam or opt-out report)."""
        return self.feedback_type not in OTHER_FEEDBACK_TYPES
