"""Pillow and imageio adapters for c2f (installed as `c2f_format.plugins`)."""
