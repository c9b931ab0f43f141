"""Fixtures of the chart tests: each values case is rendered once per session."""

from __future__ import annotations

import pytest

from .chart import CASES, Rendered, rendered_case


@pytest.fixture(params=sorted(CASES), scope="session")
def case(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def rendered(case: str) -> Rendered:
    return rendered_case(case)
