"""What the two broker launchers share: the child-process surface, Kafka protocol probes,
and loopback ports.

``bouncewatch.embedded_broker`` (Tansu, for ``bouncewatch dev``) and
``scripts/kafka_broker.py`` (Apache Kafka, for the tests and benchmarks) each run a broker
as a child process on a loopback port; :class:`BrokerProcess` is what a caller sees of
either. An accepted TCP connection does not prove that a broker serves Kafka requests, so
each launcher asks the broker itself (:func:`serves_kafka`, :func:`live_brokers`), with just
enough of the wire protocol to do so.

Standard library only: ``scripts/kafka_broker.py`` imports it before the project's
virtualenv exists.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from types import TracebackType
from typing import Self

__all__ = [
    "BrokerProcess",
    "api_versions",
    "free_loopback_ports",
    "live_brokers",
    "serves_kafka",
]


class BrokerProcess:
    """A broker in a child process on a loopback port: its address, its PID, whether it
    runs, and ``with`` (start, then stop however the block ends). Subclasses launch it."""

    #: The launcher's own error, raised when asked for what only a started broker has.
    error: type[Exception] = RuntimeError

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.startup_seconds: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients (kafka-python, aiokafka)."""
        return f"{self._host}:{self.port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise self.error("the broker is not started")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise self.error("the broker is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_API_METADATA = 3
_API_VERSIONS = 18
_CLIENT_ID = b"bouncewatch-probe"


def free_loopback_ports(count: int = 1) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (not reserved: a caller that
    loses the race to bind one retries with new ones)."""
    # Hold every socket until all are bound so the ports are distinct.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def _roundtrip(sock: socket.socket, header_and_body: bytes, correlation_id: int) -> bytes:
    sock.sendall(struct.pack(">i", len(header_and_body)) + header_and_body)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    payload = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", payload[:4])
    if got != correlation_id:
        raise ConnectionError(f"correlation id {got} != {correlation_id}")
    return payload[4:]


def _header(api_key: int, api_version: int, correlation_id: int, *, flexible: bool) -> bytes:
    head = struct.pack(">hhih", api_key, api_version, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    return head + (b"\x00" if flexible else b"")  # flexible headers end with empty tag fields


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    """The (lowest, highest) version of each API key the broker at ``sock`` serves."""
    # v0 is the one version every broker answers, whatever it supports.
    body = _roundtrip(sock, _header(_API_VERSIONS, 0, 1, flexible=False), 1)
    error, count = struct.unpack(">hi", body[:6])
    if error != 0:
        raise ConnectionError(f"ApiVersions error code {error}")
    ranges = {}
    for i in range(count):
        key, low, high = struct.unpack(">hhh", body[6 + 6 * i : 12 + 6 * i])
        ranges[key] = (low, high)
    return ranges


def serves_kafka(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether ``host:port`` answers a Kafka ApiVersions request without error."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            api_versions(sock)
    except (OSError, struct.error):
        return False
    return True


def live_brokers(host: str, port: int, timeout: float = 3.0) -> int:
    """How many live (unfenced) brokers ``host:port`` reports; raise if it is not serving.

    ApiVersions alone is not enough for Apache Kafka: a KRaft broker answers it before it
    has registered with its controller, and until then topic creation fails with "0
    broker(s) registered".
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        low, high = api_versions(sock).get(_API_METADATA, (0, -1))
        if low <= 12 <= high:
            # v12 body: topics=[] (compact array, length+1), no auto-create, no authz ops.
            request = _header(_API_METADATA, 12, 2, flexible=True) + b"\x01\x00\x00\x00"
            body = _roundtrip(sock, request, 2)
            _, pos = _read_uvarint(body, 0)  # response header v1: tagged fields
            brokers_plus_one, _ = _read_uvarint(body, pos + 4)  # skip throttle_time_ms
            return brokers_plus_one - 1
        if low <= 4 <= high:
            # v4 body: topics=[] (int32 length), allow_auto_topic_creation=false.
            request = _header(_API_METADATA, 4, 2, flexible=False) + b"\x00\x00\x00\x00\x00"
            body = _roundtrip(sock, request, 2)
            (brokers,) = struct.unpack(">i", body[4:8])
            return int(brokers)
        raise ConnectionError(
            f"broker supports no Metadata version this probe speaks: {low}..{high}"
        )
