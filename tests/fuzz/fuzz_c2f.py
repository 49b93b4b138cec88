#!/usr/bin/env python3
"""Coverage-guided fuzzing of every way c2f reads bytes from strangers (atheris).

    pip install atheris
    python tests/fuzz/fuzz_c2f.py CORPUS_DIR -max_total_time=1800 -timeout=10 \
        -rss_limit_mb=3072 -artifact_prefix=tests/fuzz/crashes/

Each input goes through every decoding path (`replay.check`). Anything other than the
documented exceptions is a finding:
atheris stops and writes the input under `-artifact_prefix`; `-timeout` turns a hang
into one, `-rss_limit_mb` an unbounded allocation.

The CRCs would stop almost every blind mutation at the first segment, so the custom
mutator repairs them in half of its outputs: the fuzzer then reaches the entropy
decoder and the networks with well-formed but hostile contents.
"""

from __future__ import annotations

import struct
import sys
import zlib

import atheris

with atheris.instrument_imports(include=["c2f_format"]):
    from replay import check  # imports c2f_format, its plugins with it

import torch

from c2f_format.format import bitstream as bs

torch.set_num_threads(1)


def fix_crcs(data: bytes) -> bytes:
    """Recompute the header CRC and the CRC of every complete segment."""
    buf = bytearray(data)
    if len(buf) < bs.HEADER_SIZE:
        return bytes(buf)
    buf[36:40] = struct.pack(">I", zlib.crc32(bytes(buf[:36])))
    pos = bs.HEADER_SIZE
    while pos + 8 <= len(buf):
        kind = bytes(buf[pos : pos + 4])
        (length,) = struct.unpack_from(">I", buf, pos + 4)
        end = pos + 8 + length
        if end + 4 > len(buf):
            break
        crc = zlib.crc32(bytes(buf[pos + 8 : end]), zlib.crc32(kind))
        buf[end : end + 4] = struct.pack(">I", crc)
        pos = end + 4
    return bytes(buf)


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    out = atheris.Mutate(data, max_size)
    return fix_crcs(out) if seed & 1 else out


def main() -> None:
    atheris.Setup(sys.argv, check, custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
