"""Uploaded photos: multipart form parsing and safe decoding.

An upload is checked before any pixel is decoded: Pillow reads only the header, the format must be
JPEG, PNG, WebP or BMP and the size at most ``web.max_image_megapixels`` (a 50 KB PNG can claim
30,000 x 30,000 pixels). Then OpenCV decodes it, as ``face-edge recognize`` reads a file (EXIF
orientation applied), so an upload and the same file on disk give the same answers. File names from
a request are only ever shown (:func:`display_name`); none reaches the file system.
"""
from __future__ import annotations

import email.parser
import email.policy
import io
import re
import warnings
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..errors import WebError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


class UploadError(WebError):
    """An uploaded file or form is not acceptable (the message says why)."""


@dataclass(frozen=True)
class Part:
    """One field of a multipart form."""

    name: str
    filename: Optional[str]
    data: bytes


def display_name(filename: Optional[str], fallback: str) -> str:
    """Return a harmless label for an uploaded file: its base name, printable characters only, at most 80."""
    base = re.split(r"[\\/]", filename or "")[-1]
    clean = "".join(c for c in base if c.isprintable()).strip()
    return clean[:80] or fallback


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Return the fields of a ``multipart/form-data`` body; UploadError when it is not one."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise UploadError("expected a multipart/form-data upload")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise UploadError("the multipart upload could not be read")
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True)
        parts.append(Part(str(name), part.get_filename(), data if isinstance(data, bytes) else b""))
    return parts


def image_size(data: bytes, max_megapixels: float = 25.0) -> tuple[str, int, int]:
    """Return (format, width, height) from an image's header without decoding it; UploadError when it is not a
    JPEG, PNG, WebP or BMP image (or claims so many pixels that Pillow will not even open it)."""
    try:
        from PIL import Image
    except ImportError:
        raise WebError("the web page needs Pillow to check uploads: pip install 'face-edge[web]'") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # DecompressionBombWarning: the size check below decides
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = str(image.format), image.size
    except Image.DecompressionBombError:
        raise UploadError(f"far more pixels than web.max_image_megapixels ({max_megapixels:g})") from None
    except Exception:
        raise UploadError("not an image (JPEG, PNG, WebP or BMP)") from None
    if fmt not in FORMATS:
        raise UploadError(f"a {fmt} image; send JPEG, PNG, WebP or BMP")
    return fmt, width, height


def decode_image(data: bytes, max_megapixels: float) -> np.ndarray:
    """Return the BGR uint8 image of an uploaded file; UploadError (one line) when it is not an image, is
    larger than ``max_megapixels``, or does not decode."""
    if not data:
        raise UploadError("empty file")
    fmt, width, height = image_size(data, max_megapixels)
    if width * height > max_megapixels * 1e6:
        raise UploadError(f"{width}x{height} is {width * height / 1e6:.1f} megapixels, more than "
                          f"web.max_image_megapixels ({max_megapixels:g})")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UploadError(f"the {fmt} data is damaged")
    return image
