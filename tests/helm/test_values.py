"""values.yaml, its schema, its documentation and the chart metadata agree."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from .chart import CHART, ROOT, render_text

sys.path.insert(0, str(ROOT / "scripts"))

import helm_readme

VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))


def test_parameter_table_is_up_to_date() -> None:
    """README.md's table is generated from the @param comments: regenerate it with
    `python scripts/helm_readme.py` after changing values.yaml."""
    assert helm_readme.main(["--check"]) == 0


def test_every_value_has_a_param_comment() -> None:
    sections = helm_readme.parse((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert sum(len(s.params) for s in sections) > 100


def test_helm_readme_refuses_undocumented_values() -> None:
    with pytest.raises(helm_readme.ValuesDocError, match="b: no @param"):
        helm_readme.parse("## @section S\n## @param a The a\na: 1\nb: 2\n")
    with pytest.raises(helm_readme.ValuesDocError, match="no such value"):
        helm_readme.parse("## @section S\n## @param a The a\n## @param c Gone\na: 1\n")


def test_helm_readme_renders_a_table(tmp_path: Path) -> None:
    (tmp_path / "values.yaml").write_text(
        "## @section Things\n## @param a.b The b | pipe\na:\n  b: ''\n## @param c List\nc: [x]\n",
        encoding="utf-8",
    )
    (tmp_path / "README.md").write_text(
        f"# T\n{helm_readme.START_MARKER}\nold\n{helm_readme.END_MARKER}\n", encoding="utf-8"
    )
    assert helm_readme.main(["--chart", str(tmp_path), "--check"]) == 1
    assert helm_readme.main(["--chart", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert '| `a.b` | The b \\| pipe | `""` |' in text
    assert '| `c` | List | `["x"]` |' in text
    assert "old" not in text
    assert helm_readme.main(["--chart", str(tmp_path), "--check"]) == 0


def test_defaults_satisfy_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA)


def _schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        paths |= _schema_paths(sub, path)
    return paths


def _value_paths(values: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(values, dict):
        for key, sub in values.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            paths |= _value_paths(sub, path)
    return paths


def test_schema_covers_every_value() -> None:
    free_form = {"resources", "topicsJob.resources"}  # typed by Kubernetes itself
    missing = {
        path
        for path in _value_paths(VALUES) - _schema_paths(SCHEMA)
        if not any(path.startswith(f"{f}.") for f in free_form)
    }
    assert not missing, f"values without a schema entry: {sorted(missing)}"
    stale = _schema_paths(SCHEMA) - _value_paths(VALUES) - {"global"}
    stale = {p for p in stale if not any(p.startswith(f"{f}.") for f in free_form)}
    assert not stale, f"schema entries without a value: {sorted(stale)}"


def test_schema_closes_the_top_level() -> None:
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["properties"]) == set(VALUES) | {"global"}


@pytest.mark.integration  # runs helm
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=three", "/replicaCount"),
        ("typoedKey=1", "additional properties 'typoedKey' not allowed"),
        ("kafka.bootstrap=kafka:9092", "additional properties 'bootstrap' not allowed"),
        ("config.logLevel=LOUD", "/config/logLevel"),
        ("kafka.securityProtocol=TLS", "/kafka/securityProtocol"),
        ("persistence.enabled=maybe", "/persistence/enabled"),
        ("containerPorts.http=70000", "/containerPorts/http"),
        ("podManagementPolicy=Sometimes", "/podManagementPolicy"),
    ],
)
def test_schema_rejects_wrong_values(setting: str, message: str) -> None:
    done = render_text(sets=[setting], check=False)
    assert done.returncode != 0, f"--set {setting} was accepted"
    assert message in done.stderr


def test_app_version_follows_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == pyproject["project"]["version"]
    assert chart["apiVersion"] == "v2"


def test_ci_values_files_exist_for_each_feature() -> None:
    names = {p.name for p in (CHART / "ci").glob("*-values.yaml")}
    assert {"full-values.yaml", "emptydir-values.yaml", "existing-configmap-values.yaml"} <= names
