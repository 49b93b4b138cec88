"""File jobs, for `c2f encode`/`decode` and `convert`: read an image or a stream, encode
or decode it in a worker (nothing large crosses processes), keep what metadata the
output format can hold, and write the output whole or not at all (safe_write), with an
optional bar over one large image's tiles. The pools that run them are
`codec.batch.run_batch` and `codec.convert`."""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image, UnidentifiedImageError

from ..format.bitstream import HEADER_SIZE, parse_header
from ..format.errors import C2FError, InvalidArgumentError
from .api import DEFAULT_MAX_PIXELS, EXIF_PREFIX, decode, encode
from .effort import DEFAULT_EFFORT
from .progress import Bar
from .safe_write import check_writable, write_file

if TYPE_CHECKING:
    from .tiling import TileCallback


# Pillow formats whose writers take `exif` and `icc_profile` keyword arguments
METADATA_FORMATS = frozenset({"AVIF", "JPEG", "MPO", "PNG", "TIFF", "WEBP"})
_METADATA_KEYS = ("exif", "icc_profile")


# Below this many pixels in all, a decode in a process that has not imported torch is
# done soonest by the NumPy engine: importing torch costs about 1.4 s here, the NumPy
# synthesis about 1.7 s a megapixel more than torch's in bfloat16 (docs/speed/README.md).
NUMPY_JOB_PIXELS = 800_000


def job_pixels(paths: list[Path], kind: str, stop_at: int | None = None) -> int:
    """The pixels of the images (`kind` "encode") or streams ("decode") in `paths`, read
    from their headers (0 for a file that cannot be read: its job fails at once); with
    `stop_at`, counting stops once the total reaches it (only whether it does matters)."""
    total = 0
    for path in paths:
        try:
            if kind == "decode":
                with path.open("rb") as fp:
                    header = parse_header(fp.read(HEADER_SIZE), max_pixels=None)
                total += header.width * header.height
            else:
                with Image.open(path) as im:
                    total += im.width * im.height
        except (OSError, C2FError, Image.DecompressionBombError, ValueError, SyntaxError):
            continue
        if stop_at is not None and total >= stop_at:
            break
    return total


def _torch_imported() -> bool:
    return "torch" in sys.modules


def quick_backend(paths: list[Path], device: str | None) -> str | None:
    """ "numpy" when the engine is left to c2f (no $C2F_BACKEND, the CPU), torch is not
    imported yet and the streams in `paths` hold fewer than NUMPY_JOB_PIXELS together:
    the NumPy engine then finishes first, start-up included. A device left to c2f
    counts as the CPU here, even where CUDA is present: for so small a job importing
    torch and starting CUDA costs more than the whole NumPy decode. None otherwise (the
    usual choice, `engines.resolve`). Unreadable headers count as large: the decode says
    what is wrong with them."""
    if os.environ.get("C2F_BACKEND", "auto") not in ("", "auto") or _torch_imported():
        return None
    if (device or os.environ.get("C2F_DEVICE") or "cpu") != "cpu":
        return None
    pixels = 0
    for path in paths:
        try:
            with path.open("rb") as fp:
                header = parse_header(fp.read(HEADER_SIZE), max_pixels=None)
        except (OSError, C2FError):
            return None
        pixels += header.width * header.height
        if pixels >= NUMPY_JOB_PIXELS:
            return None
    return "numpy"


@dataclass(frozen=True)
class FileJob:
    src: Path
    dst: Path
    quality: int = 75
    device: str | None = None
    overwrite: bool = False  # replace an existing `dst` (never an input: the CLI checks)
    allow_truncated: bool = False  # decode a cut or damaged stream, predicting what is lost
    show_progress: bool = False  # a bar on stderr over this one image's tiles
    effort: int = DEFAULT_EFFORT  # the encoder's search, 1..9 (codec/search.py)
    backend: str | None = None  # the decoding engine (engines.resolve; `quick_backend`)
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # the decoder's limit (None: none)


@dataclass(frozen=True)
class FileResult:
    """A file written, and what its user should hear about it (rows predicted, metadata
    a format could not keep), as lines for stderr."""

    path: Path
    warnings: tuple[str, ...] = ()


# formats Pillow writes without an alpha channel: an RGBA decode is refused rather than
# flattened onto a background nobody chose
NO_ALPHA_FORMATS = frozenset({"JPEG", "MPO", "PPM", "PCX", "EPS", "PDF"})


def output_format(path: Path) -> str:
    """Pillow's name for the format `path`'s extension asks for; C2FError if Pillow has
    no writer for it (checked before any work, and needed to save through a temp file)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        kind = f"{path.suffix} files" if path.suffix else "files without an extension"
        raise C2FError(f"{path}: cannot write {kind} (not an image format Pillow writes)")
    return fmt


def encode_file(job: FileJob) -> FileResult:
    image = _load_image(job.src)
    check_writable(job.dst, job.overwrite)  # before the slow part
    with _tile_bar(job.show_progress, f"encode {job.src.name}") as bar:
        data, notes = _encode_keeping_metadata(image, job, bar.on_tile if bar else None)
        _write(job.dst, lambda fp: fp.write(data), job.overwrite)
        if bar is not None:
            bar.written()
    return FileResult(job.dst, notes)


def decode_file(job: FileJob) -> FileResult:
    try:
        data = job.src.read_bytes()
    except OSError as exc:
        raise C2FError(f"{job.src}: {exc.strerror or exc}") from None
    fmt = output_format(job.dst)
    check_writable(job.dst, job.overwrite)
    with _tile_bar(job.show_progress, f"decode {job.src.name}") as bar:
        image, notes = _decode_noting_losses(data, job, bar.on_tile if bar else None)
        if image.mode in ("RGBA", "LA") and fmt in NO_ALPHA_FORMATS:
            raise C2FError(
                f"{job.dst}: {fmt} files have no alpha channel and {job.src} has one; "
                "decode to PNG, WebP or TIFF to keep it"
            )
        params = _metadata_params(image)
        if params and fmt not in METADATA_FORMATS:
            lost = " and ".join("Exif" if k == "exif" else "ICC profile" for k in params)
            notes += (f"{job.dst}: {fmt} files cannot hold the {lost}; not kept",)
            params = {}
        _write(job.dst, lambda fp: image.save(fp, format=fmt, **params), job.overwrite)
        if bar is not None:
            bar.written()
    return FileResult(job.dst, notes)


def _metadata_params(image: Image.Image) -> dict[str, bytes]:
    """`exif` and `icc_profile` for Pillow's writers, from the decoded image's info; Exif
    with its `Exif\\0\\0` prefix, the form every Pillow writer takes (JPEG needs it)."""
    params = {k: v for k in _METADATA_KEYS if isinstance(v := image.info.get(k), bytes) and v}
    exif = params.get("exif")
    if exif is not None and not exif.startswith(EXIF_PREFIX):
        params["exif"] = EXIF_PREFIX + exif
    return params


def _load_image(src: Path) -> Image.Image:
    try:
        with Image.open(src) as im:
            im.load()  # the pixels stay when the with block closes the file
            return im
    except UnidentifiedImageError:
        raise C2FError(f"{src}: not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise C2FError(f"{src}: {exc}") from None
    except MemoryError:
        raise C2FError(f"{src}: out of memory") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        # an unreadable file, or one of Pillow's format plugins failing on a broken file
        raise C2FError(f"{src}: {getattr(exc, 'strerror', None) or exc}") from None


def _encode_keeping_metadata(
    image: Image.Image, job: FileJob, on_tile: TileCallback | None
) -> tuple[bytes, tuple[str, ...]]:
    """The stream, with the source's Exif and ICC profile when c2f can carry them: a
    block it refuses (Exif not TIFF-structured, too large) is dropped with a warning
    rather than failing the image. (encode() checks them before any real work.)"""
    exif, icc = (image.info.get(k) for k in _METADATA_KEYS)
    exif = exif if isinstance(exif, bytes) and exif else None
    icc = icc if isinstance(icc, bytes) and icc else None
    reason = ""
    try:
        for e, c in dict.fromkeys([(exif, icc), (None, icc), (None, None)]):
            try:
                data = encode(
                    image,
                    job.quality,
                    job.device,
                    exif=e,
                    icc_profile=c,
                    on_tile=on_tile,
                    effort=job.effort,
                )
            except InvalidArgumentError as exc:
                if e is None and c is None:
                    raise
                reason = str(exc)
                continue
            lost = [
                n
                for n, had, kept in (("Exif", exif, e), ("ICC profile", icc, c))
                if had and not kept
            ]
            notes = (f"{job.src}: {' and '.join(lost)} not kept: {reason}",) if lost else ()
            return data, notes
    except (C2FError, Image.DecompressionBombError) as exc:
        raise C2FError(f"{job.src}: {exc}") from None
    except MemoryError:
        raise C2FError(f"{job.src}: out of memory") from None
    raise AssertionError("unreachable: the last try carries no metadata")


def _decode_noting_losses(
    data: bytes, job: FileJob, on_tile: TileCallback | None
) -> tuple[Image.Image, tuple[str, ...]]:
    """The image, and the decoder's warnings (rows predicted) as lines for the user."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            image = decode(
                data,
                device=job.device,
                allow_truncated=job.allow_truncated,
                on_tile=on_tile,
                backend=job.backend,
                max_pixels=job.max_pixels,
            )
        except C2FError as exc:
            raise C2FError(f"{job.src}: {exc}") from None
        except MemoryError:
            raise C2FError(f"{job.src}: out of memory") from None
    notes = []
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, UserWarning) and text.startswith("c2f: "):
            notes.append(f"{job.src}: {text.removeprefix('c2f: ')}")
        else:  # not ours: shown as it would have been
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return image, tuple(notes)


def _write(path: Path, write: Callable[[BinaryIO], object], overwrite: bool) -> None:
    try:
        write_file(path, write, overwrite=overwrite)
    except (OSError, ValueError, KeyError) as exc:  # Pillow's writer refusing the image
        raise C2FError(f"{path}: cannot write: {getattr(exc, 'strerror', None) or exc}") from None


# ---- a progress bar for one large image -------------------------------------------------


class _TileBar:
    """A bar over one image's tiles, then its writing, drawn from the codec's `on_tile`
    callback (made at its first call, when the tile count is known). One unit beyond
    the tiles is left for the caller: the file written."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Bar | None = None

    def on_tile(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Bar(total + 1, self.label, percent=True)
        if done > self.bar.done:
            self.bar.advance(done - self.bar.done)

    def written(self) -> None:
        if self.bar is not None:
            self.bar.advance()


@contextlib.contextmanager
def _tile_bar(show: bool, label: str) -> Iterator[_TileBar | None]:
    """A `_TileBar` when `show`, closed (its line ended) however the work ends."""
    if not show:
        yield None
        return
    tile_bar = _TileBar(label)
    try:
        yield tile_bar
    finally:
        if tile_bar.bar is not None:
            tile_bar.bar.close()


__all__ = [
    "METADATA_FORMATS",
    "FileJob",
    "FileResult",
    "decode_file",
    "encode_file",
    "output_format",
]
