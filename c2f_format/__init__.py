"""c2f: a learned image format (coarse-to-fine hyper-prior model, bitstream v1).

import c2f_format
data = c2f_format.encode(image, quality=75)   # PIL image or uint8 array -> bytes
image = c2f_format.decode(data)               # -> PIL.Image.Image
print(c2f_format.info(data))                  # header and segment table
streams = c2f_format.encode_many(images)      # a process per core (errors in place)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .api import DEFAULT_MAX_PIXELS, StreamDecoder, StreamInfo, decode, encode, info
from .batch import decode_many, encode_many
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


def _plugins() -> ModuleType:
    """`c2f_format.plugins`: installed from the top-level plugins/ folder; in a source
    checkout (no install, or `python -m` from the repository root) loaded from there."""
    try:
        return importlib.import_module(f"{__name__}.plugins")
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parent.parent / "plugins"
        spec = importlib.util.spec_from_file_location(
            f"{__name__}.plugins", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


def register() -> None:
    """Register the C2F format with Pillow and imageio (idempotent; done on import)."""
    _plugins().register()


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
    "decode_many",
    "encode",
    "encode_many",
    "info",
    "register",
]
