"""Registering c2f with Pillow and imageio without importing torch.

The adapters in `c2f_format.plugins` import the decoder, and with the torch backend
torch (more than a second). `import c2f_format` must register the format yet stay light,
so that `c2f --help` and scripts that never touch a .c2f file do not pay for it: it registers
stand-ins here, which load the real adapters on first use (a .c2f file opened or saved,
imageio choosing the plugin) and put them in their own place. `register()` loads and
registers the real ones at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from PIL import Image, ImageFile

from .bitstream import MAGIC

# The format's names, registered before the adapters are imported; the adapters in
# plugins/ import them from here.
FORMAT = "C2F"
EXTENSION = ".c2f"
MIME = "image/x-c2f"
IMAGEIO_PLUGIN = "C2F"
IMAGEIO_CLASS = "C2FPlugin"


def plugins() -> ModuleType:
    """`c2f_format.plugins`: installed from the top-level plugins/ folder; in a source
    checkout (no install, or `python -m` from the repository root) loaded from there."""
    name = f"{__package__}.plugins"
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parent.parent / "plugins"
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


def register() -> None:
    """Register the real adapters with Pillow and imageio (idempotent)."""
    plugins().register()


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
        raise RuntimeError(f"c2f_format.plugins did not register the {FORMAT} format with Pillow")


def _register_imageio() -> None:
    from imageio.config import FileExtension, PluginConfig, known_extensions, known_plugins

    # imageio imports `module_name` and takes `class_name` from it when it first needs the
    # plugin; this module's __getattr__ answers with the real class.
    if IMAGEIO_PLUGIN not in known_plugins:
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
        register()
        return getattr(plugins().imageio_c2f, IMAGEIO_CLASS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EXTENSION", "FORMAT", "MIME", "plugins", "register", "register_lazily"]
