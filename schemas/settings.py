"""Deployment settings, read from ``BOUNCEWATCH_*`` environment variables.

Every field has a default and a description; README's settings table is generated from this
model (``bouncewatch settings --markdown``) so the two never drift. Secrets are ``SecretStr``
(masked in reprs and logs) and may instead be read from a file named by ``<NAME>_FILE``, the
usual way Kubernetes mounts a Secret.
"""

from __future__ import annotations

import os
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.durations import Duration, format_duration

ENV_PREFIX = "BOUNCEWATCH_"

#: The shortest notification-log retention accepted: it must outlast any re-consumption of
#: the alert topic after a crash, or a replayed transition would be news again.
MIN_LOG_RETENTION = timedelta(hours=1)


def _long_enough(value: timedelta) -> timedelta:
    if value < MIN_LOG_RETENTION:
        raise ValueError(f"must be at least {format_duration(MIN_LOG_RETENTION)}")
    return value


#: How long the notification log remembers an alert: the setting's type and the
#: notifications file's (``alerts.routing``), with the one lower bound.
LogRetention = Annotated[Duration, AfterValidator(_long_enough)]


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"  # implicit TLS (SMTPS, usually port 465)
    NONE = "none"


#: Secret fields that may be given as ``BOUNCEWATCH_<NAME>_FILE`` instead of the value.
SECRET_FIELDS = (
    "kafka_sasl_password",
    "slack_token",
    "slack_webhook_url",
    "smtp_password",
    "suppression_hash_key",
)


class Settings(BaseSettings):
    """All settings of a bouncewatch process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,  # a bad secret must not be echoed in the error
    )

    # --- Kafka connection -------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="localhost:9092",
        description="Comma-separated host:port list of Kafka brokers",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default=SecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (secret; or `_FILE`)"
    )
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for broker TLS")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS)")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS)")

    # --- Topics and the consumer group -------------------------------------------------
    app_id: str = Field(
        default="bouncewatch",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Faust app id: the consumer group and the prefix of internal topics",
    )
    topic_input: str = Field(
        default="bouncewatch-events", description="Topic the MTAs/ESPs publish delivery events to"
    )
    topic_dead_letter: str = Field(
        default="bouncewatch-dead-letter",
        description="Where undecodable or invalid events go, with the original bytes and reason",
    )
    topic_alerts: str = Field(
        default="bouncewatch-alerts", description="Alert transitions (firing, updated, resolved)"
    )
    topic_silences: str = Field(
        default="bouncewatch-silences",
        description="Compacted topic holding silences (maintenance windows)",
    )
    input_format: str = Field(
        default="auto",
        description="Format of the input topic's messages, or `auto` to detect per message",
    )
    topic_partitions: int = Field(
        default=8, ge=1, le=10_000, description="Partitions of the topics bouncewatch creates"
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, le=32, description="Replication factor of the topics bouncewatch creates"
    )

    create_topics: bool = Field(
        default=True,
        description="Create missing topics at start (off where the cluster forbids it)",
    )
    instance_id: str | None = Field(
        default=None,
        description="Static group membership id (the pod name in Kubernetes); unset: dynamic",
    )

    # --- State --------------------------------------------------------------------------
    store: str = Field(
        default="memory://",
        description="Table store: `memory://` (rebuilt from the changelog at start) or `rocksdb://`",
    )
    data_dir: Path = Field(
        default=Path(".bouncewatch-data"),
        description="Writable directory for the table store and Faust's state",
    )

    # --- Web, logs ----------------------------------------------------------------------
    web_host: str = Field(default="0.0.0.0", description="Address the web port binds")
    web_port: int = Field(
        default=6066, ge=1, le=65535, description="Health, readiness, metrics and status port"
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_format: LogFormat = Field(default=LogFormat.JSON, description="`json` or `text`")

    evaluation_interval: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds between rule evaluations (each evaluates every closed bucket)",
    )
    ingest_batch_messages: int = Field(
        default=1_000_000,
        ge=1,
        le=1_000_000,
        description="Most input messages one ingest batch (one Kafka transaction) covers; "
        "the batch holds their partials, not the messages",
    )
    ingest_batch_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Longest an ingest batch (one Kafka transaction) stays open; each batch "
        "sends one partial per aggregation key it saw, so longer batches mean fewer merges per "
        "second downstream",
    )
    ingest_idle_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="An input partition read to its end with nothing new for this long stops "
        "holding back event time (the watermark is the slowest partition's otherwise)",
    )
    max_event_ahead: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds an event's time may be ahead of the clock; later events are "
        "dead-lettered (a wrong clock, milliseconds sent as seconds)",
    )
    max_event_behind: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="Seconds an event's time may be behind the latest one read from its input "
        "partition; older events are dead-lettered (events within it but behind the allowed "
        "lateness count as late)",
    )
    isp_unknown: Literal["other", "domain"] = Field(
        default="other",
        description="Unknown recipient domains count as ISP `other`, or each as its own key",
    )
    isp_overrides_file: Path | None = Field(
        default=None,
        description="YAML mapping ISP keys to more domains and MX host suffixes (yours win "
        "over the packaged table); worker, replay and classify read it alike",
    )
    reply_rules_file: Path | None = Field(
        default=None,
        description="YAML of reply rules that extend or replace packaged ones by id (the file "
        "`classify --rules` takes); worker, replay and classify read it alike",
    )
    mx_lookup: bool = Field(
        default=False,
        description="Look up the MX of unknown recipient domains whose events name no MX host "
        "(cached 1 h, in the background: a new domain's first events count as unknown)",
    )
    mx_nameservers: str | None = Field(
        default=None,
        description="DNS servers for the MX lookup, `host[:port]` comma-separated; unset: "
        "those of /etc/resolv.conf",
    )

    # --- Rules --------------------------------------------------------------------------
    rules_file: Path | None = Field(
        default=None, description="YAML rules file; the packaged default rules when unset"
    )

    notify_file: Path | None = Field(
        default=None,
        description="YAML of receivers and routes; unset: one route from the Slack/SMTP settings",
    )

    notification_log_retention: LogRetention = Field(
        default=timedelta(days=7),
        description="Without a notifications file: how long the notification log remembers an "
        "alert once its incident resolved (`12h`, `7d`; at least 1h); a file sets its own "
        "`notification_log_retention`",
    )
    silences_unhealthy_after: float = Field(
        default=120.0,
        gt=0,
        description="Seconds the silence reader may keep failing (it retries with backoff, and "
        "its silences are frozen meanwhile) before /readyz reports the worker not ready",
    )

    # --- List hygiene (suppression list) -------------------------------------------------
    hygiene: bool = Field(
        default=False,
        description="Keep per-recipient bounce history and publish the suppression list "
        "(hard bounces, complaints, soft bounces that never end); off by default while it "
        "costs more than its throughput target (docs/benchmarks.md)",
    )
    hygiene_min_bounces: int = Field(
        default=5,
        ge=1,
        le=64,
        description="Address-side soft bounces (with no delivery after them) that graduate an "
        "address to the suppression list, together with `hygiene_min_days`",
    )
    hygiene_min_days: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Distinct UTC days those soft bounces must fall on",
    )
    hygiene_domain_overrides: str | None = Field(
        default=None,
        description="Per-domain graduation rules, `domain:bounces:days` comma-separated",
    )
    hygiene_soft_categories: str = Field(
        default="mailbox_full,mailbox_disabled,user_unknown,domain_invalid",
        description="Soft-bounce categories that speak of the address and count toward "
        "graduation (sender-side ones are refused)",
    )
    suppression_hash_key: SecretStr | None = Field(
        default=None,
        description="Key the suppression list and recipient state are keyed by an HMAC-SHA256 "
        "of the address under, instead of the address (secret; or `_FILE`)",
    )

    # --- Slack --------------------------------------------------------------------------
    slack_token: SecretStr | None = Field(
        default=None, description="Slack bot token xoxb-... (secret; or `_FILE`)"
    )
    slack_channel: str | None = Field(
        default=None, description="Default Slack channel (ID or #name) for alerts"
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL, when there is no bot (secret)"
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base URL"
    )

    # --- Email --------------------------------------------------------------------------
    smtp_host: str | None = Field(default=None, description="SMTP relay host; email off when unset")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP relay port")
    smtp_security: SmtpSecurity = Field(
        default=SmtpSecurity.STARTTLS, description="`starttls`, `tls` (implicit) or `none`"
    )
    smtp_username: str | None = Field(default=None, description="SMTP user name")
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password (secret; or `_FILE`)"
    )
    smtp_from: str = Field(
        default="bouncewatch@localhost", description="From address of alert emails"
    )
    smtp_to: str | None = Field(
        default=None, description="Comma-separated default recipients of alert emails"
    )
    smtp_allow_plaintext_auth: bool = Field(
        default=False,
        description="Log in to the relay even with BOUNCEWATCH_SMTP_SECURITY=none, which sends "
        "the password in clear (refused otherwise); only for a relay on localhost or a "
        "network you trust",
    )

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        """Read ``BOUNCEWATCH_<SECRET>_FILE`` when the secret itself is not set."""
        if not isinstance(data, dict):
            return data
        for name in SECRET_FIELDS:
            file_var = f"{ENV_PREFIX}{name.upper()}_FILE"
            path = os.environ.get(file_var)
            if path and data.get(name) in (None, ""):
                try:
                    data[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{file_var}: cannot read {path}: {exc.strerror}") from exc
        return data

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("input_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        # Imported here: schemas sit below delivery, which imports schemas.event.
        from delivery.adapters import INPUT_FORMATS

        # A typo would otherwise start a worker that dead-letters every message.
        fmt = value.strip().lower()
        if fmt not in INPUT_FORMATS:
            raise ValueError(
                f"unknown format {value!r}; expected one of {', '.join(INPUT_FORMATS)}"
            )
        return fmt

    @field_validator("hygiene_domain_overrides")
    @classmethod
    def _overrides(cls, value: str | None) -> str | None:
        from hygiene.core import parse_overrides

        parse_overrides(value)
        return value

    @field_validator("hygiene_soft_categories")
    @classmethod
    def _soft_categories(cls, value: str) -> str:
        from hygiene.core import SENDER_SIDE_CATEGORIES
        from schemas.vocabulary import Category

        for name in (c.strip() for c in value.split(",")):
            if name and name not in Category.__members__.values():
                raise ValueError(f"unknown category {name!r}")
            if name in SENDER_SIDE_CATEGORIES:
                raise ValueError(f"{name!r} is a sender-side cause: it says nothing of the address")
        return value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value.split("://", 1)[0] not in {"memory", "rocksdb", "aerospike"} or "://" not in value:
            raise ValueError("must be a Faust store URL such as memory:// or rocksdb://")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value

    @field_validator("mx_nameservers")
    @classmethod
    def _nameservers(cls, value: str | None) -> str | None:
        if value is not None:
            parse_nameservers(value)
        return value

    @property
    def mx_nameserver_list(self) -> list[tuple[str, int]] | None:
        return None if self.mx_nameservers is None else parse_nameservers(self.mx_nameservers)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        sasl = self.kafka_security_protocol in (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
        )
        if sasl and (self.kafka_sasl_mechanism is None or not self.kafka_sasl_username):
            raise ValueError(
                "kafka_security_protocol is SASL_*: set BOUNCEWATCH_KAFKA_SASL_MECHANISM and "
                "BOUNCEWATCH_KAFKA_SASL_USERNAME (and the password)"
            )
        return self

    @property
    def topic_partials(self) -> str:
        """Internal topic of per-key partial counts (ingest -> aggregate)."""
        return f"{self.app_id}-partials"

    @property
    def topic_recipients(self) -> str:
        """Internal topic of hygiene observations (ingest -> recipients agent)."""
        return f"{self.app_id}-recipients"

    @property
    def topic_suppressions(self) -> str:
        """Compacted topic of the suppression list, keyed by address (or its HMAC), with the
        recipients topic's partitions (``bouncewatch-suppressions`` by default)."""
        return f"{self.app_id}-suppressions"

    @property
    def topic_suppression_audit(self) -> str:
        """Audit records of manual releases (who, why, when)."""
        return f"{self.app_id}-suppression-audit"

    @property
    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def smtp_recipients(self) -> list[str]:
        return [a.strip() for a in (self.smtp_to or "").split(",") if a.strip()]


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """``host[:port],...`` as (host, port) pairs (port 53 by default); ValueError if bad."""
    servers: list[tuple[str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        host, sep, port = item.rpartition(":") if item.count(":") == 1 else ("", "", "")
        if not sep:
            host, port = item, "53"
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host[:port][,host[:port]...], got {item!r}")
        servers.append((host, int(port)))
    return servers
