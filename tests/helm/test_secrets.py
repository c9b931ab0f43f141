"""Credentials are referenced from existing Secrets, never inlined in the chart's output."""

from __future__ import annotations

import pytest

from .chart import Manifest, Rendered, containers, env_of, render_text, rendered_case, worker

SECRET_SETTINGS = (
    "BOUNCEWATCH_KAFKA_SASL_PASSWORD",
    "BOUNCEWATCH_SLACK_TOKEN",
    "BOUNCEWATCH_SLACK_WEBHOOK_URL",
    "BOUNCEWATCH_SMTP_PASSWORD",
)

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration
MOUNT = "/etc/bouncewatch/secrets"


def _projected_secrets(pod: Manifest) -> dict[str, dict[str, str]]:
    """Secret name -> {key: path} of the credentials volume."""
    found: dict[str, dict[str, str]] = {}
    for volume in pod.get("volumes", []):
        if volume["name"] != "credentials":
            continue
        for source in volume["projected"]["sources"]:
            secret = source["secret"]
            items = {item["key"]: item["path"] for item in secret["items"]}
            found.setdefault(secret["name"], {}).update(items)
    return found


def test_the_chart_never_creates_a_secret(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []


def test_secret_settings_are_files_never_values(rendered: Rendered) -> None:
    for _workload, pod in rendered.pod_specs():
        for container in containers(pod):
            env = env_of(container)
            for name in SECRET_SETTINGS:
                assert name not in env, f"{name} must come as {name}_FILE"
                if f"{name}_FILE" in env:
                    assert env[f"{name}_FILE"]["value"].startswith(MOUNT + "/")


def test_full_case_references_each_existing_secret() -> None:
    rendered = rendered_case("full")
    pod = rendered.one("StatefulSet")["spec"]["template"]["spec"]
    assert _projected_secrets(pod) == {
        "bouncewatch-kafka-sasl": {"password": "kafka/sasl-password"},
        "bouncewatch-kafka-tls": {
            "ca.crt": "kafka/ca.crt",
            "tls.crt": "kafka/tls.crt",
            "tls.key": "kafka/tls.key",
        },
        "bouncewatch-slack": {"token": "slack/token", "webhook-url": "slack/webhook-url"},
        "bouncewatch-smtp": {"password": "smtp/password"},
    }
    env = env_of(worker(rendered))
    assert env["BOUNCEWATCH_KAFKA_SASL_PASSWORD_FILE"]["value"] == f"{MOUNT}/kafka/sasl-password"
    assert env["BOUNCEWATCH_KAFKA_SSL_CAFILE"]["value"] == f"{MOUNT}/kafka/ca.crt"
    assert env["BOUNCEWATCH_KAFKA_SSL_CERTFILE"]["value"] == f"{MOUNT}/kafka/tls.crt"
    assert env["BOUNCEWATCH_KAFKA_SSL_KEYFILE"]["value"] == f"{MOUNT}/kafka/tls.key"
    assert env["BOUNCEWATCH_SLACK_TOKEN_FILE"]["value"] == f"{MOUNT}/slack/token"
    assert env["BOUNCEWATCH_SLACK_WEBHOOK_URL_FILE"]["value"] == f"{MOUNT}/slack/webhook-url"
    assert env["BOUNCEWATCH_SMTP_PASSWORD_FILE"]["value"] == f"{MOUNT}/smtp/password"
    mounts = {m["name"]: m for m in worker(rendered)["volumeMounts"]}
    assert mounts["credentials"] == {"name": "credentials", "mountPath": MOUNT, "readOnly": True}
    # Only the owner and the fsGroup may read the files.
    (credentials,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    assert credentials["projected"]["defaultMode"] == 0o440


def test_topics_job_gets_only_the_kafka_secrets() -> None:
    job = rendered_case("full").one("Job")
    pod = job["spec"]["template"]["spec"]
    assert set(_projected_secrets(pod)) == {"bouncewatch-kafka-sasl", "bouncewatch-kafka-tls"}
    env = env_of(pod["containers"][0])
    assert not {"BOUNCEWATCH_SLACK_TOKEN_FILE", "BOUNCEWATCH_SMTP_PASSWORD_FILE"} & set(env)


def test_default_mounts_no_credentials() -> None:
    pod = rendered_case("default").one("StatefulSet")["spec"]["template"]["spec"]
    assert _projected_secrets(pod) == {}
    assert "credentials" not in {
        m["name"] for m in worker(rendered_case("default"))["volumeMounts"]
    }


@pytest.mark.parametrize(
    "setting",
    [
        "slack.token=xoxb-not-a-real-token",
        "slack.webhookUrl=https://hooks.slack.com/services/T/B/X",
        "smtp.password=hunter2",
        "kafka.sasl.password=hunter2",
    ],
)
def test_there_is_no_value_to_inline_a_secret(setting: str) -> None:
    """The schema refuses secret values: there is no such value to set."""
    done = render_text(sets=[setting], check=False)
    assert done.returncode != 0
    assert "additional properties" in done.stderr
    assert setting.partition("=")[2] not in done.stdout


def test_sasl_needs_a_password_secret() -> None:
    done = render_text(
        sets=[
            "kafka.securityProtocol=SASL_SSL",
            "kafka.sasl.mechanism=PLAIN",
            "kafka.sasl.username=bouncewatch",
        ],
        check=False,
    )
    assert done.returncode != 0
    assert "kafka.sasl.existingSecret" in done.stderr
