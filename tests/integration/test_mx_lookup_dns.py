"""The MX lookup (delivery/mx_lookup.py: dnspython's asyncio resolver, our cache) against a
stand-in DNS server on a loopback port (tests/support/dns_server.py): answers, refusals,
silence, strangers' answers, a dead server before a live one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from delivery.isp import default_resolver
from delivery.mx_lookup import DnsError, MxCache, lookup_mx, make_resolver
from tests.support.dns_server import StandInDns, answer

pytestmark = pytest.mark.integration


def mx(domain: str, servers: list[tuple[str, int]], timeout: float) -> list[tuple[int, str]]:
    """One lookup through the resolver the worker builds, asking ``servers``."""
    return asyncio.run(lookup_mx(domain, make_resolver(servers, timeout)))


def wait_idle(cache: MxCache, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while cache.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.pending() == 0


ZONE: dict[str, list[tuple[int, str]]] = {
    "example-corp.com": [
        (20, "backup.example.net"),
        (10, "example-corp-com.mail.protection.outlook.com"),
    ],
    "null-mx.example": [(0, "")],
}


def _zone_handler(qid: int, question: bytes, name: str) -> list[bytes]:
    if name == "servfail.example":
        return [answer(qid, question, [], rcode=2)]
    if name == "silent.example":
        return []
    if name == "stray.example":
        # someone else's answer first: the client must wait for its own
        return [
            answer((qid + 1) % 65536, question, [(5, "wrong.example")]),
            answer(qid, question, [(5, "right.example")]),
        ]
    if name in ZONE:
        return [answer(qid, question, ZONE[name])]
    return [answer(qid, question, [], rcode=3)]


@pytest.fixture
def dns() -> Iterator[StandInDns]:
    server = StandInDns(_zone_handler)
    yield server
    server.close()


def test_lookup_mx_sorted_by_preference(dns: StandInDns) -> None:
    assert mx("example-corp.com", [dns.address], timeout=1) == [
        (10, "example-corp-com.mail.protection.outlook.com"),
        (20, "backup.example.net"),
    ]


def test_lookup_mx_case_insensitive_question(dns: StandInDns) -> None:
    records = mx("Example-Corp.COM.", [dns.address], timeout=1)
    assert records[0][1] == "example-corp-com.mail.protection.outlook.com"


def test_lookup_mx_nxdomain_and_null_mx(dns: StandInDns) -> None:
    assert mx("missing.example", [dns.address], timeout=1) == []
    assert mx("null-mx.example", [dns.address], timeout=1) == []


def test_lookup_mx_servfail_raises(dns: StandInDns) -> None:
    with pytest.raises(DnsError, match="SERVFAIL"):
        mx("servfail.example", [dns.address], timeout=1)


def test_lookup_mx_timeout_raises(dns: StandInDns) -> None:
    with pytest.raises(DnsError):
        mx("silent.example", [dns.address], timeout=0.2)


def test_lookup_mx_ignores_stray_answers(dns: StandInDns) -> None:
    assert mx("stray.example", [dns.address], timeout=1) == [(5, "right.example")]


def test_lookup_mx_falls_through_to_next_server(dns: StandInDns) -> None:
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # bound but never answering
    try:
        records = mx("example-corp.com", [dead.getsockname(), dns.address], timeout=0.2)
    finally:
        dead.close()
    assert records[0][0] == 10


def test_mx_cache_fills_in_background_and_feeds_resolver(dns: StandInDns) -> None:
    with MxCache(nameservers=[dns.address], timeout=1) as cache:
        assert cache.get("example-corp.com") is None  # non-blocking: unknown yet
        wait_idle(cache)
        mx = cache.get("example-corp.com")
        assert mx == "example-corp-com.mail.protection.outlook.com"
        assert default_resolver().resolve("example-corp.com", mx).key == "microsoft"
        assert cache.get("missing.example") is None
        wait_idle(cache)
        assert cache.get("missing.example") is None
    assert dns.queries.count("example-corp.com") == 1
    assert dns.queries.count("missing.example") == 1  # the negative answer is cached


def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    records = [(10 + i, f"mx{i}.big.example") for i in range(40)]

    def udp(qid: int, question: bytes, name: str) -> list[bytes]:
        return [answer(qid, question, records[:1], truncated=True)]

    def tcp(qid: int, question: bytes, name: str) -> list[bytes]:
        return [answer(qid, question, records)]

    server = StandInDns(udp, tcp_handler=tcp)
    try:
        assert mx("big.example", [server.address], timeout=1) == records
    finally:
        server.close()
    assert server.queries == server.tcp_queries == ["big.example"]
