"""The spec's coding sections (7.2-7.5) describe real streams: an independent decoder,
written from the spec alone, recovers the same symbols as the library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from reference_rans import RansReader

from c2f_format import bitstream as bs
from c2f_format import entropy
from c2f_format.codec import get_codec, pick_device

VECTOR = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "kodim23-crop-q50.c2f"


def spec_decode_unit(data: bytes, levels: np.ndarray, tables: entropy.EntropyTables) -> np.ndarray:
    """Section 7.2: ascending scale index, raster order, escapes after each group."""
    reader = RansReader(data)
    flat = levels.reshape(-1)
    out = np.zeros(flat.size, dtype=np.int64)
    trailing_zeros = 0  # section 7.5, step 8
    for j in range(64):
        positions = np.flatnonzero(flat == j)
        if positions.size == 0:
            continue
        radius = int(tables.radii[j])
        freq = [int(f) for f in tables.freqs[j, : 2 * radius + 2]]
        symbols = [reader.decode_table(freq) for _ in positions]
        for pos, u in zip(positions, symbols, strict=True):
            out[pos] = u - radius
            trailing_zeros = trailing_zeros + 1 if u == 0 else 0
        for pos, u in zip(positions, symbols, strict=True):
            if u == 2 * radius + 1:
                e = reader.decode_uniform(entropy.ESCAPE_ALPHABET)
                out[pos] = e - entropy.ESCAPE_LIMIT
                trailing_zeros = trailing_zeros + 1 if e == 0 else 0
    assert reader.is_finished()  # section 7.5, step 7
    assert trailing_zeros <= 64  # step 8
    return out.reshape(levels.shape)


def test_vector_decodes_with_the_spec_decoder() -> None:
    codec = get_codec(pick_device("cpu"))
    data = VECTOR.read_bytes()
    parser = bs.StreamParser()
    segments = {}
    for seg in parser.feed(data):
        segments.setdefault(seg.kind, []).append(seg)
    header = parser.header
    assert header is not None and parser.finished
    shapes = codec.latent_shapes(header)
    mean1, idx1 = codec.z1_params(shapes["z1"][2], shapes["z1"][3])
    s1 = spec_decode_unit(segments[bs.SEG_Z1][0].payload, idx1.numpy(), codec.tables)
    z1 = torch.from_numpy(s1) * 16 + mean1
    _, mu2, idx2 = codec.hyper_from_z1(z1)
    s2 = spec_decode_unit(segments[bs.SEG_Z2][0].payload, idx2.numpy(), codec.tables)
    _, _, idx3 = codec.hyper_from_z2(torch.from_numpy(s2) * 16 + mu2)
    rows = []
    for seg in segments[bs.SEG_Y]:
        row, count, coded = bs.parse_band(seg.payload)
        rows.append(spec_decode_unit(coded, idx3[:, :, row : row + count].numpy(), codec.tables))
    s3 = np.concatenate(rows, axis=2)
    library = codec.decode_z1(header, segments[bs.SEG_Z1][0].payload)
    assert np.array_equal(library.numpy(), z1.numpy())
    lib_y = [
        codec.decode_band(bs.parse_band(seg.payload)[2], idx3[:, :, r : r + c]).numpy()
        for seg in segments[bs.SEG_Y]
        for r, c, _ in [bs.parse_band(seg.payload)]
    ]
    assert np.array_equal(np.concatenate(lib_y, axis=2), s3)
    assert np.abs(s3).sum() > 0
