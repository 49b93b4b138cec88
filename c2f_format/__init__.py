"""c2f: a learned image format (coarse-to-fine hyper-prior model, bitstream v1).

import c2f_format
data = c2f_format.encode(image, quality=75)   # PIL image or uint8 array -> bytes
image = c2f_format.decode(data)               # -> PIL.Image.Image
print(c2f_format.info(data))                  # header and segment table
streams = c2f_format.encode_many(images)      # a process per core (errors in place)
summary = c2f_format.convert(["photos/"], "photos-c2f/")  # folders, resumable, on Dask
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .format.bitstream import Header
from .format.errors import (
    C2FError,
    CorruptStreamError,
    ImageTooLargeError,
    InvalidArgumentError,
    NotC2FError,
    TorchRequiredError,
    TruncatedStreamError,
    UnknownModelError,
    UnsupportedImageError,
    UnsupportedVersionError,
    WeightsError,
)
from .plugins import register, register_lazily

if TYPE_CHECKING:
    from .codec.api import DEFAULT_MAX_PIXELS, StreamDecoder, StreamInfo, decode, encode, info
    from .codec.batch import decode_many, encode_many
    from .codec.convert import ConvertSummary, convert

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (dynamic version)

# Names imported on first use (PEP 562), so that `import c2f_format` (and with it `c2f
# --help`) stays light: `encode`, `encode_many` and `decode_many` load torch when called,
# decoding loads it only where it is the backend (see codec/engines.py).
_LAZY = {
    "DEFAULT_MAX_PIXELS": "codec.api",
    "StreamDecoder": "codec.api",
    "StreamInfo": "codec.api",
    "decode": "codec.api",
    "encode": "codec.api",
    "info": "codec.api",
    "decode_many": "codec.batch",
    "encode_many": "codec.batch",
    "ConvertSummary": "codec.convert",
    "convert": "codec.convert",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


register_lazily()  # stand-ins: the adapters (and torch) load on first use

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "C2FError",
    "ConvertSummary",
    "CorruptStreamError",
    "Header",
    "ImageTooLargeError",
    "InvalidArgumentError",
    "NotC2FError",
    "StreamDecoder",
    "StreamInfo",
    "TorchRequiredError",
    "TruncatedStreamError",
    "UnknownModelError",
    "UnsupportedImageError",
    "UnsupportedVersionError",
    "WeightsError",
    "convert",
    "decode",
    "decode_many",
    "encode",
    "encode_many",
    "info",
    "register",
]
