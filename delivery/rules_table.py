"""The SMTP reply rules table: its file format, validation and compilation.

The knowledge of what a reply means lives in ``delivery/data/reply_rules.yaml`` (and in an
optional user file that overrides or extends it). This module validates such files with
pydantic, reports a bad rule by its index, id, field and line, and compiles the merged
rules into plain frozen objects that ``delivery.classify`` evaluates on the hot path.

A rule matches when every constraint it states holds:

- ``code``: a reply code (``421``), a list of codes, or a class (``"4xx"``);
- ``enhanced``: an RFC 3463 code, exact (``"5.7.26"``), a prefix (``"5.7."``), or
  class-independent with a leading ``x`` (``"x.1.1"``, ``"x.7."``); or a list of those;
- ``pattern``: a case-insensitive regular expression searched in the normalized text.

Evaluation order: higher ``priority`` first; then rules with a ``pattern`` before rules
that only constrain the enhanced code, before rules that only constrain the reply code
(the text is the most specific evidence, the bare reply code the least); then user rules
before packaged ones; then file order. The first match decides.
"""

from __future__ import annotations

import re

# The regex parser, for required_literals: its output is what the engine runs, so literals
# read from it are exact. No stubs ship for these private modules.
import re._constants as _sre  # type: ignore[import-not-found]
import re._parser as _sre_parser  # type: ignore[import-not-found]
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.vocabulary import Category, Outcome

#: ``isp_code`` value that means "the enhanced status code is the ISP's own code" (Gmail's
#: 4.7.28, Microsoft's 5.7.606: the detail is what their documentation is indexed by).
#: Only details of 20 and above count; below that the code is a generic RFC 3463 one.
ISP_CODE_FROM_ENHANCED = "$enhanced"

_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_CODE_CLASS = re.compile(r"^[245]xx$")
_ENHANCED_SPEC = re.compile(r"^[245x]\.(?:\d{1,3}\.(?:\d{1,3})?)?$")


class RulesFileError(ValueError):
    """A rules file that cannot be used, with where and why."""


class RuleSpec(BaseModel):
    """One rule as written in a rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    code: int | str | list[int | str] | None = None
    enhanced: str | list[str] | None = None
    pattern: str | None = None
    isp: str | None = None
    category: Category
    outcome_override: Outcome | None = None
    isp_code: str | None = None
    reason: str = Field(min_length=1)
    source: str = Field(min_length=1)
    priority: int = 0
    note: str | None = None

    @field_validator("code")
    @classmethod
    def _check_code(cls, value: int | str | list[int | str] | None) -> Any:
        for item in _as_list(value):
            if isinstance(item, bool):
                raise ValueError("a reply code is a number such as 550 or a class such as '5xx'")
            if isinstance(item, int):
                if not 200 <= item <= 599:
                    raise ValueError(f"reply code {item} is outside 200-599")
            elif not _CODE_CLASS.match(item):
                raise ValueError(f"{item!r} is neither a reply code nor a class like '4xx'")
        return value

    @field_validator("enhanced")
    @classmethod
    def _check_enhanced(cls, value: str | list[str] | None) -> Any:
        for item in _as_list(value):
            if not _ENHANCED_SPEC.match(item):
                raise ValueError(
                    f"{item!r} is not an enhanced code ('5.7.26'), a prefix ('5.7.') "
                    "or a class-independent form ('x.1.1')"
                )
        return value

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _needs_a_constraint(self) -> RuleSpec:
        if self.code is None and self.enhanced is None and self.pattern is None:
            raise ValueError("a rule needs at least one of code, enhanced or pattern")
        return self


class IspCodeSpec(BaseModel):
    """A pattern that lifts an ISP's own code (TSS04, S3150, BL000001) out of a reply text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    pattern: str
    source: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        if "code" not in compiled.groupindex:
            raise ValueError("the pattern needs a named group (?P<code>...)")
        return value


class RulesFile(BaseModel):
    """A whole rules file: the packaged table or a user's overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    rules: list[RuleSpec] = Field(default_factory=list)
    isp_codes: list[IspCodeSpec] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready for the hot path: sets, prefixes and one compiled regex."""

    id: str
    category: Category
    reason: str
    outcome_override: Outcome | None
    isp_code: str | None  # a literal, ISP_CODE_FROM_ENHANCED, or None
    codes: frozenset[int] | None
    code_classes: frozenset[int] | None
    enhanced_exact: frozenset[str]
    enhanced_prefixes: tuple[str, ...]
    # class-independent forms, stored without the class digit: "1.1", "7."
    detail_exact: frozenset[str]
    detail_prefixes: tuple[str, ...]
    regex: re.Pattern[str] | None
    #: reply classes (2, 4, 5) this rule can ever match; None when it does not constrain them
    classes: frozenset[int] | None
    #: lower-case strings one of which every match of ``regex`` contains (see
    #: ``required_literals``); None when the pattern guarantees none
    literals: tuple[str, ...] | None = None
    #: the pattern's top-level alternatives, each with its own literals (``split_branches``);
    #: empty when the pattern is one alternative, which ``regex`` then answers alone
    branches: tuple[Branch, ...] = ()

    @property
    def constrains_enhanced(self) -> bool:
        return bool(
            self.enhanced_exact
            or self.enhanced_prefixes
            or self.detail_exact
            or self.detail_prefixes
        )

    def matches(
        self, code: int | None, enhanced: str | None, text: str, lowered: str | None = None
    ) -> bool:
        """Whether the reply meets every constraint. ``lowered`` is ``text.lower()`` when the
        text is ASCII (the caller computes it once per reply), else None: then every
        alternative of the pattern is searched, with no literal pre-filter."""
        if self.codes is not None or self.code_classes is not None:
            if code is None:
                return False
            in_codes = self.codes is not None and code in self.codes
            in_classes = self.code_classes is not None and code // 100 in self.code_classes
            if not (in_codes or in_classes):
                return False
        if self.constrains_enhanced and (enhanced is None or not self._enhanced_matches(enhanced)):
            return False
        if self.regex is None:
            return True
        if not self.branches:
            return self.regex.search(text) is not None
        for branch in self.branches:
            if lowered is not None and branch.literals is not None:
                for literal in branch.literals:
                    if literal in lowered:
                        break
                else:
                    continue
            if branch.regex.search(text) is not None:
                return True
        return False

    def _enhanced_matches(self, enhanced: str) -> bool:
        if enhanced in self.enhanced_exact:
            return True
        if any(enhanced.startswith(p) for p in self.enhanced_prefixes):
            return True
        detail = enhanced[2:]
        if detail in self.detail_exact:
            return True
        return any(detail.startswith(p) for p in self.detail_prefixes)


@dataclass(frozen=True, slots=True)
class Branch:
    """One top-level alternative of a rule's pattern, with the literals it requires."""

    regex: re.Pattern[str]
    literals: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class IspCodeExtractor:
    id: str
    regex: re.Pattern[str]

    def extract(self, text: str) -> str | None:
        found = self.regex.search(text)
        return found.group("code") if found else None


@dataclass(frozen=True, slots=True)
class CompiledTable:
    """The merged, ordered, compiled rules."""

    rules: tuple[CompiledRule, ...]
    isp_codes: tuple[IspCodeExtractor, ...]
    #: per reply class (2, 4, 5, and 0 for "unknown class"), the rules that may match, in order
    by_class: Mapping[int, tuple[CompiledRule, ...]]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _field_lines(text: str) -> dict[tuple[str, int], tuple[int, dict[str, int]]]:
    """Line numbers of each list item and its fields, from the YAML node tree.

    Composing the node tree is a second, cheap parse that only error reporting uses.
    """
    lines: dict[tuple[str, int], tuple[int, dict[str, int]]] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key_node, value_node in root.value:
        if not isinstance(value_node, yaml.SequenceNode):
            continue
        for index, item in enumerate(value_node.value):
            fields: dict[str, int] = {}
            if isinstance(item, yaml.MappingNode):
                for field_key, _ in item.value:
                    fields[str(field_key.value)] = field_key.start_mark.line + 1
            lines[(str(key_node.value), index)] = (item.start_mark.line + 1, fields)
    return lines


def parse_rules_text(text: str, origin: str) -> RulesFile:
    """Validate a rules file's text; raise RulesFileError naming the rule, field and line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesFileError(f"{origin}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesFileError(f"{origin}: the top level must be a mapping with a 'rules' list")
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesFileError(_describe(exc, data, text, origin)) from exc


def _describe(exc: ValidationError, data: Mapping[str, Any], text: str, origin: str) -> str:
    lines = _field_lines(text)
    problems: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        where = ".".join(str(part) for part in loc)
        line: int | None = None
        if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
            section, index = loc[0], loc[1]
            items = data.get(section)
            rule_id = None
            if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
                rule_id = items[index].get("id")
            field = str(loc[2]) if len(loc) >= 3 else None
            item_line, field_lines = lines.get((section, index), (None, {}))
            line = field_lines.get(field, item_line) if field else item_line
            label = f"{section}[{index}]" + (f" (id {rule_id!r})" if rule_id else "")
            where = label + (f", field {field!r}" if field else "")
        at = f" (line {line})" if line else ""
        problems.append(f"{where}{at}: {error['msg']}")
    return f"{origin}: invalid rules file:\n  " + "\n  ".join(problems)


def load_rules_file(path: Path) -> RulesFile:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read rules file: {exc}") from exc
    return parse_rules_text(text, str(path))


def _tier(spec: RuleSpec) -> int:
    if spec.pattern is not None:
        return 2
    if spec.enhanced is not None:
        return 1
    return 0


def _compile_rule(spec: RuleSpec) -> CompiledRule:
    codes = {c for c in _as_list(spec.code) if isinstance(c, int)}
    classes = {int(c[0]) for c in _as_list(spec.code) if isinstance(c, str)}
    enhanced_exact: set[str] = set()
    enhanced_prefixes: list[str] = []
    detail_exact: set[str] = set()
    detail_prefixes: list[str] = []
    enhanced_classes: set[int] = set()
    any_class = False
    for item in _as_list(spec.enhanced):
        if item.startswith("x."):
            any_class = True
            rest = item[2:]
            (
                detail_prefixes.append(rest)
                if rest == "" or rest.endswith(".")
                else detail_exact.add(rest)
            )
        else:
            enhanced_classes.add(int(item[0]))
            if item.endswith("."):
                enhanced_prefixes.append(item)
            else:
                enhanced_exact.add(item)
    reachable: set[int] | None = None
    if codes or classes:
        reachable = {c // 100 for c in codes} | classes
    if spec.enhanced is not None and not any_class:
        reachable = enhanced_classes if reachable is None else reachable & enhanced_classes
    return CompiledRule(
        id=spec.id,
        category=spec.category,
        reason=spec.reason,
        outcome_override=spec.outcome_override,
        isp_code=spec.isp_code,
        codes=frozenset(codes) if codes else None,
        code_classes=frozenset(classes) if classes else None,
        enhanced_exact=frozenset(enhanced_exact),
        enhanced_prefixes=tuple(enhanced_prefixes),
        detail_exact=frozenset(detail_exact),
        detail_prefixes=tuple(detail_prefixes),
        regex=re.compile(spec.pattern, re.IGNORECASE) if spec.pattern is not None else None,
        classes=frozenset(reachable) if reachable is not None else None,
        literals=required_literals(spec.pattern) if spec.pattern is not None else None,
        branches=_branches(spec.pattern) if spec.pattern is not None else (),
    )


def _branches(pattern: str) -> tuple[Branch, ...]:
    parts = split_branches(pattern)
    if len(parts) < 2:
        return ()
    return tuple(Branch(re.compile(part, re.IGNORECASE), required_literals(part)) for part in parts)


_GLOBAL_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


def split_branches(pattern: str) -> list[str]:
    """The top-level alternatives of ``pattern`` ("a|b(c|d)" gives "a" and "b(c|d)").

    Why: a long alternation is searched by trying every alternative at every position of
    the text; a phrase family of twenty alternatives costs ~50 us on a Gmail-sized reply,
    where the one or two alternatives whose literals occur in it cost ~3 us. A pattern
    matches where one of its alternatives does, so searching them one by one, skipping
    those whose required literals are absent, gives the same answer. A pattern that global
    flags or a backreference tie together is kept whole (one alternative).
    """
    if _GLOBAL_FLAGS.match(pattern) or _BACKREFERENCE.search(pattern):
        return [pattern]
    parts: list[str] = []
    depth = 0
    start = 0
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # a "]" right after "[" or "[^" is a literal member, not the end of the class
            if pattern[index + 1 : index + 2] == "^":
                index += 1
            if pattern[index + 1 : index + 2] == "]":
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
        index += 1
    parts.append(pattern[start:])
    for part in parts:
        try:
            re.compile(part, re.IGNORECASE)
        except re.error:
            return [pattern]
    return parts


def required_literals(pattern: str) -> tuple[str, ...] | None:
    """Lower-case strings one of which every match of ``pattern`` (case-insensitive) contains.

    This is the pre-filter of a cold classification: a rule whose literals are all absent
    from the lower-cased text cannot match, and a substring test costs a fraction of a
    regex search. Read from the parsed pattern, so it is exact for any user rule: a run of
    literal characters is required; a group or a repeat of at least one passes on what its
    body requires; an alternation requires one of what each branch requires. Of the
    candidates the one with the longest shortest string wins. Only ASCII characters count,
    because the check is only trusted on ASCII text (``str.lower`` and the regex engine's
    case folding agree there and not beyond).
    """
    found = _required(_sre_parser.parse(pattern, re.IGNORECASE))
    if not found:
        return None
    # A text holding "too many " holds "too ": the longer string adds nothing to the test.
    return tuple(sorted(s for s in found if not any(t != s and t in s for t in found)))


def _required(items: Any) -> frozenset[str] | None:
    candidates: list[frozenset[str]] = []
    run: list[str] = []
    for op, arg in items:
        if op is _sre.LITERAL and arg < 128:
            run.append(chr(arg).lower())
            continue
        if run:
            candidates.append(frozenset(("".join(run),)))
            run = []
        found: frozenset[str] | None = None
        if op is _sre.SUBPATTERN:
            found = _required(arg[-1])
        elif op is _sre.BRANCH:
            branches = [_required(branch) for branch in arg[1]]
            if all(branches):
                found = frozenset().union(*(b for b in branches if b))
        elif op in _REPEATS and arg[0] >= 1:
            found = _required(arg[2])
        if found:
            candidates.append(found)
    if run:
        candidates.append(frozenset(("".join(run),)))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (min(len(s) for s in c), -len(c)))


def merge(packaged: RulesFile, user: RulesFile | None) -> list[tuple[RuleSpec, bool, int]]:
    """The rules of both files: a user rule replaces the packaged one with its id.

    Returns (rule, from_user, position) triples; a replaced rule keeps the user's place.
    """
    user_rules = user.rules if user is not None else []
    overridden = {rule.id for rule in user_rules}
    merged: list[tuple[RuleSpec, bool, int]] = [
        (rule, True, position) for position, rule in enumerate(user_rules)
    ]
    merged.extend(
        (rule, False, position)
        for position, rule in enumerate(packaged.rules)
        if rule.id not in overridden
    )
    return merged


def _check_unique(ids: Iterable[str], origin: str) -> None:
    seen: set[str] = set()
    for rule_id in ids:
        if rule_id in seen:
            raise RulesFileError(f"{origin}: rule id {rule_id!r} appears more than once")
        seen.add(rule_id)


def compile_table(packaged: RulesFile, user: RulesFile | None = None) -> CompiledTable:
    _check_unique((r.id for r in packaged.rules), "packaged rules table")
    if user is not None:
        _check_unique((r.id for r in user.rules), "user rules file")
    merged = merge(packaged, user)
    merged.sort(key=lambda item: (-item[0].priority, -_tier(item[0]), not item[1], item[2]))
    rules = tuple(_compile_rule(spec) for spec, _, _ in merged)

    user_codes = list(user.isp_codes) if user is not None else []
    replaced = {spec.id for spec in user_codes}
    code_specs: Sequence[IspCodeSpec] = user_codes + [
        spec for spec in packaged.isp_codes if spec.id not in replaced
    ]
    extractors = tuple(IspCodeExtractor(s.id, re.compile(s.pattern)) for s in code_specs)

    by_class = {
        reply_class: tuple(r for r in rules if r.classes is None or reply_class in r.classes)
        for reply_class in (2, 4, 5)
    }
    # Without a reply class only rules that do not depend on one can speak.
    by_class[0] = tuple(r for r in rules if r.codes is None and r.code_classes is None)
    return CompiledTable(rules=rules, isp_codes=extractors, by_class=by_class)
