"""The ALPH segment: an alpha plane stored losslessly (spec section 2.4).

Alpha is coded apart from the colour, exactly, with nothing but the standard library:
a constant plane costs two bytes (fully opaque RGBA is the commonest PNG there is);
any other plane is row-filtered (each sample predicted from its left and upper
neighbours, PNG-style) and deflated with zlib.
Decoding inflates at most the plane's own size, so a zlib bomb is refused before it
can allocate more than the image it claims to be.
"""

from __future__ import annotations

import zlib

import numpy as np

from .errors import CorruptStreamError

METHOD_CONSTANT = 0  # payload: method, the one sample value
METHOD_DEFLATE = 1  # payload: method, zlib stream of H rows of (filter byte, W bytes)
# Row filters, as bits: 1 predicts from the sample on the left, 2 from the one above;
# 3 is both (left + above - above-left). 0..2 are PNG's None, Sub and Up.
FILTER_LEFT, FILTER_UP = 1, 2
FILTERS = 4
_ROWS_PER_PASS = 256  # the encoder filters this many rows at a time (bounded temporaries)
# cost of a filtered byte for choosing a row's filter: its magnitude as a signed byte
_COST = np.minimum(np.arange(256), 256 - np.arange(256)).astype(np.uint16)


def filtered_size(width: int, height: int) -> int:
    """Bytes the zlib stream of a deflate payload inflates to: a filter byte a row."""
    return height * (width + 1)


def max_payload(width: int, height: int) -> int:
    """The longest ALPH payload allowed (spec 2.4): zlib's own worst case (incompressible
    data in stored blocks) fits well inside, and a length beyond it is refused from the
    segment head, before its payload is read."""
    n = filtered_size(width, height)
    return n + n // 1024 + 64


def encode_plane(alpha: np.ndarray, filters: np.ndarray | None = None) -> bytes:
    """uint8 [H, W] alpha -> ALPH payload.

    A constant plane takes method 0. Otherwise two codings are tried and the shorter
    kept: each row with the filter whose output has the smallest sum of magnitudes
    (PNG's heuristic; wins on soft edges), and no filter at all (wins on hard-edged
    masks, whose runs deflate finds by itself). `filters` (0..3, one a row) forces a
    method 1 coding with those filters: conformance vectors use it to reach them all."""
    if alpha.dtype != np.uint8 or alpha.ndim != 2:
        raise ValueError("alpha must be a uint8 [H, W] array")
    if filters is not None:
        codings = [_deflate(alpha, np.asarray(filters, dtype=np.uint8))]
    elif np.any(alpha != alpha.flat[0]):
        codings = [_deflate(alpha, None), _deflate(alpha, np.zeros(alpha.shape[0], np.uint8))]
    else:
        return bytes((METHOD_CONSTANT, int(alpha.flat[0])))
    return bytes((METHOD_DEFLATE,)) + min(codings, key=len)


def _deflate(alpha: np.ndarray, filters: np.ndarray | None) -> bytes:
    """The zlib stream of the filtered rows, each row with its entry of `filters`, or
    (None) with the filter of the smallest sum of magnitudes."""
    packer = zlib.compressobj(9)
    parts = []
    for top in range(0, alpha.shape[0], _ROWS_PER_PASS):
        rows = alpha[top : top + _ROWS_PER_PASS]
        above = alpha[top - 1 : top] if top else np.zeros_like(rows[:1])
        vertical = rows - np.concatenate((above, rows[:-1]))  # uint8: mod 256
        candidates = np.stack((rows, _minus_left(rows), vertical, _minus_left(vertical)))
        if filters is None:
            choice = _COST[candidates].sum(axis=2, dtype=np.uint64).argmin(axis=0)
        else:
            choice = filters[top : top + _ROWS_PER_PASS]
        chosen = candidates[choice, np.arange(rows.shape[0])]
        block = np.concatenate((choice.astype(np.uint8)[:, None], chosen), axis=1)
        parts.append(packer.compress(block.tobytes()))
    parts.append(packer.flush())
    return b"".join(parts)


def _minus_left(rows: np.ndarray) -> np.ndarray:
    return rows - np.pad(rows[:, :-1], ((0, 0), (1, 0)))


def decode_plane(payload: bytes, width: int, height: int) -> np.ndarray:
    """ALPH payload -> uint8 [height, width]; CorruptStreamError naming what is wrong."""
    if not payload:
        raise CorruptStreamError("ALPH segment is empty")
    method = payload[0]
    if method == METHOD_CONSTANT:
        if len(payload) != 2:
            raise CorruptStreamError(
                f"ALPH constant payload is {len(payload)} bytes, expected 2 (method, value)"
            )
        return np.full((height, width), payload[1], dtype=np.uint8)
    if method != METHOD_DEFLATE:
        raise CorruptStreamError(f"ALPH method {method} is unknown (0 constant, 1 deflate)")
    rows = _inflate(payload[1:], filtered_size(width, height)).reshape(height, width + 1)
    filters, alpha = rows[:, 0], rows[:, 1:].copy()
    bad = np.flatnonzero(filters >= FILTERS)
    if bad.size:
        raise CorruptStreamError(
            f"ALPH row {int(bad[0])} has filter type {int(filters[bad[0]])} (0..3 allowed)"
        )
    left = (filters & FILTER_LEFT) != 0
    alpha[left] = np.cumsum(alpha[left], axis=1, dtype=np.uint8)  # running sums mod 256
    up = np.flatnonzero(filters & FILTER_UP)
    runs = np.split(up, np.flatnonzero(np.diff(up) != 1) + 1) if up.size else []
    for run in runs:  # consecutive rows predicted from above: one running sum down
        start, stop = int(run[0]), int(run[-1]) + 1
        above = alpha[start - 1] if start else np.zeros(width, np.uint8)
        alpha[start:stop] = np.cumsum(alpha[start:stop], axis=0, dtype=np.uint8) + above
    return alpha


def describe(payload: bytes) -> str:
    """What an ALPH payload holds, in words (for `c2f info`), without decoding it."""
    if payload[:1] == bytes((METHOD_CONSTANT,)) and len(payload) == 2:
        return f"alpha, constant {payload[1]}"
    if payload[:1] == bytes((METHOD_DEFLATE,)):
        return "alpha, filtered and deflated"
    return "alpha, malformed"


def _inflate(stream: bytes, size: int) -> np.ndarray:
    """The zlib `stream` inflated, which must be exactly `size` bytes and end the stream;
    never more than `size` + 1 bytes are produced, whatever the stream claims."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(stream, size)
        extra = inflater.decompress(inflater.unconsumed_tail, 1) if not inflater.eof else b""
    except zlib.error as exc:
        raise CorruptStreamError(f"ALPH deflate data is invalid ({exc})") from None
    if extra:
        raise CorruptStreamError(f"ALPH plane inflates to more than its {size} bytes")
    if len(out) < size:
        raise CorruptStreamError(
            f"ALPH plane inflates to {len(out)} of its {size} bytes"
            + ("" if inflater.eof else " (deflate data cut short)")
        )
    if not inflater.eof:
        raise CorruptStreamError("ALPH deflate data is cut short (the zlib stream does not end)")
    if inflater.unused_data:
        raise CorruptStreamError(
            f"ALPH has {len(inflater.unused_data)} bytes after the end of its deflate data"
        )
    return np.frombuffer(out, dtype=np.uint8)


def reduce_plane(alpha: np.ndarray, factor: int) -> np.ndarray:
    """Alpha for a preview at 1/`factor` scale (spec 9): the rounded mean of each
    factor x factor block, the blocks at the right and bottom edges cut short."""
    height, width = alpha.shape
    starts_r, starts_c = np.arange(0, height, factor), np.arange(0, width, factor)
    sums = np.add.reduceat(alpha, starts_r, axis=0, dtype=np.uint32)
    sums = np.add.reduceat(sums, starts_c, axis=1, dtype=np.uint32)
    counts = np.outer(np.diff(starts_r, append=height), np.diff(starts_c, append=width))
    return ((sums + counts // 2) // counts).astype(np.uint8)


__all__ = ["decode_plane", "describe", "encode_plane", "max_payload", "reduce_plane"]
