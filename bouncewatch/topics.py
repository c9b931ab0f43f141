"""The topics bouncewatch needs, and their idempotent creation with kafka-python.

Faust creates its own internal topics (table changelogs) on start, but late for the first
assignment; they are created here too, with Faust's names and settings, beside the ones it
reads from or writes to without owning them. The partials topic must have as many
partitions as the tables it feeds, because the aggregate agent writes a key's table entry
in the partition the key arrived on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.settings import Settings
from streams.kafka_client import client_config

log = logging.getLogger(__name__)

#: The worker's Faust tables (``streams.topology``), whose changelogs are created up front;
#: list hygiene's ``recipients`` table joins them when it is on.
TABLES = ("buckets", "alert-states", "notify-state")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    n, rf = settings.topic_partitions, settings.topic_replication_factor
    return [
        TopicSpec(settings.topic_input, n, rf),
        TopicSpec(settings.topic_dead_letter, n, rf),
        TopicSpec(settings.topic_partials, n, rf),
        TopicSpec(settings.topic_alerts, n, rf),
        # Faust would create this internal topic itself, but while the group forms; a worker
        # that joined before it existed was seen to never consume it.
        TopicSpec(f"{settings.app_id}-notify", n, rf),
        # A silence is a keyed record whose latest version is all that matters.
        TopicSpec(settings.topic_silences, 1, rf, {"cleanup.policy": "compact"}),
        # List hygiene: observations by recipient, and the suppression list with the same
        # partitioning (hygiene.core.recipient_partition), so that the owner of a recipient's
        # state knows where its records are.
        TopicSpec(settings.topic_recipients, n, rf),
        TopicSpec(settings.topic_suppressions, n, rf, {"cleanup.policy": "compact"}),
        TopicSpec(settings.topic_suppression_audit, 1, rf),
        # The tables' changelogs, as Faust would name and configure them: created by Faust
        # itself, they may be missing from the metadata of the first assignment, and a worker
        # assigned without them ran an agent that failed in a loop ("changelog has 0
        # partitions") while it reported ready.
        *(
            TopicSpec(f"{settings.app_id}-{table}-changelog", n, rf, {"cleanup.policy": "compact"})
            for table in (*TABLES, *(["recipients"] if settings.hygiene else []))
        ),
    ]


def ensure_topics(settings: Settings, timeout_ms: int = 30_000) -> list[str]:
    """Create the missing topics; returns the names created. Existing topics are left as is."""
    admin = KafkaAdminClient(**client_config(settings), request_timeout_ms=timeout_ms)
    try:
        existing = set(admin.list_topics())
        wanted = [s for s in topic_specs(settings) if s.name not in existing]
        created: list[str] = []
        for spec in wanted:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=spec.replication_factor,
                            topic_configs=spec.config,
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        admin.close()
