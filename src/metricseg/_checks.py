"""Input checks shared by counts, metrics and losses.

Every check raises ``ValueError`` or ``TypeError`` whose message names the
argument, the value seen and what was expected (``docs/conventions.md``, "Errors").

Checks that read tensor values (label ranges, target ranges) cost a host sync on an
accelerator; their callers skip them when given ``validate_args=False``. Checks of
shapes, dtypes and option names read no values and always run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "check_choice",
    "check_dense_target",
    "check_ignore_index",
    "check_label_range",
    "check_not_empty",
    "check_num_classes",
    "check_probabilities_shape",
    "is_integer_dtype",
    "require_tensor",
]

#: How far the class sum of a one-hot / soft target may stray from 1 (round-off of
#: soft labels stored in half precision).
DISTRIBUTION_TOLERANCE = 1e-3


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


def require_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` if it is a ``torch.Tensor``; a ``TypeError`` with the fix otherwise (losses)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a torch.Tensor, got a numpy.ndarray of shape {x.shape}; "
            f"wrap it with torch.from_numpy({name}) (losses need tensors for autograd)"
        )
    raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def check_not_empty(x: torch.Tensor, name: str, spatial_from: int) -> None:
    """Refuse a batch of no images (``B = 0``) or images of no voxels (a spatial size 0).

    ``spatial_from`` is the first spatial dim (1 for label maps, 2 for ``(B, C, ...)``).
    Both would give a loss of 0 or scores of nothing, never a useful number.
    """
    shape = tuple(x.shape)
    if shape and shape[0] == 0:
        raise ValueError(
            f"{name} has an empty batch (B = 0, shape {shape}); pass at least one image"
        )
    if any(d == 0 for d in shape[spatial_from:]):
        raise ValueError(
            f"{name} has a spatial size of 0 (shape {shape}); every image needs at least one voxel"
        )
    if len(shape) > 1 and spatial_from == 2 and shape[1] == 0:
        raise ValueError(f"{name} has no classes (C = 0, shape {shape})")


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


def check_ignore_index(ignore_index: Any, num_classes: int, *, fix: str = "") -> int | None:
    """``ignore_index`` must be ``None`` or an int that is not a class, i.e. outside ``[0, C)``.

    One rule for the losses, :func:`metricseg.counts.confusion` and the metrics: a
    class label as ``ignore_index`` would silently drop that class's voxels from
    every count. Negative values (``-1`` in a signed label map) and labels ``>= C``
    (``255``) are fine. ``fix`` says how to leave a class out instead.
    """
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index={ignore_index} lies inside the class range [0, {num_classes - 1}]; "
            "it must be a label that is not a class (e.g. 255 or -1)" + (f". {fix}" if fix else "")
        )
    return int(ignore_index)


def check_dense_target(target: torch.Tensor, name: str, *, distribution: bool) -> None:
    """Refuse a one-hot / soft target ``(B, C, *spatial)`` with values outside ``[0, 1]``.

    With ``distribution=True`` (a softmax over classes is compared with it) every
    voxel's values must also sum to 1 over the classes (within
    :data:`DISTRIBUTION_TOLERANCE`): a one-hot or a soft class distribution. Multi-label
    and soft masks for a sigmoid need only the range. Reads the values: one host sync.
    """
    if target.dtype == torch.bool or target.numel() == 0:
        if distribution and target.dtype == torch.bool:
            _check_sums_to_one(target, name)
        return
    t = target.detach()
    lo, hi = torch.aminmax(t)
    lo_f, hi_f = float(lo), float(hi)
    if math.isnan(lo_f) or math.isnan(hi_f):
        raise ValueError(f"{name} holds NaN; a one-hot/soft target must hold values in [0, 1]")
    if lo_f < 0.0 or hi_f > 1.0:
        hint = " (a 0/255 mask? divide by 255)" if hi_f > 1.0 and lo_f >= 0.0 else ""
        raise ValueError(
            f"{name} as a one-hot/soft target (B, C, *spatial) must hold values in [0, 1], "
            f"got values from {lo_f:.6g} to {hi_f:.6g}{hint}; or pass a label map "
            "(B, *spatial) of class indices"
        )
    if distribution:
        _check_sums_to_one(t, name)


def _check_sums_to_one(target: torch.Tensor, name: str) -> None:
    sums = target.sum(1, dtype=torch.float32 if target.dtype != torch.float64 else None)
    worst = float((sums - 1).abs().amax())
    if worst > DISTRIBUTION_TOLERANCE:
        first = float(sums.flatten()[int((sums - 1).abs().flatten().argmax())])
        raise ValueError(
            f"{name} as a one-hot/soft target for activation='softmax' must sum to 1 over "
            f"the classes (dim 1) at every voxel, got a sum of {first:.6g}; a softmax "
            "compares a class distribution with it. Multi-label or partial targets need "
            "activation='sigmoid'; one-hot targets need every voxel labelled (use a label "
            "map with ignore_index for unlabelled voxels)"
        )


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
