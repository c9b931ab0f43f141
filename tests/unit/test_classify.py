"""The SMTP reply classifier against documented replies, and the rules file loader.

The samples in tests/data/reply_samples.yaml are labelled from the ISPs', filters' and
RFCs' documentation (each names its source); they are never generated from the classifier.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from delivery.classify import (
    ReplyClassifier,
    default_classifier,
    load_classifier,
    normalize_text,
    packaged_rules,
    split_reply,
)
from delivery.rules_table import RulesFileError
from schemas.vocabulary import BounceType, Category, Outcome, SourceStatus

_TAIL = "    reason: r\n    source: s\n"
SAMPLES_FILE = Path(__file__).resolve().parent.parent / "data" / "reply_samples.yaml"
_DATA: dict[str, Any] = yaml.safe_load(SAMPLES_FILE.read_text("utf-8"))
SOURCES: dict[str, str] = _DATA["sources"]
SAMPLES: list[dict[str, Any]] = _DATA["samples"]

#: Every ISP and filter the classifier must know, as tagged in the samples file.
REQUIRED_ISPS = {
    "gmail",
    "microsoft",
    "yahoo",
    "apple",
    "comcast",
    "gmx",
    "orange",
    "mailru",
    "yandex",
    "qq",
    "proofpoint",
    "mimecast",
    "barracuda",
    "cloudmark",
    "spamhaus",
    "spamcop",
}


def _sample_id(sample: dict[str, Any]) -> str:
    head = " ".join(str(sample.get("text", "")).split())[:60]
    return f"{sample['isp']}:{sample.get('code')}:{sample.get('status') or ''}:{head}"


@pytest.mark.parametrize("sample", SAMPLES, ids=[_sample_id(s) for s in SAMPLES])
def test_documented_reply(sample: dict[str, Any]) -> None:
    status = SourceStatus(sample["status"]) if sample.get("status") else None
    result = default_classifier().classify(
        sample.get("code"), sample.get("enhanced"), sample.get("text", ""), status
    )
    outcome, bounce, category = sample["expect"]
    got = (result.outcome, result.bounce_type, result.category, result.isp_code)
    want = (Outcome(outcome), BounceType(bounce), Category(category), sample.get("isp_code"))
    assert got == want, f"rule {result.rule_id}: {result.reason}"


def test_samples_are_many_distinct_and_sourced() -> None:
    keys = {(s.get("code"), s.get("enhanced"), s.get("text"), s.get("status")) for s in SAMPLES}
    assert len(keys) == len(SAMPLES) >= 150
    for sample in SAMPLES:
        assert sample["source"] in SOURCES, sample


def test_samples_cover_every_category_and_isp() -> None:
    categories = {Category(s["expect"][2]) for s in SAMPLES}
    assert categories == set(Category)
    assert {s["isp"] for s in SAMPLES} >= REQUIRED_ISPS
    per_isp = Counter(s["isp"] for s in SAMPLES)
    assert all(per_isp[isp] >= 2 for isp in REQUIRED_ISPS), per_isp


def test_every_packaged_rule_cites_a_document() -> None:
    cited = re.compile(r"https?://|\bRFC \d{4}|IANA|\.(?:com|net|org|ru|de)\b")
    for rule in packaged_rules().rules:
        assert cited.search(rule.source), rule.id


# ------------------------------------------------------------------ parsing and caching


def test_embedded_codes_are_parsed_from_the_text() -> None:
    assert split_reply(None, None, "421-4.7.28 [192.0.2.1] Our system") == (421, "4.7.28")
    assert split_reply(None, None, "smtp; 550 5.1.1 <a@b.example>") == (550, "5.1.1")
    assert split_reply(451, None, "451 VS1-IP Excessive (#4.1.8)") == (451, "4.1.8")
    # A dotted Yahoo id is not an enhanced code.
    assert split_reply(421, None, "deferred - 4.16.55.1; see") == (421, None)
    # A DSN's generic X.0.0 yields to the specific code in the text.
    assert split_reply(550, "5.0.0", "550 5.7.606 Access denied") == (550, "5.7.606")
    assert split_reply(550, "5.7.1", "550 5.1.1 ...") == (550, "5.7.1")


def test_normalization_keeps_isp_codes_and_drops_volatile_parts() -> None:
    text = (
        "421 4.7.0 [TSS04] Messages from 192.0.2.12 temporarily deferred - 4.16.55.1; "
        "see https://postmaster.comcast.net/x.php#BL000001 OFR004_105 (S3150) "
        "to someone@example.com d2e1a72fcca58-6f0a1b2c3d4si1234567pfb.123 - gsmtp"
    )
    normalized = normalize_text(text)
    for kept in ("TSS04", "BL000001", "OFR004_105", "S3150", "4.7.0"):
        assert kept in normalized
    for dropped in ("192.0.2.12", "someone@example.com", "6f0a1b2c3d4si1234567pfb"):
        assert dropped not in normalized
    other = text.replace("192.0.2.12", "198.51.100.200").replace("someone", "x.y+z")
    assert normalize_text(other) == normalized


def test_variants_of_one_reply_share_a_cache_entry() -> None:
    classifier = load_classifier()
    template = "550-5.1.1 The email account that you tried to reach does not exist. {} - gsmtp"
    first = classifier.classify(550, None, template.format("a1b2c3d4e5f6a-1234567890si123.45"))
    second = classifier.classify(550, None, template.format("ffeeddccbbaa9-9876543210si987.65"))
    assert first == second
    info = classifier.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_delivered_and_status_shortcuts() -> None:
    classifier = default_classifier()
    assert classifier.classify(250, "2.0.0", "OK").category is Category.DELIVERED
    suppressed = classifier.classify(550, "5.1.1", "whatever", SourceStatus.SUPPRESSED)
    assert (suppressed.category, suppressed.bounce_type) == (Category.SUPPRESSED, BounceType.HARD)


def test_unrecognised_failure_is_unknown_and_follows_the_class() -> None:
    result = default_classifier().classify(None, None, "something odd happened")
    assert result.category is Category.UNKNOWN
    assert result.outcome is Outcome.DEFERRED


# ------------------------------------------------------------------ user rules files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, "utf-8")
    return path


def test_user_rule_with_same_id_overrides_packaged(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
rules:
  - id: qq.recipient_protection
    pattern: 'mailbox unavailable or access denied'
    category: user_unknown
    reason: "we treat it as unknown user"
    source: "our own bounce analysis"
""",
    )
    classifier = load_classifier(path)
    result = classifier.classify(550, None, "550 Mailbox unavailable or access denied")
    assert (result.category, result.bounce_type) == (Category.USER_UNKNOWN, BounceType.HARD)
    assert result.rule_id == "qq.recipient_protection"
    assert len(classifier.table.rules) == len(default_classifier().table.rules)


def test_user_rule_with_new_id_extends_and_takes_precedence(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
rules:
  - id: acme.greylist
    code: 451
    pattern: 'come back in (?P<isp_code>\\d+) minutes'
    category: greylisted
    reason: "ACME greylisting"
    source: "ACME postmaster page"
  - id: acme.policy_wins
    pattern: 'Service unavailable - try again later'
    category: throttled
    reason: "we know this one is a rate limit"
    source: "ACME postmaster page"
""",
    )
    classifier = load_classifier(path)
    grey = classifier.classify(451, None, "451 4.7.1 please come back in 5 minutes")
    assert (grey.category, grey.isp_code, grey.rule_id) == (
        Category.GREYLISTED,
        "5",
        "acme.greylist",
    )
    # Same kind of rule as the packaged apple.service_unavailable: the user's comes first.
    assert classifier.classify(
        451, None, "451 4.7.1 Service unavailable - try again later"
    ).rule_id == ("acme.policy_wins")
    assert len(classifier.table.rules) == len(default_classifier().table.rules) + 2


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            "rules:\n  - id: ok.one\n    code: 550\n    category: policy\n"
            + _TAIL
            + "  - id: bad.category\n    code: 550\n    category: grumpy\n"
            + _TAIL,
            ["rules[1]", "'bad.category'", "field 'category'", "line 9"],
        ),
        (
            "rules:\n  - id: bad.regex\n    pattern: 'unclosed ('\n    category: policy\n"
            "    reason: r\n    source: s\n",
            ["rules[0]", "'bad.regex'", "field 'pattern'", "line 3", "regular expression"],
        ),
        (
            "rules:\n  - id: bad.code\n    code: 6xx\n    category: policy\n" + _TAIL,
            ["'bad.code'", "field 'code'", "line 3"],
        ),
        (
            "rules:\n  - id: bad.enhanced\n    enhanced: '5.7'\n    category: policy\n"
            "    reason: r\n    source: s\n",
            ["'bad.enhanced'", "field 'enhanced'"],
        ),
        (
            "rules:\n  - id: no.constraint\n    category: policy\n    reason: r\n    source: s\n",
            ["'no.constraint'", "at least one of code, enhanced or pattern", "line 2"],
        ),
        (
            "rules:\n  - id: no.source\n    code: 550\n    category: policy\n    reason: r\n",
            ["'no.source'", "field 'source'"],
        ),
        (
            "rules:\n  - id: typo\n    code: 550\n    categroy: policy\n" + _TAIL,
            ["'typo'", "field 'categroy'", "line 4"],
        ),
        ("rules: [\n", ["not valid YAML"]),
        ("- just a list\n", ["top level must be a mapping"]),
        (
            "rules:\n  - {id: dup, code: 550, category: policy, reason: r, source: s}\n"
            "  - {id: dup, code: 551, category: policy, reason: r, source: s}\n",
            ["'dup' appears more than once"],
        ),
    ],
)
def test_bad_user_file_is_refused_with_location(
    tmp_path: Path, body: str, fragments: list[str]
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(RulesFileError) as caught:
        load_classifier(path)
    message = str(caught.value)
    assert str(path) in message or "user rules file" in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_user_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="cannot read"):
        load_classifier(tmp_path / "absent.yaml")


def test_classifier_type() -> None:
    assert isinstance(default_classifier(), ReplyClassifier)
    assert default_classifier() is default_classifier()


def test_without_a_reply_code_the_source_verdict_decides_the_outcome() -> None:
    classifier = default_classifier()
    # a failed DSN whose last cause was temporary: final, and the cause is kept
    failed = classifier.classify(
        None,
        "4.4.1",
        "connect to mx.example.org[192.0.2.9]:25: Connection timed out",
        SourceStatus.BOUNCED,
    )
    assert (failed.outcome, failed.bounce_type, failed.category) == (
        Outcome.BOUNCED,
        BounceType.SOFT,
        Category.CONNECTION,
    )
    retrying = classifier.classify(None, "5.1.1", "User unknown", SourceStatus.DEFERRED)
    assert (retrying.outcome, retrying.bounce_type) == (Outcome.DEFERRED, BounceType.SOFT)
    # a reply code is the receiver's own answer for the attempt and keeps deciding
    coded = classifier.classify(451, None, "451 4.3.0 try later", SourceStatus.BOUNCED)
    assert coded.outcome is Outcome.DEFERRED
