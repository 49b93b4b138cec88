"""Pillow and imageio adapters for c2f (installed as `c2f_format.plugins`).

`import c2f_format` registers both; `c2f_format.register()` does it again explicitly
(idempotent), e.g. after a test framework has reset Pillow's registry.
"""

from __future__ import annotations

from . import imageio_c2f, pillow_c2f


def register() -> None:
    pillow_c2f.register()
    imageio_c2f.register()


__all__ = ["imageio_c2f", "pillow_c2f", "register"]
