"""The pure-Python reference decoder agrees with constriction bit for bit.

Data are produced exactly as c2f_format/format/entropy.py does: one `AnsCoder`, groups pushed in
reverse decode order with `encode_reverse`, tables handed over as
`Categorical(freq - 1.0, perfect=False)`, escapes as `Uniform(65535)`, and the words of
`get_compressed()` stored little-endian. The reference decoder sees only those bytes.
"""

from __future__ import annotations

import constriction
import numpy as np
import pytest
from reference_rans import TOTAL, RansReader

AnsCoder = constriction.stream.stack.AnsCoder
Categorical = constriction.stream.model.Categorical
Uniform = constriction.stream.model.Uniform
ESCAPE_ALPHABET = 65535  # entropy.ESCAPE_ALPHABET

# A group is (table, symbols): table is an int64 frequency array, or None for Uniform(65535).
Group = tuple[np.ndarray | None, np.ndarray]


def make_table(rng: np.random.Generator, n: int, tiny: float) -> np.ndarray:
    """Positive integer frequencies summing to 2**24; a fraction `tiny` of entries is 1 or 2."""
    weights = rng.gamma(0.5, size=n)
    weights[rng.random(n) < tiny] = 0.0
    weights[rng.integers(n)] += 1.0
    freq = 1 + np.floor(weights / weights.sum() * (TOTAL - 2 * n)).astype(np.int64)
    freq += rng.random(n) < 0.5  # some tiny entries become 2
    freq[int(np.argmax(freq))] += TOTAL - int(freq.sum())
    assert freq.min() >= 1 and int(freq.sum()) == TOTAL
    return freq


def model_for(table: np.ndarray | None) -> object:
    if table is None:
        return Uniform(ESCAPE_ALPHABET)
    return Categorical(table.astype(np.float64) - 1.0, perfect=False)


def constriction_encode(groups: list[Group]) -> bytes:
    """Encode groups (listed in decode order) the way entropy.encode does."""
    coder = AnsCoder()
    for table, symbols in reversed(groups):
        coder.encode_reverse(symbols.astype(np.int32), model_for(table))
    return coder.get_compressed().astype("<u4").tobytes()


def reference_decode(data: bytes, groups: list[Group]) -> tuple[list[np.ndarray], RansReader]:
    reader = RansReader(data)
    out = []
    for table, symbols in groups:
        if table is None:
            out.append(np.array([reader.decode_uniform(ESCAPE_ALPHABET) for _ in symbols]))
        else:
            out.append(np.array([reader.decode_table(table) for _ in symbols]))
    return out, reader


def reference_encode(groups: list[Group]) -> bytes:
    """Textbook rANS encoder with the exact integer tables (to compare bytes with constriction)."""
    state, words = 0, []
    for table, symbols in reversed(groups):
        if table is None:
            width = TOTAL // ESCAPE_ALPHABET
            cums = [k * width for k in range(ESCAPE_ALPHABET)]
            sizes = [width] * (ESCAPE_ALPHABET - 1) + [TOTAL - cums[-1]]
        else:
            sizes = [int(f) for f in table]
            cums = [0, *np.cumsum(sizes)[:-1].tolist()]
        for s in reversed(symbols.tolist()):
            if state >> 40 >= sizes[s]:
                words.append(state & 0xFFFFFFFF)
                state >>= 32
            state = ((state // sizes[s]) << 24) + cums[s] + state % sizes[s]
    while state:  # flush: low word first, high word last, no leading zero words
        words.append(state & 0xFFFFFFFF)
        state >>= 32
    return b"".join(w.to_bytes(4, "little") for w in words)


def c2f_like_groups(rng: np.random.Generator, levels: int) -> list[Group]:
    """Per level: table symbols (index 2r+1 = escape), then that level's escape payloads."""
    groups: list[Group] = []
    for _ in range(levels):
        radius = int(rng.integers(1, 300))
        table = make_table(rng, 2 * radius + 2, tiny=float(rng.uniform(0.0, 0.9)))
        count = int(rng.integers(1, 120))
        drawn = rng.choice(table.size, size=count, p=table / TOTAL)
        uniform = rng.integers(0, table.size, size=count)  # reaches the tiny entries too
        idx = np.where(rng.random(count) < 0.5, drawn, uniform)
        groups.append((table, idx))
        n_esc = int((idx == 2 * radius + 1).sum())
        if n_esc:
            payload = rng.integers(0, ESCAPE_ALPHABET, size=n_esc)
            payload[: min(n_esc, 2)] = [0, ESCAPE_ALPHABET - 1][: min(n_esc, 2)]
            groups.append((None, payload))
    return groups


@pytest.mark.parametrize("seed", range(6))
def test_reference_decoder_recovers_c2f_style_units(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = c2f_like_groups(rng, levels=int(rng.integers(1, 8)))
    groups.append((None, rng.integers(0, ESCAPE_ALPHABET, size=5)))  # escapes for sure
    data = constriction_encode(groups)
    decoded, reader = reference_decode(data, groups)
    for (_, symbols), got in zip(groups, decoded, strict=True):
        assert np.array_equal(got, symbols)
    assert reader.is_finished()  # every word consumed, state back to 0

    coder = AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    for table, symbols in groups:
        assert np.array_equal(coder.decode(model_for(table), symbols.size), symbols)
    assert coder.is_empty()


@pytest.mark.parametrize("seed", range(4))
def test_bytes_equal_a_coder_using_the_integer_tables(seed: int) -> None:
    """constriction's output is byte-identical to rANS with exactly `freq` (not freq +- 1)."""
    rng = np.random.default_rng(100 + seed)
    groups = c2f_like_groups(rng, levels=4)
    groups.append((table := make_table(rng, 3, tiny=1.0), rng.integers(0, 3, size=40)))
    assert table.min() <= 2
    assert constriction_encode(groups) == reference_encode(groups)


def boundary_table() -> np.ndarray:
    freq = np.array([1, 1, 2, 1, 3, 1, 1, 7, 1, 2, 1, 1, 5, 1, 1, 1], dtype=np.int64)
    return np.append(freq, TOTAL - int(freq.sum()))[np.r_[0:8, 16, 8:16]]


def test_categorical_quantization_is_exactly_freq() -> None:
    """Probe every slot boundary: a one-word stream w has state w, so its slot is w."""
    freq = boundary_table()
    starts = np.concatenate([[0], np.cumsum(freq)[:-1]])
    model = Categorical(freq.astype(np.float64) - 1.0, perfect=False)
    plain = Categorical(freq.astype(np.float64), perfect=False)  # the off-by-one variant
    mismatches = 0
    for i in range(1, freq.size):
        for slot, expected in ((int(starts[i]), i), (int(starts[i]) - 1, i - 1)):
            if slot == 0:
                continue
            words = np.array([slot], dtype=np.uint32)
            assert AnsCoder(words).decode(model) == expected
            assert RansReader(words.astype("<u4").tobytes()).decode_table(freq) == expected
            mismatches += AnsCoder(words).decode(plain) != expected
    assert mismatches > 0  # the probe would catch a table that is off by one


def test_uniform_quantization() -> None:
    """Uniform(65535): 256 slots per symbol, the last symbol gets the remaining 512."""
    model = Uniform(ESCAPE_ALPHABET)
    width = TOTAL // ESCAPE_ALPHABET
    assert width == 256 and TOTAL - (ESCAPE_ALPHABET - 1) * width == 512
    probes = {1: 0, 255: 0, 256: 1, 257: 1, 12345 * 256 + 7: 12345}
    probes |= {65534 * 256 - 1: 65533, 65534 * 256: 65534, TOTAL - 1: 65534}
    for slot, expected in probes.items():
        words = np.array([slot], dtype=np.uint32)
        assert AnsCoder(words).decode(model) == expected
        assert RansReader(words.astype("<u4").tobytes()).decode_uniform(ESCAPE_ALPHABET) == expected


def test_empty_unit() -> None:
    coder = AnsCoder()
    assert coder.get_compressed().size == 0
    reader = RansReader(b"")
    assert reader.state == 0 and reader.is_finished()
    table = boundary_table()
    # From state 0 every slot is 0: both decoders yield symbol 0 forever, without error.
    empty = AnsCoder(np.zeros(0, dtype=np.uint32))
    assert [empty.decode(model_for(table)) for _ in range(3)] == [0, 0, 0]
    assert [reader.decode_table(table) for _ in range(3)] == [0, 0, 0]
    # Leading symbol-0s in decode order cost nothing when nothing else is coded.
    assert constriction_encode([(table, np.zeros(5, dtype=np.int64))]) == b""


def test_trailing_zero_word_is_rejected() -> None:
    words = np.array([5, 0], dtype=np.uint32)
    with pytest.raises(ValueError):
        AnsCoder(words)
    with pytest.raises(ValueError):
        RansReader(words.astype("<u4").tobytes())
    with pytest.raises(ValueError):
        RansReader(b"\x01\x00\x00")


@pytest.mark.parametrize("seed", range(4))
def test_arbitrary_words_and_decoding_past_the_end(seed: int) -> None:
    """On any input constriction accepts, both decoders agree on symbols and state, even
    after the words run out (no refill, no error)."""
    rng = np.random.default_rng(200 + seed)
    words = rng.integers(0, 2**32, size=int(rng.integers(1, 12)), dtype=np.uint64)
    words[rng.random(words.size) < 0.2] = 0
    words[-1] = max(int(words[-1]), 1)
    words = words.astype(np.uint32)
    tables = [make_table(rng, n, tiny=0.5) for n in (2, 9, 300)] + [None]
    coder = AnsCoder(words)
    reader = RansReader(words.astype("<u4").tobytes())
    assert coder.pos() == (reader.words_left, reader.state)
    for _ in range(3 * words.size + 10):
        table = tables[int(rng.integers(len(tables)))]
        expected = coder.decode(model_for(table))
        got = (
            reader.decode_uniform(ESCAPE_ALPHABET) if table is None else reader.decode_table(table)
        )
        assert got == expected
        assert coder.pos() == (reader.words_left, reader.state)
    assert reader.words_left == 0 and coder.is_empty() == reader.is_finished()
