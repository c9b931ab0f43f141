"""The shared words of the domain: what an attempt's outcome, bounce type and cause can be.

Every module (adapters, classifier, aggregation, rules, notifiers) speaks these; they are
``StrEnum`` so they serialize as plain strings in JSON, YAML and Kafka messages.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one delivery attempt, from the SMTP reply class (RFC 5321 4.2.1)."""

    DELIVERED = "delivered"  # 2xx
    DEFERRED = "deferred"  # 4xx: the sender will retry
    BOUNCED = "bounced"  # 5xx, or a source's final failure (expiry, suppression)


class BounceType(StrEnum):
    """``hard``: the recipient address itself is permanently bad; ``soft``: any other failure."""

    NONE = "none"
    SOFT = "soft"
    HARD = "hard"


class Category(StrEnum):
    """The cause of an attempt's outcome; exactly one per attempt."""

    DELIVERED = "delivered"
    THROTTLED = "throttled"
    REPUTATION = "reputation"
    AUTHENTICATION = "authentication"
    CONTENT = "content"
    POLICY = "policy"
    MAILBOX_FULL = "mailbox_full"
    USER_UNKNOWN = "user_unknown"
    MAILBOX_DISABLED = "mailbox_disabled"
    DOMAIN_INVALID = "domain_invalid"
    MESSAGE_TOO_LARGE = "message_too_large"
    GREYLISTED = "greylisted"
    CONNECTION = "connection"
    SERVER_ERROR = "server_error"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    UNKNOWN = "unknown"


#: Categories that mean the recipient address is permanently bad (a hard bounce when final).
HARD_CATEGORIES: frozenset[Category] = frozenset(
    {Category.USER_UNKNOWN, Category.MAILBOX_DISABLED, Category.DOMAIN_INVALID}
)


class SourceStatus(StrEnum):
    """The verdict the MTA or ESP itself reported, kept beside the reply we classify."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"


#: Feedback types (RFC 5965 section 7.3 and its IANA registry, RFC 6430's ``not-spam``, RFC
#: 6591's ``auth-failure``) that say a recipient did not want the mail: what the mailbox
#: providers count in a sender's complaint (spam) rate. A source that names no type reports a
#: "this is spam" click, so its events are ``abuse``.
COMPLAINT_FEEDBACK_TYPES: frozenset[str] = frozenset({"abuse", "fraud", "virus", "other"})
#: Feedback that is no complaint, counted apart: a message marked "not spam", an
#: unsubscription sent through a feedback loop, a DMARC/DKIM/SPF failure report.
OTHER_FEEDBACK_TYPES: frozenset[str] = frozenset(
    {"not-spam", "opt-out", "opt-out-list", "unsubscribe", "auth-failure"}
)
