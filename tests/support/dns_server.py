"""A DNS server stand-in on a free loopback UDP port (and TCP, if asked), answering MX
questions as told.

Tests of the MX lookup (``delivery/mx_lookup.py``) and of a worker with
``BOUNCEWATCH_MX_LOOKUP`` use it instead of the network. The handler sees each question (id,
raw question section, lower-cased name) and returns the datagrams to send back, so a test
can answer, refuse, stay silent, truncate or send a stranger's answer first.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Mapping

Handler = Callable[[int, bytes, str], list[bytes]]


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\x00"


def _question(query: bytes) -> tuple[int, bytes, str]:
    (qid,) = struct.unpack_from("!H", query)
    offset, labels = 12, []
    while query[offset]:
        length = query[offset]
        labels.append(query[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length
    question = query[12 : offset + 5]
    return qid, question, ".".join(labels).lower()  # DNS names compare case-insensitively


def answer(
    qid: int, question: bytes, mx: list[tuple[int, str]], rcode: int = 0, *, truncated: bool = False
) -> bytes:
    flags = 0x8180 | rcode | (0x0200 if truncated else 0)
    header = struct.pack("!HHHHHH", qid, flags, 1, len(mx), 0, 0)
    body = b""
    for preference, host in mx:
        # owner as a pointer to the question name (offset 12), exchange spelled out
        rdata = struct.pack("!H", preference) + _name(host)
        body += b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 300, len(rdata)) + rdata
    return header + question + body


class StandInDns:
    """A UDP server on a free loopback port answering with whatever the test's handler says.

    With ``tcp_handler``, it also listens for TCP on the same port number, as a DNS server
    does, for the queries a client repeats over TCP after a truncated UDP answer.
    """

    def __init__(self, handler: Handler, tcp_handler: Handler | None = None) -> None:
        self.handler = handler
        self.tcp_handler = tcp_handler
        self.queries: list[str] = []
        self.tcp_queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address: tuple[str, int] = self.sock.getsockname()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self.listener: socket.socket | None = None
        if tcp_handler is not None:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(self.address)
            self.listener.listen()
            self.listener.settimeout(0.05)
            self._threads.append(threading.Thread(target=self._serve_tcp, daemon=True))
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            qid, question, name = _question(query)
            self.queries.append(name)
            for reply in self.handler(qid, question, name):
                self.sock.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        assert self.listener is not None and self.tcp_handler is not None
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                (size,) = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))
                qid, question, name = _question(conn.recv(size, socket.MSG_WAITALL))
                self.tcp_queries.append(name)
                for reply in self.tcp_handler(qid, question, name):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.sock.close()
        if self.listener is not None:
            self.listener.close()


def zone_handler(zone: Mapping[str, list[tuple[int, str]]]) -> Handler:
    """Answers the names of ``zone`` with their MX records, any other name with NXDOMAIN."""

    def handle(qid: int, question: bytes, name: str) -> list[bytes]:
        if name in zone:
            return [answer(qid, question, zone[name])]
        return [answer(qid, question, [], rcode=3)]

    return handle
