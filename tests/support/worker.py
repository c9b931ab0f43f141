"""A ``bouncewatch worker`` as a child process: started with its own settings, stopped exactly.

Integration tests run the worker as a user would, in its own process, so that SIGTERM,
SIGKILL and restarts are real. Each worker gets a free web port and its own data directory;
the PID is kept and only that process group is signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, env: dict[str, str], workdir: Path, name: str = "worker") -> None:
        self.name = name
        self.workdir = workdir
        self.web_port = free_port()
        self.log_path = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "BOUNCEWATCH_WEB_PORT": str(self.web_port),
            "BOUNCEWATCH_WEB_HOST": "127.0.0.1",
            "BOUNCEWATCH_DATA_DIR": str(workdir / f"{name}-data"),
            "BOUNCEWATCH_LOG_FORMAT": "text",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        #: Seconds a request to the web port may take (a worker answers between batches).
        self.request_timeout = 5.0

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bouncewatch.cli", "worker"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach only it
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.request_timeout) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        ctype = "json"
        try:
            return status, json.loads(body)
        except ValueError:
            ctype = "text"
        return status, body.decode() if ctype == "text" else body

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                status, _ = self.get("/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    def metrics(self) -> list[Sample]:
        """The samples of the worker's /metrics page."""
        _, text = self.get("/metrics")
        return parse_prometheus(str(text))

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` with these label values (0 when none)."""
        return metric_sum(self.metrics(), name, **labels)

    def wait_until(
        self,
        what: str,
        done: Callable[[], bool],
        timeout: float,
        state: Callable[[], str] = lambda: "",
    ) -> None:
        """Poll ``done`` until it holds; on timeout fail with ``state()`` and the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.25)
        raise AssertionError(
            f"{what}: not within {timeout:.0f}s. {state()}\n{self.name} log:\n{self.tail(40)}"
        )

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, a bounded wait for a clean leave, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL: the crash that recovery must survive."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


Sample = tuple[str, dict[str, str], float]


def parse_prometheus(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition (enough of the format for our metrics)."""
    out = []
    # Lines end at "\n" only: a label value may hold U+2028 or U+0085 (splitlines splits there).
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels: dict[str, str] = {}
        for part in rest.rstrip("}").split('",'):
            if "=" in part:
                k, _, v = part.partition("=")
                labels[k.strip()] = v.strip().strip('"')
        out.append((name, labels, float(value)))
    return out


def metric_sum(samples: list[Sample], name: str, **match: str) -> float:
    """The sum of the samples of ``name`` whose labels have the ``match`` values."""
    return sum(
        v
        for n, labels, v in samples
        if n == name and all(labels.get(k) == m for k, m in match.items())
    )


def metric_by(samples: list[Sample], name: str, label: str, **match: str) -> dict[str, float]:
    """The samples of ``name`` matching ``match``, summed per value of ``label``."""
    out: dict[str, float] = {}
    for n, labels, v in samples:
        if n == name and label in labels and all(labels.get(k) == m for k, m in match.items()):
            out[labels[label]] = out.get(labels[label], 0.0) + v
    return out


def isolated_env(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    *,
    input_partitions: int = 1,
    alert_partitions: int = 1,
    partitions: int = 2,
    **extra: str,
) -> dict[str, str]:
    """Settings for a worker with its own consumer group and topics on the test broker."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BOUNCEWATCH_APP_ID": f"bw-test-{suffix}",
        "BOUNCEWATCH_TOPIC_INPUT": new_topic(input_partitions, prefix="events"),
        "BOUNCEWATCH_TOPIC_DEAD_LETTER": new_topic(1, prefix="dlq"),
        "BOUNCEWATCH_TOPIC_ALERTS": new_topic(alert_partitions, prefix="alerts"),
        "BOUNCEWATCH_TOPIC_SILENCES": f"silences-{suffix}",
        "BOUNCEWATCH_TOPIC_PARTITIONS": str(partitions),
        # Our own format, stated: "auto" would call an object without its fields unknown.
        "BOUNCEWATCH_INPUT_FORMAT": "bouncewatch",
        "BOUNCEWATCH_EVALUATION_INTERVAL": "1",
        **extra,
    }
