"""Encode and decode whole WebSocket messages for both subprotocols.

``decode`` turns one frame into a validated ``Message`` or raises a ``ProtocolError`` subclass,
never anything else (docs/protocol.md, "Framing"). ``encode`` is the inverse, for any map with a
``type``: inbound ``Message`` objects and the outbound maps of ``protocol.outbound``.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from .errors import BadFrame, BadMessage
from .messages import Message

JSON = "chatd.v1.json"
MSGPACK = "chatd.v1.msgpack"
SUBPROTOCOLS = (JSON, MSGPACK)

_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# one packer for all frames: ``packb`` makes a new one (and its buffer) at every call; a pack
# holds the GIL from start to end, so threads cannot interleave in it
_pack = msgpack.Packer(use_bin_type=True).pack


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_map(data: str | bytes, subprotocol: str) -> dict[str, Any]:
    """Parse a frame into a map with a string ``type``; raise ``BadFrame``/``BadMessage``."""
    try:
        if subprotocol == JSON:
            if not isinstance(data, str):
                raise BadFrame("chatd.v1.json frames are text frames")
            obj = json.loads(data, parse_constant=_reject_constant)
        elif subprotocol == MSGPACK:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise BadFrame("chatd.v1.msgpack frames are binary frames")
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=0)
        else:
            raise BadFrame(f"unknown subprotocol {subprotocol!r}")
    except BadFrame:
        raise
    except Exception as exc:  # every parser failure is the client's: one code for all
        raise BadFrame(f"undecodable frame: {type(exc).__name__}") from exc
    if type(obj) is not dict:
        raise BadFrame("a frame must be a map")
    kind = obj.get("type")
    if type(kind) is not str:
        raise BadMessage("a frame needs a string field 'type'")
    return obj


def decode(data: str | bytes, subprotocol: str, table: dict[str, type[Message]]) -> Message:
    """Decode and validate one inbound frame against ``table`` (``messages.VISITOR``/``AGENT``)."""
    obj = load_map(data, subprotocol)
    kind = obj["type"]
    cls = table.get(kind)
    if cls is None:
        raise BadMessage(f"unknown message type {kind[:40]!r}", kind[:64])
    cid = obj.get("cid")
    ref = cid if type(cid) is str and len(cid) <= 64 else kind
    values: dict[str, Any] = {}
    for field in cls.FIELDS:
        value = obj.get(field.name)
        if value is None:
            if field.required:
                raise BadMessage(f"{kind}: missing field {field.name!r}", ref)
            continue
        values[field.name] = field.check(value, ref)
    cls.check_together(values, ref)
    return cls(**values)


def encode(message: Message | dict[str, Any], subprotocol: str) -> str | bytes:
    obj = message.to_map() if isinstance(message, Message) else message
    if subprotocol == MSGPACK:
        return _pack(obj)  # type: ignore[no-any-return]
    return _json_encoder.encode(obj)


def decode_server(data: str | bytes, subprotocol: str) -> dict[str, Any]:
    """For clients: read a server frame back into a map (no schema check beyond ``type``)."""
    return load_map(data, subprotocol)
