"""Input checks shared by counts, metrics and losses.

Every check raises ``ValueError`` or ``TypeError`` whose message names the
argument, the value seen and what was expected (DESIGN.md, "Errors").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "check_choice",
    "check_label_range",
    "check_num_classes",
    "check_probabilities_shape",
    "is_integer_dtype",
]


def as_tensor(x: Any, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, was_numpy)`` for a torch tensor or numpy array ``x``.

    Numpy arrays are wrapped without a copy where the dtype allows it.
    """
    if isinstance(x, torch.Tensor):
        return x, False
    if isinstance(x, np.ndarray):
        if x.dtype == np.uint16 or x.dtype == np.uint32 or x.dtype == np.uint64:
            # torch has no unsigned 16/32/64-bit arithmetic on all versions
            x = x.astype(np.int64)
        return torch.from_numpy(np.ascontiguousarray(x)), True
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def is_integer_dtype(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def check_num_classes(num_classes: Any, name: str = "num_classes") -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"{name} must be an int >= 1, got {num_classes}")
    return int(num_classes)


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)!r}, got {value!r}")
    return value


def check_label_range(
    labels: torch.Tensor,
    name: str,
    num_classes: int,
    ignore_index: int | None = None,
) -> None:
    """Raise if a label map holds a value outside ``[0, num_classes)``.

    ``ignore_index`` is allowed in addition when given.
    """
    if labels.numel() == 0:
        return
    lo, hi = torch.aminmax(labels)
    lo_i, hi_i = int(lo), int(hi)
    if lo_i >= 0 and hi_i < num_classes:
        return
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bool(bad.any()):
        first = int(labels[bad].flatten()[0])
        allowed = f"[0, {num_classes - 1}]"
        if ignore_index is not None:
            allowed += f" or ignore_index={ignore_index}"
        raise ValueError(
            f"{name} holds label {first}, outside {allowed} "
            f"(values seen from {lo_i} to {hi_i}; num_classes={num_classes})"
        )


def check_probabilities_shape(
    probs: torch.Tensor, target: torch.Tensor, probs_name: str, target_name: str
) -> str:
    """Check ``probs`` (B, C, *spatial) against a target and say what the target is.

    Returns ``"labels"`` for a label map ``(B, *spatial)`` or ``"dense"`` for a
    one-hot / soft target ``(B, C, *spatial)``.
    """
    if probs.ndim < 3:
        raise ValueError(
            f"{probs_name} must have shape (B, C, *spatial) with at least one spatial "
            f"dim, got shape {tuple(probs.shape)}"
        )
    if target.ndim == probs.ndim - 1:
        if target.shape[0] != probs.shape[0] or target.shape[1:] != probs.shape[2:]:
            raise ValueError(
                f"{target_name} as a label map must have shape (B, *spatial) = "
                f"{(probs.shape[0], *probs.shape[2:])} to match {probs_name} of shape "
                f"{tuple(probs.shape)}, got {tuple(target.shape)}"
            )
        if not is_integer_dtype(target.dtype):
            raise TypeError(
                f"{target_name} as a label map (B, *spatial) must have an integer dtype, "
                f"got {target.dtype}"
            )
        return "labels"
    if target.ndim == probs.ndim:
        if target.shape != probs.shape:
            raise ValueError(
                f"{target_name} as a one-hot/soft target must have the shape of "
                f"{probs_name} {tuple(probs.shape)}, got {tuple(target.shape)}"
            )
        return "dense"
    raise ValueError(
        f"{target_name} must be a label map (B, *spatial) or a one-hot/soft target "
        f"(B, C, *spatial) for {probs_name} of shape {tuple(probs.shape)}, got shape "
        f"{tuple(target.shape)}"
    )
