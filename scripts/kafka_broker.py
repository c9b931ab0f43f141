#!/usr/bin/env python3
"""A throwaway single-node Apache Kafka 4.x broker (KRaft) for integration tests.

The broker's jars come from Maven Central through ``mvn`` (the only registry this project can
reach that carries Kafka), are cached per version, and run straight from that classpath: no
tarball, no shell wrappers, no Docker.

As a module (stdlib only, so it works before the project's venv exists; the Kafka protocol
probe, the port helpers and the child-process surface are ``bouncewatch/broker_process.py``,
shared with the embedded broker)::

    from kafka_broker import KafkaBroker
    with KafkaBroker() as broker:
        print(broker.bootstrap_servers)

As a script::

    python scripts/kafka_broker.py provision   # fill the cache, print its path
    python scripts/kafka_broker.py run         # start a broker until SIGINT/SIGTERM

Environment: ``BOUNCEWATCH_KAFKA_VERSION`` (default below), ``BOUNCEWATCH_CACHE_DIR``
(default ``~/.cache/bouncewatch``).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Self

try:
    from bouncewatch.broker_process import BrokerProcess, free_loopback_ports, live_brokers
except ImportError:  # run as a script from a checkout, before the project is installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bouncewatch.broker_process import BrokerProcess, free_loopback_ports, live_brokers

DEFAULT_KAFKA_VERSION = "4.4.0"
# Not "scripts/kafka/": with scripts/ on sys.path (tests, mypy) such a directory is a
# namespace package that shadows kafka-python for mypy.
POM = Path(__file__).resolve().parent / "kafka-broker" / "pom.xml"
MARKER_NAME = "COMPLETE"

# Generous because a cold run downloads ~45 MB of jars (and the Maven plugin's own
# dependencies) on a machine that may be shared.
PROVISION_TIMEOUT_S = 900.0
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0

# Kafka's own defaults assume a production box (1 GB heap); tests need far less, and the CI
# machine is shared. MaxGCPauseMillis mirrors kafka-run-class.sh.
BROKER_JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
# The storage tool lives for a second: stop the JIT at C1 and use the cheapest collector.
TOOL_JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
BROKER_MAIN = "kafka.Kafka"

# Logs go to the console appender, which the broker's stdout redirect turns into a file: one
# file then also holds JVM crashes and anything printed before log4j is configured.
LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# Per-request, per-segment and full-config dumps bury what matters when a test fails.
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.log.name = org.apache.kafka.storage.internals.log
logger.log.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    """Provisioning or running the test broker failed."""


class MissingToolError(KafkaBrokerError):
    """A required executable (``java`` or ``mvn``) is not installed."""


# --------------------------------------------------------------------------- provisioning


def kafka_version() -> str:
    return os.environ.get("BOUNCEWATCH_KAFKA_VERSION", "").strip() or DEFAULT_KAFKA_VERSION


def cache_root() -> Path:
    configured = os.environ.get("BOUNCEWATCH_CACHE_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "bouncewatch"


def kafka_home(version: str | None = None) -> Path:
    return cache_root() / f"kafka-{version or kafka_version()}"


def _require(tool: str, install_hint: str) -> str:
    found = shutil.which(tool)
    if found is None and tool == "java" and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        found = str(candidate) if candidate.is_file() else None
    if found is None:
        raise MissingToolError(f"`{tool}` not found on PATH: {install_hint}")
    return found


def _java() -> str:
    return _require(
        "java",
        "Kafka 4.x needs a Java 17+ runtime; install one, e.g. "
        "`apt-get install openjdk-17-jre-headless`.",
    )


def _mvn() -> str:
    return _require(
        "mvn",
        "the broker's jars are fetched from Maven Central with Maven; install it, e.g. "
        "`apt-get install maven` (it also needs a JDK 17+).",
    )


def _is_complete(home: Path) -> bool:
    marker = home / MARKER_NAME
    try:
        jars = json.loads(marker.read_text())["jars"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    # Someone deleting one jar from the cache must not give a broker that dies at start-up.
    libs = home / "libs"
    return bool(jars) and all((libs / name).is_file() for name in jars)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Parallel test sessions (or xdist workers) may provision the same version at once.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(text: str, lines: int = 40) -> str:
    # Maven 3.8 emits colour resets even with -B and style.color=never.
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def provision(version: str | None = None, *, maven_repo: Path | None = None) -> Path:
    """Make sure the jars for Kafka ``version`` are cached; return the ``libs`` directory.

    A complete cache returns at once without running Maven. ``maven_repo`` overrides Maven's
    local repository (``~/.m2/repository`` by default), e.g. to measure a cold download.
    """
    version = version or kafka_version()
    home = kafka_home(version)
    libs = home / "libs"
    if _is_complete(home):
        return libs
    mvn = _mvn()
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock"):
        if _is_complete(home):
            return libs
        (home / MARKER_NAME).unlink(missing_ok=True)
        # Copy into a staging dir and rename, so a killed run never looks like a full cache.
        staging = Path(tempfile.mkdtemp(prefix="libs.staging.", dir=home))
        try:
            cmd = [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dkafka.version={version}",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ]
            if maven_repo is not None:
                cmd.append(f"-Dmaven.repo.local={maven_repo}")
            try:
                done = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=PROVISION_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise KafkaBrokerError(
                    f"mvn did not finish within {PROVISION_TIMEOUT_S:.0f}s resolving "
                    f"org.apache.kafka:kafka_2.13:{version}"
                ) from exc
            if done.returncode != 0:
                raise KafkaBrokerError(
                    f"mvn failed (exit {done.returncode}) resolving "
                    f"org.apache.kafka:kafka_2.13:{version}; is Maven Central reachable and "
                    f"is {version} a published release?\n{_tail(done.stdout)}"
                )
            jars = sorted(p.name for p in staging.glob("*.jar"))
            if f"kafka_2.13-{version}.jar" not in jars:
                raise KafkaBrokerError(f"mvn succeeded but kafka_2.13-{version}.jar is missing")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (home / MARKER_NAME).write_text(json.dumps({"version": version, "jars": jars}, indent=1))
    return libs


def version_of_libs(libs: Path) -> str:
    """The Kafka version a provisioned classpath holds, read from the core jar's name."""
    for jar in libs.glob("kafka_2.13-*.jar"):
        match = re.fullmatch(r"kafka_2\.13-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    raise KafkaBrokerError(f"no kafka_2.13-*.jar in {libs}")


# --------------------------------------------------------------------------- the broker

_LIVE: set[KafkaBroker] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_live() -> None:
    with _LIVE_LOCK:
        brokers = list(_LIVE)
    for broker in brokers:
        with contextlib.suppress(Exception):
            broker.stop()


atexit.register(_stop_all_live)


def _cluster_id() -> str:
    # Kafka's Uuid: 16 random bytes, URL-safe base64 without padding. Kafka itself never
    # hands out one starting with "-" because command-line parsers take it for a flag.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _die_with_parent() -> None:
    """In the broker child: receive SIGTERM when the process that started it dies.

    atexit never runs if the test process is SIGKILLed (e.g. by a CI timeout); without this
    the broker, in its own session, would outlive it and keep its ports and memory.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


class KafkaBroker(BrokerProcess):
    """A single-node KRaft broker+controller in a fresh temporary directory.

    ``start()`` (or ``with``) provisions the jars if needed, formats storage, launches the
    JVM in its own process group and returns once the broker is registered and serving.
    ``stop()`` ends exactly that process (SIGTERM, then SIGKILL) and deletes the directory.
    """

    error = KafkaBrokerError

    def __init__(
        self,
        version: str | None = None,
        *,
        libs: Path | None = None,
        jvm_opts: tuple[str, ...] = BROKER_JVM_OPTS,
        extra_config: Mapping[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        die_with_parent: bool = True,
    ) -> None:
        super().__init__()
        self.version = version or (version_of_libs(libs) if libs else kafka_version())
        self._libs = libs
        self._jvm_opts = jvm_opts
        self._extra_config = dict(extra_config or {})
        self._startup_timeout = startup_timeout
        self._die_with_parent = die_with_parent
        self._log: IO[bytes] | None = None
        self._workdir: Path | None = None
        self.controller_port: int | None = None

    # -- public surface

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise KafkaBrokerError("broker not started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except (OSError, KafkaBrokerError):
            return "(no broker log)"

    def reported_version(self) -> str | None:
        """The version the running broker logged at start-up ("Kafka version: x.y.z")."""
        with contextlib.suppress(OSError, KafkaBrokerError):
            match = re.search(r"Kafka version: (\S+)", self.log_path.read_text(errors="replace"))
            if match:
                return match.group(1)
        return None

    def start(self) -> Self:
        if self._proc is not None:
            raise KafkaBrokerError("broker already started")
        java = _java()
        libs = self._libs or provision(self.version)
        started = time.monotonic()
        # The ports are free when picked but not reserved; losing that race is rare enough
        # that retrying with new ports beats a reservation scheme.
        for attempt in range(3):
            try:
                self._launch(java, libs)
                self._await_ready()
                break
            except _PortTaken:
                self._cleanup(kill=True)
                if attempt == 2:
                    raise KafkaBrokerError("could not bind free ports after 3 tries") from None
            except BaseException:
                self._cleanup(kill=True)
                raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout`` s, then remove its directory."""
        self._cleanup(kill=False, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the broker at once (no controlled shutdown), then remove its directory."""
        self._cleanup(kill=True)

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port else "not started"
        return f"<KafkaBroker Apache Kafka {self.version} {where}>"

    # -- internals

    def _config(self, workdir: Path, port: int, controller_port: int) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            # Dynamic quorum (KIP-853), paired with `format --standalone`: the 4.x default.
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
            "log.dirs": str(workdir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # 50 partitions by default: creating them delays the first consumer group join.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        settings.update(self._extra_config)
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _launch(self, java: str, libs: Path) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="bouncewatch-kafka-"))
        self._workdir = workdir
        port, controller_port = free_loopback_ports(2)
        config = workdir / "server.properties"
        config.write_text(self._config(workdir, port, controller_port))
        log4j = workdir / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES)
        classpath = str(libs / "*")
        logging_opt = f"-Dlog4j2.configurationFile={log4j}"

        format_cmd = [
            java,
            *TOOL_JVM_OPTS,
            logging_opt,
            "-cp",
            classpath,
            STORAGE_TOOL_MAIN,
            "format",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(config),
            "--standalone",
        ]
        try:
            formatted = subprocess.run(
                format_cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerError("kafka storage format did not finish within 120s") from exc
        if formatted.returncode != 0:
            raise KafkaBrokerError(
                f"kafka storage format failed (exit {formatted.returncode}):\n"
                f"{_tail(formatted.stdout)}"
            )

        self._log = (workdir / "broker.log").open("wb")
        self._spawn(java, libs)
        self._port, self.controller_port = port, controller_port
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _spawn(self, java: str, libs: Path) -> None:
        """Start the broker process on the formatted directory ``_launch`` prepared."""
        assert self._workdir is not None and self._log is not None
        config = self._workdir / "server.properties"
        logging_opt = f"-Dlog4j2.configurationFile={self._workdir / 'log4j2.properties'}"
        self._proc = subprocess.Popen(
            [java, *self._jvm_opts, logging_opt, "-cp", str(libs / "*"), BROKER_MAIN, str(config)],
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if self._die_with_parent else None,
        )

    def outage(self, seconds: float) -> None:
        """SIGKILL the broker (its data stays), wait ``seconds``, and start it again on the
        same ports and data: what clients see of a broker that crashed and came back."""
        if self._proc is None or self._proc.poll() is not None:
            raise KafkaBrokerError("broker not running")
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=30)
        time.sleep(seconds)
        self._spawn(_java(), self._libs or provision(self.version))
        self._await_ready()

    def _await_ready(self) -> None:
        assert self._proc is not None and self._port is not None
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                if "Address already in use" in tail or "BindException" in tail:
                    raise _PortTaken
                raise KafkaBrokerError(
                    f"Kafka broker exited with code {self._proc.returncode} during start-up; "
                    f"last lines of {self.log_path}:\n{tail}"
                )
            try:
                if live_brokers("127.0.0.1", self._port, timeout=2.0) >= 1:
                    return
                last_error = "broker not yet registered (0 live brokers)"
            except (OSError, ConnectionError, struct.error, IndexError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise KafkaBrokerError(
            f"Kafka broker (pid {self._proc.pid}) not serving on {self.bootstrap_servers} "
            f"after {self._startup_timeout:.0f}s ({last_error}); last lines of "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def _cleanup(self, *, kill: bool, timeout: float = STOP_TIMEOUT_S) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # Popen.send_signal re-checks that the child was not reaped, so the signal cannot
            # reach a recycled PID; the broker never forks, so its own PID is all there is.
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        with _LIVE_LOCK:
            _LIVE.discard(self)


class _PortTaken(Exception):
    pass


# --------------------------------------------------------------------------- CLI


def _cmd_provision(args: argparse.Namespace) -> int:
    started = time.monotonic()
    libs = provision(args.kafka_version, maven_repo=args.maven_repo)
    elapsed = time.monotonic() - started
    jars = len(list(libs.glob("*.jar")))
    print(f"Apache Kafka {version_of_libs(libs)}: {libs} ({jars} jars, {elapsed:.1f}s)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    broker = KafkaBroker(args.kafka_version)
    try:
        broker.start()
        print(
            f"bootstrap={broker.bootstrap_servers} pid={broker.pid} version={broker.version} "
            f"startup={broker.startup_seconds:.1f}s log={broker.log_path}",
            flush=True,
        )
        while not stop_requested.wait(0.5):
            if not broker.running:
                print(f"broker exited unexpectedly:\n{broker.log_tail()}", file=sys.stderr)
                return 1
    finally:
        was_running = broker.running
        started = time.monotonic()
        broker.stop()
        if was_running:
            print(f"stopped in {time.monotonic() - started:.1f}s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--kafka-version",
        default=None,
        help=f"default: $BOUNCEWATCH_KAFKA_VERSION or {DEFAULT_KAFKA_VERSION}",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prov = commands.add_parser("provision", help="fetch the broker's jars into the cache")
    prov.add_argument(
        "--maven-repo", type=Path, default=None, help="Maven local repository to use instead"
    )
    prov.set_defaults(handler=_cmd_provision)
    run = commands.add_parser("run", help="start a broker, stop it on SIGINT/SIGTERM")
    run.set_defaults(handler=_cmd_run)
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
