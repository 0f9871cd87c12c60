"""Resume codes: the only way back to a chat left to be answered later.

A code is shown once (in `left`) and never stored: Redis keeps only its digest. 12 characters
from an alphabet without look-alikes (no 0/O, 1/I/L, 5/S, 2/Z, 8/B) give 25^12 ≈ 6 × 10^16
codes; with attempts limited per address (CHATD_CODE_TRIES per 10 minutes) guessing one
is out of reach. People copy codes by hand from paper: case, spaces and dashes do not count.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"  # what cannot be misread for another character
LENGTH = 12
GROUP = 4
TRY_WINDOW_S = 600


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize(text: str) -> str | None:
    """The code as typed (any case, with spaces or dashes), or None if it cannot be one."""
    raw = "".join(ch for ch in text.upper() if ch not in " -\t")
    if len(raw) != LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return raw


def digest(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("ascii")).hexdigest()
