"""A benchmark's report, written one way: `STEM.json` (the numbers, for later runs to
compare), `STEM.md` (the table for the docs) and the same table on the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(folder: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """Write `folder/STEM.json` and `folder/STEM.md`, and print the markdown."""
    (folder / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (folder / f"{stem}.md").write_text(markdown)
    print(markdown)
