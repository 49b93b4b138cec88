"""The README's figures are what its commands print: the `c2f info` sample of the main
job's file (tests/data/kodim23.png at quality 75)."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import KODIM23
from PIL import Image

import c2f_format
from c2f_format.codec.api import model_name
from c2f_format.format.weights_file import weights_index

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_info_sample_is_what_c2f_info_prints() -> None:
    text = README.read_text()
    match = re.search(r"```\n\$ c2f info runs/kodim23\.c2f\n(.*?)```", text, re.DOTALL)
    assert match, "README has no `c2f info` sample"
    with Image.open(KODIM23) as im:
        data = c2f_format.encode(im.convert("RGB"), quality=75)
    assert str(c2f_format.info(data)) + "\n" == match.group(1)


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
