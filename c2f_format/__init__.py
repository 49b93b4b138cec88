"""c2f: a learned image format (coarse-to-fine hyper-prior model, bitstream v1).

import c2f_format
data = c2f_format.encode(image, quality=75)   # PIL image or uint8 array -> bytes
image = c2f_format.decode(data)               # -> PIL.Image.Image
print(c2f_format.info(data))                  # header and segment table
"""

from __future__ import annotations

from .api import DEFAULT_MAX_PIXELS, StreamDecoder, StreamInfo, decode, encode, info
from .bitstream import Header
from .errors import (
    C2FError,
    CorruptStreamError,
    ImageTooLargeError,
    InvalidArgumentError,
    NotC2FError,
    TruncatedStreamError,
    UnknownModelError,
    UnsupportedImageError,
    UnsupportedVersionError,
    WeightsError,
)

__version__ = "0.1.0"


def register() -> None:
    """Register the C2F format with Pillow and imageio (idempotent; done on import)."""
    from .plugins import register as _register

    _register()


register()

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "C2FError",
    "CorruptStreamError",
    "Header",
    "ImageTooLargeError",
    "InvalidArgumentError",
    "NotC2FError",
    "StreamDecoder",
    "StreamInfo",
    "TruncatedStreamError",
    "UnknownModelError",
    "UnsupportedImageError",
    "UnsupportedVersionError",
    "WeightsError",
    "decode",
    "encode",
    "info",
    "register",
]
