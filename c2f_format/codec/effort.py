"""`effort` 1..9: how hard the encoder searches (torch-free, so that the API and the
plugins can check it in a decode-only install). The search itself is search.py."""

from __future__ import annotations

import numpy as np

from ..format.errors import InvalidArgumentError

EFFORT_MIN, EFFORT_MAX = 1, 9
DEFAULT_EFFORT = 3
# SGA iterations at each effort; 0: the analysis transform's y, rounded, as it is
ITERATIONS = {1: 0, 2: 0, 3: 0, 4: 20, 5: 50, 6: 100, 7: 250, 8: 600, 9: 2000}


def check_effort(effort: object) -> int:
    """`effort` as an int in 1..9, or an InvalidArgumentError naming the problem."""
    if isinstance(effort, np.integer):
        effort = int(effort)
    if isinstance(effort, bool) or not isinstance(effort, int):
        raise InvalidArgumentError(f"effort must be an integer 1..9, not {effort!r}")
    if not EFFORT_MIN <= effort <= EFFORT_MAX:
        raise InvalidArgumentError(f"effort must be 1..9, got {effort}")
    return effort
