"""One frozen dataclass per inbound message type, and the tables that say who may send which.

A message is built only by ``protocol.codec.decode`` (after every field is checked against the
class's ``FIELDS``) or by a client that means to send it; so a handler that holds a ``Send`` knows
its ``text`` has 1-4000 code points and its ``session`` is a well-formed id. Server-to-client
frames are plain maps built by ``protocol.outbound``: they are made on the hot path and never
validated by the server itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from . import fields as f
from .errors import BadMessage
from .fields import Field, Resume


@dataclass(frozen=True, slots=True)
class Message:
    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[Field, ...]] = ()

    @classmethod
    def check_together(cls, values: dict[str, Any], ref: str | None) -> None:
        """Rules that span fields (each field alone is checked by its ``Field``)."""

    def to_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE}
        for fl in fields(self):
            value = getattr(self, fl.name)
            if value is None:
                continue
            if isinstance(value, Resume):
                value = value.to_map()
            elif isinstance(value, tuple):
                value = [v.to_map() for v in value]
            out[fl.name] = value
        return out


@dataclass(frozen=True, slots=True)
class VisitorHello(Message):
    TYPE = "hello"
    FIELDS = (f.token(), Field("resume", "resume", False), f.lang(),
              Field("code", "str", False, min_len=1, max_len=64))
    token: str | None = None
    resume: Resume | None = None
    lang: str | None = None
    code: str | None = None  # a resume code: the way back to a chat left for later


@dataclass(frozen=True, slots=True)
class AgentHello(Message):
    TYPE = "hello"
    FIELDS = (f.token(), Field("resume", "resume_list", False, hi=64))
    token: str | None = None
    resume: tuple[Resume, ...] | None = None


@dataclass(frozen=True, slots=True)
class Start(Message):
    TYPE = "start"
    FIELDS = (Field("topic", "id"), f.lang(), f.text(required=False))
    topic: str
    lang: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Send(Message):
    """A message: text, a photo (``attachment``: the id POST /api/uploads answered), or both."""

    TYPE = "send"
    FIELDS = (f.session(), Field("cid", "id"), f.text(required=False),
              Field("attachment", "id", False))
    session: str
    cid: str
    text: str | None = None
    attachment: str | None = None

    @classmethod
    def check_together(cls, values: dict[str, Any], ref: str | None) -> None:
        # an empty message says nothing: text, a photo, or both
        if values.get("text") is None and values.get("attachment") is None:
            raise BadMessage("send: give a text (1-4000 characters), an attachment, or both", ref)


@dataclass(frozen=True, slots=True)
class Typing(Message):
    TYPE = "typing"
    FIELDS = (f.session(), Field("on", "bool"))
    session: str
    on: bool


@dataclass(frozen=True, slots=True)
class Read(Message):
    TYPE = "read"
    FIELDS = (f.session(), Field("seq", "int", lo=0, hi=2**53))
    session: str
    seq: int


@dataclass(frozen=True, slots=True)
class VisitorClose(Message):
    TYPE = "close"
    FIELDS = (
        f.session(),
        Field("rating", "int", False, lo=1, hi=5),
        Field("comment", "text", False, min_len=0, max_len=f.COMMENT_MAX),
        Field("reason", "enum", False, choices=("quick_exit",)),
    )
    session: str
    rating: int | None = None
    comment: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Leave(Message):
    """The visitor goes and leaves the question to be answered later (answered `left`)."""

    TYPE = "leave"
    FIELDS = (f.session(),)
    session: str


@dataclass(frozen=True, slots=True)
class Rate(Message):
    TYPE = "rate"
    FIELDS = (
        f.session(),
        Field("rating", "int", lo=1, hi=5),
        Field("comment", "text", False, min_len=0, max_len=f.COMMENT_MAX),
    )
    session: str
    rating: int
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Ping(Message):
    TYPE = "ping"


@dataclass(frozen=True, slots=True)
class Status(Message):
    TYPE = "status"
    FIELDS = (
        Field("status", "enum", choices=("available", "away")),
        Field("capacity", "int", False, lo=1, hi=50),
    )
    status: str
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class Accept(Message):
    TYPE = "accept"
    FIELDS = (f.session(),)
    session: str


@dataclass(frozen=True, slots=True)
class Decline(Message):
    TYPE = "decline"
    FIELDS = (f.session(),)
    session: str


@dataclass(frozen=True, slots=True)
class Note(Message):
    TYPE = "note"
    FIELDS = (f.session(), Field("cid", "id", False), f.text())
    session: str
    cid: str | None = None
    text: str = ""


#: code points of the note a chat is handed on with (`transfer`, `reassign`)
HANDOFF_NOTE_MAX = 1000
#: code points of the reason a gendarme gives for a `block`
BLOCK_REASON_MAX = 200


def _handoff_fields() -> tuple[Field, ...]:
    return (f.session(), Field("to_agent", "id", False), Field("to_topic", "id", False),
            Field("note", "text", False, min_len=0, max_len=HANDOFF_NOTE_MAX))


@dataclass(frozen=True, slots=True)
class Transfer(Message):
    """The holder hands a chat on; ``note`` becomes an internal note and rides on the offer."""

    TYPE = "transfer"
    FIELDS = _handoff_fields()
    session: str
    to_agent: str | None = None
    to_topic: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TakeOver(Message):
    """A supervisor makes someone's chat their own (supervisors only)."""

    TYPE = "take_over"
    FIELDS = (f.session(),)
    session: str


@dataclass(frozen=True, slots=True)
class Reassign(Message):
    """A supervisor hands anybody's active chat on, as its holder's `transfer` would."""

    TYPE = "reassign"
    FIELDS = _handoff_fields()
    session: str
    to_agent: str | None = None
    to_topic: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AgentClose(Message):
    TYPE = "close"
    FIELDS = (f.session(), Field("disposition", "id"))
    session: str
    disposition: str


@dataclass(frozen=True, slots=True)
class Block(Message):
    """An agent bars an abusive visitor from starting or resuming chats for a while."""

    TYPE = "block"
    FIELDS = (f.session(), Field("hours", "int", False, lo=1, hi=720),
              Field("reason", "text", False, min_len=0, max_len=BLOCK_REASON_MAX))
    session: str
    hours: int | None = None
    reason: str | None = None  # why: kept with the bar and in the audit trail


@dataclass(frozen=True, slots=True)
class Take(Message):
    """A gendarme takes a chat left for later from the list of those waiting (GET /api/async):
    it is offered to them at once, out of its turn; they answer the `offer` as any other."""

    TYPE = "take"
    FIELDS = (f.session(),)
    session: str


def _table(*classes: type[Message]) -> dict[str, type[Message]]:
    return {c.TYPE: c for c in classes}


#: What a visitor may send, by ``type``.
VISITOR: dict[str, type[Message]] = _table(
    VisitorHello, Start, Send, Typing, Read, VisitorClose, Rate, Ping, Leave
)
#: What an agent may send, by ``type``.
AGENT: dict[str, type[Message]] = _table(
    AgentHello, Status, Accept, Decline, Send, Typing, Read, Note, Transfer, AgentClose, Block,
    Ping, TakeOver, Reassign, Take,
)
