"""The exceptions c2f raises. Every failure a user can cause is a `C2FError`.

Subclasses of `ValueError` where the input is at fault, so code that already handles
bad input generically keeps working.
"""

from __future__ import annotations


class C2FError(Exception):
    """Base class of every error c2f raises on purpose."""


class NotC2FError(C2FError, ValueError):
    """The data does not start with the c2f magic bytes."""


class UnsupportedVersionError(C2FError, ValueError):
    """The stream's major version is newer than this decoder understands."""


class UnknownModelError(C2FError, ValueError):
    """The stream was made with weights this installation does not have."""


class TruncatedStreamError(C2FError, ValueError):
    """The stream ends before a required part (header or segment) is complete."""


class CorruptStreamError(C2FError, ValueError):
    """A field is out of range, a CRC does not match, or the coded data is invalid."""


class ImageTooLargeError(C2FError, ValueError):
    """The declared image size exceeds the limits of this format or of the caller."""


class UnsupportedImageError(C2FError, ValueError):
    """The image given to the encoder has a mode, shape or type c2f cannot encode."""


class WeightsError(C2FError):
    """The weights file is missing, malformed or inconsistent."""


class InvalidArgumentError(C2FError, ValueError):
    """An argument other than the image is out of range (quality, device, limits)."""


class TorchRequiredError(C2FError, RuntimeError):
    """The operation (encoding, a GPU device, the torch backend) needs torch, which this
    installation lacks: decoding works without it, the rest comes with the `[torch]` extra."""
