"""Regenerate README.md's settings table from the Settings model (``make readme``)."""

from __future__ import annotations

import re
from pathlib import Path

from bouncewatch.commands.settings import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = re.compile(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", re.S)


def updated(text: str) -> str:
    return SECTION.sub(lambda m: m.group(1) + markdown_table() + "\n" + m.group(2), text)


if __name__ == "__main__":
    README.write_text(updated(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {README}")
