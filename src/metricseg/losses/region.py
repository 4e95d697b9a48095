r"""Soft region losses: soft Dice, soft Jaccard, soft Tversky and generalized Dice.

All four are functions of the soft counts of :func:`metricseg.counts.soft_counts`
(soft TP, FP, FN per image and class), computed from label maps with
``gather`` / ``scatter_add`` and never from a one-hot copy:

.. math::

    D_c = \frac{2TP_c + s}{2TP_c + FP_c + FN_c + s},\quad
    J_c = \frac{TP_c + s}{TP_c + FP_c + FN_c + s},\quad
    T_c = \frac{TP_c + s}{TP_c + \alpha FP_c + \beta FN_c + s},

and the loss is :math:`1 - \text{score}` (or :math:`-\log(\text{score})` with
``log_loss``), averaged over the selected classes with ``class_weights``.

``smooth`` (:math:`s`, default ``1e-5``) is added to numerator and denominator.
It keeps a class that is empty in target *and* prediction at score 1 (loss 0)
instead of 0/0; a class absent from the target but predicted with soft mass
``FP`` scores :math:`s / (FP + s)`, so a small ``smooth`` punishes false
positives in absent classes hard, a large one (e.g. 1) softens it. With
``smooth=0`` a class empty in both has score 1 by definition (no NaN, no
gradient). On a hard one-hot prediction with ``smooth=0``, ``1 - loss`` is the
hard Dice / Jaccard / Tversky score.

Under DDP with ``per_image=False`` the counts are summed over processes
(:func:`metricseg.distributed.all_reduce_sum`, with gradients) before the score
is formed, so every process gets the loss of the whole global batch; set
``sync_across_processes=False`` for per-process batch losses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from metricseg._checks import check_label_range, check_probabilities_shape
from metricseg.counts import FN, FP, TP, soft_counts
from metricseg.distributed import all_reduce_sum
from metricseg.losses._common import (
    LossModule,
    activate,
    check_class_weights,
    check_dense,
    check_ignore_index,
    check_label_map_dtype,
    check_loss_inputs,
    check_options,
    choice,
    full_precision,
    label_counts,
    nonneg_number,
    reduce_images,
    selected_classes,
    weighted_class_mean,
)
from metricseg.losses._softmax_counts import SoftmaxSoftCounts
from metricseg.metrics import safe_divide
from metricseg.types import GDL_WEIGHT_TYPES, Activation, Classes, GDLWeightType, Reduction, Weights

__all__ = [
    "GeneralizedDiceLoss",
    "SoftDiceLoss",
    "SoftJaccardLoss",
    "SoftTverskyLoss",
    "generalized_dice_loss",
    "soft_dice_loss",
    "soft_jaccard_loss",
    "soft_tversky_loss",
]

#: smallest score fed to the logarithm of ``log_loss`` (keeps -log finite)
_LOG_FLOOR = 1e-7


_REGION_CHECKS = {
    "alpha": nonneg_number,
    "beta": nonneg_number,
    "weight_type": choice(GDL_WEIGHT_TYPES),
}


def _check_region_options(options: Mapping[str, Any]) -> None:
    """The option checks of every region loss (functional and module forms)."""
    check_options(options, _REGION_CHECKS)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # a zero denominator (smooth=0, class empty in target and prediction) scores 1
    return safe_divide(num, den, zero_division="one")


def _softmax_label_counts(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None,
    squared: bool,
    validate_args: bool = True,
) -> torch.Tensor:
    """``soft_counts(softmax(logits), target)`` per image, without the probabilities in memory."""
    b, c = logits.shape[:2]
    if validate_args:
        check_label_range(target, "target", c, ignore_index)
    labels = target.reshape(b, -1).to(torch.int64)
    valid = None
    if ignore_index is not None:
        valid = labels != ignore_index
        if bool(valid.all()):
            valid = None
        else:
            labels = labels.masked_fill(~valid, c)  # an extra bin for label_counts
    target_counts = label_counts(labels, c, per_image=True).to(logits.dtype)
    if valid is not None:
        labels = labels.masked_fill_(~valid, 0)  # any class; valid zeroes these voxels
    keep_probs = torch.is_grad_enabled() and logits.requires_grad
    return SoftmaxSoftCounts.apply(
        logits.reshape(b, c, -1), labels, valid, target_counts, squared, keep_probs
    )


def _counts(
    logits: torch.Tensor,
    target: torch.Tensor,
    activation: Activation,
    per_image: bool,
    ignore_index: int | None,
    squared: bool,
    sync_across_processes: bool,
    validate_args: bool,
) -> torch.Tensor:
    c = logits.shape[1]
    kind = check_probabilities_shape(logits, target, "logits", "target")
    if kind == "dense":
        check_dense(target, activation, validate_args)
    mask = None
    if activation == "sigmoid" and c == 1 and kind == "labels":
        # binary: one sigmoid channel against a 0/1 label map (the foreground mask)
        ignore_index = check_ignore_index(ignore_index, 2)
        check_label_map_dtype(target)
        if validate_args:
            check_label_range(target, "target", 2, ignore_index)
        if ignore_index is not None:
            mask = target != ignore_index
        target = (target == 1).unsqueeze(1).to(logits.dtype)
        kind, ignore_index = "dense", None
    ignore_index = check_ignore_index(ignore_index, c)
    if activation == "softmax" and kind == "labels":
        counts = _softmax_label_counts(logits, target, ignore_index, squared, validate_args)
        if not per_image:
            counts = counts.sum(0)
    else:
        # a dense target was range-checked above; soft_counts checks label maps
        counts = soft_counts(
            activate(logits, activation, validate_args), target, ignore_index=ignore_index,
            mask=mask, per_image=per_image, squared=squared,
            validate_args=validate_args and kind == "labels",
        )  # fmt: skip
    if not per_image and sync_across_processes:
        counts = all_reduce_sum(counts)
    return counts


def _region_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    score: str,
    *,
    alpha: float,
    beta: float,
    activation: Activation,
    per_image: bool,
    classes: Classes,
    ignore_index: int | None,
    class_weights: Weights | None,
    smooth: float,
    squared: bool,
    log_loss: bool,
    reduction: Reduction,
    sync_across_processes: bool,
    validate_args: bool,
) -> torch.Tensor:
    logits = check_loss_inputs(logits, target, activation)
    with full_precision(logits.device):
        counts = _counts(
            logits, target, activation, per_image, ignore_index, squared, sync_across_processes,
            validate_args,
        )  # fmt: skip
        tp, fp, fn = counts[..., TP], counts[..., FP], counts[..., FN]
        if score == "dice":
            ratio = _ratio(2 * tp + smooth, 2 * tp + fp + fn + smooth)
        elif score == "jaccard":
            ratio = _ratio(tp + smooth, tp + fp + fn + smooth)
        else:
            ratio = _ratio(tp + smooth, tp + alpha * fp + beta * fn + smooth)
        per_class = -torch.log(ratio.clamp_min(_LOG_FLOOR)) if log_loss else 1.0 - ratio
        c = logits.shape[1]
        present = (tp + fn) > 0
        selected = selected_classes(classes, c, present)
        weights = check_class_weights(class_weights, c, per_class, validate_args)
        loss = weighted_class_mean(per_class, selected, weights)
        return reduce_images(loss, reduction)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: Activation = "softmax",
    per_image: bool = False,
    classes: Classes = "all",
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    smooth: float = 1e-5,
    squared: bool = False,
    log_loss: bool = False,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Soft Dice loss, :math:`1 - \frac{2TP_c + s}{2TP_c + FP_c + FN_c + s}` averaged over classes.

    Args:
        logits: ``(B, C, *spatial)`` float (probabilities with ``activation=None``).
        target: label map ``(B, *spatial)`` of ints, or one-hot / soft ``(B, C, *spatial)``
            in [0, 1] (summing to 1 over classes with softmax; any values in [0, 1],
            multi-label included, with sigmoid or ``None``). A tensor, like ``logits``.
        activation: ``"softmax"`` (default; needs ``C >= 2``), ``"sigmoid"``
            (multi-label, or binary with ``C = 1``) or ``None`` (probabilities given).
        per_image: score each image and average (``True``) or pool the batch (``False``).
        classes: ``"all"``, ``"present"``, ``"foreground"`` or a list of class indices.
        ignore_index: label whose voxels are left out of TP, FP and FN (label maps).
        class_weights: one weight per class, background included.
        smooth: added to numerator and denominator (see the module docs).
        squared: Milletari's squared denominator :math:`\sum p^2 + \sum t^2`.
        log_loss: return :math:`-\log(\text{score})` instead of :math:`1 - \text{score}`.
        reduction: over images when ``per_image``: ``"mean"``, ``"sum"`` or ``"none"`` (B,).
        sync_across_processes: with ``per_image=False``, sum the counts over DDP processes.
        validate_args: read the values of the inputs to check them (labels in
            ``[0, C)`` or ``ignore_index``; a one-hot / soft target in [0, 1], summing
            to 1 over classes for softmax; probabilities in [0, 1] with
            ``activation=None``; class weights finite and >= 0). On an accelerator
            each read is a host sync; a training loop whose data are known to be
            valid may pass ``False``. Shapes, dtypes and option names are checked
            either way.

    Returns:
        scalar loss (``(B,)`` for ``reduction="none"`` with ``per_image=True``).

    Example:
        >>> import torch
        >>> probs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])  # (1, 2, 3)
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> # class 0: D = 2/3, class 1: D = 2/3
        >>> round(float(soft_dice_loss(probs, labels, activation=None, smooth=0)), 4)
        0.3333
    """
    _check_region_options(locals())
    return _region_loss(
        logits, target, "dice", alpha=0.5, beta=0.5, activation=activation,
        per_image=per_image, classes=classes, ignore_index=ignore_index,
        class_weights=class_weights, smooth=smooth, squared=squared, log_loss=log_loss,
        reduction=reduction, sync_across_processes=sync_across_processes,
        validate_args=validate_args,
    )  # fmt: skip


def soft_jaccard_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: Activation = "softmax",
    per_image: bool = False,
    classes: Classes = "all",
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    smooth: float = 1e-5,
    squared: bool = False,
    log_loss: bool = False,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Soft Jaccard (IoU) loss, :math:`1 - \frac{TP_c + s}{TP_c + FP_c + FN_c + s}`.

    Arguments and shapes as :func:`soft_dice_loss`.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])  # (1, 2, 3)
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> # class 0: J = 1/2, class 1: J = 1/2
        >>> float(soft_jaccard_loss(probs, labels, activation=None, smooth=0))
        0.5
    """
    _check_region_options(locals())
    return _region_loss(
        logits, target, "jaccard", alpha=1.0, beta=1.0, activation=activation,
        per_image=per_image, classes=classes, ignore_index=ignore_index,
        class_weights=class_weights, smooth=smooth, squared=squared, log_loss=log_loss,
        reduction=reduction, sync_across_processes=sync_across_processes,
        validate_args=validate_args,
    )  # fmt: skip


def soft_tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    activation: Activation = "softmax",
    per_image: bool = False,
    classes: Classes = "all",
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    smooth: float = 1e-5,
    squared: bool = False,
    log_loss: bool = False,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Soft Tversky loss, :math:`1 - \frac{TP_c + s}{TP_c + \alpha FP_c + \beta FN_c + s}`.

    ``alpha`` weighs false positives, ``beta`` false negatives; ``alpha = beta
    = 0.5`` is the soft Dice score and ``alpha = beta = 1`` the soft Jaccard
    index (exactly so for ``smooth=0``). Other arguments as :func:`soft_dice_loss`.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])  # (1, 2, 3)
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> # class 0: TP=1, FN=1 -> 1/(1 + 0.7); class 1: TP=1, FP=1 -> 1/(1 + 0.3)
        >>> loss = soft_tversky_loss(probs, labels, alpha=0.3, beta=0.7, activation=None, smooth=0)
        >>> round(float(loss), 4)
        0.3213
    """
    _check_region_options(locals())
    return _region_loss(
        logits, target, "tversky", alpha=alpha, beta=beta, activation=activation,
        per_image=per_image, classes=classes, ignore_index=ignore_index,
        class_weights=class_weights, smooth=smooth, squared=squared, log_loss=log_loss,
        reduction=reduction, sync_across_processes=sync_across_processes,
        validate_args=validate_args,
    )  # fmt: skip


def generalized_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight_type: GDLWeightType = "square",
    activation: Activation = "softmax",
    per_image: bool = False,
    classes: Classes = "all",
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    smooth: float = 1e-5,
    squared: bool = False,
    log_loss: bool = False,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Generalized Dice loss of Sudre et al. (2017).

    .. math::

        GD = \frac{2\sum_c w_c TP_c + s}{\sum_c w_c (2TP_c + FP_c + FN_c) + s},
        \qquad w_c = \frac{1}{(\sum_i t_{ci})^2}

    (``weight_type="square"``; ``"simple"`` uses :math:`1/\sum_i t_{ci}`,
    ``"uniform"`` :math:`w_c = 1`), loss :math:`1 - GD`, over the classes selected
    by ``classes``. The weights come from the target and carry no gradient.

    A selected class absent from the target (infinite weight) takes the largest
    weight among the selected classes of the image (batch), as MONAI's
    ``GeneralizedDiceLoss`` does over the classes it scores, so its false positives
    still count and nothing becomes inf or NaN. With ``classes="foreground"`` the
    background's (large-volume, tiny) weight is not a candidate.

    **No selected class in the target.** When no selected class occurs in an
    image (``per_image=True``) — e.g. ``classes="foreground"`` on an image
    without foreground — there is no weight to take: every weight is 0, the score
    is :math:`s/s = 1` and the loss of that image is exactly **0 with no
    gradient**, as in MONAI. Its false positives are not punished by this loss;
    pair it with cross-entropy, or use ``per_image=False``, where the weights
    come from the whole batch, when such images are common. (Taking a weight from
    the background instead would give a loss near 1 that barely moves: about
    0.99975 with almost no gradient on a 64×64 image.)

    ``class_weights`` multiply :math:`w_c`. Other arguments as :func:`soft_dice_loss`.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])  # (1, 2, 3)
        >>> labels = torch.tensor([[0, 0, 1]])
        >>> # w = (1/4, 1): GD = 2(1/4 + 1) / (3/4 + 3) = 2/3
        >>> round(float(generalized_dice_loss(probs, labels, activation=None, smooth=0)), 4)
        0.3333
    """
    _check_region_options(locals())
    logits = check_loss_inputs(logits, target, activation)
    with full_precision(logits.device):
        counts = _counts(
            logits, target, activation, per_image, ignore_index, squared, sync_across_processes,
            validate_args,
        )  # fmt: skip
        tp, fp, fn = counts[..., TP], counts[..., FP], counts[..., FN]
        c = logits.shape[1]
        target_sum = (tp + fn).detach()
        selected = selected_classes(classes, c, target_sum > 0)
        if weight_type == "uniform":
            w = torch.ones_like(target_sum)
        else:
            w = 1.0 / (target_sum * target_sum if weight_type == "square" else target_sum)
            absent = torch.isinf(w)
            w = w.masked_fill(absent | ~selected, 0.0)
            largest = w.amax(-1, keepdim=True)  # over the selected classes only
            w = torch.where(absent, largest.expand_as(w), w)
        w = w * selected
        weights = check_class_weights(class_weights, c, w, validate_args)
        if weights is not None:
            w = w * weights
        num = 2 * (w * tp).sum(-1) + smooth
        den = (w * (2 * tp + fp + fn)).sum(-1) + smooth
        ratio = _ratio(num, den)
        loss = -torch.log(ratio.clamp_min(_LOG_FLOOR)) if log_loss else 1.0 - ratio
        return reduce_images(loss, reduction)


class SoftDiceLoss(LossModule):
    """Soft Dice loss (module form of :func:`soft_dice_loss`; options as there).

    Example:
        >>> import torch
        >>> loss = SoftDiceLoss(per_image=True)
        >>> loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)).shape
        torch.Size([])
    """

    function = staticmethod(soft_dice_loss)
    option_checks = staticmethod(_check_region_options)

    def __init__(
        self,
        *,
        activation: Activation = "softmax",
        per_image: bool = False,
        classes: Classes = "all",
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        smooth: float = 1e-5,
        squared: bool = False,
        log_loss: bool = False,
        reduction: Reduction = "mean",
        sync_across_processes: bool = True,
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())


class SoftJaccardLoss(LossModule):
    """Soft Jaccard (IoU) loss (module form of :func:`soft_jaccard_loss`; options as there)."""

    function = staticmethod(soft_jaccard_loss)
    option_checks = staticmethod(_check_region_options)

    def __init__(
        self,
        *,
        activation: Activation = "softmax",
        per_image: bool = False,
        classes: Classes = "all",
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        smooth: float = 1e-5,
        squared: bool = False,
        log_loss: bool = False,
        reduction: Reduction = "mean",
        sync_across_processes: bool = True,
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())


class SoftTverskyLoss(LossModule):
    """Soft Tversky loss, alpha on FP and beta on FN (module form of :func:`soft_tversky_loss`)."""

    function = staticmethod(soft_tversky_loss)
    option_checks = staticmethod(_check_region_options)

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        activation: Activation = "softmax",
        per_image: bool = False,
        classes: Classes = "all",
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        smooth: float = 1e-5,
        squared: bool = False,
        log_loss: bool = False,
        reduction: Reduction = "mean",
        sync_across_processes: bool = True,
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())


class GeneralizedDiceLoss(LossModule):
    """Generalized Dice loss with Sudre weights (module form of :func:`generalized_dice_loss`)."""

    function = staticmethod(generalized_dice_loss)
    option_checks = staticmethod(_check_region_options)

    def __init__(
        self,
        *,
        weight_type: GDLWeightType = "square",
        activation: Activation = "softmax",
        per_image: bool = False,
        classes: Classes = "all",
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        smooth: float = 1e-5,
        squared: bool = False,
        log_loss: bool = False,
        reduction: Reduction = "mean",
        sync_across_processes: bool = True,
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())
