"""The Faust app, built from the settings: broker, credentials, store, web port, membership.

An app is built by a function rather than at module level because its configuration comes
from the environment at start, and tests build several apps (with their own ports and
groups) in one process.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.web.drivers import aiohttp as faust_aiohttp

from bouncewatch.logs import logging_config
from schemas.settings import SecurityProtocol, Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    protocol = settings.kafka_security_protocol
    if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=settings.kafka_sasl_mechanism.value
            if settings.kafka_sasl_mechanism
            else None,
            ssl_context=_ssl_context(settings) if protocol is SecurityProtocol.SASL_SSL else None,
        )
    if protocol is SecurityProtocol.SSL:
        return faust.SSLCredentials(_ssl_context(settings))
    return None


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read when the consumer starts; Faust sets read_committed only with its own
        # exactly_once mode, whose transactions we do not use.
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer


class _Web(faust_aiohttp.Web):
    """Faust's aiohttp server with none of Faust's own pages, only those the app adds.

    Faust serves, besides the flags below, a production index at ``/`` that no setting
    turns off; the web port is to serve only what README lists (/healthz, /readyz, /metrics,
    /status).
    """

    default_blueprints = ()  # /router, /table
    production_blueprints = ()  # / ({"status": "OK"})
    debug_blueprints = ()  # /graph, / and /assignment/ (sensor statistics)
    optional_blueprints = ()  # /performance


class App(faust.App):
    """A Faust app whose agents read ``read_committed``: the ingest sends its partials in
    Kafka transactions, and an aborted batch must never be merged. Its web server serves
    only the pages the app adds."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_web(self) -> Any:
        return _Web(self)


def create_app(settings: Settings, **overrides: Any) -> faust.App:
    """The app for ``settings``; ``overrides`` are Faust settings a broker needs (dev)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_list],
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # Our topics are created by `bouncewatch topics create` (or at start), with the
        # partition counts the tables need; Faust must not auto-create them with others.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # Offsets of the low-volume streams (partials, transitions) are committed on the timer
        # only: an inline commit in Faust's fetch loop flushes the producer with no timeout, and
        # a flush waiting on a fresh broker's metadata then stops every stream.
        broker_commit_interval=1.0,
        broker_commit_every=1 << 30,
        # Faust's default of 20 minutes turns a broker outage into a silent hang.
        producer_request_timeout=30.0,
        consumer_group_instance_id=settings.instance_id,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        autodiscover=False,
        value_serializer="json",
        logging_config=logging_config(settings.log_level, settings.log_format.value),
        web_metrics_enabled=False,
        # Faust's /table and /router views would expose table contents (stored delivery
        # errors) to anyone reaching the probe port.
        web_tables_enabled=False,
        web_router_enabled=False,
        # Nor the sensor statistics, partition assignment and service graph (on with debug);
        # the production index at / goes with the web driver (_Web).
        web_stats_enabled=False,
        web_graph_enabled=False,
        # Each table write is a changelog message; without linger nearly every one went out in
        # a produce request of its own (a syscall and a broker round trip each). 10 ms groups
        # them, and delays an ingest batch's acknowledgement by at most as much.
        producer_linger=0.01,
        **overrides,
    )


def create_worker(app: faust.App, settings: Settings) -> faust.Worker:
    """The Faust worker that runs ``app``, logging as the settings say.

    Faust's worker draws a terminal spinner, and to feed it, at WARNING and above it sets the
    root logger to DEBUG: every debug call in Faust and aiokafka (one per message produced)
    then builds a LogRecord that the handlers drop. No terminal watches a worker, so the
    spinner goes and the root logger keeps the configured level.
    """
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=dict(app.conf.logging_config),
        # The console port is a debugging backdoor; never open it.
        console_port=0,
        redirect_stdouts=False,
    )
    worker.spinner = None
    return worker
