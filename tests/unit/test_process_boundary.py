"""A test not marked integration cannot cross a process boundary (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from tests.conftest import ProcessBoundaryCrossed


def test_a_unit_test_cannot_start_a_process() -> None:
    with pytest.raises(ProcessBoundaryCrossed, match="child process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_unit_test_cannot_open_an_internet_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(ProcessBoundaryCrossed, match=r"socket\.bind"):
            sock.bind(("127.0.0.1", 0))
        with pytest.raises(ProcessBoundaryCrossed, match=r"socket\.sendto"):
            sock.sendto(b"x", ("127.0.0.1", 53))
    with pytest.raises(ProcessBoundaryCrossed, match=r"socket\.connect"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_an_event_loop_still_runs() -> None:
    # Its self-pipe is an AF_UNIX socket pair, which stays allowed.
    assert asyncio.run(asyncio.sleep(0, result=1)) == 1


@pytest.mark.integration
def test_an_integration_test_may() -> None:
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
