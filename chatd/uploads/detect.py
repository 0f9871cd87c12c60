"""What kind of image a file is, from its first bytes only.

The file name and the declared Content-Type are the sender's words: an "image/png" may be an
HTML page or an SVG with a script. Only the magic numbers choose the decoder, and the decoder
is then held to that one format (images.py), so a polyglot file is read as what its first
bytes say or refused.
"""

from __future__ import annotations

#: detected type -> the Pillow format that must decode it
PILLOW_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
                 "image/heic": "HEIF", "image/heif": "HEIF"}

# ISO BMFF brands (the `ftyp` box): HEVC-coded HEIC images and sequences, and the generic
# HEIF brands when a HEVC brand is among the compatible ones (AVIF, also HEIF-based, is not
# accepted: no decoder for it is installed)
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}


def sniff(head: bytes) -> str | None:
    """The MIME type of an accepted image whose file starts with ``head`` (32 bytes are
    enough), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        size = int.from_bytes(head[:4], "big")
        major = head[8:12]
        compatible = {head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if major in _HEIC_BRANDS:
            return "image/heic"
        if major in _HEIF_BRANDS and compatible & _HEIC_BRANDS:
            return "image/heif"
    return None
