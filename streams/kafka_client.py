"""Kafka connection arguments from the settings, for kafka-python and for aiokafka.

Both clients name their options alike; only TLS differs (files for kafka-python, an
``ssl.SSLContext`` for aiokafka).

The worker's side readers (``streams.ingest``, ``streams.notify``) and the tools of the
command line (``bouncewatch topics``, ``bouncewatch silence``) all connect with these:
bouncewatch/ imports streams/, never the reverse.
"""

from __future__ import annotations

from typing import Any

from schemas.settings import Settings


def _common(settings: Settings, client_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_list,
        "security_protocol": settings.kafka_security_protocol.value,
        "client_id": client_id,
    }
    if settings.kafka_sasl_mechanism is not None:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        config["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return config


def _tls_files(settings: Settings) -> dict[str, str]:
    files = {
        "ssl_cafile": settings.kafka_ssl_cafile,
        "ssl_certfile": settings.kafka_ssl_certfile,
        "ssl_keyfile": settings.kafka_ssl_keyfile,
    }
    return {name: str(path) for name, path in files.items() if path is not None}


def client_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's clients (KafkaAdminClient, KafkaProducer, ...)."""
    return {**_common(settings, f"{settings.app_id}-tools"), **_tls_files(settings)}


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's clients (the worker's own side readers)."""
    config = _common(settings, f"{settings.app_id}-worker")
    if "SSL" in settings.kafka_security_protocol.value:
        from aiokafka.helpers import create_ssl_context

        files = _tls_files(settings)
        config["ssl_context"] = create_ssl_context(
            cafile=files.get("ssl_cafile"),
            certfile=files.get("ssl_certfile"),
            keyfile=files.get("ssl_keyfile"),
        )
    return config
