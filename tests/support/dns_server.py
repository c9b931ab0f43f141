"""A DNS server stand-in on a free loopback UDP port, answering MX questions as told.

Tests of the MX lookup (``delivery/mx_lookup.py``) and of a worker with
``BOUNCEWATCH_MX_LOOKUP`` use it instead of the network. The handler sees each question (id,
raw question section, lower-cased name) and returns the datagrams to send back, so a test
can answer, refuse, stay silent or send a stranger's answer first.
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


def answer(qid: int, question: bytes, mx: list[tuple[int, str]], rcode: int = 0) -> bytes:
    flags = 0x8180 | rcode
    header = struct.pack("!HHHHHH", qid, flags, 1, len(mx), 0, 0)
    body = b""
    for preference, host in mx:
        # owner as a pointer to the question name (offset 12), exchange spelled out
        rdata = struct.pack("!H", preference) + _name(host)
        body += b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 300, len(rdata)) + rdata
    return header + question + body


class StandInDns:
    """A UDP server on a free loopback port answering with whatever the test's handler says."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address: tuple[str, int] = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

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

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def zone_handler(zone: Mapping[str, list[tuple[int, str]]]) -> Handler:
    """Answers the names of ``zone`` with their MX records, any other name with NXDOMAIN."""

    def handle(qid: int, question: bytes, name: str) -> list[bytes]:
        if name in zone:
            return [answer(qid, question, zone[name])]
        return [answer(qid, question, [], rcode=3)]

    return handle
