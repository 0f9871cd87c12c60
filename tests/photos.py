"""Real image files for the photo tests, made here: photos with EXIF and GPS, HEIC, PNG with
text chunks and transparency, and the hostile ones (a bomb, a polyglot, truncated files)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any

import httpx
from PIL import Image, PngImagePlugin


def jpeg_with_gps(width: int = 400, height: int = 300, orientation: int = 6) -> bytes:
    """A photo whose left half is red, taken "at the gendarmerie of Rosny" (GPS), stored
    on its side with an orientation tag (6: turn 90° clockwise to show it)."""
    im = Image.new("RGB", (width, height), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 52.0, 30.0), 3: "E", 4: (2.0, 29.0, 10.0)}  # GPS IFD
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), quality=90, comment=b"owner: Jean Dupont")
    return buf.getvalue()


def noisy_jpeg(width: int, height: int, quality: int = 92) -> bytes:
    """A photo of random noise: it does not compress to nothing (a real photo's size)."""
    im = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_with_text(alpha: bool = True) -> bytes:
    im = Image.new("RGBA" if alpha else "RGB", (120, 80), (0, 128, 0, 128) if alpha else (0, 128, 0))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jean Dupont, 12 rue des Lilas")
    info.add_text("Comment", "secret")
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def heic() -> bytes:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    im = Image.new("RGB", (200, 150), (200, 10, 10))
    buf = io.BytesIO()
    im.save(buf, "HEIF", quality=80)
    return buf.getvalue()


def webp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (90, 60), (10, 10, 200)).save(buf, "WEBP")
    return buf.getvalue()


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (10, 10)).save(buf, "GIF")
    return buf.getvalue()


def png_bomb(side: int = 60_000) -> bytes:
    """A tiny PNG that declares side × side pixels (3.6 gigapixels at 60,000)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(document.cookie)</script></svg>')
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def polyglot() -> bytes:
    """A JPEG's first bytes glued to an HTML page and a ZIP: starts like a JPEG, is none."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + HTML + \
        b"PK\x03\x04" + b"\x00" * 26


def upload_form(session: str | None, data: bytes | None, name: str = "photo.jpg",
                content_type: str = "image/jpeg") -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if session is not None:
        kw["data"] = {"session": session}
    if data is not None:
        kw["files"] = {"file": (name, data, content_type)}
    return kw


async def upload(http: httpx.AsyncClient, token: str | None, session: str | None,
                 data: bytes | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/api/uploads", headers=headers, **upload_form(session, data, **kw))


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im
