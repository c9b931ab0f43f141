"""The labelled reply corpus (tests/data/replies): its shape and its split.

The corpus is written from MTA and provider documentation (tests/data/replies/README.md);
rules are written against dev.jsonl only, and heldout.jsonl measures how they generalize
(scored in tests/unit/test_classify_evaluate.py, through ``classify --evaluate``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from schemas.vocabulary import HARD_CATEGORIES, BounceType, Category, Outcome

CORPUS = Path(__file__).resolve().parent.parent / "data" / "replies"
SOURCES: dict[str, str] = yaml.safe_load((CORPUS / "sources.yaml").read_text("utf-8"))


def _rows(name: str) -> list[dict[str, Any]]:
    lines = (CORPUS / f"{name}.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


DEV = _rows("dev")
HELDOUT = _rows("heldout")


def test_corpus_is_large_distinct_and_sourced() -> None:
    rows = DEV + HELDOUT
    texts = [row["text"] for row in rows]
    assert len(set(texts)) == len(texts) >= 600
    families = Counter(row["family"] for row in rows)
    assert len(families) >= 25, families
    for row in rows:
        assert row["source"] in SOURCES, row
        expected = row["expected"]
        outcome, bounce = Outcome(expected["outcome"]), BounceType(expected["bounce_type"])
        category = Category(expected["category"])
        hard = outcome is Outcome.BOUNCED and category in HARD_CATEGORIES
        assert (bounce is BounceType.HARD) == hard, row


def test_split_is_fixed_by_the_text_hash() -> None:
    def held(text: str) -> bool:
        return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 3 == 0

    assert all(held(row["text"]) for row in HELDOUT)
    assert not any(held(row["text"]) for row in DEV)
