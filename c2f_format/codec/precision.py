"""Which number format the float synthesis multiplies in, decided per decode.

The integer networks and the entropy coder are exact and never change with this; only
the float synthesis (spec 8, whose output the spec bounds by a tolerance, not bit for
bit) can run its products in bfloat16. On a CPU with bfloat16 dot products (AVX-512
BF16, AMX) that halves the arithmetic and the memory traffic of every layer: a 12 MP
decode is about twice as fast (docs/speed/precision.md has the measurements, and the
largest pixel difference from float32 on every conformance vector and Kodak image).
Elsewhere bfloat16 is emulated and slower, so the default keeps float32 there.

`$C2F_PRECISION` chooses: `float32` (the reference, which the conformance tests hold
to the tolerance), `bfloat16`, or `auto` (the default: bfloat16 where the CPU has it,
float32 otherwise, and on GPUs); `using(choice)` overrides it within a block (the
conformance vectors' references are made in float32). Torch-free.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from ..format.errors import InvalidArgumentError

ENV = "C2F_PRECISION"
CHOICES = ("auto", "float32", "bfloat16")
_override: ContextVar[str | None] = ContextVar("c2f_precision", default=None)


@functools.cache
def cpu_has_bf16() -> bool:
    """The CPU multiplies bfloat16 natively (Linux's flags; False where it cannot tell)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def _checked(value: str, where: str) -> str:
    if value not in CHOICES:
        names = ", ".join(CHOICES)
        raise InvalidArgumentError(f"{where}={value!r}: give one of {names}")
    return value


def requested() -> str:
    """The choice in force: `using`'s, else $C2F_PRECISION's (checked: one of CHOICES)."""
    override = _override.get()
    if override is not None:
        return override
    return _checked(os.environ.get(ENV, "auto").strip().lower() or "auto", f"${ENV}")


@contextmanager
def using(choice: str) -> Iterator[None]:
    """Decode in `choice` (one of CHOICES) within the block, whatever $C2F_PRECISION says."""
    token = _override.set(_checked(choice, "precision"))
    try:
        yield
    finally:
        _override.reset(token)


def synthesis_bf16(device_type: str) -> bool:
    """Whether a decode on `device_type` ('cpu', 'cuda') runs its float synthesis in
    bfloat16."""
    choice = requested()
    if choice == "auto":
        return device_type == "cpu" and cpu_has_bf16()
    return choice == "bfloat16"


__all__ = ["CHOICES", "ENV", "cpu_has_bf16", "requested", "synthesis_bf16", "using"]
