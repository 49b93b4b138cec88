"""imageio v3 plugin for c2f (also serves imageio's v2 `imread`/`imwrite`).

    import imageio.v3 as iio
    arr = iio.imread("x.c2f")             # HxWx3 (RGB), HxW (L), HxWx4 (RGBA), HxWx2 (LA)
    iio.imwrite("y.c2f", arr, quality=60)
    for stage in iio.imiter("x.c2f", progressive=True):
        ...                                            # preview (upsampled), then final
    iio.improps("x.c2f").shape, iio.immeta("x.c2f")["quality"]
    iio.immeta("x.c2f")["exif"], ["icc_profile"]      # as Pillow's Image.info has them

A .c2f file holds one image: `index` may be 0 (or None), or `...` for a batch of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from imageio.core.request import URI_BYTES, InitializationError, IOMode, Request
from imageio.core.v3_plugin_api import ImageProperties, PluginV3
from numpy.typing import ArrayLike
from PIL import Image

from c2f_format.codec import api
from c2f_format.codec.effort import DEFAULT_EFFORT
from c2f_format.codec.options import check_save_options
from c2f_format.format import bitstream
from c2f_format.format.errors import ImageTooLargeError, TruncatedStreamError

from . import EXTENSION

UINT8 = np.dtype(np.uint8)


class C2FPlugin(PluginV3):
    """Reads and writes .c2f files through the c2f_format API."""

    def __init__(self, request: Request, device: str | None = None) -> None:
        super().__init__(request)
        self._device = device
        self._data: bytes | None = None
        if request.mode.io_mode == IOMode.read:
            if not request.firstbytes.startswith(bitstream.MAGIC):
                raise InitializationError(f"{request.raw_uri!r} is not a c2f file")
        else:
            extension = request.extension or request.format_hint
            if extension is not None and extension.lower() != EXTENSION:
                raise InitializationError(f"c2f does not write {extension} files")

    # ---- reading --------------------------------------------------------------------

    def _bytes(self) -> bytes:
        if self._data is None:
            self._data = self.request.get_file().read()
        return self._data

    def _decoder(self, max_pixels: int | None) -> api.StreamDecoder:
        dec = api.StreamDecoder(device=self._device, max_pixels=max_pixels)
        try:
            dec.feed(self._bytes())
        except ImageTooLargeError as exc:
            raise api.with_hint(exc, api.LIMIT_HINT) from None
        return dec

    @staticmethod
    def _check_index(index: Any) -> bool:
        """True for a batch of one (`...`), False for the single image."""
        if index is Ellipsis:
            return True
        if index in (None, 0):
            return False
        raise IndexError(f"a c2f file holds one image; index {index!r} does not exist")

    def read(
        self,
        *,
        index: Any = None,
        preview: bool = False,
        max_pixels: int | None = api.DEFAULT_MAX_PIXELS,
    ) -> np.ndarray:
        """The decoded image; `preview=True` gives the 1/8-scale preview instead.
        `max_pixels` as in `c2f_format.decode`."""
        batch = self._check_index(index)
        dec = self._decoder(max_pixels)
        image = dec.preview() if preview else dec.image()
        arr = np.asarray(image)
        return arr[None] if batch else arr

    def iter(
        self, *, progressive: bool = False, max_pixels: int | None = api.DEFAULT_MAX_PIXELS
    ) -> Iterator[np.ndarray]:
        """Yield the image; with `progressive=True` first the preview, upsampled to full
        size, as a viewer would show it while the rest of the file arrives."""
        dec = self._decoder(max_pixels)
        if progressive:
            preview = dec.preview()  # raises first when the header or hyper layers are missing
            full = (preview.width, preview.height)
            if dec.header is not None:
                full = (dec.header.width, dec.header.height)
            yield np.asarray(preview.resize(full, Image.Resampling.BILINEAR))
        yield np.asarray(dec.image())

    def properties(self, index: Any = None) -> ImageProperties:
        batch = self._check_index(index)
        header = api.info(self._bytes()).header
        shape: tuple[int, ...] = (header.height, header.width)
        bands = Image.getmodebands(header.mode)
        if bands > 1:
            shape += (bands,)
        if batch:
            return ImageProperties(shape=(1, *shape), dtype=UINT8, n_images=1, is_batch=True)
        return ImageProperties(shape=shape, dtype=UINT8)

    def metadata(self, index: Any = None, exclude_applied: bool = True) -> dict[str, Any]:
        self._check_index(index)
        data = self._bytes()
        parser = bitstream.StreamParser()
        segments = parser.feed(data)  # one pass: header, order and CRCs checked as in info()
        header = parser.header
        if header is None:
            raise TruncatedStreamError(f"stream ends inside the header ({len(data)} bytes)")
        return {"mode": header.mode, **api.file_info(header, segments)}

    # ---- writing --------------------------------------------------------------------

    def write(
        self,
        ndimage: ArrayLike | list[ArrayLike],
        *,
        quality: int = 75,
        effort: int = DEFAULT_EFFORT,
        exif: bytes | None = None,
        icc_profile: bytes | None = None,
        is_batch: bool | None = None,
        **options: Any,
    ) -> bytes | None:
        """Encode one image (uint8 HxW, HxWx2, HxWx3 or HxWx4, or a batch of one);
        `quality`, `effort`, `exif` and `icc_profile` as in `c2f_format.encode`. Other
        formats' options are honoured where c2f does what they ask (lossless=False,
        subsampling="4:4:4") and refused otherwise (`codec.options`)."""
        check_save_options(options)
        images = list(ndimage) if isinstance(ndimage, list) else None
        arr = np.asarray(images[0] if images and len(images) == 1 else ndimage)
        if images is not None and len(images) != 1:
            raise ValueError(f"a c2f file holds one image, got {len(images)}")
        if is_batch or (is_batch is None and arr.ndim == 4):
            if arr.shape[0] != 1:
                raise ValueError(f"a c2f file holds one image, got a batch of {arr.shape[0]}")
            arr = arr[0]
        data = api.encode(
            arr,
            quality=quality,
            effort=effort,
            device=self._device,
            exif=exif,
            icc_profile=icc_profile,
        )
        if self.request._uri_type == URI_BYTES:
            return data
        self.request.get_file().write(data)
        return None
