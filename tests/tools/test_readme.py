"""The README's figures are what its commands print: the `c2f info` sample of the main
job's file (tests/data/kodim23.png at quality 75)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import KODIM23
from PIL import Image

import c2f_format
from c2f_format.codec.api import model_name
from c2f_format.codec.metrics import psnr
from c2f_format.format.weights_file import weights_index
from c2f_format.tools.bench_preview import parser_preview

README = Path(__file__).resolve().parents[2] / "README.md"
PROGRESSIVE = README.parent / "docs" / "progressive.md"


@pytest.fixture(scope="module")
def main_job_stream() -> bytes:
    """The main job's file: tests/data/kodim23.png at quality 75."""
    with Image.open(KODIM23) as im:
        return c2f_format.encode(im.convert("RGB"), quality=75)


def test_the_info_sample_is_what_c2f_info_prints(main_job_stream: bytes) -> None:
    text = README.read_text()
    match = re.search(r"```\n\$ c2f info runs/kodim23\.c2f\n(.*?)```", text, re.DOTALL)
    assert match, "README has no `c2f info` sample"
    assert str(c2f_format.info(main_job_stream)) + "\n" == match.group(1)


def test_the_draft_scales_in_the_thumbnail_examples(main_job_stream: bytes) -> None:
    """`im.thumbnail((N, N))  # ... (WxH)`: the draft Pillow asks for (twice N) is WxH."""
    examples = re.findall(
        r"im\.thumbnail\(\((\d+), (\d+)\)\)  #[^\n]*\((\d+)x(\d+)\)", README.read_text()
    )
    assert len(examples) >= 2
    for w, h, dw, dh in examples:
        with Image.open(io.BytesIO(main_job_stream)) as im:
            im.draft(None, (2 * int(w), 2 * int(h)))
            assert im.size == (int(dw), int(dh))


def test_the_parser_figures(main_job_stream: bytes) -> None:
    """progressive.md's share of the bytes after which the Parser shows the preview, and
    the preview's PSNR, for the main job's file."""
    match = re.search(
        r"draws the preview after ([\d.]+)% of the bytes of\s+kodim23 at quality 75 "
        r"\(\d+ of its \d+ KiB\), ([\d.]+) dB",
        PROGRESSIVE.read_text(),
    )
    assert match, "progressive.md has no Parser figures"
    data = main_job_stream
    shown_at, shown = parser_preview(data)
    assert shown_at is not None and shown is not None
    with Image.open(KODIM23) as im:
        original = np.asarray(im.convert("RGB"))
    assert f"{100 * shown_at / len(data):.1f}" == match.group(1)
    assert abs(psnr(original, shown) - float(match.group(2))) < 0.01


def test_the_main_job_writes_into_runs_only() -> None:
    """The main job's outputs go where git ignores them, not into the checkout's root."""
    lines = README.read_text().splitlines()
    line = next(text for text in lines if "c2f encode tests/data" in text)
    outputs = re.findall(r"-o (\S+)", line)
    assert outputs and all(o.startswith("runs/") for o in outputs)
    ignored = (README.parent / ".gitignore").read_text().split()
    assert "runs/" in ignored


def test_info_names_the_model_by_its_weights_file(small_stream: bytes) -> None:
    result = c2f_format.info(small_stream)
    model = result.header.model_id.hex()
    name = weights_index()[model].removesuffix(".npz")
    assert f"model {name} ({model})" in str(result).splitlines()[0]
    unknown = model_name(bytes(16))
    assert unknown == "0" * 32 + " (not installed)"
