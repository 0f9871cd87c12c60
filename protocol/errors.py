"""Error and close codes of the wire protocol, and the only exceptions a decode may raise.

The exception tree::

    ProtocolError            carries an ErrorCode, a one-line message, and the offending ref
    ├── BadFrame             the bytes are not a frame at all (bad JSON/MessagePack, not a map)
    ├── BadMessage           a map, but an unknown type or a missing/ill-typed field
    └── TooLarge             a field is longer than the protocol allows

Everything that reads a frame catches ``ProtocolError`` and nothing else: any other exception
escaping ``protocol.decode`` is a bug (the fuzz tests hold that line).
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Values of the ``code`` field of ``error`` frames (docs/protocol.md, "Errors")."""

    BAD_FRAME = "bad_frame"
    BAD_MESSAGE = "bad_message"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    # POST /api/uploads only (docs/protocol.md, "Photos")
    UNSUPPORTED_TYPE = "unsupported_type"  # the bytes are not a JPEG, PNG, WebP or HEIC/HEIF
    BAD_IMAGE = "bad_image"  # an accepted type, but truncated, corrupt or too many pixels


class CloseCode(enum.IntEnum):
    """WebSocket close codes chatd uses (docs/protocol.md, "Closing")."""

    NORMAL = 1000
    GOING_AWAY = 1001
    BAD_DATA = 1007  # a text frame that is not UTF-8
    POLICY = 1008  # abuse, no hello in time, unauthorized, revoked credentials
    TOO_BIG = 1009  # a frame over CHATD_MAX_FRAME
    INTERNAL = 1011
    RESTART = 1012  # the process is stopping (SIGTERM): reconnect, to another one
    SLOW = 4000  # the client did not read fast enough; it resumes without loss
    REPLACED = 4001  # not used yet: reserved for "another tab took over"


class ProtocolError(Exception):
    code: ErrorCode = ErrorCode.BAD_MESSAGE

    def __init__(self, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref


class BadFrame(ProtocolError):
    code = ErrorCode.BAD_FRAME


class BadMessage(ProtocolError):
    code = ErrorCode.BAD_MESSAGE


class TooLarge(ProtocolError):
    code = ErrorCode.TOO_LARGE
