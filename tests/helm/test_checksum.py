"""The rules checksum annotation rolls the worker pods when, and only when, the rules change."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from .chart import render, rendered_case

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration

RULES_A = "rules.inline=rules: []\n"
RULES_B = "rules.inline=rules: [{name: x}]\n"


def _pod_annotations(sets: Sequence[str]) -> dict[str, str]:
    statefulset = render(sets=sets).one("StatefulSet")
    annotations: dict[str, str] = statefulset["spec"]["template"]["metadata"].get("annotations", {})
    return annotations


def test_inline_rules_checksum_follows_the_rules() -> None:
    first = _pod_annotations([RULES_A])["checksum/rules"]
    assert len(first) == 64
    assert _pod_annotations([RULES_A])["checksum/rules"] == first  # deterministic
    assert _pod_annotations([RULES_B])["checksum/rules"] != first
    unrelated = _pod_annotations([RULES_A, "replicaCount=3", "image.tag=9.9.9"])
    assert unrelated["checksum/rules"] == first


def test_full_case_mounts_the_inline_rules() -> None:
    rendered = rendered_case("full")
    (configmap,) = [
        m for m in rendered.of_kind("ConfigMap") if m["metadata"]["name"].endswith("-rules")
    ]
    statefulset = rendered.one("StatefulSet")
    pod = statefulset["spec"]["template"]
    assert "checksum/rules" in pod["metadata"]["annotations"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "rules"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert "gmail-deferrals" in configmap["data"]["rules.yaml"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["BOUNCEWATCH_RULES_FILE"] == "/etc/bouncewatch/rules/rules.yaml"


def test_existing_configmap_is_mounted_and_checksummed() -> None:
    rendered = rendered_case("existing-configmap")
    assert rendered.of_kind("ConfigMap") == []
    pod = rendered.one("StatefulSet")["spec"]["template"]
    # Looked up from the cluster at install/upgrade; `helm template` hashes an empty map.
    assert len(pod["metadata"]["annotations"]["checksum/rules"]) == 64
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "rules"]
    assert volume["configMap"] == {
        "name": "bouncewatch-rules",
        "items": [{"key": "production.yaml", "path": "production.yaml"}],
    }


def test_packaged_rules_need_no_configmap() -> None:
    rendered = rendered_case("default")
    pod = rendered.one("StatefulSet")["spec"]["template"]
    assert "checksum/rules" not in pod["metadata"].get("annotations", {})
    env = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert "BOUNCEWATCH_RULES_FILE" not in env
