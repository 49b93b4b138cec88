"""Integer tables and the constriction coding path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c2f_format.codec.torch_engine import get_torch_engine, pick_device
from c2f_format.format import entropy
from c2f_format.format.errors import CorruptStreamError
from c2f_format.networks.model import scale_table

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)


@pytest.fixture
def tables() -> entropy.EntropyTables:
    return get_torch_engine(pick_device("cpu")).tables


def test_shipped_tables_match_the_definition(tables: entropy.EntropyTables) -> None:
    """The shipped integers are what the spec's table construction yields."""
    freqs, radii = entropy.build_tables(scale_table().numpy())
    assert np.array_equal(freqs, tables.freqs)
    assert np.array_equal(radii, tables.radii)
    for level, r in enumerate(tables.radii):
        row = tables.freqs[level, : 2 * r + 2].astype(np.int64)
        assert row.min() >= 1 and row.sum() == entropy.TOTAL


def test_code_length_is_the_integer_tables_ideal(tables: entropy.EntropyTables) -> None:
    """constriction codes with exactly our frequencies: the size matches -log2(f/2^24)."""
    rng = np.random.default_rng(1)
    levels = rng.integers(0, tables.levels, size=20000)
    sym = np.round(rng.normal(0, 1, size=levels.size) * np.exp(levels / 12)).astype(np.int64)
    data = entropy.encode(sym, levels, tables)
    ideal = 0.0
    for s, lv in zip(sym, levels, strict=True):
        r = int(tables.radii[lv])
        idx = 2 * r + 1 if abs(s) > r else s + r
        ideal -= np.log2(tables.freqs[lv, idx] / entropy.TOTAL)
        if abs(s) > r:
            ideal += np.log2(entropy.ESCAPE_ALPHABET)
    assert abs(len(data) * 8 - ideal) < 96


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-40000, 40000), st.integers(0, 63)), max_size=300),
)
def test_round_trip_with_escapes(pairs: list[tuple[int, int]]) -> None:
    tables = get_torch_engine(pick_device("cpu")).tables
    sym = np.array([p[0] for p in pairs], dtype=np.int64)
    lvl = np.array([p[1] for p in pairs], dtype=np.int64)
    out = entropy.decode(entropy.encode(sym, lvl, tables), lvl, tables)
    expected = np.clip(sym, -entropy.ESCAPE_LIMIT, entropy.ESCAPE_LIMIT)
    # exact, but for -32767, which may come back as -32766 (spec 7.5 step 8 fallback)
    bottom = expected == -entropy.ESCAPE_LIMIT
    assert np.array_equal(out[~bottom], expected[~bottom])
    assert np.isin(out[bottom], [-entropy.ESCAPE_LIMIT, 1 - entropy.ESCAPE_LIMIT]).all()


def test_bad_data_is_a_c2f_error(tables: entropy.EntropyTables) -> None:
    lvl = np.zeros(10, dtype=np.int64)
    with pytest.raises(CorruptStreamError, match="32-bit words"):
        entropy.decode(b"abc", lvl, tables)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]))
def test_garbage_decodes_or_raises_c2f_error(data: bytes) -> None:
    tables = get_torch_engine(pick_device("cpu")).tables
    lvl = np.arange(40, dtype=np.int64) % tables.levels
    try:
        out = entropy.decode(data, lvl, tables)
    except CorruptStreamError:
        return
    assert np.abs(out).max(initial=0) <= entropy.ESCAPE_LIMIT


def test_a_unit_too_short_for_its_region_is_corrupt(tables: entropy.EntropyTables) -> None:
    """Spec 7.5 step 8: a dry coder yields zeros forever at state 0, which would pass the
    end check; an empty or short unit must not decode as a region of any size."""
    big = np.full(100_000, 10, dtype=np.int64)
    with pytest.raises(CorruptStreamError, match="runs out"):
        entropy.decode(b"", big, tables)
    rng = np.random.default_rng(3)
    lvl = rng.integers(0, tables.levels, 128)
    data = entropy.encode(rng.integers(-3, 4, 128), lvl, tables)
    longer = np.concatenate([lvl, rng.integers(0, tables.levels, 4000)])
    with pytest.raises(CorruptStreamError):
        entropy.decode(data, longer, tables)
    # a region of at most 64 elements may legitimately be coded in no words at all
    assert np.array_equal(
        entropy.decode(b"", np.zeros(64, dtype=np.int64), tables),
        np.full(64, -int(tables.radii[0])),
    )


@pytest.mark.parametrize("value", ["lower edge", -40000])
def test_encoder_never_ends_a_unit_in_free_zeros(
    tables: entropy.EntropyTables, value: str | int
) -> None:
    """Residuals that would end the unit in table or escape symbol 0 are coded another
    way, so every unit the encoder writes passes step 8."""
    lvl = np.full(500, 63, dtype=np.int64)
    v = -int(tables.radii[63]) if value == "lower edge" else int(value)
    sym = np.full(500, v, dtype=np.int64)
    out = entropy.decode(entropy.encode(sym, lvl, tables), lvl, tables)
    expected = v if value == "lower edge" else 1 - entropy.ESCAPE_LIMIT
    assert np.array_equal(out, np.full(500, expected))
