"""``bouncewatch dev --demo`` as a newcomer runs it: an alert reaches the console, and
SIGTERM stops the worker, the traffic and the embedded broker, leaving nothing running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.worker import REPO

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: it only waits for its parent to read its status.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.long(75)
def test_dev_demo_alerts_on_the_console_and_stops_cleanly(tmp_path: Path) -> None:
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOUNCEWATCH_")},
        "BOUNCEWATCH_WEB_PORT": str(free_port()),
        "BOUNCEWATCH_WEB_HOST": "127.0.0.1",
    }
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bouncewatch.cli", "dev", "--demo"],
            cwd=tmp_path,  # a newcomer's directory: nothing of the checkout's state
            env={**env, "PYTHONPATH": str(REPO)},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    broker_pid: int | None = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and "[FIRING" not in out.read_text(errors="replace"):
            assert proc.poll() is None, err.read_text(errors="replace")[-3000:]
            time.sleep(1)
        console = out.read_text(errors="replace")
        assert "[FIRING" in console, err.read_text(errors="replace")[-3000:]
        assert "Gmail" in console and "Recommended action" in console
        match = re.search(r"\(pid (\d+)\)", err.read_text(errors="replace"))
        assert match, "dev did not print the broker's pid"
        broker_pid = int(match.group(1))
        assert _alive(broker_pid)

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while _alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(broker_pid), "the embedded broker outlived bouncewatch dev"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if broker_pid is not None and _alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)
