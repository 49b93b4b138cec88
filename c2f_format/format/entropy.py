"""Entropy coding with constriction's rANS coder, driven only by integer tables.

Each of the 64 scale levels has an integer frequency table over the residuals
-R..R plus one escape entry; frequencies are positive and sum to 2**24, the coder's
precision. constriction's `Categorical(perfect=False)` quantises a float table `p` by
`left_cumulative[i] = floor(cumsum(p)[i] * (2**24 - n) / sum(p)) + i`; handing it
`p = freq - 1` (exact small integers in float64, summing to 2**24 - n) makes that map the
identity, so the coder codes with exactly our integers on every platform.

Symbol order within one coded unit (spec, "Entropy coding"): groups by ascending scale
index; within a group, raster order of the flattened (channel, row, column) array; a
group's escape payloads follow the group's table symbols.
"""

from __future__ import annotations

import math
from functools import lru_cache

import constriction
import numpy as np

from .errors import CorruptStreamError

PRECISION = 24
TOTAL = 1 << PRECISION
TAIL_SIGMAS = 6.0
ESCAPE_LIMIT = 32767  # escaped residuals lie in [-ESCAPE_LIMIT, ESCAPE_LIMIT]
ESCAPE_ALPHABET = 2 * ESCAPE_LIMIT + 1


def gaussian_frequency_table(scale: float) -> np.ndarray:
    """Integer frequencies of the unit-binned N(0, scale^2) over -R..R, then escape."""
    radius = max(1, math.ceil(TAIL_SIGMAS * scale))
    values = np.arange(-radius, radius + 1, dtype=np.float64)
    cdf = np.vectorize(lambda v: 0.5 * math.erfc(-v / (scale * math.sqrt(2.0))))
    mass = cdf(values + 0.5) - cdf(values - 0.5)
    escape = max(2.0 * (1.0 - float(cdf(radius + 0.5))), 0.0)
    probs = np.append(mass, escape)
    n = probs.size
    free = TOTAL - n
    freq = 1 + np.floor(probs / probs.sum() * free).astype(np.int64)
    freq[radius] += TOTAL - int(freq.sum())  # the centre absorbs the rounding remainder
    return freq


def build_tables(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequency tables for every scale level, padded into one int32 array, and radii."""
    tables = [gaussian_frequency_table(float(s)) for s in scales]
    width = max(t.size for t in tables)
    packed = np.zeros((len(tables), width), dtype=np.int32)
    radii = np.zeros(len(tables), dtype=np.int32)
    for i, t in enumerate(tables):
        packed[i, : t.size] = t
        radii[i] = (t.size - 2) // 2
    return packed, radii


class EntropyTables:
    """The shipped integer tables, with constriction models built lazily and cached."""

    def __init__(self, freqs: np.ndarray, radii: np.ndarray) -> None:
        self.freqs = freqs
        self.radii = radii
        for i, r in enumerate(radii):
            row = freqs[i, : 2 * int(r) + 2]
            if row.min() < 1 or int(row.astype(np.int64).sum()) != TOTAL:
                raise ValueError(f"entropy table {i} does not sum to 2**{PRECISION}")
        self._model = lru_cache(maxsize=None)(self._build_model)

    @property
    def levels(self) -> int:
        return len(self.radii)

    def _build_model(self, level: int) -> constriction.stream.model.Categorical:
        r = int(self.radii[level])
        row = self.freqs[level, : 2 * r + 2].astype(np.float64) - 1.0
        return constriction.stream.model.Categorical(row, perfect=False)

    def model(self, level: int) -> constriction.stream.model.Categorical:
        return self._model(level)


_ESCAPE_MODEL = constriction.stream.model.Uniform(ESCAPE_ALPHABET)


# Once a coded unit's words are used up and the coder's state is 0, rANS decoding yields
# symbol 0 forever without changing the state, so an empty unit would pass the end check
# as a region of any size. A unit whose decoded symbols end in more than this many
# zeros is therefore corrupt (spec 7.5, step 8); `encode` never writes one.
MAX_TRAILING_ZEROS = 64


def _plan(
    sym: np.ndarray, lvl: np.ndarray, tables: EntropyTables, escape_edges: bool
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(level, table symbols, escape payloads) per non-empty level, in decoding order.

    `escape_edges` codes the residual -R (table symbol 0) as an escape instead, which
    the decoder reads back as the same value.
    """
    order = np.argsort(lvl, kind="stable")
    bounds = np.searchsorted(lvl[order], np.arange(tables.levels + 1))
    plan = []
    for level in range(tables.levels):
        group = sym[order[bounds[level] : bounds[level + 1]]]
        if group.size == 0:
            continue
        r = int(tables.radii[level])
        escaped = (group > r) | (group < (-r + 1 if escape_edges else -r))
        payload = (group[escaped] + ESCAPE_LIMIT).astype(np.int32)
        idx = np.where(escaped, 2 * r + 1, group + r).astype(np.int32)
        plan.append((level, idx, payload))
    return plan


def trailing_zeros(chunks: list[np.ndarray]) -> int:
    """How many zeros end the concatenation of `chunks` (decoding order)."""
    run = 0
    for chunk in chunks:
        nonzero = np.flatnonzero(chunk)
        run = run + chunk.size if nonzero.size == 0 else chunk.size - 1 - int(nonzero[-1])
    return run


def encode(symbols: np.ndarray, levels: np.ndarray, tables: EntropyTables) -> bytes:
    """Code integer residuals `symbols`, each with the table at `levels` (same shape).

    Residuals are clipped to -32767..32767; see the fallback below for -32767."""
    return encode_passes([(symbols, levels)], tables)


def encode_passes(passes: list[tuple[np.ndarray, np.ndarray]], tables: EntropyTables) -> bytes:
    """One coded unit holding several passes in order, each (residuals, table levels) and
    each ordered within itself as `encode` orders a unit: a decoder reads pass after
    pass (`UnitDecoder`), so a later pass's tables may depend on an earlier pass's
    values, and the unit ends once, not once a pass."""
    plain = [
        (np.clip(sym.reshape(-1).astype(np.int64), -ESCAPE_LIMIT, ESCAPE_LIMIT), lvl.reshape(-1))
        for sym, lvl in passes
    ]
    plans = [_plan(sym, lvl.astype(np.int64), tables, escape_edges=False) for sym, lvl in plain]
    chunks = [a for plan in plans for _, idx, pay in plan for a in (idx, pay)]
    if trailing_zeros(chunks) > MAX_TRAILING_ZEROS:
        # Only when the last residuals in decoding order all sit at the lower edge of
        # their tables (far in the tails: never seen from a real image): code every -R
        # as an escape, which decodes to the same value. Escape symbol 0 is the
        # residual -32767, which the codec never passes (it clamps to -32766); a caller
        # that does gets it raised to -32766 here, the one value that must change.
        plans = [
            _plan(np.maximum(sym, 1 - ESCAPE_LIMIT), lvl.astype(np.int64), tables, True)
            for sym, lvl in plain
        ]
    coder = constriction.stream.stack.AnsCoder()
    for plan in reversed(plans):
        for level, idx, payload in reversed(plan):
            if payload.size:
                coder.encode_reverse(payload, _ESCAPE_MODEL)
            coder.encode_reverse(idx, tables.model(level))
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, levels: np.ndarray, tables: EntropyTables) -> np.ndarray:
    """Inverse of `encode`: residuals with the shape of `levels`.

    Raises CorruptStreamError when the data cannot be a valid coded unit: its length is
    not a whole number of 32-bit words, the coder rejects it, its final state is not 0,
    or its symbols end in more than MAX_TRAILING_ZEROS zeros (the coder ran dry: the
    unit is shorter than its region).
    """
    unit = UnitDecoder(data, tables)
    out = unit.read(levels)
    unit.finish()
    return out


class UnitDecoder:
    """Reads a coded unit pass by pass (the inverse of `encode_passes`): `read` one
    pass's residuals given its tables, then `finish`, which checks that the unit ends
    where its symbols do. Errors are CorruptStreamError, as for `decode`."""

    def __init__(self, data: bytes, tables: EntropyTables) -> None:
        if len(data) % 4:
            raise CorruptStreamError("entropy-coded data is not a whole number of 32-bit words")
        self.tables = tables
        self.decoded: list[np.ndarray] = []
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self.coder = constriction.stream.stack.AnsCoder(words)
        except Exception as exc:
            raise CorruptStreamError(f"entropy decoder rejected the data: {exc}") from None

    def read(self, levels: np.ndarray) -> np.ndarray:
        """The next pass: residuals with the shape of `levels`."""
        tables = self.tables
        lvl = levels.reshape(-1).astype(np.int64)
        out = np.zeros(lvl.size, dtype=np.int64)
        try:
            # a stable sort of small keys: NumPy's radix sort, linear in the pass's size
            keys = lvl.astype(np.uint8) if tables.levels <= 256 else lvl
            order = np.argsort(keys, kind="stable")
            bounds = np.searchsorted(lvl[order], np.arange(tables.levels + 1))
            for level in range(tables.levels):
                pos = order[bounds[level] : bounds[level + 1]]
                if pos.size == 0:
                    continue
                r = int(tables.radii[level])
                idx = self.coder.decode(tables.model(level), pos.size).astype(np.int64)
                self.decoded.append(idx)
                values = idx - r
                escaped = idx == 2 * r + 1
                n_esc = int(escaped.sum())
                if n_esc:
                    payload = self.coder.decode(_ESCAPE_MODEL, n_esc).astype(np.int64)
                    self.decoded.append(payload)
                    values[escaped] = payload - ESCAPE_LIMIT
                out[pos] = values
        except Exception as exc:  # constriction's own checks; never let them escape raw
            raise CorruptStreamError(f"entropy decoder rejected the data: {exc}") from None
        return out.reshape(levels.shape)

    def finish(self) -> None:
        if not self.coder.is_empty():
            raise CorruptStreamError("entropy-coded data does not end where its symbols do")
        run = trailing_zeros(self.decoded)
        if run > MAX_TRAILING_ZEROS:
            raise CorruptStreamError(
                f"entropy-coded data runs out {run} symbols before the end of its region"
            )
