"""Connection settings reach both Kafka clients alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from streams.kafka_client import aiokafka_config, client_config


def test_sasl_settings_reach_both_clients() -> None:
    settings = Settings(
        kafka_bootstrap_servers="k1:9093,k2:9093",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="bw",
        kafka_sasl_password="pw",
    )
    for config in (client_config(settings), aiokafka_config(settings)):
        assert config["bootstrap_servers"] == ["k1:9093", "k2:9093"]
        assert config["security_protocol"] == "SASL_PLAINTEXT"
        assert config["sasl_mechanism"] == "SCRAM-SHA-512"
        assert config["sasl_plain_username"] == "bw"
        assert config["sasl_plain_password"] == "pw"


@pytest.mark.integration  # runs openssl
def test_tls_files_for_kafka_python_and_a_context_for_aiokafka(tmp_path: Path) -> None:
    import ssl
    import subprocess

    ca = tmp_path / "ca.pem"
    key = tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test",
            "-keyout",
            str(key),
            "-out",
            str(ca),
        ],
        check=True,
        capture_output=True,
    )
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca)
    assert client_config(settings)["ssl_cafile"] == str(ca)
    assert "ssl_certfile" not in client_config(settings)
    assert isinstance(aiokafka_config(settings)["ssl_context"], ssl.SSLContext)
    assert "ssl_context" not in aiokafka_config(Settings())
