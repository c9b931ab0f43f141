"""Generated files that are checked in must match what generates them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from schemas.export import OUT, rendered

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(rendered()))
def test_json_schema_is_current(name: str) -> None:
    path = OUT / name
    assert path.exists(), f"{path} missing: run `make schemas`"
    assert path.read_text(encoding="utf-8") == rendered()[name], f"{name} is stale: `make schemas`"


def test_readme_settings_table_is_current() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from update_readme import README, updated

    text = README.read_text(encoding="utf-8")
    assert "<!-- settings:start -->" in text
    assert updated(text) == text, "README settings table is stale: `make readme`"
