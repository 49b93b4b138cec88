"""The spec describes real streams: an independent decoder, written from the spec alone,
reads the container (sections 2.1, 2.2), the alpha plane (2.4) and the coded units
(7.2-7.5) of the conformance vectors and recovers what the library does."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import VECTORS
from PIL import Image
from reference_rans import RansReader

import c2f_format
from c2f_format.codec.torch_engine import get_torch_engine, pick_device
from c2f_format.format import bitstream as bs
from c2f_format.format import entropy

pytestmark = pytest.mark.v1  # version 1 streams and c2f-v3 (conftest.py)

VECTOR = VECTORS / "kodim23-crop-q50.c2f"
ALPHA_VECTOR = VECTORS / "kodim23-rgba-exif-icc-q60.c2f"


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


@pytest.mark.parametrize("vector", [VECTOR, ALPHA_VECTOR], ids=lambda p: p.stem)
def test_vector_decodes_with_the_spec_decoder(vector: Path) -> None:
    codec = get_torch_engine(pick_device("cpu"))
    data = vector.read_bytes()
    parser = bs.StreamParser()
    segments: dict[bytes, list[bs.Segment]] = {}
    for seg in parser.feed(data):
        segments.setdefault(seg.kind, []).append(seg)
    header = parser.header
    assert header is not None and parser.finished
    shapes = codec.latent_shapes(header)
    mean1, idx1 = codec.z1_params(shapes["z1"][2], shapes["z1"][3])
    s1 = spec_decode_unit(segments[bs.SEG_HYP1][0].payload, idx1.numpy(), codec.tables)
    z1 = torch.from_numpy(s1) * 16 + mean1
    _, mu2, idx2 = codec.hyper_from_z1(z1)
    s2 = spec_decode_unit(segments[bs.SEG_HYP2][0].payload, idx2.numpy(), codec.tables)
    _, _, idx3 = codec.hyper_from_z2(torch.from_numpy(s2) * 16 + mu2)
    rows = []
    for seg in segments[bs.SEG_YBND]:
        row, count, coded = bs.parse_band(seg.payload)
        rows.append(spec_decode_unit(coded, idx3[:, :, row : row + count].numpy(), codec.tables))
    s3 = np.concatenate(rows, axis=2)
    library = codec.decode_z1(header, segments[bs.SEG_HYP1][0].payload)
    assert np.array_equal(library.numpy(), z1.numpy())
    lib_y = [
        codec.decode_band(bs.parse_band(seg.payload)[2], idx3[:, :, r : r + c]).numpy()
        for seg in segments[bs.SEG_YBND]
        for r, c, _ in [bs.parse_band(seg.payload)]
    ]
    assert np.array_equal(np.concatenate(lib_y, axis=2), s3)
    assert np.abs(s3).sum() > 0


def spec_container(data: bytes) -> tuple[dict[str, int], list[tuple[bytes, bytes]]]:
    """Sections 2.1 and 2.2: the header's fields and the (type, payload) of every
    segment up to IEND, each CRC checked."""
    assert data[:8] == b"\x89c2f\r\n\x1a\n"
    assert struct.unpack(">I", data[36:40])[0] == zlib.crc32(data[:36])
    names = ("major", "minor", "width", "height", "mode", "quality")
    header = dict(zip(names, struct.unpack(">BBIIBB", data[8:20]), strict=True))
    segments, pos = [], 40
    while True:
        kind, length = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        segments.append((kind, payload))
        pos += 12 + length
        if kind == b"IEND":
            return header, segments


def spec_alpha(payload: bytes, width: int, height: int) -> list[list[int]]:
    """Section 2.4, sample by sample: method 0 or 1; filter bit 0 adds the sample on the
    left, bit 1 the one above, mod 256."""
    if payload[0] == 0:
        assert len(payload) == 2
        return [[payload[1]] * width for _ in range(height)]
    assert payload[0] == 1
    n = height * (1 + width)
    assert len(payload) <= n + n // 1024 + 64
    inflater = zlib.decompressobj()
    rows = inflater.decompress(payload[1:], n + 1)
    assert len(rows) == n and inflater.eof and not inflater.unused_data
    alpha: list[list[int]] = []
    for r in range(height):
        f, x = rows[r * (1 + width)], rows[r * (1 + width) + 1 : (r + 1) * (1 + width)]
        assert f <= 3
        h, total = [], 0
        for c in range(width):
            total = (total + x[c]) % 256
            h.append(total if f & 1 else x[c])
        above = alpha[r - 1] if r else [0] * width
        alpha.append([(h[c] + above[c]) % 256 if f & 2 else h[c] for c in range(width)])
    return alpha


def test_alpha_and_metadata_vector_with_the_spec_decoder() -> None:
    """The RGBA vector read from the spec alone: version 1.1, colour mode 4, iCCP and
    eXIf first, then ALPH before HYP1; every filter type; the alpha equals the library's
    and the reference's, and the metadata is what the reference PNG carries."""
    data = ALPHA_VECTOR.read_bytes()
    header, segments = spec_container(data)
    assert (header["major"], header["minor"], header["mode"]) == (1, 1, 4)
    kinds = [kind for kind, _ in segments]
    assert kinds[:5] == [b"iCCP", b"eXIf", b"ALPH", b"HYP1", b"HYP2"]
    payloads = dict(segments)
    width, height = header["width"], header["height"]
    alpha = np.array(spec_alpha(payloads[b"ALPH"], width, height), dtype=np.uint8)
    filters = zlib.decompress(payloads[b"ALPH"][1:])[:: 1 + width]
    assert set(filters) == {0, 1, 2, 3}
    assert 0 < (alpha == 0).sum() and 0 < (alpha == 255).sum() and len(np.unique(alpha)) > 50

    decoded = c2f_format.decode(data, device="cpu")
    with Image.open(ALPHA_VECTOR.with_suffix(".png")) as ref:
        ref.load()
    assert decoded.mode == ref.mode == "RGBA"
    assert np.array_equal(np.asarray(decoded)[:, :, 3], alpha)
    assert np.array_equal(np.asarray(ref)[:, :, 3], alpha)
    exif = payloads[b"eXIf"]
    assert exif[:4] in (b"MM\x00*", b"II*\x00")  # section 2.3: no Exif\0\0 prefix
    assert ref.info["exif"] == b"Exif\x00\x00" + exif == decoded.info["exif"]
    assert ref.info["icc_profile"] == payloads[b"iCCP"] == decoded.info["icc_profile"]
    assert decoded.getexif()[0x0112] == 6  # stored, not applied
