"""The replay report in a real browser: headless Chromium opens the HTML file (no network
needed: everything is inline), runs its scripts, and every chart is drawn.

Chromium is Debian's package, installed on first use by tests/report/ensure_chromium.sh
(CI runs as root on a fresh machine). The screenshot is kept as a test artifact in
``$BOUNCEWATCH_TEST_ARTIFACTS`` (default build/test-artifacts/report/).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import pytest

from alerts.report import RuleRun, build_report, replay_rules
from alerts.rules import load_default_rules, parse_rules
from bouncewatch.commands.replay import read_observations

from .synthetic import write
from .test_report import LOOSE

#: The first use may install Chromium with apt: more than pytest's 300 s default, on a slow mirror.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
ENSURE_CHROMIUM = ROOT / "tests" / "report" / "ensure_chromium.sh"
ARTIFACTS = Path(os.environ.get("BOUNCEWATCH_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


@functools.cache
def chromium() -> str:
    done = subprocess.run(
        ["bash", str(ENSURE_CHROMIUM)], capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"tests/report/ensure_chromium.sh failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def headless(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            # Let the page's scripts run (and draw every chart) before dumping or shooting.
            "--virtual-time-budget=20000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A two-day report comparing the default rules with a looser set; (file, charts)."""
    tmp = tmp_path_factory.mktemp("report")
    events = tmp / "two-days.jsonl.gz"
    write(events, days=2, per_minute=60)
    observations, names, _ = read_observations(str(events), "auto", "never")
    observations.sort(key=lambda o: o.t)
    default, loose = load_default_rules(), parse_rules(LOOSE)
    runs = [
        RuleRun("A", "default rules", default, replay_rules(default, names, observations)),
        RuleRun("B", "loose.yaml", loose, replay_rules(loose, names, observations)),
    ]
    page = build_report(observations, runs, names, source="two-days.jsonl.gz")
    path = tmp / "report.html"
    path.write_text(page, encoding="utf-8")
    return path, page.count("data-chart='")


def test_every_chart_renders(report: tuple[Path, int], tmp_path: Path) -> None:
    path, charts = report
    assert charts >= 8
    done = headless(path.as_uri() + "#render-all", tmp_path / "profile", "--dump-dom")
    dom = done.stdout
    assert done.returncode == 0 and "</html>" in dom, done.stderr[-2000:]
    drawn = len(re.findall(r'data-drawn="1"', dom))
    plots = len(re.findall(r'class="[^"]*\bjs-plotly-plot\b', dom))
    svgs = len(re.findall(r'<svg class="main-svg"', dom))
    assert drawn == charts, f"{drawn} of {charts} charts drawn"
    assert plots == charts and svgs >= charts, (plots, svgs)
    # Data reached the plots: lines of the metric and the shaded alert periods.
    assert dom.count('class="scatterlayer') >= charts
    assert "shapelayer" in dom


def test_screenshot(report: tuple[Path, int], tmp_path: Path) -> None:
    path, _ = report
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = headless(
        path.as_uri(),
        tmp_path / "profile",
        "--window-size=1400,2000",
        f"--screenshot={shot}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A drawn page is far from blank: a screenshot of text alone compresses to a few KB.
    assert len(data) > 50_000, len(data)
