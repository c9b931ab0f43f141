"""The per-message ids receivers put into their replies, made up fresh for each call.

Real reply texts rarely repeat to the letter: Gmail appends a message id before "- gsmtp",
Exchange Online a "[host time id]" trailer. The classifier tests and its benchmark both
need such variants; both draw from a seeded ``random.Random`` of their own.
"""

from __future__ import annotations

import random
import string


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def gmail_id(rng: random.Random) -> str:
    """Gmail's id before "- gsmtp": "a1si123456qkb.123" or the long form
    "d2e1a72fcca58-6f0a1b2c3d4si1234567pfb.123"."""
    if rng.random() < 0.5:
        head = pick(rng, string.ascii_lowercase, 1) + pick(rng, string.digits, 1)
    else:
        head = pick(rng, "0123456789abcdef", 13) + "-" + pick(rng, "0123456789abcdef", 11)
    tail = pick(rng, string.ascii_lowercase, 3) + "." + str(rng.randint(1, 999))
    return f"{head}si{pick(rng, string.digits, rng.randint(6, 9))}{tail}"


def microsoft_trailer(rng: random.Random) -> str:
    """Exchange Online's "[front-end host, time, message id]" at the end of a reply."""
    host = f"{pick(rng, string.ascii_uppercase, 2)}{rng.randint(1, 9)}PR{rng.randint(10, 99)}MB"
    host += f"{rng.randint(1000, 9999)}.namprd{rng.randint(10, 99)}.prod.outlook.com"
    stamp = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
    stamp += f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
    stamp += f"{rng.randint(0, 999):03d}Z"
    return f"[{host} {stamp} {pick(rng, '0123456789ABCDEF', 16)}]"
