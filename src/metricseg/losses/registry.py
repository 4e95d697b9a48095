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
from metricseg.losses._common import LossModule, option_names
from metricseg.losses.compound import CompoundLoss

__all__ = ["LossInfo", "available", "describe", "get"]


@dataclass(frozen=True)
class LossInfo:
    """What ``metricseg losses`` prints: a name, a one-line description, the options."""

    name: str
    description: str
    options: dict[str, Any]


_DICE_CE_WEIGHTS = {"dice_weight": 1.0, "ce_weight": 1.0}


def _dice_ce_options() -> dict[str, Any]:
    options = dict(option_names(region.soft_dice_loss))
    for name, default in option_names(pixel.cross_entropy_loss).items():
        options.setdefault(name, default)
    options.update(_DICE_CE_WEIGHTS)
    return options


def dice_ce(**options: Any) -> CompoundLoss:
    """Soft Dice + cross-entropy; each option goes to every term that takes it.

    ``dice_weight`` and ``ce_weight`` (default 1 each) weigh the two terms.
    """
    unknown = sorted(set(options) - set(_dice_ce_options()))
    if unknown:
        raise TypeError(
            f"dice_ce got unknown option(s) {unknown}; it accepts {sorted(_dice_ce_options())}"
        )
    dice_weight = options.pop("dice_weight", 1.0)
    ce_weight = options.pop("ce_weight", 1.0)
    dice_names = option_names(region.soft_dice_loss)
    ce_names = option_names(pixel.cross_entropy_loss)
    dice = region.SoftDiceLoss(**{k: v for k, v in options.items() if k in dice_names})
    ce = pixel.CrossEntropyLoss(**{k: v for k, v in options.items() if k in ce_names})
    return CompoundLoss({"dice": dice, "ce": ce}, weights={"dice": dice_weight, "ce": ce_weight})


def _bce(**options: Any) -> pixel.CrossEntropyLoss:
    options.setdefault("activation", "sigmoid")
    return pixel.CrossEntropyLoss(**options)


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
    "bce": (_bce, "binary cross-entropy with logits (cross-entropy with activation='sigmoid')"),
    "weighted_ce": (
        pixel.WeightedCrossEntropyLoss,
        "cross-entropy weighted by class frequency (inverse, sqrt, median, ENet log)",
    ),
    "focal": (pixel.FocalLoss, "focal loss -alpha (1-p)^gamma log p, softmax or sigmoid"),
    "dice_ce": (dice_ce, "soft Dice + cross-entropy (weights dice_weight, ce_weight)"),
}


def available() -> list[str]:
    """Registered loss names, in a stable order.

    Example:
        >>> "lovasz_softmax" in available()
        True
    """
    return list(_MODULES)


def _options(name: str) -> dict[str, Any]:
    factory = _MODULES[name][0]
    if name == "dice_ce":
        return _dice_ce_options()
    if name == "bce":
        return {**option_names(pixel.cross_entropy_loss), "activation": "sigmoid"}
    assert isinstance(factory, type) and issubclass(factory, LossModule)
    return option_names(factory.function)


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
    return _MODULES[name][0](**options)
