"""The one parser of numbers that people type: CLI flags, `--set`, job overrides, API forms, schedule
steps and eps sweeps all read numbers here (part.training.config.parse_number adds the fields' ranges)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any

MAX_NUMBER_CHARS = 100
MAX_INT = 2**63


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_number(text: str | float | int, kind: type = float) -> float | int:
    """A finite number from '0.03', '8/255', '1e-3' or a JSON number; ints must be whole.

    At most MAX_NUMBER_CHARS characters of text, at most MAX_INT in size, and a fraction whose value
    overflows a float is refused: every failure is a ValueError naming what was given."""
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ValueError(f"expected a number, got {_shown(text)} (accepted: 0.03, 8/255, 1e-3)")
    value: float | int = text
    if isinstance(text, str):
        stripped = text.strip()
        if len(stripped) > MAX_NUMBER_CHARS:
            raise ValueError(f"'{stripped[:20]}...' has {len(stripped)} characters; a number has at most "
                             f"{MAX_NUMBER_CHARS} (accepted: 0.03, 8/255, 1e-3)")
        try:
            value = float(Fraction(stripped)) if "/" in stripped else float(stripped)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise ValueError(f"'{text}' is not a number (accepted: 0.03, 8/255, 1e-3)") from None
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError(f"{_shown(text)} is too large; numbers are at most {MAX_INT:.3g} in size")
        return int(value) if kind is int else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{_shown(text)} is not finite (accepted: a finite number like 0.03, 8/255, 1e-3)")
    if kind is int:
        if not value.is_integer() or abs(value) > MAX_INT:
            raise ValueError(f"{_shown(text)} is not a whole number")
        return int(value)
    return float(value)
