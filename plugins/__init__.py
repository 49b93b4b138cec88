"""Pillow and imageio adapters for c2f (installed as `c2f_format.plugins`).

`import c2f_format` must register the format yet stay light, so that `c2f --help` and
scripts that never touch a .c2f file do not pay for it: `register_lazily()` registers
stand-ins, which load the real adapters on first use (a .c2f file opened or saved, imageio
choosing the plugin) and put them in their place. This module therefore imports neither
adapter at import time. Torch is no longer the reason (the adapters and `codec.api`
import it only where the torch backend runs); the cost is the decoder's own modules:
measured with `python -X importtime`, importing the adapters and `codec.batch` eagerly
adds about 30 ms (pillow_c2f with codec.api 20 ms, codec.batch 12 ms) to the 170 ms of
`import c2f_format` (2026-12-02, this project's 2-core machine, a training job beside).
"""

from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile

from c2f_format.format.bitstream import MAGIC

# The format's names, registered before the adapters are imported; the adapters import
# them from here.
FORMAT = "C2F"
EXTENSION = ".c2f"
MIME = "image/x-c2f"
IMAGEIO_PLUGIN = "C2F"
IMAGEIO_CLASS = "C2FPlugin"


def register() -> None:
    """Register the C2F format with Pillow and imageio (idempotent).

    `import c2f_format` registers it already, with stand-ins that load the adapters (and
    torch) when a .c2f file is first opened or saved; this registers the Pillow adapter
    itself now, e.g. after a test framework has reset Pillow's registry (imageio's still
    loads when imageio first asks for it)."""
    from . import pillow_c2f

    pillow_c2f.register()
    _register_imageio()


def register_lazily() -> None:
    """Register stand-ins that import the real adapters only when first needed."""
    Image.register_open(FORMAT, _open, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
    _register_imageio()


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


def _open(fp: IO[bytes], filename: str | bytes) -> ImageFile.ImageFile:
    register()
    factory, _ = Image.OPEN[FORMAT]
    _check_replaced(factory, _open)
    image: ImageFile.ImageFile = factory(fp, filename)
    return image


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    register()
    handler = Image.SAVE[FORMAT]
    _check_replaced(handler, _save)
    handler(im, fp, filename)


def _check_replaced(handler: object, stand_in: object) -> None:
    """A plugin that registers under another name would send the stand-in round in
    circles: say so instead."""
    if handler is stand_in:
        raise RuntimeError(f"{__name__}.pillow_c2f did not register the {FORMAT} format")


def _register_imageio() -> None:
    """Make imageio pick c2f for .c2f files (idempotent). imageio imports `module_name`
    and takes `class_name` from it when it first needs the plugin; this module's
    `__getattr__` answers with the real class, so the adapter loads only then."""
    from imageio.config import FileExtension, PluginConfig, known_extensions, known_plugins

    known_plugins[IMAGEIO_PLUGIN] = PluginConfig(
        name=IMAGEIO_PLUGIN, class_name=IMAGEIO_CLASS, module_name=__name__
    )
    entries = known_extensions.setdefault(EXTENSION, [])
    if not any(IMAGEIO_PLUGIN in entry.priority for entry in entries):
        entries.insert(
            0,
            FileExtension(
                extension=EXTENSION,
                priority=[IMAGEIO_PLUGIN],
                name="c2f",
                description="c2f learned image format",
            ),
        )


def __getattr__(name: str) -> Any:
    if name == IMAGEIO_CLASS:
        from . import imageio_c2f

        return imageio_c2f.C2FPlugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EXTENSION", "FORMAT", "MIME", "register", "register_lazily"]
