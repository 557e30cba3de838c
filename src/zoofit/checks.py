"""Checks of a value's kind, shared by everything that validates settings and files (no imports: torch-free)."""

from __future__ import annotations

import math
from typing import Any


def is_number(value: Any) -> bool:
    """A finite int or float (``True`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: Any, *, whole_floats: bool = False) -> bool:
    """An int (not a bool); with ``whole_floats``, also a float without a fraction (YAML's ``224.0``)."""
    if whole_floats:
        return is_number(value) and value == int(value)
    return isinstance(value, int) and not isinstance(value, bool)
