"""The classifier's caches and pre-filter give the same answers as a fresh full scan.

Real failure replies carry per-message ids, hosts, addresses and times; normalization must
fold them so that variants of one documented text share a cache entry, and must keep
whatever the rules read (ISP codes, enhanced codes). The samples are the labelled ones of
tests/data/reply_samples.yaml; the ids are invented in the shapes the ISPs use.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.classify import ReplyClassifier, default_classifier, load_classifier, normalize_text
from delivery.rules_table import required_literals, split_branches
from delivery.types import Classification
from schemas.vocabulary import SourceStatus
from tests.support.reply_ids import gmail_id, microsoft_trailer, pick

SAMPLES_FILE = Path(__file__).resolve().parent.parent / "data" / "reply_samples.yaml"
SAMPLES: list[dict[str, Any]] = yaml.safe_load(SAMPLES_FILE.read_text("utf-8"))["samples"]
FAILURES = [
    s for s in SAMPLES if s.get("text") and not s.get("status") and (s.get("code") or 500) >= 400
]

_RNG = random.Random(20261124)
_ALNUM = string.ascii_letters + string.digits


def ipv4() -> str:
    return ".".join(str(_RNG.randint(1, 223 if i == 0 else 254)) for i in range(4))


def queue_id() -> str:
    return pick(_RNG, string.digits, 1) + pick(_RNG, _ALNUM, 12)


def address() -> str:
    return f"<{pick(_RNG, string.ascii_lowercase, 5)}.{_RNG.randint(1, 99999)}@example.com>"


def _sample(isp: str, fragment: str) -> dict[str, Any]:
    for sample in FAILURES:
        if sample["isp"] == isp and fragment in sample["text"]:
            return sample
    raise LookupError((isp, fragment))


# (sample, how a fresh variant of its text is made), as each receiver varies its reply
VARIANTS: list[tuple[dict[str, Any], Callable[[str], str]]] = [
    (
        _sample("gmail", "tried to reach does not exist"),
        lambda t: t.replace(" - gsmtp", f" {gmail_id(_RNG)} - gsmtp"),
    ),
    (
        _sample("gmail", "likely unsolicited mail"),
        lambda t: t.replace("a1b2c3d4e5f6a-1234567890si123.45", gmail_id(_RNG)),
    ),
    (
        _sample("gmail", "unusual rate of\n"),
        lambda t: t.replace("d2e1a72fcca58-6f0a1b2c3d4si1234567pfb.123", gmail_id(_RNG)).replace(
            "192.0.2.10", ipv4()
        ),
    ),
    (_sample("microsoft", "5.7.606"), lambda t: f"{t} {microsoft_trailer(_RNG)}"),
    (
        _sample("microsoft", "Server busy"),
        lambda t: t.replace("192.0.2.77", ipv4()).replace(
            "BN8NAM12FT031.eop-nam12", f"BN{_RNG.randint(1, 9)}NAM12FT0{_RNG.randint(10, 99)}.eop"
        ),
    ),
    (
        _sample("microsoft", "RecipientNotFound"),
        lambda t: t.replace("someone", pick(_RNG, "abcxyz", 8)),
    ),
    (_sample("yahoo", "[TSS04]"), lambda t: t.replace("192.0.2.12", ipv4())),
    (_sample("yahoo", "[BL21]"), lambda t: t.replace("192.0.2.12", ipv4())),
    (_sample("comcast", "BL000001"), lambda t: t.replace("192.0.2", ipv4().rsplit(".", 1)[0])),
    (_sample("spamhaus", "spamhaus"), lambda t: f"{t} {address()} queued as {queue_id()}"),
]


def _fresh() -> ReplyClassifier:
    return load_classifier()


@pytest.mark.parametrize(
    ("sample", "vary"), VARIANTS, ids=[f"{s['isp']}:{s['text'][:40]}" for s, _ in VARIANTS]
)
def test_variants_with_fresh_ids_share_one_cache_entry(
    sample: dict[str, Any], vary: Callable[[str], str]
) -> None:
    classifier = _fresh()
    code, enhanced, text = sample.get("code"), sample.get("enhanced"), sample["text"]
    base = classifier.classify(code, enhanced, text)
    variants = {vary(text) for _ in range(20)}
    assert len(variants) == 20 and text not in variants
    before = classifier.cache_info()
    results = [classifier.classify(code, enhanced, v) for v in variants]
    after = classifier.cache_info()
    assert all(r == base for r in results), (base, results[0])
    # One new normal form at most (the variant may add a placeholder the base lacks).
    assert after.misses - before.misses <= 1
    assert after.hits - before.hits >= 19
    assert len({normalize_text(v) for v in variants}) == 1


def test_cached_answer_equals_a_full_scan_for_every_sample() -> None:
    """Pre-filter and caches change nothing: each labelled text, cold and warm, and with the
    pre-filter off (non-ASCII text takes the plain scan) gives one answer."""
    warm = default_classifier()
    # Cold means empty caches, and the caches are the classifier's alone: the compiled table
    # is frozen (delivery.rules_table), so a new classifier over one freshly loaded table is
    # as cold as a new load, without parsing and compiling the packaged rules twice a sample.
    table = _fresh().table
    for sample in SAMPLES:
        status = SourceStatus(sample["status"]) if sample.get("status") else None
        key = (sample.get("code"), sample.get("enhanced"), sample.get("text", ""), status)
        cold = ReplyClassifier(table).classify(*key)
        assert warm.classify(*key) == cold
        assert ReplyClassifier(table).classify(*key) == cold


def test_prefilter_agrees_with_the_plain_scan() -> None:
    classifier = _fresh()
    table = classifier.table
    for sample in FAILURES:
        text = normalize_text(sample["text"])
        lowered = text.lower()
        for rule in table.rules:
            if rule.regex is None or rule.literals is None or not text.isascii():
                continue
            if rule.regex.search(text) is not None:
                assert any(lit in lowered for lit in rule.literals), (rule.id, text)


CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "replies"
CORPUS_TEXTS = [
    json.loads(line)["text"]
    for name in ("dev.jsonl", "heldout.jsonl")
    for line in (CORPUS_DIR / name).read_text("utf-8").splitlines()
    if line.strip()
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("a|b(c|d)", ["a", "b(c|d)"]),
        ("[|]x|y", ["[|]x", "y"]),
        (r"a\|b|c", [r"a\|b", "c"]),
        ("[]|]|z", ["[]|]", "z"]),
        ("[^]|]|z", ["[^]|]", "z"]),
        ("(?i)a|b", ["(?i)a|b"]),
        (r"(a)\1|b", [r"(a)\1|b"]),
        ("single", ["single"]),
    ],
)
def test_split_branches(pattern: str, expected: list[str]) -> None:
    assert split_branches(pattern) == expected


def test_branch_search_agrees_with_the_whole_pattern() -> None:
    """Searching a rule's alternatives one by one, each behind its own literals, answers as
    the whole pattern does, on every labelled text (samples and corpus)."""
    texts = [normalize_text(s["text"]) for s in FAILURES] + [
        normalize_text(t) for t in CORPUS_TEXTS
    ]
    for rule in default_classifier().table.rules:
        if rule.regex is None or not rule.branches:
            continue
        for text in texts:
            lowered = text.lower() if text.isascii() else None
            whole = rule.regex.search(text) is not None
            by_branch = any(
                (lowered is None or b.literals is None or any(x in lowered for x in b.literals))
                and b.regex.search(text) is not None
                for b in rule.branches
            )
            assert whole == by_branch, (rule.id, text)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("gsmtp", ("gsmtp",)),
        ("(?:peak|daily) smtp relay limit", (" smtp relay limit",)),
        # the parser factors the branches' shared "t" out; what is left is still required
        ("too many (?:connections|messages)|throttl", ("hrottl", "oo many ")),
        (r"\bBL\d{6}\b", ("bl",)),
        (r"\S+", None),
        ("a?b*", None),
        ("rate ?limit|too (?:fast|quickly)", ("limit", "too ")),
    ],
)
def test_required_literals(pattern: str, expected: tuple[str, ...] | None) -> None:
    assert required_literals(pattern) == expected


def test_non_ascii_text_skips_the_prefilter() -> None:
    # U+017F (long s) matches "s" under re.IGNORECASE but str.lower() keeps it: the pre-filter
    # would wrongly rule "spamhaus" out, so non-ASCII text takes the plain scan.
    result = _fresh().classify(554, None, "554 Rejected: listed at \u017fpamhau\u017f zen")
    assert (
        result.rule_id
        == _fresh().classify(554, None, "554 Rejected: listed at spamhaus zen").rule_id
    )


# ------------------------------------------------------------------ property

_hex = st.text("0123456789abcdef", min_size=10, max_size=24).filter(
    lambda s: any(c.isdigit() for c in s)
)
_mixed = st.builds(
    lambda a, d, b: a + d + b,
    st.text(string.ascii_letters, max_size=4),
    st.text(string.digits, min_size=1, max_size=6),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=12).filter(
        lambda s: s[0].isalpha()
    ),
).filter(lambda s: len(s) >= 6)
_ip = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_email = st.builds(
    lambda u, n, d: f"{u}{n}@{d}.example",
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
    st.integers(0, 10**6),
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
)
_stamp = (
    st.datetimes()
    .map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    .filter(lambda s: s[:4].isdigit() and len(s) == 24)
)
_number = st.integers(100_000, 10**15).map(str)
_ID = st.one_of(_hex, _mixed, _ip, _email, _stamp, _number, _mixed.map(lambda s: f"[{s}]"))

_LEADING_CODES = re.compile(r"(?:smtp;)?\d{3}[ -](?:[245]\.\d{1,3}\.\d{1,3}[ -])?")
PROPERTY_SAMPLES = [s for s in FAILURES if s["isp"] in {"gmail", "microsoft", "yahoo", "qq", "gmx"}]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(PROPERTY_SAMPLES),
    st.lists(_ID, min_size=1, max_size=3),
    st.sampled_from(["end", "after_codes"]),
)
def test_inserted_ids_never_change_the_answer(
    sample: dict[str, Any], ids: list[str], where: str
) -> None:
    for token in ids:
        assert normalize_text(token).strip("[]") == "<*>", token
    code, enhanced, text = sample.get("code"), sample.get("enhanced"), sample["text"]
    classifier = default_classifier()
    base = classifier.classify(code, enhanced, text)
    extra = " ".join(ids)
    if where == "end":
        varied = f"{text} {extra}"
    else:
        # after the reply code and enhanced code, where receivers put ids and hosts
        cut = _LEADING_CODES.match(text)
        at = cut.end() if cut else 0
        varied = f"{text[:at]}{extra} {text[at:]}"
    got: Classification = classifier.classify(code, enhanced, varied)
    assert (got.category, got.outcome, got.bounce_type) == (
        base.category,
        base.outcome,
        base.bounce_type,
    )
