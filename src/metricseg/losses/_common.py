"""The vocabulary every loss shares: activation, classes, class weights, reduction.

One place for the input and option checks and for the two reductions every loss
ends with: a weighted mean over the selected classes of an image, then a
reduction over images (``docs/conventions.md``, "One vocabulary").

``LossModule`` is the base of the ``nn.Module`` forms. Each subclass writes its
options as an explicit keyword-only ``__init__`` (the signature of its functional
form, so ``inspect.signature`` and IDEs show them), validates them at
construction, and keeps per-class weights as non-persistent buffers so that
``.to(device)`` moves them.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from metricseg import _checks
from metricseg._checks import (
    check_choice,
    check_dense_target,
    check_not_empty,
    is_integer_dtype,
    require_tensor,
)
from metricseg.metrics import safe_divide
from metricseg.types import ACTIVATIONS, CLASS_MODES, REDUCTIONS, Activation, Classes, Weights

__all__ = [
    "ACTIVATIONS",
    "CLASS_MODES",
    "REDUCTIONS",
    "LossModule",
    "OptionChecks",
    "activate",
    "check_class_weights",
    "check_ignore_index",
    "check_loss_inputs",
    "check_options",
    "full_precision",
    "label_counts",
    "reduce_images",
    "selected_classes",
    "weighted_class_mean",
]


def check_loss_inputs(
    logits: Any, target: Any, activation: Activation, name: str = "logits"
) -> torch.Tensor:
    """Check the ``(logits, target)`` of a loss; return the logits (half precision widened).

    ``logits`` must be a floating ``(B, C, *spatial)`` tensor with ``B >= 1`` and no
    spatial size 0, ``target`` a tensor (numpy arrays are refused with the fix), and
    ``activation="softmax"`` needs ``C >= 2``: a softmax over one channel is 1
    everywhere, so the loss and its gradient would be 0.
    """
    logits = require_tensor(logits, name)
    require_tensor(target, "target")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point (B, C, *spatial), got dtype {logits.dtype}")
    if logits.ndim < 3:
        raise ValueError(
            f"{name} must have shape (B, C, *spatial) with at least one spatial dim, "
            f"got shape {tuple(logits.shape)}"
        )
    check_not_empty(logits, name, 2)
    if activation == "softmax" and logits.shape[1] == 1:
        raise ValueError(
            f"activation='softmax' over C = 1 channel ({name} of shape {tuple(logits.shape)}) "
            "is 1 everywhere: loss 0 and gradient 0. For a binary task pass "
            "activation='sigmoid' with one channel (or two channels with softmax)"
        )
    if logits.dtype in (torch.float16, torch.bfloat16):
        # sums over millions of voxels overflow or lose digits in half precision
        logits = logits.float()
    return logits


def check_dense(target: torch.Tensor, activation: Activation, validate_args: bool) -> None:
    """Range (and, for softmax, class-sum) check of a one-hot / soft target ``(B, C, *spatial)``.

    With ``activation="softmax"`` the target is compared with a class distribution, so
    it must be one: values in [0, 1] that sum to 1 over the classes at every voxel.
    With ``"sigmoid"`` or ``None`` every channel is scored on its own: soft and
    multi-label targets in [0, 1] are fine.
    """
    if validate_args:
        check_dense_target(target, "target", distribution=activation == "softmax")


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Switch autocast off, so einsum/matmul sums are not silently done in fp16/bf16."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def activate(
    logits: torch.Tensor, activation: Activation, validate_args: bool = True
) -> torch.Tensor:
    """Apply ``"softmax"`` (over dim 1), ``"sigmoid"`` or nothing (``None``: probabilities).

    With ``None`` the input must lie in [0, 1]; ``validate_args=False`` skips that
    check (it reads the values).
    """
    check_choice(activation, "activation", ACTIVATIONS)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if validate_args:
        check_probabilities(logits)
    return logits


def check_probabilities(x: torch.Tensor) -> None:
    """``activation=None``: the input must hold probabilities in [0, 1]."""
    lo, hi = torch.aminmax(x.detach())
    if not (float(lo) >= 0.0 and float(hi) <= 1.0):
        raise ValueError(
            "with activation=None the input must hold probabilities in [0, 1], got values "
            f"from {float(lo):.4g} to {float(hi):.4g}; pass activation='softmax' or 'sigmoid' "
            "for logits"
        )


def check_ignore_index(ignore_index: Any, num_classes: int) -> int | None:
    """``ignore_index`` must be an int outside ``[0, num_classes)`` (or ``None``)."""
    return _checks.check_ignore_index(
        ignore_index,
        num_classes,
        fix="To leave a class out of a region loss use classes=[...] instead",
    )


def check_class_weights(
    class_weights: Weights | None,
    num_classes: int,
    like: torch.Tensor,
    validate_args: bool = True,
    name: str = "class_weights",
) -> torch.Tensor | None:
    """One non-negative weight per class (background included), as a tensor like ``like``.

    The values (finite, >= 0) are read only with ``validate_args``; the shape always.
    """
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=like.dtype, device=like.device)
    if w.ndim != 1 or w.shape[0] != num_classes:
        raise ValueError(
            f"{name} must hold one weight per class ({num_classes}, background "
            f"included), got shape {tuple(w.shape)}"
        )
    if validate_args:
        _check_weight_values(w, name)
    return w


def _check_weight_values(w: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"{name} must be finite and >= 0, got {w.tolist()}")


def selected_classes(classes: Classes, num_classes: int, present: torch.Tensor) -> torch.Tensor:
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
    index = _check_class_list(classes)
    bad = [i for i in index if not 0 <= i < num_classes]
    if bad:
        raise ValueError(f"classes holds {bad}, outside [0, {num_classes - 1}]")
    mask = torch.zeros_like(present)
    mask[..., index] = True
    return mask


def _check_class_list(classes: Any) -> list[int]:
    index = list(classes) if isinstance(classes, Sequence) else []
    if not index or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in index
    ):
        raise TypeError(
            f"classes must be 'all', 'present', 'foreground' or a non-empty list of ints, "
            f"got {classes!r}"
        )
    return [int(i) for i in index]


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
    # where() rather than clamping the loss, so an empty row has no gradient at all
    num = (torch.where(w > 0, per_class, torch.zeros_like(per_class)) * w).sum(-1)
    return safe_divide(num, w.sum(-1), zero_division="zero")


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


# --- options -----------------------------------------------------------------------------

#: ``check(value, name)`` raises if an option value is bad (it reads no tensor data
#: beyond what the caller passed).
OptionCheck = Callable[[Any, str], None]
OptionChecks = Mapping[str, OptionCheck]


def _flag(value: Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _nonneg_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number >= 0, got {value!r}")
    if not (math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def _choice(choices: Sequence[Any]) -> OptionCheck:
    def check(value: Any, name: str) -> None:
        check_choice(value, name, choices)

    return check


def _classes(value: Any, name: str) -> None:
    if isinstance(value, str):
        check_choice(value, name, CLASS_MODES)
        return
    index = _check_class_list(value)
    if any(i < 0 for i in index):
        raise ValueError(f"{name} holds negative indices: {index}")


def _ignore_index(value: Any, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise TypeError(f"{name} must be an int or None, got {value!r}")


def per_class_numbers(value: Any, name: str) -> None:
    """Check a ``(C,)`` list of finite numbers >= 0 without knowing ``C`` (None passes).

    For option values given as Python sequences or arrays (and tensors at a module's
    construction); per-call tensors are checked by :func:`check_class_weights`.
    """
    if value is None:
        return
    raw = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
    try:
        w = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a sequence of numbers, one per class, got {value!r}"
        ) from None
    if w.ndim != 1 or w.size == 0:
        raise ValueError(
            f"{name} must be a 1-D sequence of numbers, one per class, got shape {w.shape}"
        )
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"{name} must be finite and >= 0, got {w.tolist()}")


def _per_class_option(value: Any, name: str) -> None:
    # a tensor is checked where it is used (check_class_weights), where validate_args
    # decides whether its values are read: on an accelerator that read is a host sync
    if not isinstance(value, torch.Tensor):
        per_class_numbers(value, name)


#: checks of the shared vocabulary, by option name
SHARED_CHECKS: dict[str, OptionCheck] = {
    "activation": _choice(ACTIVATIONS),
    "per_image": _flag,
    "classes": _classes,
    "ignore_index": _ignore_index,
    "class_weights": _per_class_option,
    "smooth": _nonneg_number,
    "squared": _flag,
    "log_loss": _flag,
    "reduction": _choice(REDUCTIONS),
    "sync_across_processes": _flag,
    "validate_args": _flag,
}


def check_options(options: Mapping[str, Any], own: OptionChecks | None = None) -> None:
    """Check loss options by name: the shared vocabulary and a loss's ``own`` options.

    Names without a check (``logits``, ``target``) are skipped. Called by every
    functional loss on its arguments and by every loss module at construction, so
    a bad option fails the same way in both, before any tensor is touched.
    """
    for name, value in options.items():
        check = (own or {}).get(name) or SHARED_CHECKS.get(name)
        if check is not None:
            check(value, name)


def nonneg_number(value: Any, name: str) -> None:
    """Option check: a finite number >= 0."""
    _nonneg_number(value, name)


def choice(choices: Sequence[Any]) -> OptionCheck:
    """Option check: one of ``choices``."""
    return _choice(choices)


class LossModule(nn.Module):
    """Thin ``nn.Module`` over a functional loss: the options, checked at construction.

    A subclass sets ``function`` (the functional form), ``option_checks`` (the
    function that form checks its options with) and an explicit keyword-only
    ``__init__`` with the functional form's options, which hands ``locals()`` to
    ``super().__init__``. Options named in ``tensor_options`` (per-class weights)
    become non-persistent buffers when given, so ``.to(device)`` moves them and
    ``state_dict()`` leaves them out. ``forward(logits, target)`` calls
    ``function(logits, target, **options)``.
    """

    function: ClassVar[Callable[..., torch.Tensor]]
    option_checks: ClassVar[Callable[..., None]]
    tensor_options: ClassVar[tuple[str, ...]] = ("class_weights",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__()
        options = {k: v for k, v in options.items() if k not in ("self", "__class__")}
        type(self).option_checks(options)
        for name in self.tensor_options:
            if _is_numbers(options.get(name)):
                per_class_numbers(options[name], name)  # tensors too: once, here
        self.options: dict[str, Any] = {}
        self._buffer_options: list[str] = []
        for name, value in options.items():
            if name in self.tensor_options and _is_numbers(value):
                self.register_buffer(name, _as_float_tensor(value), persistent=False)
                self._buffer_options.append(name)
            else:
                self.options[name] = value

    def call_options(self) -> dict[str, Any]:
        """Every option by name, buffers included: what ``forward`` passes to the function."""
        return {**self.options, **{n: getattr(self, n) for n in self._buffer_options}}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self).function(logits, target, **self.call_options())

    def extra_repr(self) -> str:
        shown = {**self.options, **{n: getattr(self, n).tolist() for n in self._buffer_options}}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _is_numbers(value: Any) -> bool:
    return value is not None and not isinstance(value, (str, bool, int, float))


def _as_float_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().clone() if value.is_floating_point() else value.double()
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def option_names(function: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-only options of a functional loss, a loss module or a factory, with defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
