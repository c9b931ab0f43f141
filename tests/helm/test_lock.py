"""Dependencies are installed from lock files, so a new release of a dependency cannot
change a deployed image, a developer's virtualenv or CI without a commit that says so.

requirements.lock (the runtime dependencies and the rocksdb extra: what the image runs) and
requirements-dev.lock (the dev extra: what `make test`, and so CI, runs) pin every package,
dependencies of dependencies included, to one version with its hashes. `make lock` writes
them (uv pip compile, for Python 3.11 on Linux). The Dockerfile builds from the first, the
Makefile's virtualenv from the second, then adds bouncewatch itself with --no-deps.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .chart import ROOT

RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: The interpreter the locks are resolved for (the image's Python).
PYTHON = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: tuple[str, ...]


def _pins(path: Path) -> dict[str, Pin]:
    """Package -> pin of a lock file; every requirement must be `name==version` with hashes."""
    text = path.read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    pins: dict[str, Pin] = {}
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --hash=")
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", spec.strip())
        assert match, f"{path.name}: not an exact pin: {line!r}"
        hashes = tuple(option.strip() for option in options)
        assert hashes and all(h.startswith("sha256:") for h in hashes), f"{path.name}: {spec}"
        pins[canonicalize_name(match[1])] = Pin(Version(match[2]), hashes)
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    for extra in extras:
        found += [Requirement(text) for text in project["optional-dependencies"][extra]]
    return [r for r in found if r.marker is None or r.marker.evaluate(PYTHON)]


def _closure(pins: dict[str, Pin], roots: list[Requirement]) -> None:
    """Every root requirement is pinned, to a version its specifier allows."""
    for requirement in roots:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not locked"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"{requirement}: locked at {pins[name].version}"
        )


@pytest.mark.parametrize(("lock", "extras"), [(RUNTIME_LOCK, ("rocksdb",)), (DEV_LOCK, ("dev",))])
def test_lock_pins_every_dependency(lock: Path, extras: tuple[str, ...]) -> None:
    pins = _pins(lock)
    _closure(pins, _requirements(*extras))
    assert canonicalize_name(PYPROJECT["project"]["name"]) not in pins
    # Dependencies of dependencies are pinned too (faust-streaming brings aiokafka, ...).
    assert {"aiokafka", "mode-streaming", "aiohttp"} <= set(pins)


def test_locks_are_written_by_make_lock() -> None:
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        header = lock.read_text(encoding="utf-8").splitlines()[:3]
        assert any("make lock" in line for line in header), f"{lock.name}: {header}"
    assert re.search(r"^lock:", MAKEFILE, re.MULTILINE)
    recipe = _recipe("lock")
    assert "--python-version 3.11" in recipe
    assert "--generate-hashes" in recipe
    assert "requirements.lock" in recipe and "requirements-dev.lock" in recipe


def test_tests_run_what_the_image_ships() -> None:
    """A package in both locks has one version: the dev lock is resolved within the runtime
    lock, so the tests exercise the versions the image runs."""
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert set(runtime) <= set(dev)
    different = {n: (runtime[n].version, dev[n].version) for n in runtime if runtime[n] != dev[n]}
    assert not different


def _variables() -> dict[str, str]:
    """The Makefile's simple variable definitions (NAME := value, NAME = value)."""
    joined = re.sub(r"\\\n\s*", " ", MAKEFILE)
    found: dict[str, str] = {}
    for match in re.finditer(r"^([A-Z_]+)\s*[:?]?=\s*(.*)$", joined, re.MULTILINE):
        found[match[1]] = match[2].strip()
    return found


def _expand(text: str) -> str:
    """Expand $(NAME) of the Makefile's own variables, recursively (others stay as they are)."""
    variables = _variables()
    for _ in range(5):
        text = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m[1], m[0]), text)
    return text


def _recipe(target: str) -> str:
    """The commands of one Makefile rule (continuation lines joined, variables expanded)."""
    lines = MAKEFILE.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:", line):
            body: list[str] = []
            for command in lines[i + 1 :]:
                if not command.startswith("\t"):
                    break
                body.append(command.strip())
            return _expand(re.sub(r"\\\s+", " ", "\n".join(body)))
    raise AssertionError(f"no rule {target!r} in the Makefile")


def test_virtualenv_installs_from_the_dev_lock() -> None:
    """The rule `make test` (and CI) builds the virtualenv with, and its stamp."""
    # The stamp's name hashes the lock: a changed lock installs again.
    assert "requirements-dev.lock" in _expand("$(STAMP)")
    rule = re.search(r"^\$\(STAMP\)\s*:(.*)$", MAKEFILE, re.MULTILINE)
    assert rule
    assert "requirements-dev.lock" in _expand(rule[1])
    recipe = _recipe("$(STAMP)")
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    from_lock = [line for line in installs if "-r requirements-dev.lock" in line]
    assert from_lock and "--require-hashes" in from_lock[0]
    project = [line for line in installs if "-e ." in line]
    assert project and all("--no-deps" in line for line in project)
    assert recipe.index(from_lock[0]) < recipe.index(project[0])
    # Nothing else is resolved at install time: every other install is an exact pin.
    for line in installs:
        if line in from_lock or line in project:
            continue
        assert re.search(r"pip install( -q)? \S+==\S+$", line), line
