"""Answers a waiting citizen may find useful at once: up to three of the brigade's shared canned
answers that are about the chat's topic and share words with what the citizen wrote.

Matching forgives what people type on a phone: case and accents do not count (« Arnaque » finds
« arnaque », « escroqueries » finds « escroquerie »), short words and common ones are ignored,
and a word matches the beginning of a longer one (« cambriol » in « cambriolage »).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from .canned import Canned

LIMIT = 3
_WORD = re.compile(r"[a-z0-9]+")
_STEM = 6  # letters compared: plurals and endings differ after them
_COMMON = frozenset("""
    avec avoir bonjour dans elle est etre faire pour sans sont mais comment quand quoi
    votre vous nous mon mes ma mes moi suis une des les aux par sur pas plus tres bien
    merci madame monsieur hello please thanks what with have from this that your
""".split())


def words(text: str) -> set[str]:
    """The words that count, without accents or case, cut to their first letters."""
    flat = unicodedata.normalize("NFKD", text.lower())
    flat = "".join(ch for ch in flat if not unicodedata.combining(ch))
    return {w[:_STEM] for w in _WORD.findall(flat) if len(w) >= 4 and w not in _COMMON}


def suggest(answers: Iterable[Canned], topic: str, text: str, limit: int = LIMIT) -> list[Canned]:
    """The answers of this topic sharing the most words with ``text`` (ties: file order);
    answers meant for every topic are agents' phrases (greetings, closings): never."""
    wanted = words(text)
    if not wanted:
        return []
    scored = []
    for i, answer in enumerate(answers):
        if topic not in answer.topics:
            continue
        score = len(wanted & words(answer.title + " " + answer.text))
        if score:
            scored.append((-score, i, answer))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [a for _, _, a in scored[:limit]]
