"""`helm test`: a hook Pod that asks the release's Service for /readyz; and no `latest` tags."""

from __future__ import annotations

import pytest

from .chart import NAMESPACE, Manifest, Rendered, render, render_text, rendered_case

# Every test here renders the chart with the helm binary.
pytestmark = pytest.mark.integration


def _test_pods(rendered: Rendered) -> list[Manifest]:
    return [
        m
        for m in rendered.of_kind("Pod")
        if m["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]


def _metrics_service(rendered: Rendered) -> Manifest:
    headless = rendered.one("StatefulSet")["spec"]["serviceName"]
    (service,) = [s for s in rendered.of_kind("Service") if s["metadata"]["name"] != headless]
    return service


def test_a_test_hook_checks_readyz_of_the_service(rendered: Rendered) -> None:
    (pod,) = _test_pods(rendered)
    annotations = pod["metadata"]["annotations"]
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    service = _metrics_service(rendered)
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}/readyz"
    script = " ".join(container["command"] + container.get("args", []))
    assert url in script
    assert "wget" in script


def test_the_test_pod_runs_restricted(rendered: Rendered) -> None:
    (pod,) = _test_pods(rendered)
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"]["memory"]


def test_the_test_image_is_small_and_pinned(rendered: Rendered) -> None:
    (pod,) = _test_pods(rendered)
    image = pod["spec"]["containers"][0]["image"]
    assert "busybox" in image
    tag = image.rpartition(":")[2]
    assert "@sha256:" in image or (tag != "latest" and "/" not in tag), image


def test_the_network_policy_lets_the_test_pod_in() -> None:
    rendered = rendered_case("full")  # allowExternal: false
    (pod,) = _test_pods(rendered)
    labels = pod["metadata"]["labels"]
    (policy,) = rendered.of_kind("NetworkPolicy")
    web = policy["spec"]["ingress"][0]
    selectors = [peer["podSelector"]["matchLabels"] for peer in web["from"] if len(peer) == 1]
    assert any(selector.items() <= labels.items() for selector in selectors)


def test_the_test_pod_is_not_a_worker(rendered: Rendered) -> None:
    """Not selected by the Services, the PDB or the anti-affinity of the worker pods."""
    (pod,) = _test_pods(rendered)
    labels = pod["metadata"]["labels"]
    selector = rendered.one("StatefulSet")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= labels.items()


def test_the_test_pod_can_be_switched_off() -> None:
    assert _test_pods(render(sets=["tests.enabled=false"])) == []


def test_the_test_image_follows_its_values() -> None:
    rendered = render(
        sets=[
            "tests.image.registry=mirror.example.com",
            "tests.image.repository=library/busybox",
            "tests.image.tag=1.36.1",
        ]
    )
    (pod,) = _test_pods(rendered)
    assert pod["spec"]["containers"][0]["image"] == "mirror.example.com/library/busybox:1.36.1"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("image.tag=latest", "/image/tag"),
        ("image.tag=LATEST", "/image/tag"),
        ("tests.image.tag=latest", "/tests/image/tag"),
    ],
)
def test_schema_refuses_latest(setting: str, message: str) -> None:
    """`latest` changes under a running release: a restarted pod may run another version."""
    done = render_text(sets=[setting], check=False)
    assert done.returncode != 0, f"--set {setting} was accepted"
    assert message in done.stderr


def test_schema_still_takes_real_tags() -> None:
    for tag in ("0.1.0", "0.1.0-rc1", "latest-fix", "v1-latest"):
        assert render_text(sets=[f"image.tag={tag}"], check=False).returncode == 0, tag
