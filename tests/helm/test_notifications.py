"""The notifications file (receivers and routes, BOUNCEWATCH_NOTIFY_FILE) through the chart:
inline in a ConfigMap of the chart or from an existing ConfigMap, mounted read-only, named by
the environment, and rolled by a checksum annotation like the rules file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from .chart import Manifest, Rendered, env_of, render, render_text, rendered_case, worker

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration

NOTIFY_A = "receivers: [{name: ops, slack_configs: [{}]}]\nroute: {receiver: ops}\n"
NOTIFY_B = "receivers: [{name: oncall, slack_configs: [{}]}]\nroute: {receiver: oncall}\n"
RULES = "rules: []\n"


def _values(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _inline(tmp_path: Path, notify: str, extra: str = "") -> Path:
    indented = "".join(f"    {line}\n" for line in notify.splitlines())
    return _values(tmp_path, "notify.yaml", f"notifications:\n  inline: |\n{indented}{extra}")


def _pod(rendered: Rendered) -> Manifest:
    pod: Manifest = rendered.one("StatefulSet")["spec"]["template"]
    return pod


def _annotations(rendered: Rendered) -> dict[str, str]:
    annotations: dict[str, str] = _pod(rendered)["metadata"].get("annotations", {})
    return annotations


def _configmaps(rendered: Rendered) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in rendered.of_kind("ConfigMap")}


def test_inline_notifications_are_mounted_and_named(tmp_path: Path) -> None:
    rendered = render(_inline(tmp_path, NOTIFY_A))
    configmap = _configmaps(rendered)["bw-bouncewatch-notifications"]
    assert configmap["data"] == {"notify.yaml": NOTIFY_A}
    pod = _pod(rendered)["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "notifications"]
    assert volume["configMap"] == {
        "name": "bw-bouncewatch-notifications",
        "items": [{"key": "notify.yaml", "path": "notify.yaml"}],
    }
    mounts = {m["name"]: m for m in worker(rendered)["volumeMounts"]}
    assert mounts["notifications"] == {
        "name": "notifications",
        "mountPath": "/etc/bouncewatch/notifications",
        "readOnly": True,
    }
    env = env_of(worker(rendered))
    assert env["BOUNCEWATCH_NOTIFY_FILE"]["value"] == "/etc/bouncewatch/notifications/notify.yaml"
    assert len(_annotations(rendered)["checksum/notifications"]) == 64


def test_notifications_checksum_follows_the_file(tmp_path: Path) -> None:
    def checksum(values: Path, sets: Sequence[str] = ()) -> str:
        return _annotations(render(values, sets))["checksum/notifications"]

    first = checksum(_inline(tmp_path, NOTIFY_A))
    assert checksum(_inline(tmp_path, NOTIFY_A)) == first  # deterministic
    assert checksum(_inline(tmp_path, NOTIFY_B)) != first
    unrelated = checksum(_inline(tmp_path, NOTIFY_A), ["replicaCount=3", "image.tag=9.9.9"])
    assert unrelated == first
    # The rules and the notifications roll the pods independently.
    with_rules = render(_inline(tmp_path, NOTIFY_A, f"rules:\n  inline: '{RULES.strip()}'\n"))
    assert _annotations(with_rules)["checksum/notifications"] == first
    assert "checksum/rules" in _annotations(with_rules)


def test_existing_configmap_is_mounted_and_checksummed() -> None:
    rendered = render(
        sets=[
            "notifications.existingConfigMap=team-routing",
            "notifications.key=routes.yaml",
            "notifications.mountPath=/etc/routing",
        ]
    )
    assert rendered.of_kind("ConfigMap") == []
    # Looked up from the cluster at install/upgrade; `helm template` hashes an empty map.
    assert len(_annotations(rendered)["checksum/notifications"]) == 64
    (volume,) = [v for v in _pod(rendered)["spec"]["volumes"] if v["name"] == "notifications"]
    assert volume["configMap"] == {
        "name": "team-routing",
        "items": [{"key": "routes.yaml", "path": "routes.yaml"}],
    }
    env = env_of(worker(rendered))
    assert env["BOUNCEWATCH_NOTIFY_FILE"]["value"] == "/etc/routing/routes.yaml"


def test_default_routes_from_the_settings_need_no_file() -> None:
    rendered = rendered_case("default")
    assert "checksum/notifications" not in _annotations(rendered)
    assert "BOUNCEWATCH_NOTIFY_FILE" not in env_of(worker(rendered))
    volumes = {v["name"] for v in _pod(rendered)["spec"]["volumes"]}
    assert "notifications" not in volumes


def test_full_case_routes_through_an_inline_file() -> None:
    rendered = rendered_case("full")
    configmaps = _configmaps(rendered)
    assert "receivers" in configmaps["bw-bouncewatch-notifications"]["data"]["notify.yaml"]
    assert "rules.yaml" in configmaps["bw-bouncewatch-rules"]["data"]
    assert {"checksum/rules", "checksum/notifications"} <= set(_annotations(rendered))


def test_inline_and_existing_configmap_are_exclusive(tmp_path: Path) -> None:
    values = _inline(tmp_path, NOTIFY_A, "  existingConfigMap: team-routing\n")
    done = render_text(values, check=False)
    assert done.returncode != 0
    assert "notifications.inline or notifications.existingConfigMap" in done.stderr


def test_schema_checks_the_notification_values() -> None:
    for setting, message in [
        ("notifications.key=a/b.yaml", "/notifications/key"),
        ("notifications.mountPath=relative", "/notifications/mountPath"),
        ("notifications.file=x", "additional properties 'file' not allowed"),
    ]:
        done = render_text(sets=[setting], check=False)
        assert done.returncode != 0, f"--set {setting} was accepted"
        assert message in done.stderr


def test_rules_and_notifications_need_directories_of_their_own() -> None:
    done = render_text(
        sets=[
            "rules.existingConfigMap=rules",
            "notifications.existingConfigMap=routing",
            "notifications.mountPath=/etc/bouncewatch/rules/",
        ],
        check=False,
    )
    assert done.returncode != 0
    assert "rules.mountPath and notifications.mountPath must differ" in done.stderr
