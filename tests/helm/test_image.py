"""The Dockerfile, read statically (no container engine here): multi-stage, slim, non-root,
no compilers in the final stage, installed from wheels, `bouncewatch worker` by default, and
the same user id as the chart's security context."""

from __future__ import annotations

import json
import re
import tomllib

import yaml

from .chart import CHART, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found: list[tuple[str, str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(DOCKERFILE):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def test_multi_stage_on_a_slim_python_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert "-slim" in stage[0][1], stage[0]


def test_final_stage_has_no_compiler_and_runs_as_non_root() -> None:
    final = _stages()[-1]
    text = " ".join(rest for _, rest in final)
    for tool in ("build-essential", "gcc", "g++", "make ", "apt-get install"):
        assert tool not in text, f"{tool!r} in the final stage"
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(k == "COPY" and "--from=build" in rest for k, rest in final)


def test_installed_from_wheels_with_worker_as_default() -> None:
    build = " ".join(rest for _, rest in _stages()[0])
    assert "pip wheel" in build
    assert "--no-index" in build
    final = dict(_stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["bouncewatch"]
    assert json.loads(final["CMD"]) == ["worker"]


def test_image_user_matches_the_chart() -> None:
    final = _stages()[-1]
    uid, gid = [rest for keyword, rest in final if keyword == "USER"][-1].split(":")
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["fsGroup"] == int(gid)
    assert values["containerSecurityContext"]["runAsUser"] == int(uid)
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert f"BOUNCEWATCH_DATA_DIR={values['persistence']['mountPath']}" in env


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "tests", "helm"):
        assert entry in ignored
    assert "README.md" not in ignored  # pyproject's readme: needed to build the wheel


def test_image_version_label_follows_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    args = [rest for keyword, rest in _stages()[-1] if keyword == "ARG"]
    assert f"VERSION={pyproject['project']['version']}" in args


def _pip_commands(stage: list[tuple[str, str]]) -> list[str]:
    """Each `pip wheel` / `pip install` command of a stage's RUN instructions."""
    commands: list[str] = []
    for keyword, rest in stage:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            command = " ".join(command.split())
            if re.search(r"\bpip (wheel|install)\b", command):
                commands.append(command)
    return commands


def test_image_installs_exactly_the_runtime_lock() -> None:
    """Dependencies come from requirements.lock (exact versions, hash-checked); bouncewatch
    itself is added with --no-deps, and nothing is resolved against the index."""
    build = _stages()[0]
    copies = [rest for keyword, rest in build if keyword == "COPY"]
    assert any("requirements.lock" in rest.split() for rest in copies)
    commands = _pip_commands(build)
    locked = [c for c in commands if "-r requirements.lock" in c]
    assert locked and all("--require-hashes" in c for c in locked), commands
    for command in commands:
        if command in locked:
            continue
        # The rest only build or install what is already there, never a dependency.
        assert "--no-deps" in command, command
    installs = [c for c in commands if "pip install" in c]
    assert installs and all("--no-index" in c for c in installs), installs
    assert "pip check" in " ".join(rest for _, rest in build)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert not {"requirements.lock", "*.lock"} & set(ignored)
