"""Optional cached DNS MX lookup, so custom domains resolve to their host even when events lack it.

Off by default: nothing here runs unless the service builds an ``MxCache``. ``MxCache.get``
never waits on the network: it answers from the cache (or None) and leaves a miss to a
background event loop of its own, which fills the cache for the events that follow. The
stream is therefore never held up by DNS, at the price of the first events of a new domain
resolving without an MX.

The queries are dnspython's asyncio resolver (``dns.asyncresolver``): per-server timeouts
within an overall lifetime, the next server on a timeout or a SERVFAIL, TCP when an answer
comes back truncated, EDNS0 with a 1232-byte payload (the DNS flag day 2020 size), and the
servers of /etc/resolv.conf unless ``BOUNCEWATCH_MX_NAMESERVERS`` names others. This module
keeps only what is ours: the cache of each domain's preferred MX host, its TTLs, and the
rule that the stream never waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdtypes.ANY.MX
import dns.resolver

__all__ = ["DnsError", "MxCache", "lookup_mx", "make_resolver"]

log = logging.getLogger(__name__)

Nameserver = tuple[str, int]
MxRecords = list[tuple[int, str]]
#: A lookup MxCache can run instead of the DNS: a coroutine function, or a plain function
#: (run in a thread of the cache's loop).
Lookup = Callable[[str], Awaitable[MxRecords]] | Callable[[str], MxRecords]

_EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: avoids IP fragmentation
_RESOLV_CONF = Path("/etc/resolv.conf")


class DnsError(Exception):
    """The lookup failed for now (timeout, SERVFAIL, a malformed answer): worth retrying later."""


def make_resolver(
    nameservers: Sequence[Nameserver] | None = None,
    timeout: float = 2.0,
    *,
    resolv_conf: Path = _RESOLV_CONF,
) -> dns.asyncresolver.Resolver:
    """The resolver the lookups use: ``nameservers`` (host, port), or those of
    ``resolv_conf`` (its options too), or the local resolver when it names none.

    ``timeout`` bounds one server's answer; the whole lookup may try every server once
    more than that (a timeout or a SERVFAIL moves on to the next one).
    """
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers
        ]
    else:
        try:
            resolver = dns.asyncresolver.Resolver(filename=str(resolv_conf))
        except (OSError, dns.resolver.NoResolverConfiguration):
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.use_edns(0, 0, _EDNS_PAYLOAD)
    resolver.timeout = timeout
    resolver.lifetime = timeout * (len(resolver.nameservers) + 1)
    # Our own cache keeps what matters (see MxCache); dnspython's would only hide refreshes.
    resolver.cache = None
    return resolver


async def lookup_mx(domain: str, resolver: dns.asyncresolver.Resolver) -> MxRecords:
    """(preference, host) pairs, lowest preference first; [] when the domain has no MX (no
    such domain, no MX records, or the null MX of RFC 7505). DnsError when no server gave a
    usable answer."""
    try:
        answer = await resolver.resolve(domain, "MX", search=False, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, ValueError) as error:
        raise DnsError(f"MX lookup for {domain} failed: {error}") from error
    records = []
    for rdata in answer:
        mx = cast(dns.rdtypes.ANY.MX.MX, rdata)
        if mx.exchange == dns.name.root:  # the null MX of RFC 7505: the domain takes no mail
            continue
        records.append((int(mx.preference), mx.exchange.to_text(omit_final_dot=True).lower()))
    return sorted(records)


class MxCache:
    """A bounded TTL cache of each domain's preferred MX host, filled in the background.

    ``get`` returns at once: the cached host, or None while the answer is unknown, in which
    case it queues one lookup (never two for the same domain, never more than ``max_pending``)
    on the cache's own event loop, in a thread of its own, at most ``workers`` at a time.
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
        lookup: Lookup | None = None,
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
        self._nameservers = list(nameservers) if nameservers is not None else None
        self._timeout = timeout
        self._lookup = lookup
        self._entries: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Semaphore | None = None
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
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)

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
            loop = self._loop or self._start()
            self._pending.add(domain)
        # _run reports its own failures in the cache: nobody waits for its future.
        asyncio.run_coroutine_threadsafe(self._run(domain), loop)

    def _start(self) -> asyncio.AbstractEventLoop:
        """The cache's event loop, in a daemon thread (called with the lock held)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            self._slots = asyncio.Semaphore(self._workers)
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(_cancel_the_rest())
                loop.close()

        self._thread = threading.Thread(target=serve, name="mx-lookup", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        return loop

    async def _resolve(self, domain: str) -> MxRecords:
        if self._lookup is None:
            # Built in the loop's thread: the resolver belongs to it.
            self._lookup = _dns_lookup(make_resolver(self._nameservers, self._timeout))
        lookup = self._lookup
        if inspect.iscoroutinefunction(lookup):
            return await cast(Callable[[str], Awaitable[MxRecords]], lookup)(domain)
        return await asyncio.to_thread(cast(Callable[[str], MxRecords], lookup), domain)

    async def _run(self, domain: str) -> None:
        host: str | None
        assert self._slots is not None
        try:
            async with self._slots:
                records = await self._resolve(domain)
            host = records[0][1] if records else None
            ttl = self._ttl if host else self._negative_ttl
        except Exception as error:  # any failure must reach the cache, not kill the loop
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


def _dns_lookup(resolver: dns.asyncresolver.Resolver) -> Callable[[str], Awaitable[MxRecords]]:
    async def lookup(domain: str) -> MxRecords:
        return await lookup_mx(domain, resolver)

    return lookup


async def _cancel_the_rest() -> None:
    """Cancel the lookups a closing cache leaves, once lookups submitted just before the
    close have become tasks (so that no coroutine is dropped without being awaited)."""
    await asyncio.sleep(0)
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
