"""Classification of one delivery attempt from its SMTP reply (and the source's own verdict).

``ReplyClassifier.classify(code, enhanced, text, status)`` returns a ``Classification``:

- **outcome** follows the reply class (RFC 5321 4.2.1): 2xx delivered, 4xx deferred,
  5xx bounced. Without a reply code, the source's own verdict (``bounced`` or ``deferred``)
  decides the outcome, and the class of the enhanced code only picks the rules: a bounce
  report that says "failed" with ``Status: 4.4.1`` is a final failure whose last cause was
  temporary, not a deferral. With neither, the enhanced code's class decides. A rule may
  force an outcome (``outcome_override``), which no packaged rule does today.
- **category** comes from the first matching rule of the rules table
  (``delivery/data/reply_rules.yaml`` plus an optional user file), read against the reply
  code, the RFC 3463 enhanced code and the text together. The table ends with RFC 3463
  subject/detail meanings and then RFC 5321 reply-code meanings, so a reply no ISP rule knows
  still gets the most specific standard meaning it carries.
- **bounce_type**: ``none`` when delivered; ``hard`` only when the category means the
  address itself is bad (``HARD_CATEGORIES``) *and* the outcome is bounced; otherwise
  ``soft``. So a 4xx "user unknown" is a soft deferral, and a 5xx "mailbox full" or a 5xx
  rate limit (QQ answers 550 for both) is a soft bounce: the address is fine, the message
  was refused for now.

Source statuses without an SMTP answer:

- ``expired``: the MTA gave up retrying. Category ``expired``, outcome bounced, soft (the
  address was never shown to be bad); the last reply's ISP code is kept.
- ``suppressed``: the ESP refused to send because the address is on its suppression list
  (earlier hard bounce, complaint or unsubscribe). Category ``suppressed``, outcome
  bounced, **hard**. We follow the ESPs here: Amazon SES reports these as
  ``bounceType: Permanent`` with sub-type ``Suppressed`` / ``OnAccountSuppressionList``,
  and SendGrid and Postmark file them with bounces. Note that no message reached the ISP,
  so per-ISP rate rules may prefer to leave this category out.
- ``delivered`` / ``deferred`` / ``bounced`` with no code give the outcome; the text (if
  any) still picks the category.

Hot path: 2xx replies and the two status verdicts above return before any text work.
Everything else first meets a small cache keyed on the raw reply (exact repeats happen:
one receiver text per sending IP). On a miss the text is normalized (IP addresses, e-mail
addresses, times, per-message ids and hosts, numbers in brackets folded to one placeholder;
multi-line continuation prefixes dropped; whitespace collapsed; ~2-4 us, from a per-token
memo) and classified through a bounded LRU cache keyed on (code, enhanced, normalized text,
status), so a Gmail or Microsoft reply with a fresh id costs a normalization and a hit.
Classification reads the *normalized* text, so a cached answer is exactly what a fresh one
would be. A text never seen scans the rules in order, skipping those whose required
literals (``rules_table.required_literals``) are absent from it.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Callable
from pathlib import Path

from delivery.rules_table import (
    ISP_CODE_FROM_ENHANCED,
    CompiledRule,
    CompiledTable,
    RulesFile,
    compile_table,
    load_rules_file,
    parse_rules_text,
)
from delivery.types import Classification
from schemas.vocabulary import HARD_CATEGORIES, BounceType, Category, Outcome, SourceStatus

DEFAULT_CACHE_SIZE = 65_536
RAW_CACHE_SIZE = 8_192

# Variable parts of reply texts that say nothing about the cause. Each is replaced by one
# placeholder so that replies differing only in them share a cache entry. ISP codes
# survive: TSS04, S3150, BL000001, OFR004_105, r0201, AS(1430) are letters followed by
# digits, or short. An id is told from a code by its shape: a run of letters and digits in
# which a digit is followed by a letter (a1si123456qkb, 4Yc0R81XZ2z9v, BN8NAM11FT066) and
# which is at least six long, or a hex or digit run long enough that no code has one. A
# folded id takes the whole dotted or dashed run it sits in ("a1si123456qkb.123"), since the
# suffixes count messages too.
_VOLATILE = re.compile(
    r"[\w.+=-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\b\d{4}-\d\d-\d\d(?:[T_]\d\d:\d\d(?::\d\d)?(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)?"  # dates
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b"  # IPv4
    r"|\b(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}\b"  # IPv6, and clock times
    r"|\b\d\d:\d\d\b"  # clock times without seconds
    r"|\b(?=[\w.-]*\d)[\w.-]{20,}"  # session/queue ids, MX host names with digits
    r"|\b(?=[A-Za-z]*\d)[0-9A-Fa-f]{10,}\b"  # hex ids
    r"|\b\d{6,}\b"  # long numbers: timestamps, internal ids, sizes
    # mixed ids: a digit then a letter in one alphanumeric run of six or more
    r"|(?<![\w.-])[\w.-]*?(?<![A-Za-z0-9])(?=[A-Za-z0-9]{6})[A-Za-z]*\d[A-Za-z0-9]*?[A-Za-z]"
    r"[A-Za-z0-9]*(?![A-Za-z0-9])[\w-]*(?:\.[\w-]+)*"
    r"|(?<![\w.#:-])\d+(?=\])|(?<=\[)\d+(?![\w.:])"  # numbers in brackets: "[192.0.2.1 15]"
)
_PLACEHOLDER = "<*>"
# Every volatile part contains a digit or an "@", so only whitespace-separated tokens
# holding one need the regex; a scan of _VOLATILE over the whole text would cost ~70 us on
# a six-line Gmail reply. The vocabulary of replies is small, so every token's normal form
# is memoized and a text costs one dict lookup per token (~2 us for a Gmail reply).
_NEEDS_WORK = re.compile(r"[\d@]")
# The commonest volatile tokens are wholly one id, address or time, with at most brackets
# and punctuation around them: those take one fullmatch instead of the _VOLATILE scan and
# stay out of the memo, which they would only churn (each is new).
_WHOLE_ID = re.compile(
    r"(?P<pre>[\[(<]?)(?:"
    r"(?=[\w.-]*\d)[\w.-]{20,}"
    r"|(?=[A-Za-z0-9]{6})[A-Za-z]*\d[A-Za-z0-9]*?[A-Za-z][A-Za-z0-9]*[\w-]*(?:\.[\w-]+)*"
    r"|\d{6,}"
    r"|[\w.+=-]+@[\w-]+(?:\.[\w-]+)+"
    r"|\d{4}-\d\d-\d\d[T_]\d\d:\d\d(?::\d\d)?(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r")(?P<post>[\])>]?[.,;:]?)"
)
_TOKEN_MEMO_LIMIT = 65_536
# "550-5.7.26 text" continuation lines of a multi-line reply repeat code and enhanced code.
_CONTINUATION = re.compile(r"\n\s*\d{3}[ -](?:[245]\.\d{1,3}\.\d{1,3}[ -]?)?")
_DSN_PREFIX = re.compile(r"^\s*(?:diagnostic-code:\s*)?(?:smtp|x-postfix|x-unix)\s*;\s*", re.I)
_LEADING = re.compile(r"^\s*(?P<code>[245]\d\d)?[ -]?\s*(?:#?(?P<enh>[245]\.\d{1,3}\.\d{1,3})\b)?")
# An enhanced code written elsewhere in the text ("(#4.4.5)", "[5.1.1]"), guarded so that
# dotted numbers such as 4.16.55.1 are not taken for one.
_EMBEDDED_ENHANCED = re.compile(r"(?<![\d.])#?([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)(?!\.\d)")

_token_memo: dict[str, str] = {}


def _normalize_token(token: str) -> str:
    if _NEEDS_WORK.search(token) is None:
        normal = token
    else:
        whole = _WHOLE_ID.fullmatch(token)
        if whole is not None:
            return whole.group("pre") + _PLACEHOLDER + whole.group("post")
        normal = _VOLATILE.sub(_PLACEHOLDER, token)
    if len(_token_memo) >= _TOKEN_MEMO_LIMIT:
        _token_memo.clear()
    _token_memo[token] = normal
    return normal


def normalize_text(text: str) -> str:
    """The cache key form of a reply text: volatile parts replaced, whitespace collapsed."""
    if "\n" in text:
        text = _CONTINUATION.sub(" ", text)
    tokens = text.split()
    if tokens and tokens[0][:1] in ("s", "S", "d", "D", "x", "X"):
        tokens = _DSN_PREFIX.sub("", " ".join(tokens), count=1).split()
    memo = _token_memo.get
    return " ".join([memo(token) or _normalize_token(token) for token in tokens])


def split_reply(code: int | None, enhanced: str | None, text: str) -> tuple[int | None, str | None]:
    """The reply code and enhanced code, taking them from the text when not given.

    A given enhanced code of the form X.0.0 (a DSN's generic Status) yields to a more
    specific one at the start of the text: "Status: 5.0.0" with "550 5.7.606 ..." is 5.7.606.
    """
    enhanced = enhanced.strip() if enhanced else None
    found = _LEADING.match(_DSN_PREFIX.sub("", text, count=1))
    text_code = found.group("code") if found else None
    text_enhanced = found.group("enh") if found else None
    if code is None and text_code is not None:
        code = int(text_code)
    if enhanced is None or (enhanced.endswith(".0.0") and text_enhanced is not None):
        if text_enhanced is None:
            embedded = _EMBEDDED_ENHANCED.search(text)
            text_enhanced = embedded.group(1) if embedded else None
        if text_enhanced is not None:
            enhanced = text_enhanced
    return code, enhanced


def _reply_class(code: int | None, enhanced: str | None, status: SourceStatus | None) -> int:
    if code is not None:
        return code // 100
    if enhanced is not None and enhanced[:1] in ("2", "4", "5"):
        return int(enhanced[0])
    if status is SourceStatus.DELIVERED:
        return 2
    if status is SourceStatus.DEFERRED:
        return 4
    if status is SourceStatus.BOUNCED:
        return 5
    return 0


#: Members read on the per-event path, as module globals: reading an Enum member off its
#: class costs about 0.1 us in Python 3.11, ten times a global's read.
_STATUS_SUPPRESSED, _STATUS_EXPIRED = SourceStatus.SUPPRESSED, SourceStatus.EXPIRED
_OUTCOME_BY_CLASS = {2: Outcome.DELIVERED, 4: Outcome.DEFERRED, 5: Outcome.BOUNCED}
# The source's final word, for a reply without a code (see the module docstring).
_VERDICT = {SourceStatus.BOUNCED: Outcome.BOUNCED, SourceStatus.DEFERRED: Outcome.DEFERRED}


def bounce_type_for(outcome: Outcome, category: Category) -> BounceType:
    if outcome is Outcome.DELIVERED:
        return BounceType.NONE
    if outcome is Outcome.BOUNCED and category in HARD_CATEGORIES:
        return BounceType.HARD
    return BounceType.SOFT


class ReplyClassifier:
    """Classifies SMTP replies with a compiled rules table and a bounded cache."""

    def __init__(self, table: CompiledTable, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._table = table
        self._cached: Callable[
            [int | None, str | None, str, SourceStatus | None], Classification
        ] = functools.lru_cache(maxsize=cache_size)(self._classify_normalized)
        # Exact repeats (the same receiver text for the same sending IP) skip normalization.
        # Kept small: replies with per-message ids never repeat and would only evict.
        self._raw: Callable[[int | None, str | None, str, SourceStatus | None], Classification] = (
            functools.lru_cache(maxsize=min(cache_size, RAW_CACHE_SIZE))(
                self._normalize_then_classify
            )
        )

    @property
    def table(self) -> CompiledTable:
        return self._table

    def classify(
        self,
        code: int | None,
        enhanced: str | None,
        text: str,
        status: SourceStatus | None = None,
    ) -> Classification:
        if status is _STATUS_SUPPRESSED:
            return _SUPPRESSED
        if code is not None and 200 <= code < 300 and status is not _STATUS_EXPIRED:
            return _DELIVERED
        return self._raw(code, enhanced, text, status)

    def _normalize_then_classify(
        self, code: int | None, enhanced: str | None, text: str, status: SourceStatus | None
    ) -> Classification:
        return self._cached(code, enhanced, normalize_text(text) if text else "", status)

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()  # type: ignore[attr-defined, no-any-return]

    def _classify_normalized(
        self, code: int | None, enhanced: str | None, text: str, status: SourceStatus | None
    ) -> Classification:
        code, enhanced = split_reply(code, enhanced, text)
        if status is SourceStatus.EXPIRED:
            return self._expired(code, enhanced, text)
        reply_class = _reply_class(code, enhanced, status)
        if reply_class == 2:
            return _DELIVERED
        rule = self._first_match(reply_class, code, enhanced, text)
        verdict = _VERDICT.get(status) if code is None and status is not None else None
        if rule is None:
            outcome = verdict or _OUTCOME_BY_CLASS.get(reply_class, Outcome.DEFERRED)
            return Classification(
                outcome=outcome,
                bounce_type=bounce_type_for(outcome, Category.UNKNOWN),
                category=Category.UNKNOWN,
                reason="reply not recognised by any rule",
                isp_code=self._isp_code(None, enhanced, text),
                rule_id=None,
            )
        outcome = (
            rule.outcome_override
            or verdict
            or _OUTCOME_BY_CLASS.get(reply_class)
            or _fallback(rule)
        )
        category = rule.category
        if category is Category.DELIVERED and outcome is not Outcome.DELIVERED:
            category = Category.UNKNOWN
        return Classification(
            outcome=outcome,
            bounce_type=bounce_type_for(outcome, category),
            category=category,
            reason=rule.reason,
            isp_code=self._isp_code(rule, enhanced, text),
            rule_id=rule.id,
        )

    def _first_match(
        self, reply_class: int, code: int | None, enhanced: str | None, text: str
    ) -> CompiledRule | None:
        # Pre-filter: a rule none of whose required literals is in the text cannot match,
        # and a substring test is far cheaper than a regex search (a cold miss over the
        # whole table went from ~115 to ~35 us). Only on ASCII text, where str.lower and
        # the regex engine's case folding agree.
        lowered = text.lower() if text.isascii() else None
        for rule in self._table.by_class.get(reply_class, ()):
            literals = rule.literals
            if lowered is not None and literals is not None:
                for literal in literals:
                    if literal in lowered:
                        break
                else:
                    continue
            if rule.matches(code, enhanced, text, lowered):
                return rule
        return None

    def _isp_code(self, rule: CompiledRule | None, enhanced: str | None, text: str) -> str | None:
        if rule is not None and rule.isp_code is not None:
            if rule.isp_code == ISP_CODE_FROM_ENHANCED:
                return enhanced if _is_receiver_specific(enhanced) else None
            return rule.isp_code
        if rule is not None and rule.regex is not None and "isp_code" in rule.regex.groupindex:
            found = rule.regex.search(text)
            if found is not None and found.group("isp_code"):
                return found.group("isp_code")
        for extractor in self._table.isp_codes:
            value = extractor.extract(text)
            if value is not None:
                return value
        return None

    def _expired(self, code: int | None, enhanced: str | None, text: str) -> Classification:
        last = None
        if text or code is not None or enhanced is not None:
            reply_class = _reply_class(code, enhanced, None)
            rule = self._first_match(reply_class, code, enhanced, text)
            if rule is not None:
                last = rule
        reason = "the sending MTA gave up retrying (message expired)"
        if last is not None and last.category is not Category.EXPIRED:
            reason += f"; last reply: {last.reason}"
        return Classification(
            outcome=Outcome.BOUNCED,
            bounce_type=BounceType.SOFT,
            category=Category.EXPIRED,
            reason=reason,
            isp_code=self._isp_code(last, enhanced, text) if text else None,
            rule_id="status.expired",
        )


def _is_receiver_specific(enhanced: str | None) -> bool:
    # RFC 3463 and RFC 5248 define details below 20; receivers index their own documented
    # replies above that (Gmail 4.7.28, Microsoft 4.7.650 and 5.7.606), and only those
    # name a specific cause. "5.7.1" is everyone's generic refusal, not an ISP code.
    if enhanced is None:
        return False
    detail = enhanced.rpartition(".")[2]
    return detail.isdigit() and int(detail) >= 20


def _fallback(rule: CompiledRule) -> Outcome:
    # Neither a reply code, an enhanced code nor a status: a category that condemns the
    # address (or the MTA's expiry) is final; anything else may still be retried.
    if rule.category in HARD_CATEGORIES or rule.category is Category.EXPIRED:
        return Outcome.BOUNCED
    return Outcome.DEFERRED


_DELIVERED = Classification(
    outcome=Outcome.DELIVERED,
    bounce_type=BounceType.NONE,
    category=Category.DELIVERED,
    reason="accepted by the receiving server (2xx)",
    isp_code=None,
    rule_id="smtp.2xx",
)
_SUPPRESSED = Classification(
    outcome=Outcome.BOUNCED,
    bounce_type=BounceType.HARD,
    category=Category.SUPPRESSED,
    reason="not sent: the address is on the sender's suppression list",
    isp_code=None,
    rule_id="status.suppressed",
)


def packaged_rules() -> RulesFile:
    text = (
        importlib.resources.files("delivery").joinpath("data/reply_rules.yaml").read_text("utf-8")
    )
    return parse_rules_text(text, "delivery/data/reply_rules.yaml")


def load_classifier(
    extra_rules: Path | None = None, cache_size: int = DEFAULT_CACHE_SIZE
) -> ReplyClassifier:
    """The packaged table plus an optional user file whose rules take precedence.

    A user rule with the id of a packaged rule replaces it; a new id adds a rule, evaluated
    before packaged rules of the same priority and kind. A bad file raises
    ``RulesFileError`` naming the rule, field and line.
    """
    user = load_rules_file(extra_rules) if extra_rules is not None else None
    return ReplyClassifier(compile_table(packaged_rules(), user), cache_size=cache_size)


@functools.cache
def default_classifier() -> ReplyClassifier:
    """The classifier over the packaged table, built once per process."""
    return load_classifier()
