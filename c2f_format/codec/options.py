"""Save options that other formats' writers take, checked for c2f: each one is honoured
or refused with a message that says what to use instead, never silently ignored (as
Pillow's convention would have it), so a WebP or AVIF user who asks for lossless
learns that c2f is lossy. Torch-free: the plugins check options before any work."""

from __future__ import annotations

from collections.abc import Mapping

from ..format.errors import InvalidArgumentError

# what c2f's writers take (Pillow's save and imageio's imwrite), with quality and effort
ACCEPTED = ("quality", "effort", "exif", "icc_profile", "device")
LOSSLESS_HINT = "for lossless storage save as PNG (or WebP with lossless=True)"
FULL_CHROMA = (0, "4:4:4", "keep")


def check_save_options(options: Mapping[str, object]) -> None:
    """Raise InvalidArgumentError for the first option in `options` that c2f cannot
    honour; options that ask for what c2f does anyway (lossless=False, 4:4:4) pass."""
    for name, value in options.items():
        if name in ACCEPTED:
            continue
        if name == "lossless":
            if value:
                raise InvalidArgumentError(f"c2f is a lossy format: {LOSSLESS_HINT}")
        elif name in ("speed", "method"):
            raise InvalidArgumentError(
                f"c2f takes effort=1..9 (higher: slower, smaller files), not {name}="
            )
        elif name == "subsampling":
            if value not in FULL_CHROMA:
                raise InvalidArgumentError(
                    f"c2f always codes colour at full resolution (4:4:4): "
                    f"subsampling={value!r} cannot be honoured"
                )
        elif name in ("append_images", "save_all"):
            if value:
                raise InvalidArgumentError("a .c2f file holds one image: save frames apart")
        else:
            raise InvalidArgumentError(
                f"c2f does not take the save option {name}=; it takes {', '.join(ACCEPTED)}"
            )
