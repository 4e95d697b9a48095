"""Names -> losses: ``metricseg.losses.get(name, **options)``.

The names are what configuration files, the trainer and ``metricseg losses``
use. ``get`` returns an ``nn.Module`` called as ``loss(logits, target)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from metricseg.losses import lovasz, pixel, region
from metricseg.losses._common import nonneg_number, option_names
from metricseg.losses.compound import CompoundLoss
from metricseg.types import Activation, Classes, Reduction, Weights

__all__ = ["LossInfo", "available", "describe", "get"]


@dataclass(frozen=True)
class LossInfo:
    """What ``metricseg losses`` prints: a name, a one-line description, the options."""

    name: str
    description: str
    options: dict[str, Any]


def dice_ce(
    *,
    activation: Activation = "softmax",
    per_image: bool = False,
    classes: Classes | None = None,
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    smooth: float = 1e-5,
    squared: bool = False,
    log_loss: bool = False,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
) -> CompoundLoss:
    """Soft Dice + cross-entropy, ``dice_weight · Dice + ce_weight · CE``.

    The Dice term is taken over the **foreground classes** by default, as in
    nnU-Net's Dice + CE: ``classes=None`` means ``"foreground"`` (every class but
    0) with softmax or probabilities, and ``"all"`` with ``activation="sigmoid"``,
    where every channel is a foreground class. Pass ``classes="all"`` to include
    the background in the Dice term (or a list of classes). The cross-entropy
    always covers every voxel. Every other option goes to each term that takes
    it (``class_weights`` to both).

    Example:
        >>> import torch
        >>> from metricseg.losses import cross_entropy_loss, soft_dice_loss
        >>> loss = dice_ce(smooth=0.0)
        >>> logits, labels = torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2, 2]])
        >>> d = soft_dice_loss(logits, labels, classes="foreground", smooth=0.0)
        >>> bool(torch.isclose(loss(logits, labels), d + cross_entropy_loss(logits, labels)))
        True
    """
    for name, value in (("dice_weight", dice_weight), ("ce_weight", ce_weight)):
        nonneg_number(value, name)
    if classes is None:
        classes = "all" if activation == "sigmoid" else "foreground"
    dice = region.SoftDiceLoss(
        activation=activation, per_image=per_image, classes=classes, ignore_index=ignore_index,
        class_weights=class_weights, smooth=smooth, squared=squared, log_loss=log_loss,
        reduction=reduction, sync_across_processes=sync_across_processes,
        validate_args=validate_args,
    )  # fmt: skip
    ce = pixel.CrossEntropyLoss(
        activation=activation, per_image=per_image, ignore_index=ignore_index,
        class_weights=class_weights, reduction=reduction, validate_args=validate_args,
    )  # fmt: skip
    return CompoundLoss({"dice": dice, "ce": ce}, weights={"dice": dice_weight, "ce": ce_weight})


def bce(
    *,
    activation: Activation = "sigmoid",
    per_image: bool = False,
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> pixel.CrossEntropyLoss:
    """Binary cross-entropy with logits: :class:`~metricseg.losses.CrossEntropyLoss` with
    ``activation="sigmoid"`` by default (options as there)."""
    return pixel.CrossEntropyLoss(
        activation=activation, per_image=per_image, ignore_index=ignore_index,
        class_weights=class_weights, reduction=reduction, validate_args=validate_args,
    )  # fmt: skip


_MODULES: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "soft_dice": (region.SoftDiceLoss, "soft Dice loss 1 - (2TP+s)/(2TP+FP+FN+s)"),
    "soft_jaccard": (region.SoftJaccardLoss, "soft Jaccard (IoU) loss 1 - (TP+s)/(TP+FP+FN+s)"),
    "soft_tversky": (
        region.SoftTverskyLoss,
        "soft Tversky loss 1 - (TP+s)/(TP+alpha*FP+beta*FN+s)",
    ),
    "generalized_dice": (
        region.GeneralizedDiceLoss,
        "generalized Dice loss with Sudre et al. 1/(target volume)^2 class weights",
    ),
    "lovasz_softmax": (
        lovasz.LovaszSoftmaxLoss,
        "Lovász-Softmax: convex extension of the per-class Jaccard loss",
    ),
    "lovasz_hinge": (
        lovasz.LovaszHingeLoss,
        "Lovász hinge: Jaccard extension on hinge errors, binary or multi-label",
    ),
    "ce": (pixel.CrossEntropyLoss, "cross-entropy (softmax; sigmoid = binary cross-entropy)"),
    "bce": (bce, "binary cross-entropy with logits (cross-entropy with activation='sigmoid')"),
    "weighted_ce": (
        pixel.WeightedCrossEntropyLoss,
        "cross-entropy with class weights: by class frequency (inverse, sqrt, median, "
        "ENet log), a foreground_weight, or given",
    ),
    "focal": (pixel.FocalLoss, "focal loss -alpha (1-p)^gamma log p, softmax or sigmoid"),
    "dice_ce": (
        dice_ce,
        "soft Dice over the foreground classes + cross-entropy (dice_weight, ce_weight)",
    ),
}


def available() -> list[str]:
    """Registered loss names, in a stable order.

    Example:
        >>> "lovasz_softmax" in available()
        True
    """
    return list(_MODULES)


def _options(name: str) -> dict[str, Any]:
    # every loss is built by a callable with an explicit keyword-only signature
    return option_names(_MODULES[name][0])


def describe(name: str) -> LossInfo:
    """Description and options (with defaults) of a registered loss.

    Example:
        >>> describe("soft_tversky").options["beta"]
        0.5
    """
    _check_name(name)
    return LossInfo(name, _MODULES[name][1], _options(name))


def _check_name(name: str) -> None:
    if name not in _MODULES:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(available())}")


def get(name: str, **options: Any) -> nn.Module:
    """Build the loss registered as ``name`` with ``options``.

    Example:
        >>> import torch
        >>> loss = get("soft_dice", smooth=0.0, per_image=True)
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> loss(logits, torch.randint(0, 3, (2, 8, 8))).backward()
    """
    _check_name(name)
    known = _options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        hint = (
            "; explicit class weights go in scheme=[w_0, w_1, ...]"
            if "class_weights" in unknown and "scheme" in known
            else ""
        )
        raise TypeError(
            f"loss {name!r} got unknown option(s) {unknown}; it accepts {sorted(known)}{hint}"
        )
    return _MODULES[name][0](**options)
