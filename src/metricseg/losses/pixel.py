r"""Per-voxel losses: cross-entropy, weighted cross-entropy and focal loss.

Softmax forms (multi-class, label maps or one-hot / soft targets) and sigmoid
forms (binary with ``C = 1``, or multi-label masks ``(B, C, *spatial)``) share
one code path. Every loss is a weighted mean of voxel terms,

.. math::

    \mathcal{L} = \frac{\sum_i v_i\, \ell_i}{\sum_i d_i},

over the voxels of an image (``per_image=True``, then ``reduction`` over
images) or of the whole batch (``per_image=False``). For cross-entropy
:math:`v_i = d_i = w_{y_i}` (the class weight of the voxel's label, as
``torch.nn.functional.cross_entropy``); for the focal loss :math:`v_i =
\alpha_{y_i}` and :math:`d_i = 1` (Lin et al. 2017). Voxels labelled
``ignore_index`` have :math:`v_i = d_i = 0`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from metricseg._checks import check_choice, check_label_range, check_probabilities_shape
from metricseg.losses._common import (
    LossModule,
    check_class_weights,
    check_ignore_index,
    check_logits,
    full_precision,
    reduce_images,
)

__all__ = [
    "WEIGHT_SCHEMES",
    "CrossEntropyLoss",
    "FocalLoss",
    "WeightedCrossEntropyLoss",
    "class_weights_from_frequencies",
    "cross_entropy_loss",
    "focal_loss",
    "weighted_cross_entropy_loss",
]

_PIXEL_ACTIVATIONS = ("softmax", "sigmoid", None)
WEIGHT_SCHEMES = ("inverse_frequency", "inverse_sqrt_frequency", "median_frequency", "log")


def _log_probs(x: torch.Tensor, activation: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p, log(1 - p)) for sigmoid; (log p, empty) for softmax or probabilities."""
    if activation == "softmax":
        return torch.log_softmax(x, dim=1), x.new_empty(0)
    if activation == "sigmoid":
        return F.logsigmoid(x), F.logsigmoid(-x)
    lo, hi = torch.aminmax(x.detach())
    if float(lo) < 0 or float(hi) > 1:
        raise ValueError(
            f"with activation=None the input must hold probabilities in [0, 1], got values "
            f"from {float(lo):.4g} to {float(hi):.4g}"
        )
    tiny = torch.finfo(x.dtype).tiny
    return x.clamp_min(tiny).log(), x.new_empty(0)


def _modulation(log_p: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal factor (1 - p)^gamma from log p, accurate for p near 1."""
    one_minus = -torch.expm1(log_p)
    if gamma < 1:
        # d/dp (1-p)^gamma is infinite at p = 1 for gamma < 1
        one_minus = one_minus.clamp_min(torch.finfo(log_p.dtype).eps)
    return one_minus.pow(gamma)


def _pixel_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str | None,
    per_image: bool,
    ignore_index: int | None,
    weights: Any,
    gamma: float | None,
    reduction: str,
    sigmoid_alpha: float | None = None,
) -> torch.Tensor:
    """CE (``gamma=None``) or focal loss (``gamma`` given); see the module docs."""
    logits = check_logits(logits)
    check_choice(activation, "activation", _PIXEL_ACTIVATIONS)
    with full_precision(logits.device):
        b, c = logits.shape[:2]
        kind = check_probabilities_shape(logits, target, "logits", "target")
        ignore_index = check_ignore_index(ignore_index, c if activation != "sigmoid" else 2)
        x = logits.reshape(b, c, -1)
        w = check_class_weights(weights, c, x)
        valid: torch.Tensor | None = None
        if kind == "labels":
            if activation == "sigmoid" and c != 1:
                raise ValueError(
                    f"a label-map target with activation='sigmoid' needs C = 1 channel, got "
                    f"C = {c}; pass 0/1 masks (B, C, *spatial) for multi-label problems"
                )
            check_label_range(target, "target", 2 if activation == "sigmoid" else c, ignore_index)
            y = target.reshape(b, -1).to(torch.int64)
            if ignore_index is not None:
                valid = y != ignore_index
                y = y.masked_fill(~valid, 0)
        elif ignore_index is not None:
            raise ValueError(
                f"ignore_index={ignore_index} applies to label-map targets (B, *spatial)"
            )
        log_p, log_not_p = _log_probs(x, activation)

        if activation != "sigmoid" and kind == "labels":
            log_p_y = log_p.gather(1, y.unsqueeze(1)).squeeze(1)  # (B, N)
            terms = -log_p_y if gamma is None else -_modulation(log_p_y, gamma) * log_p_y
            v = w[y] if w is not None else torch.ones_like(log_p_y)
            if valid is not None:
                v = v * valid
            num = (v * terms).sum(-1)
            if gamma is None:
                den = v.sum(-1)
            else:
                den = (
                    valid.sum(-1).to(x.dtype) if valid is not None else x.new_full((b,), y.shape[1])
                )
        elif activation != "sigmoid":
            t = target.reshape(b, c, -1).to(x.dtype)
            wt = t if w is None else t * w.view(1, c, 1)
            if gamma is None:
                num = -(wt * log_p).sum((1, 2))
                den = wt.sum((1, 2))
            else:
                num = -(wt * _modulation(log_p, gamma) * log_p).sum((1, 2))
                den = x.new_full((b,), x.shape[2])
        else:
            if kind == "labels":
                t = (y == 1).to(x.dtype).unsqueeze(1)
            else:
                t = target.reshape(b, c, -1).to(x.dtype)
            terms = -(t * log_p + (1 - t) * log_not_p)  # binary cross-entropy with logits
            if gamma is not None:
                p = torch.sigmoid(x)
                one_minus_pt = p + t - 2 * p * t
                terms = terms * one_minus_pt.pow(gamma)
                if sigmoid_alpha is not None:
                    terms = terms * (sigmoid_alpha * t + (1 - sigmoid_alpha) * (1 - t))
            v = torch.ones_like(terms) if w is None else w.view(1, c, 1).expand_as(terms)
            if valid is not None:
                v = v * valid.unsqueeze(1)
            num = (v * terms).sum((1, 2))
            if gamma is None:
                den = v.sum((1, 2))
            else:
                count = valid.sum(-1).to(x.dtype) if valid is not None else x.shape[2]
                den = c * count * torch.ones_like(num)
        if not per_image:
            num, den = num.sum(), den.sum()
        loss = torch.where(den > 0, num / den.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
        return reduce_images(loss, reduction)


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str | None = "softmax",
    per_image: bool = False,
    ignore_index: int | None = None,
    class_weights: Any = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Cross-entropy, :math:`-\sum_i w_{y_i} \log p_{y_i i} / \sum_i w_{y_i}`.

    Args:
        logits: ``(B, C, *spatial)`` float (probabilities with ``activation=None``).
        target: label map ``(B, *spatial)``, or one-hot / soft ``(B, C, *spatial)``
            (soft cross-entropy :math:`-\sum_c w_c t_c \log p_c`). With
            ``activation="sigmoid"``: binary cross-entropy per channel, target a 0/1
            label map for ``C = 1`` or masks / soft masks ``(B, C, *spatial)``.
        activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
        per_image: mean per image then ``reduction`` over images, or one mean over the batch.
        ignore_index: label whose voxels are left out (label maps).
        class_weights: one weight per class (per channel for sigmoid).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over images (``per_image``).

    Example:
        >>> import torch
        >>> logits = torch.randn(2, 3, 4, 5)
        >>> labels = torch.randint(0, 3, (2, 4, 5))
        >>> ref = torch.nn.functional.cross_entropy(logits, labels)
        >>> bool(torch.isclose(cross_entropy_loss(logits, labels), ref))
        True
    """
    return _pixel_loss(
        logits, target, activation=activation, per_image=per_image, ignore_index=ignore_index,
        weights=class_weights, gamma=None, reduction=reduction,
    )  # fmt: skip


def class_weights_from_frequencies(
    frequencies: Any, scheme: str = "inverse_frequency"
) -> torch.Tensor:
    r"""Class weights from per-class voxel frequencies (counts or fractions).

    With :math:`f_c` the frequencies normalised to sum 1:
    ``"inverse_frequency"`` :math:`1/f_c`, ``"inverse_sqrt_frequency"``
    :math:`1/\sqrt{f_c}`, ``"median_frequency"`` :math:`\mathrm{median}(f)/f_c`
    (Eigen & Fergus 2015; median over the classes that occur), ``"log"``
    :math:`1/\ln(1.02 + f_c)` (ENet, Paszke et al. 2016). A class that never
    occurs gets weight 0 in the inverse schemes (it cannot appear in a target).

    Example:
        >>> w = class_weights_from_frequencies([6, 2, 0, 2], "median_frequency")
        >>> [round(v, 4) for v in w.tolist()]
        [0.3333, 1.0, 0.0, 1.0]
    """
    check_choice(scheme, "scheme", WEIGHT_SCHEMES)
    f = torch.as_tensor(frequencies).to(torch.float64)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"class_frequencies must be a 1-D sequence, got shape {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()) or bool((f < 0).any()) or float(f.sum()) <= 0:
        raise ValueError(f"class_frequencies must be finite, >= 0 and not all 0, got {f.tolist()}")
    f = f / f.sum()
    occurs = f > 0
    safe = torch.where(occurs, f, 1.0)
    if scheme == "log":
        return 1.0 / torch.log(1.02 + f)
    if scheme == "inverse_frequency":
        w = 1.0 / safe
    elif scheme == "inverse_sqrt_frequency":
        w = 1.0 / safe.sqrt()
    else:
        # the lower median, so the weight of some class is exactly 1
        w = f[occurs].sort().values[(int(occurs.sum()) - 1) // 2] / safe
    return torch.where(occurs, w, 0.0)


def _batch_frequencies(
    target: torch.Tensor, num_classes: int, ignore_index: int | None, activation: str | None
) -> torch.Tensor:
    if target.ndim >= 2 and not target.dtype.is_floating_point and target.dtype != torch.bool:
        if activation == "sigmoid" and num_classes == 1:
            keep = target != ignore_index if ignore_index is not None else None
            pos = (target == 1) if keep is None else (target == 1) & keep
            return torch.stack([pos.sum()]).to(torch.float64)
        flat = target.reshape(-1)
        if ignore_index is not None:
            flat = flat[flat != ignore_index]
        return torch.bincount(flat.to(torch.int64), minlength=num_classes)[:num_classes].double()
    dims = [d for d in range(target.ndim) if d != 1]
    return target.detach().to(torch.float64).sum(dims)


def weighted_cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scheme: str | Sequence[float] = "inverse_frequency",
    class_frequencies: Any = None,
    activation: str | None = "softmax",
    per_image: bool = False,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Cross-entropy with class weights from class frequencies (or given explicitly).

    Args:
        scheme: a weighting scheme (see :func:`class_weights_from_frequencies`)
            or an explicit sequence of one weight per class.
        class_frequencies: per-class voxel frequencies of the training set,
            supplied once; ``None`` computes them from the target of each batch
            (ignored voxels excluded). For ``activation="sigmoid"`` they are the
            foreground frequencies of the channels.
        Other arguments as :func:`cross_entropy_loss`.

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 2, 4)
        >>> labels = torch.tensor([[0, 0, 0, 1]])
        >>> # weights (4/3, 4): every voxel has loss ln 2 -> the weighted mean is ln 2
        >>> round(float(weighted_cross_entropy_loss(logits, labels)), 4)
        0.6931
    """
    c = logits.shape[1] if isinstance(logits, torch.Tensor) and logits.ndim >= 2 else 0
    if isinstance(scheme, str):
        if class_frequencies is None:
            if not isinstance(target, torch.Tensor):
                raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
            class_frequencies = _batch_frequencies(target, c, ignore_index, activation)
        elif len(class_frequencies) != c:
            raise ValueError(
                f"class_frequencies must hold one value per class ({c}), got "
                f"{len(class_frequencies)}"
            )
        weights: Any = class_weights_from_frequencies(class_frequencies, scheme)
    else:
        if class_frequencies is not None:
            raise ValueError("pass either explicit weights as scheme=[...] or class_frequencies")
        weights = scheme
    return _pixel_loss(
        logits, target, activation=activation, per_image=per_image, ignore_index=ignore_index,
        weights=weights, gamma=None, reduction=reduction,
    )  # fmt: skip


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | None = None,
    activation: str | None = "softmax",
    per_image: bool = False,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Focal loss (Lin et al. 2017), :math:`-\alpha_{y_i}(1 - p_{y_i i})^\gamma \log p_{y_i i}`.

    Averaged over the (non-ignored) voxels; ``gamma = 0`` with no ``alpha`` is
    the cross-entropy.

    Args:
        gamma: focusing parameter, >= 0.
        alpha: softmax: ``None`` or one weight per class (the class weights of
            the focal loss). Sigmoid: ``None``, a float in [0, 1] weighing
            positives by :math:`\alpha` and negatives by :math:`1-\alpha`
            (as ``torchvision.ops.sigmoid_focal_loss``), or one weight per channel.
        Other arguments as :func:`cross_entropy_loss`.

    Example:
        >>> import torch
        >>> logits = torch.log(torch.tensor([[[0.75], [0.25]]]))  # p = (0.75, 0.25)
        >>> labels = torch.tensor([[0]])
        >>> # (1 - 0.75)^2 * -ln 0.75
        >>> round(float(focal_loss(logits, labels)), 5)
        0.01798
    """
    if gamma < 0 or not math.isfinite(gamma):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    sigmoid_alpha = None
    weights: Any = alpha
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        if activation != "sigmoid":
            raise ValueError(
                f"a scalar alpha={alpha} applies to activation='sigmoid'; for softmax pass "
                "one weight per class"
            )
        if not 0 <= alpha <= 1:
            raise ValueError(f"a scalar alpha must lie in [0, 1], got {alpha}")
        sigmoid_alpha, weights = float(alpha), None
    return _pixel_loss(
        logits, target, activation=activation, per_image=per_image, ignore_index=ignore_index,
        weights=weights, gamma=gamma, reduction=reduction, sigmoid_alpha=sigmoid_alpha,
    )  # fmt: skip


class CrossEntropyLoss(LossModule):
    """Cross-entropy, softmax or sigmoid (module form of :func:`cross_entropy_loss`)."""

    function = staticmethod(cross_entropy_loss)


class WeightedCrossEntropyLoss(LossModule):
    """Cross-entropy weighted by class frequency (module form of :func:`weighted_cross_entropy_loss`).

    Example:
        >>> import torch
        >>> loss = WeightedCrossEntropyLoss(scheme="log", class_frequencies=[0.9, 0.1])
        >>> float(loss(torch.zeros(1, 2, 3), torch.tensor([[0, 1, 1]]))) > 0
        True
    """

    function = staticmethod(weighted_cross_entropy_loss)


class FocalLoss(LossModule):
    """Focal loss, softmax or sigmoid (module form of :func:`focal_loss`)."""

    function = staticmethod(focal_loss)
