"""ISP resolution (delivery/isp.py, data/isps.yaml) and the MX cache (delivery/mx_lookup.py).

Domain samples come from each provider's help and postmaster pages; the MX hosts are the
shapes those providers publish. The DNS queries themselves cross a socket, to a stand-in
server: tests/integration/test_mx_lookup_dns.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from delivery.isp import (
    OTHER,
    IspResolver,
    IspTableError,
    default_resolver,
    load_resolver,
    normalize_domain,
)
from delivery.mx_lookup import DnsError, MxCache, make_resolver
from delivery.types import Isp

# (recipient domain, expected ISP key)
CONSUMER_DOMAINS: list[tuple[str, str]] = [
    ("gmail.com", "gmail"),
    ("googlemail.com", "gmail"),
    ("outlook.com", "microsoft"),
    ("hotmail.com", "microsoft"),
    ("hotmail.co.uk", "microsoft"),
    ("hotmail.fr", "microsoft"),
    ("hotmail.de", "microsoft"),
    ("hotmail.it", "microsoft"),
    ("hotmail.es", "microsoft"),
    ("hotmail.com.br", "microsoft"),
    ("hotmail.com.ar", "microsoft"),
    ("hotmail.co.jp", "microsoft"),
    ("hotmail.be", "microsoft"),
    ("live.com", "microsoft"),
    ("live.fr", "microsoft"),
    ("live.co.uk", "microsoft"),
    ("live.nl", "microsoft"),
    ("live.com.mx", "microsoft"),
    ("live.com.au", "microsoft"),
    ("outlook.fr", "microsoft"),
    ("outlook.de", "microsoft"),
    ("outlook.com.br", "microsoft"),
    ("outlook.jp", "microsoft"),
    ("msn.com", "microsoft"),
    ("passport.com", "microsoft"),
    ("windowslive.com", "microsoft"),
    ("yahoo.com", "yahoo"),
    ("yahoo.co.uk", "yahoo"),
    ("yahoo.fr", "yahoo"),
    ("yahoo.de", "yahoo"),
    ("yahoo.com.br", "yahoo"),
    ("yahoo.co.in", "yahoo"),
    ("yahoo.com.au", "yahoo"),
    ("yahoo.com.tw", "yahoo"),
    ("mail.yahoo.com", "yahoo"),
    ("ymail.com", "yahoo"),
    ("rocketmail.com", "yahoo"),
    ("myyahoo.com", "yahoo"),
    ("aol.com", "yahoo"),
    ("aol.de", "yahoo"),
    ("aol.fr", "yahoo"),
    ("aol.co.uk", "yahoo"),
    ("aim.com", "yahoo"),
    ("verizon.net", "yahoo"),
    ("yahoo.co.jp", "yahoo_jp"),
    ("att.net", "att"),
    ("sbcglobal.net", "att"),
    ("bellsouth.net", "att"),
    ("pacbell.net", "att"),
    ("icloud.com", "apple"),
    ("me.com", "apple"),
    ("mac.com", "apple"),
    ("comcast.net", "comcast"),
    ("charter.net", "spectrum"),
    ("nc.rr.com", "spectrum"),
    ("twcny.rr.com", "spectrum"),
    ("earthlink.net", "earthlink"),
    ("gmx.de", "gmx"),
    ("gmx.net", "gmx"),
    ("gmx.at", "gmx"),
    ("gmx.com", "gmx"),
    ("gmx.co.uk", "gmx"),
    ("web.de", "gmx"),
    ("mail.com", "gmx"),
    ("t-online.de", "t_online"),
    ("orange.fr", "orange"),
    ("wanadoo.fr", "orange"),
    ("free.fr", "free"),
    ("sfr.fr", "sfr"),
    ("neuf.fr", "sfr"),
    ("laposte.net", "laposte"),
    ("libero.it", "libero"),
    ("virgilio.it", "libero"),
    ("seznam.cz", "seznam"),
    ("mail.ru", "mailru"),
    ("inbox.ru", "mailru"),
    ("list.ru", "mailru"),
    ("bk.ru", "mailru"),
    ("internet.ru", "mailru"),
    ("yandex.ru", "yandex"),
    ("yandex.com", "yandex"),
    ("yandex.by", "yandex"),
    ("yandex.kz", "yandex"),
    ("yandex.ua", "yandex"),
    ("ya.ru", "yandex"),
    ("narod.ru", "yandex"),
    ("qq.com", "qq"),
    ("vip.qq.com", "qq"),
    ("foxmail.com", "qq"),
    ("163.com", "netease"),
    ("126.com", "netease"),
    ("vip.163.com", "netease"),
    ("naver.com", "naver"),
    ("hanmail.net", "kakao"),
    ("rediffmail.com", "rediff"),
    ("zoho.com", "zoho"),
    ("zohomail.eu", "zoho"),
    ("fastmail.com", "fastmail"),
    ("fastmail.fm", "fastmail"),
    ("proton.me", "proton"),
    ("protonmail.com", "proton"),
    ("pm.me", "proton"),
    ("cox.net", "yahoo"),
    ("docomo.ne.jp", "docomo"),
    ("ezweb.ne.jp", "kddi"),
]

# (custom domain, MX host as MTAs report it, expected key)
MX_HOSTED: list[tuple[str, str, str]] = [
    ("example-corp.com", "example-corp-com.mail.protection.outlook.com", "microsoft"),
    ("example-corp.com", "example-corp-com.r-v1.mx.microsoft", "microsoft"),
    ("mx.example.org", "aspmx.l.google.com", "gmail"),
    ("example.org", "alt2.aspmx.l.google.com.", "gmail"),
    ("example.org", "smtp.google.com", "gmail"),
    ("example.org", "aspmx2.googlemail.com", "gmail"),
    ("example.net", "mx0a-00123401.pphosted.com", "proofpoint"),
    ("example.net", "mx1-us1.ppe-hosted.com", "proofpoint"),
    ("example.net", "us-smtp-inbound-1.mimecast.com", "mimecast"),
    ("example.co.za", "za-smtp-inbound-1.mimecast.co.za", "mimecast"),
    ("example.net", "d123456a.ess.barracudanetworks.com", "barracuda"),
    ("example.net", "mx1.hc1234-56.iphmx.com", "cisco"),
    ("example.net", "mx01.mail.icloud.com", "apple"),
    ("example.net", "mx-biz.mail.am0.yahoodns.net", "yahoo"),
    ("example.net", "mx.zoho.eu", "zoho"),
    ("example.net", "in1-smtp.messagingengine.com", "fastmail"),
    ("example.net", "mail.protonmail.ch", "proton"),
    ("example.ru", "mx.yandex.net", "yandex"),
    ("example.cn", "mxbiz1.qq.com", "qq"),
    ("example.de", "mx00.ionos.de", "ionos"),
    ("example.net", "mx1.emailsrvr.com", "rackspace"),
    ("example.net", "smtp.secureserver.net", "godaddy"),
    # shapes MTAs report: bracketed, with a port, with the address (PowerMTA dsnMta)
    ("example.net", "[aspmx.l.google.com]", "gmail"),
    ("example.net", "aspmx.l.google.com:25", "gmail"),
    ("example.net", "gmail-smtp-in.l.google.com (142.250.1.27)", "gmail"),
    ("example.net", "ASPMX.L.GOOGLE.COM.", "gmail"),
]


@pytest.fixture(scope="module")
def resolver() -> IspResolver:
    return load_resolver()


@pytest.mark.parametrize(("domain", "key"), CONSUMER_DOMAINS)
def test_consumer_domains(resolver: IspResolver, domain: str, key: str) -> None:
    assert resolver.resolve(domain).key == key


@pytest.mark.parametrize(("domain", "mx", "key"), MX_HOSTED)
def test_custom_domains_by_mx(resolver: IspResolver, domain: str, mx: str, key: str) -> None:
    assert resolver.resolve(domain, mx).key == key


def test_exact_domain_wins_over_mx(resolver: IspResolver) -> None:
    # AT&T's own front ends are not Yahoo's, whatever hosts the mailboxes
    assert resolver.resolve("att.net", "mx-aol.mail.gm0.yahoodns.net").key == "att"
    assert resolver.resolve("gmail.com", "example.mail.protection.outlook.com").key == "gmail"


def test_family_yields_to_mx_of_another_isp(resolver: IspResolver) -> None:
    assert resolver.resolve("live.xyz").key == "microsoft"
    assert resolver.resolve("live.xyz", "mx.zoho.com").key == "zoho"
    assert resolver.resolve("live.xyz", "mx.unknown-host.example").key == "microsoft"
    assert resolver.resolve("hotmail.co.uk", "hotmail-com.olc.protection.outlook.com").key == (
        "microsoft"
    )


@pytest.mark.parametrize(
    "domain",
    [
        "hotmail.example.com",  # a subdomain of someone else's domain, not a regional family
        "myhotmail.com",
        "nothotmail.co.uk",
        "gmail.com.evil.example",
        "yahoo",
        "com",
        "",
        "example.com",
        "mail.example.co.uk",
    ],
)
def test_not_misattributed(resolver: IspResolver, domain: str) -> None:
    assert resolver.resolve(domain) is OTHER


def test_mx_suffix_matches_on_label_boundaries(resolver: IspResolver) -> None:
    assert resolver.resolve("example.net", "mx.notgoogle.com").key == "other"
    assert resolver.resolve("example.net", "google.com.evil.example").key == "other"
    assert resolver.resolve("example.net", "").key == "other"


@pytest.mark.parametrize(
    "raw", ["GMAIL.COM", "gmail.com.", " Gmail.Com. ", "someone@gmail.com", "Someone@GMAIL.com."]
)
def test_normalization(resolver: IspResolver, raw: str) -> None:
    assert resolver.resolve(raw).key == "gmail"


def test_normalize_domain_idna() -> None:
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"


def test_unknown_policy_domain() -> None:
    resolver = load_resolver(unknown="domain")
    assert resolver.resolve("Example.COM.") == Isp("example.com", "example.com")
    assert resolver.resolve("gmail.com").key == "gmail"
    assert resolver.resolve("example.com", "aspmx.l.google.com").key == "gmail"


def test_unknown_policy_rejects_other_values() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        load_resolver(unknown="nope")  # type: ignore[arg-type]


def test_overrides_mapping_take_precedence() -> None:
    resolver = load_resolver(
        {
            "gmail": ["example-school.edu", "mx:mx.example-relay.net"],
            "yahoo": ["yahoo.co.jp"],
            "acme": ["acme.example", "acmemail.*"],
            "other": ["ymail.com"],
        }
    )
    assert resolver.resolve("example-school.edu").key == "gmail"
    assert resolver.resolve("x.example", "edge1.mx.example-relay.net").key == "gmail"
    assert resolver.resolve("yahoo.co.jp").key == "yahoo"
    assert resolver.resolve("acme.example") == Isp("acme", "acme")
    assert resolver.resolve("acmemail.de").key == "acme"
    assert resolver.resolve("ymail.com") is OTHER
    assert resolver.isps["acme"] == Isp("acme", "acme")
    # the packaged default is untouched
    assert default_resolver().resolve("yahoo.co.jp").key == "yahoo_jp"


def test_overrides_yaml_file_both_forms(tmp_path: Path) -> None:
    path = tmp_path / "isps.yaml"
    path.write_text(
        "microsoft:\n"
        "  name: Microsoft\n"
        "  domains: [corp.example]\n"
        "acme:\n"
        "  name: ACME Mail\n"
        "  mx: [mx.acme.example]\n"
        "gmx: [gmx-partner.example]\n",
        encoding="utf-8",
    )
    resolver = load_resolver(path)
    assert resolver.resolve("corp.example") == Isp("microsoft", "Microsoft")
    # a rename reaches entries compiled before it
    assert resolver.resolve("hotmail.fr") == Isp("microsoft", "Microsoft")
    assert resolver.resolve("x.example", "in.mx.acme.example") == Isp("acme", "ACME Mail")
    assert resolver.resolve("gmx-partner.example").key == "gmx"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"Bad Key": ["x.example"]}, "an ISP key is lowercase"),
        ({"acme": "x.example"}, "list of entries"),
        ({"acme": [""]}, "non-empty"),
        ({"acme": ["a.b.*"]}, "one label"),
    ],
)
def test_overrides_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_resolver(overrides)  # type: ignore[arg-type]


def test_overrides_yaml_errors_name_line_and_field(tmp_path: Path) -> None:
    """The same line-and-field report as the rules file's, every problem at once."""
    path = tmp_path / "isps.yaml"
    path.write_text(
        "acme:\n"
        "  name: ACME\n"
        "  domain: [x.example]\n"
        "foo:\n"
        "  families: [ok, a.b]\n"
        "bar: x.example\n"
        "Bad: [a.example]\n",
        encoding="utf-8",
    )
    with pytest.raises(IspTableError) as info:
        load_resolver(path)
    assert str(info.value).splitlines() == [
        f"{path}:3:11: acme.domain: unknown field",
        f"{path}:5:18: foo.families[1]: a family is one label like 'hotmail', not 'a.b'",
        f"{path}:6:6: bar: give a mapping (name, domains, families, mx) or a list of entries",
        f"{path}:7:6: Bad: an ISP key is lowercase letters, digits, '_' or '-', not 'Bad'",
    ]
    path.write_text("acme: [a\n", encoding="utf-8")
    with pytest.raises(IspTableError, match=r"isps\.yaml:2:1: not valid YAML"):
        load_resolver(path)


def test_default_resolver_is_cached_and_results_shared() -> None:
    assert default_resolver() is default_resolver()
    resolver = default_resolver()
    assert resolver.resolve("hotmail.fr") is resolver.resolve("outlook.com")


def test_packaged_table_sanity(resolver: IspResolver) -> None:
    keys = set(resolver.isps)
    required = {"gmail", "microsoft", "yahoo", "yahoo_jp", "apple", "comcast", "gmx", "orange"}
    required |= {"mailru", "yandex", "qq", "proofpoint", "mimecast", "barracuda", "cisco"}
    required |= {"zoho", "fastmail", "proton", "other"}
    assert required <= keys
    assert all(isp.key == key and isp.name for key, isp in resolver.isps.items())


def test_cache_is_bounded() -> None:
    resolver = load_resolver()
    for i in range(70_000):
        resolver.resolve(f"d{i}.example")
    info = resolver.cache_info()
    assert info.currsize <= info.maxsize
    assert resolver.resolve("gmail.com").key == "gmail"


# --- The MX cache (lookups faked; the DNS client itself: tests/integration/test_mx_lookup_dns.py)


def test_the_resolver_reads_resolv_conf_unless_told_its_servers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch x\n")
    servers = make_resolver(resolv_conf=conf).nameservers
    assert [str(s) for s in servers][:1] == ["10.0.0.2"] and len(servers) == 2
    assert make_resolver(resolv_conf=tmp_path / "absent").nameservers == ["127.0.0.1"]
    told = make_resolver([("192.0.2.53", 5353)], timeout=0.5)
    assert [(s.address, s.port) for s in told.nameservers] == [("192.0.2.53", 5353)]  # type: ignore[union-attr]
    assert (told.timeout, told.lifetime, told.payload) == (0.5, 1.0, 1232)


def _wait_idle(cache: MxCache, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while cache.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.pending() == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_mx_cache_ttl_serves_stale_while_refreshing() -> None:
    clock = FakeClock()
    answers = {"a.example": [(10, "mx1.a.example")]}
    calls: list[str] = []

    def lookup(domain: str) -> list[tuple[int, str]]:
        calls.append(domain)
        if domain == "down.example":
            raise DnsError("timeout")
        return answers.get(domain, [])

    with MxCache(resolver_ttl=60, clock=clock, lookup=lookup, error_ttl=5) as cache:
        cache.get("a.example")
        _wait_idle(cache)
        assert cache.get("a.example") == "mx1.a.example"
        answers["a.example"] = [(10, "mx2.a.example")]
        clock.now += 61
        assert cache.get("a.example") == "mx1.a.example"  # stale, refresh scheduled
        _wait_idle(cache)
        assert cache.get("a.example") == "mx2.a.example"
        # an outage keeps the last good answer
        answers.clear()
        cache.get("down.example")
        _wait_idle(cache)
        assert cache.get("down.example") is None
        assert cache.failures == 1
        calls_before = len(calls)
        cache.get("down.example")  # within error_ttl: not asked again
        assert len(calls) == calls_before


def test_mx_cache_bounded_entries_and_pending() -> None:
    release = threading.Event()

    def slow(domain: str) -> list[tuple[int, str]]:
        release.wait(2)
        return [(10, f"mx.{domain}")]

    with MxCache(max_entries=3, max_pending=2, workers=1, lookup=slow) as cache:
        for name in ("a.example", "b.example", "c.example", "a.example"):
            assert cache.get(name) is None
        assert cache.pending() == 2
        assert cache.dropped == 1
        release.set()
        _wait_idle(cache)
        for name in ("c.example", "d.example", "e.example"):
            cache.get(name)
            _wait_idle(cache)
        assert cache.get("e.example") == "mx.e.example"
        assert len(cache._entries) == 3


def test_mx_cache_never_blocks_on_slow_dns() -> None:
    """get() returns before any lookup can finish: the lookups wait for a release that
    comes only after the thousand calls (no clock involved)."""
    release = threading.Event()
    finished: list[str] = []

    def hang(domain: str) -> list[tuple[int, str]]:
        release.wait(60)
        finished.append(domain)
        return []

    with MxCache(lookup=hang) as cache:
        answers = [cache.get(f"d{i}.example") for i in range(1000)]
        assert finished == [] and set(answers) == {None}
        release.set()


def test_knows_the_domains_the_table_names_and_only_those() -> None:
    resolver = default_resolver()
    assert resolver.knows("gmail.com") and resolver.knows("GMail.com.")
    assert resolver.knows("yahoo.co.jp")  # a regional family
    assert not resolver.knows("example-corp.com")
    # Known or not, an MX the event names still resolves a custom domain.
    assert resolver.resolve("example-corp.com", "aspmx.l.google.com").key == "gmail"
