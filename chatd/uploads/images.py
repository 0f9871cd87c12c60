"""A photo re-encoded so that nothing but its pixels leaves the sender's hands.

A phone's photo carries where it was taken (GPS), when, with which device, sometimes the
owner's name; a PNG may carry text chunks; any of them an ICC profile that fingerprints a
device. Re-encoding from the pixels drops all of that. Steps: decode with the one decoder the
magic numbers chose (detect.py), refusing a file that is truncated or declares more pixels than
``MAX_PIXELS`` (a decompression bomb: a few hundred bytes that would need gigabytes); turn it
as its EXIF orientation says; convert its colours to sRGB; scale its long side down to
``LONG_SIDE``; encode it again, JPEG for photos and PNG for images with transparency (a
screenshot with an alpha channel would get a black background as a JPEG), and a thumbnail of
``THUMB_SIDE``.

Runs in a worker (pool.py), never on the event loop: these are plain functions of bytes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageFile, ImageOps

from .detect import PILLOW_FORMAT

MAX_PIXELS = 50_000_000  # 50 MP: more than any phone's photo, far less than a bomb's
LONG_SIDE = 2560
THUMB_SIDE = 320
JPEG_QUALITY = 85
THUMB_QUALITY = 80

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
_SRGB = ImageCms.createProfile("sRGB")
_heif_ready = False


class BadImage(Exception):
    """The file claims an accepted type but cannot be decoded safely; the message says why,
    in words for the sender."""


@dataclass(frozen=True, slots=True)
class Processed:
    type: str  # the MIME type of both files
    data: bytes
    width: int
    height: int
    thumb: bytes
    thumb_width: int
    thumb_height: int


def set_up() -> None:
    """Once per worker process (or, with threads, per chatd process): the HEIC/HEIF decoder
    (pillow-heif) and the pixel bound. Past MAX_PIXELS Pillow only warns (past twice that it
    raises): the warning becomes an error here, once and for the whole process, because
    ``warnings.catch_warnings`` around each call is not safe with several threads."""
    global _heif_ready
    if not _heif_ready:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        _heif_ready = True
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def process(data: bytes, mime: str) -> Processed:
    """Re-encodes ``data`` (of the type ``mime`` detected from its bytes); raises BadImage."""
    set_up()
    try:
        return _process(data, mime)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"the image has too many pixels (at most {MAX_PIXELS // 1_000_000} "
                       "million)") from None
    except MemoryError:
        raise BadImage("the image is too large to decode") from None
    except Exception as exc:  # every decoder failure is the file's: truncated, corrupt
        raise BadImage(f"the file is not a valid image ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    text = str(exc).split("\n")[0][:120]
    return text or type(exc).__name__


def _process(data: bytes, mime: str) -> Processed:
    fmt = PILLOW_FORMAT[mime]
    im = Image.open(io.BytesIO(data), formats=[fmt])  # only the decoder the bytes chose
    width, height = im.size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise BadImage(f"the image has too many pixels (at most {MAX_PIXELS // 1_000_000} "
                       "million)")
    if fmt == "JPEG":
        im.draft("RGB", (LONG_SIDE, LONG_SIDE))  # decode at a reduced scale when it is big
    im.load()  # a truncated or corrupt file fails here
    icc = im.info.get("icc_profile")
    im = ImageOps.exif_transpose(im)
    alpha = _has_alpha(im)
    im = im.convert("RGBA" if alpha else "RGB")
    if icc:
        im = _to_srgb(im, icc)
    im.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
    thumb = im.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    out_type = "image/png" if alpha else "image/jpeg"
    return Processed(out_type, _encode(im, alpha, JPEG_QUALITY), im.width, im.height,
                     _encode(thumb, alpha, THUMB_QUALITY), thumb.width, thumb.height)


def _has_alpha(im: Image.Image) -> bool:
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return im.getextrema()[-1][0] < 255  # an alpha channel that is all opaque: a photo
    return im.mode == "P" and "transparency" in im.info


def _to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    """The colours as an sRGB screen shows them; a broken profile is ignored (the pixels
    are taken as sRGB already, which most are)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, source, _SRGB, outputMode=im.mode) or im
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im


def _encode(im: Image.Image, alpha: bool, quality: int) -> bytes:
    """Pixels only: the info dict (EXIF, ICC, XMP, comments, text chunks) is emptied so that
    no encoder carries any of it over."""
    im.info = {}
    buf = io.BytesIO()
    if alpha:
        im.save(buf, "PNG", optimize=False, compress_level=6)
    else:
        im.save(buf, "JPEG", quality=quality, exif=b"", icc_profile=None)
    return buf.getvalue()
