"""The body of ``POST /api/uploads`` (multipart/form-data: ``session`` and ``file``), read as
it arrives and never past its limit.

Starlette's own form parser spools any file, whatever its size, to a temporary file before a
handler sees it; here each byte is counted as it comes in, and the request is refused as soon
as the file passes ``max_bytes`` (or the whole body a little more): a client cannot make
chatd hold or write more than the limit. Other fields are ignored, but count in the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

FIELD_MAX = 256  # bytes of a text field (`session` is an id of at most 64)
SLACK = 64 * 1024  # the body beyond the file: boundaries, part headers, other fields


class FormError(Exception):
    """Not a multipart body we can read (400 bad_message), with the reason."""


class FormTooLarge(Exception):
    """The file, or the body, is over the limit (413 too_large)."""


@dataclass
class _Part:
    name: str = ""
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Form:
    session: str | None = None
    file: bytes | None = None


async def read_form(content_type: str, chunks: AsyncIterator[bytes], max_bytes: int) -> Form:
    """Raises FormError, FormTooLarge."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise FormError("send multipart/form-data with the fields session and file")
    form = Form()
    part = _Part()
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        if bytes(header_name).lower() == b"content-disposition":
            _, opts = parse_options_header(bytes(header_value))
            part.name = opts.get(b"name", b"").decode("latin-1")
            part.is_file = b"filename" in opts or part.name == "file"
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.name == "file":
            if len(part.data) + (end - start) > max_bytes:
                raise FormTooLarge()
            part.data.extend(data[start:end])
        elif part.name == "session":
            if len(part.data) + (end - start) > FIELD_MAX:
                raise FormError("the field session is too long")
            part.data.extend(data[start:end])

    def on_part_end() -> None:
        if part.name == "file" and form.file is None:
            form.file = bytes(part.data)
        elif part.name == "session" and form.session is None:
            try:
                form.session = part.data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise FormError("the field session is not text") from None

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > max_bytes + SLACK:
                raise FormTooLarge()
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise FormError(f"the multipart body cannot be read ({str(exc)[:80]})") from None
    return form
