"""Argument checks of the theory module; messages name the argument, the value and
what was expected (``docs/conventions.md``, "Errors")."""

from __future__ import annotations

import math

import numpy as np


def check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_weight(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float >= 0, got {value!r}")
    if not (float(value) >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite float >= 0, got {value}")
    return float(value)
