"""The vocabulary every loss shares: activation, classes, class weights, reduction.

One place for the option checks and for the two reductions every loss ends
with: a weighted mean over the selected classes of an image, then a reduction
over images (DESIGN.md, "One vocabulary everywhere").
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from metricseg._checks import check_choice, is_integer_dtype

__all__ = [
    "ACTIVATIONS",
    "REDUCTIONS",
    "LossModule",
    "activate",
    "check_class_weights",
    "check_ignore_index",
    "check_logits",
    "full_precision",
    "label_counts",
    "reduce_images",
    "selected_classes",
    "weighted_class_mean",
]

ACTIVATIONS = ("softmax", "sigmoid", None)
REDUCTIONS = ("mean", "sum", "none")
CLASS_MODES = ("all", "present", "foreground")

ClassesArg = str | Sequence[int]


def check_logits(logits: Any, name: str = "logits") -> torch.Tensor:
    """Check a ``(B, C, *spatial)`` float tensor; half precision is widened to float32."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point (B, C, *spatial), got dtype {logits.dtype}")
    if logits.ndim < 3:
        raise ValueError(
            f"{name} must have shape (B, C, *spatial) with at least one spatial dim, "
            f"got shape {tuple(logits.shape)}"
        )
    if logits.dtype in (torch.float16, torch.bfloat16):
        # sums over millions of voxels overflow or lose digits in half precision
        logits = logits.float()
    return logits


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Switch autocast off, so einsum/matmul sums are not silently done in fp16/bf16."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def activate(logits: torch.Tensor, activation: str | None) -> torch.Tensor:
    """Apply ``"softmax"`` (over dim 1), ``"sigmoid"`` or nothing (``None``: probabilities)."""
    check_choice(activation, "activation", ACTIVATIONS)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    lo, hi = torch.aminmax(logits.detach())
    if float(lo) < 0.0 or float(hi) > 1.0:
        raise ValueError(
            "with activation=None the input must hold probabilities in [0, 1], got values "
            f"from {float(lo):.4g} to {float(hi):.4g}; pass activation='softmax' or 'sigmoid' "
            "for logits"
        )
    return logits


def check_ignore_index(ignore_index: Any, num_classes: int) -> int | None:
    """``ignore_index`` must be an int outside ``[0, num_classes)`` (or ``None``)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index={ignore_index} lies inside the class range [0, {num_classes - 1}]; "
            "it must be a label that is not a class (e.g. 255 or -1). To leave a class out "
            "of a region loss use classes=[...] instead"
        )
    return ignore_index


def check_class_weights(
    class_weights: Any, num_classes: int, like: torch.Tensor
) -> torch.Tensor | None:
    """One non-negative weight per class (background included), as a tensor like ``like``."""
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=like.dtype, device=like.device)
    if w.ndim != 1 or w.shape[0] != num_classes:
        raise ValueError(
            f"class_weights must hold one weight per class ({num_classes}, background "
            f"included), got shape {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"class_weights must be finite and >= 0, got {w.tolist()}")
    return w


def selected_classes(classes: ClassesArg, num_classes: int, present: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``(..., C)`` of the classes a loss averages over.

    Args:
        classes: ``"all"``, ``"present"`` (classes in the target of the image,
            or of the batch when not per image), ``"foreground"`` (all but 0),
            or a list of class indices.
        num_classes: ``C``.
        present: boolean ``(..., C)``, whether each class occurs in the target.
    """
    if isinstance(classes, str):
        check_choice(classes, "classes", CLASS_MODES)
        if classes == "present":
            return present
        mask = torch.ones_like(present)
        if classes == "foreground":
            if num_classes < 2:
                raise ValueError("classes='foreground' needs at least 2 classes (0 is background)")
            mask[..., 0] = False
        return mask
    index = list(classes)
    if not index or not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
        raise TypeError(
            f"classes must be 'all', 'present', 'foreground' or a non-empty list of ints, "
            f"got {classes!r}"
        )
    bad = [i for i in index if not 0 <= i < num_classes]
    if bad:
        raise ValueError(f"classes holds {bad}, outside [0, {num_classes - 1}]")
    mask = torch.zeros_like(present)
    mask[..., index] = True
    return mask


def weighted_class_mean(
    per_class: torch.Tensor, selected: torch.Tensor, class_weights: torch.Tensor | None
) -> torch.Tensor:
    r"""Weighted mean over the selected classes, :math:`\sum_c w_c l_c / \sum_c w_c`.

    ``per_class`` is ``(..., C)``; the result is ``(...)``. A row with no
    selected class (or zero total weight) gives 0, never NaN.
    """
    w = selected.to(per_class.dtype)
    if class_weights is not None:
        w = w * class_weights
    total = w.sum(-1)
    # where() rather than clamping the loss, so an empty row has no gradient at all
    num = (torch.where(w > 0, per_class, torch.zeros_like(per_class)) * w).sum(-1)
    return torch.where(total > 0, num / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def label_counts(labels: torch.Tensor, num_classes: int, per_image: bool) -> torch.Tensor:
    """Voxels of each class per image (B, C) — or pooled (C,) — by one bincount.

    No one-hot copy: the bins are ``b * (C + 1) + label``.

    ``labels`` (B, N) holds ``num_classes`` at ignored voxels (an extra bin).
    """
    b = labels.shape[0]
    slots = num_classes + 1
    idx = labels + torch.arange(b, device=labels.device).unsqueeze(1) * slots
    counts = torch.bincount(idx.reshape(-1), minlength=b * slots).view(b, slots)[:, :num_classes]
    return counts if per_image else counts.sum(0)


def reduce_images(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a ``(B,)`` tensor of per-image losses (or a scalar) by ``reduction``."""
    check_choice(reduction, "reduction", REDUCTIONS)
    if reduction == "mean":
        return per_image.mean()
    if reduction == "sum":
        return per_image.sum()
    return per_image


def check_label_map_dtype(target: torch.Tensor, name: str = "target") -> None:
    if not is_integer_dtype(target.dtype):
        raise TypeError(f"{name} as a label map must have an integer dtype, got {target.dtype}")


def option_names(function: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-only options of a functional loss with their defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


class LossModule(nn.Module):
    """Thin ``nn.Module`` over a functional loss: stores the options, checks their names.

    Subclasses set ``function``; ``forward(logits, target)`` calls
    ``function(logits, target, **options)``.
    """

    function: Callable[..., torch.Tensor]

    def __init__(self, **options: Any) -> None:
        super().__init__()
        known = option_names(type(self).function)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown option(s) {unknown}; it accepts {sorted(known)}"
            )
        self.options: dict[str, Any] = options

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self).function(logits, target, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
