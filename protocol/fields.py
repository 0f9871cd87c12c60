"""Field checks: each ``Field`` validates one value of a frame and raises a ``ProtocolError``.

Checks are data, not code scattered in handlers, so that the full set of rules reads as a table in
``messages.py`` and property tests can generate valid values from the same table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import BadMessage, TooLarge

ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
TOKEN_MAX = 512


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str  # "str" | "id" | "text" | "int" | "bool" | "enum" | "resume" | "resume_list"
    required: bool = True
    min_len: int = 0
    max_len: int = 0
    lo: int = 0
    hi: int = 0
    choices: tuple[str, ...] = ()

    def check(self, value: Any, ref: str | None) -> Any:
        kind = self.kind
        if kind == "text" or kind == "str":
            if type(value) is not str:
                raise BadMessage(f"field {self.name!r} must be a string", ref)
            n = len(value)  # code points, as docs/protocol.md "Text" says
            if n > self.max_len:
                cls = TooLarge if kind == "text" else BadMessage
                raise cls(f"field {self.name!r} is longer than {self.max_len} characters", ref)
            if n < self.min_len:
                raise BadMessage(f"field {self.name!r} must not be empty", ref)
            return value
        if kind == "id":
            if type(value) is not str or not ID_RE.match(value):
                raise BadMessage(f"field {self.name!r} must be an id of 1-64 [A-Za-z0-9_.:-]", ref)
            return value
        if kind == "int":
            if type(value) is not int or not (self.lo <= value <= self.hi):
                raise BadMessage(
                    f"field {self.name!r} must be an integer from {self.lo} to {self.hi}", ref
                )
            return value
        if kind == "bool":
            if type(value) is not bool:
                raise BadMessage(f"field {self.name!r} must be true or false", ref)
            return value
        if kind == "enum":
            if value not in self.choices or type(value) is not str:
                raise BadMessage(f"field {self.name!r} must be one of {', '.join(self.choices)}", ref)
            return value
        if kind == "resume":
            return _resume(value, self.name, ref)
        if kind == "resume_list":
            if type(value) is not list or len(value) > self.hi:
                raise BadMessage(f"field {self.name!r} must be a list of at most {self.hi}", ref)
            return tuple(_resume(v, self.name, ref) for v in value)
        raise AssertionError(kind)  # pragma: no cover - table error


def _resume(value: Any, name: str, ref: str | None) -> Resume:
    if type(value) is not dict:
        raise BadMessage(f"field {name!r} must be a map {{session, after}}", ref)
    session = value.get("session")
    after = value.get("after", 0)
    if type(session) is not str or not ID_RE.match(session):
        raise BadMessage(f"field {name!r}.session must be a session id", ref)
    if type(after) is not int or not (0 <= after <= 2**53):
        raise BadMessage(f"field {name!r}.after must be a non-negative integer", ref)
    return Resume(session, after)


@dataclass(frozen=True, slots=True)
class Resume:
    session: str
    after: int = 0

    def to_map(self) -> dict[str, Any]:
        return {"session": self.session, "after": self.after}


# Reusable field shapes. Limits here are the protocol's; deployment limits live in Settings.
TEXT_MAX = 4000
COMMENT_MAX = 1000


def session(required: bool = True) -> Field:
    return Field("session", "id", required)


def text(name: str = "text", required: bool = True) -> Field:
    return Field(name, "text", required, min_len=1, max_len=TEXT_MAX)


def token() -> Field:
    return Field("token", "str", False, min_len=1, max_len=TOKEN_MAX)


def lang(required: bool = False) -> Field:
    return Field("lang", "str", required, min_len=2, max_len=16)
