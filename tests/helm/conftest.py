"""Fixtures of the chart tests: each values case is rendered once per session."""

from __future__ import annotations

import pytest

from .chart import CASES, Rendered, render

_RENDERED: dict[str, Rendered] = {}


def rendered_case(case: str) -> Rendered:
    """The chart rendered with one values case, cached for the session."""
    if case not in _RENDERED:
        _RENDERED[case] = render(CASES[case])
    return _RENDERED[case]


@pytest.fixture(params=sorted(CASES), scope="session")
def case(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def rendered(case: str) -> Rendered:
    return rendered_case(case)
