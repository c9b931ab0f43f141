"""Optional cached DNS MX lookup, so custom domains resolve to their host even when events lack it.

Off by default: nothing here runs unless the service builds an ``MxCache``. ``MxCache.get``
never waits on the network: it answers from the cache (or None) and leaves a miss to a small
thread pool, which fills the cache for the events that follow. The stream is therefore never
held up by DNS, at the price of the first events of a new domain resolving without an MX.

The client is a minimal stdlib DNS-over-UDP MX query (RFC 1035) rather than a dnspython
dependency: one question type, the first answer that parses, an EDNS0 payload of 1232 bytes so
that MX sets fit without truncation, and no TCP fallback (a truncated answer is used for the
records it carries). It asks the recursive resolvers of /etc/resolv.conf unless told otherwise.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["DnsError", "MxCache", "lookup_mx", "system_nameservers"]

log = logging.getLogger(__name__)

Nameserver = tuple[str, int]

_TYPE_MX = 15
_TYPE_OPT = 41
_CLASS_IN = 1
_RCODE_NXDOMAIN = 3
_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: avoids IP fragmentation
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_MAX_POINTERS = 64


class DnsError(Exception):
    """The lookup failed for now (timeout, SERVFAIL, a malformed answer): worth retrying later."""


class _NotOurs(DnsError):
    """A datagram that answers some other query: ignored while ours may still come."""


def system_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Nameserver]:
    """The nameservers of resolv.conf, or the local resolver when there are none."""
    servers: list[Nameserver] = []
    try:
        for line in resolv_conf.read_text("utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                servers.append((fields[1].split("%")[0], 53))
    except OSError:
        pass
    return servers or [("127.0.0.1", 53)]


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"not a valid DNS name: {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name too long: {name!r}")
    return bytes(out)


def _build_query(query_id: int, name: str) -> bytes:
    header = _HEADER.pack(query_id, _FLAG_RD, 1, 0, 0, 1)
    question = _encode_name(name) + struct.pack("!HH", _TYPE_MX, _CLASS_IN)
    # EDNS0 OPT pseudo-record: root owner, type OPT, class = UDP payload size, ttl 0, no options
    opt = b"\x00" + struct.pack("!HHIH", _TYPE_OPT, _EDNS_PAYLOAD, 0, 0)
    return header + question + opt


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    """Decode a possibly compressed name; returns it and the offset just past it in place."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    while True:
        if offset >= len(message):
            raise DnsError("name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise DnsError("truncated compression pointer")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsError("compression pointer loop")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length & 0xC0:
            raise DnsError("unsupported label type")
        offset += 1
        if length == 0:
            break
        labels.append(message[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    return ".".join(labels).lower(), end if end is not None else offset


def _parse_response(message: bytes, query_id: int, name: str) -> list[tuple[int, str]]:
    """MX records of an answer as (preference, exchange), lowest preference first."""
    if len(message) < _HEADER.size:
        raise DnsError("short DNS message")
    rid, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(message)
    if rid != query_id or not flags & _FLAG_QR:
        raise _NotOurs("not the answer to our query")
    rcode = flags & 0x000F
    if rcode == _RCODE_NXDOMAIN:
        return []
    if rcode != 0:
        raise DnsError(f"DNS server answered rcode {rcode}")
    offset = _HEADER.size
    for _ in range(qdcount):
        qname, offset = _read_name(message, offset)
        if qname != name.rstrip(".").lower():
            raise DnsError(f"answer is for another name: {qname!r}")
        offset += 4
    records: list[tuple[int, str]] = []
    try:
        for _ in range(ancount):
            _, offset = _read_name(message, offset)
            rtype, rclass, _ttl, rdlength = _RR_FIXED.unpack_from(message, offset)
            offset += _RR_FIXED.size
            if offset + rdlength > len(message):
                raise DnsError("record runs past the end of the message")
            if rtype == _TYPE_MX and rclass == _CLASS_IN and rdlength >= 3:
                (preference,) = struct.unpack_from("!H", message, offset)
                exchange, _ = _read_name(message, offset + 2)
                if exchange:  # "." is the null MX of RFC 7505: the domain takes no mail
                    records.append((preference, exchange))
            offset += rdlength
    except (DnsError, struct.error):
        # a truncated (TC) answer may end mid-record: keep what was whole
        if not flags & _FLAG_TC or not records:
            raise DnsError("malformed answer section") from None
    records.sort()
    return records


def lookup_mx(
    domain: str, nameservers: Sequence[Nameserver] | None = None, timeout: float = 2.0
) -> list[tuple[int, str]]:
    """Blocking MX query: (preference, host) pairs, lowest first; [] when the domain has none.

    Tries each nameserver in turn; raises DnsError when none gave a usable answer.
    """
    servers = list(nameservers) if nameservers is not None else system_nameservers()
    query_id = secrets.randbits(16)
    query = _build_query(query_id, domain)
    last_error: Exception = DnsError("no nameserver")
    for host, port in servers:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                # a connected UDP socket drops datagrams from anyone but the server
                sock.connect((host, port))
                sock.send(query)
                deadline = time.monotonic() + timeout
                while True:
                    reply = sock.recv(65535)
                    try:
                        return _parse_response(reply, query_id, domain)
                    except _NotOurs as error:
                        # a stray or late datagram: wait for ours within the same deadline
                        last_error = error
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        sock.settimeout(remaining)
                    except DnsError as error:
                        last_error = error
                        break
        except OSError as error:  # includes socket.timeout
            last_error = error
    raise DnsError(f"MX lookup for {domain} failed: {last_error}") from last_error


class MxCache:
    """A bounded TTL cache of each domain's preferred MX host, filled in the background.

    ``get`` returns at once: the cached host, or None while the answer is unknown, in which
    case it queues one lookup (never two for the same domain, never more than ``max_pending``).
    An expired entry is still served while its refresh runs, so a known domain does not fall
    back to "no MX" every ``resolver_ttl`` seconds. Domains without MX, and failed lookups,
    are remembered as None for shorter times so they are not asked about on every event.
    """

    def __init__(
        self,
        resolver_ttl: float = 3600.0,
        max_entries: int = 100_000,
        *,
        negative_ttl: float = 600.0,
        error_ttl: float = 60.0,
        nameservers: Sequence[Nameserver] | None = None,
        timeout: float = 2.0,
        max_pending: int = 256,
        workers: int = 2,
        clock: Callable[[], float] = time.monotonic,
        lookup: Callable[[str], list[tuple[int, str]]] | None = None,
    ) -> None:
        if resolver_ttl <= 0 or max_entries <= 0 or max_pending <= 0 or workers <= 0:
            raise ValueError("resolver_ttl, max_entries, max_pending and workers must be > 0")
        self._ttl = resolver_ttl
        self._negative_ttl = negative_ttl
        self._error_ttl = error_ttl
        self._max_entries = max_entries
        self._max_pending = max_pending
        self._workers = workers
        self._clock = clock
        servers = list(nameservers) if nameservers is not None else None
        self._lookup = lookup or (lambda domain: lookup_mx(domain, servers, timeout))
        self._entries: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.lookups = 0
        self.failures = 0
        self.dropped = 0

    def get(self, domain: str) -> str | None:
        entry = self._entries.get(domain)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        self._schedule(domain)
        return entry[0] if entry is not None else None

    def pending(self) -> int:
        """Lookups queued or running, for metrics and for tests that wait for the cache."""
        return len(self._pending)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> MxCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _schedule(self, domain: str) -> None:
        with self._lock:
            if self._closed or domain in self._pending:
                return
            if len(self._pending) >= self._max_pending:
                # a burst of new domains must not build an unbounded backlog of stale work
                self.dropped += 1
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="mx-lookup"
                )
            self._pending.add(domain)
            self._executor.submit(self._run, domain)

    def _run(self, domain: str) -> None:
        host: str | None
        try:
            records = self._lookup(domain)
            host = records[0][1] if records else None
            ttl = self._ttl if host else self._negative_ttl
        except Exception as error:  # any failure must reach the cache, not kill the worker
            log.debug("MX lookup for %s failed: %s", domain, error)
            host, ttl = None, self._error_ttl
            with self._lock:
                self.failures += 1
                previous = self._entries.get(domain)
            if previous is not None and previous[0] is not None:
                host = previous[0]  # keep serving the last good answer through an outage
        with self._lock:
            self.lookups += 1
            self._entries[domain] = (host, self._clock() + ttl)
            self._entries.move_to_end(domain)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            self._pending.discard(domain)
