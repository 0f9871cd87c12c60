"""The chatd wire protocol, free of I/O: messages, validation, both encodings, error codes.

It imports only the standard library and ``msgpack``; ``tests/test_protocol_purity.py`` checks it.
"""

from __future__ import annotations

from . import outbound
from .codec import JSON, MSGPACK, SUBPROTOCOLS, decode, decode_server, encode, load_map
from .errors import BadFrame, BadMessage, CloseCode, ErrorCode, ProtocolError, TooLarge
from .messages import AGENT, VISITOR, Message

__all__ = [
    "AGENT", "JSON", "MSGPACK", "SUBPROTOCOLS", "VISITOR",
    "BadFrame", "BadMessage", "CloseCode", "ErrorCode", "Message", "ProtocolError", "TooLarge",
    "decode", "decode_server", "encode", "load_map", "outbound",
]
