r"""Hard overlap scores per image and class, with explicit rules for empty masks.

Every score here is one formula over the counts of :func:`metricseg.counts.confusion`
(TP, FP, FN per image ``b`` and class ``c``), computed by :func:`score_from_counts`:

.. math::

    \mathrm{Dice} = \frac{2TP}{2TP + FP + FN}, \qquad
    \mathrm{Jaccard} = \frac{TP}{TP + FP + FN}, \qquad
    \mathrm{Tversky}_{\alpha,\beta} = \frac{TP}{TP + \alpha FP + \beta FN},

.. math::

    \mathrm{sensitivity} = \frac{TP}{TP + FN}, \qquad
    \mathrm{precision} = \frac{TP}{TP + FP}, \qquad
    \mathrm{Hamming}_{w} = 1 - \frac{w_{FP} FP + w_{FN} FN}{N},

where :math:`N` is the number of voxels counted in the image (ignored voxels left
out). For label maps every counted voxel has exactly one target class, so
:math:`N = \sum_c (TP_c + FN_c)`; that is how it is derived from counts.

**Empty masks** (the two cases other libraries leave vague):

* prediction and target both empty for an image and class (TP = FP = FN = 0):
  the score is set by ``empty``: ``"nan"`` (default — the case is left out of
  every mean and counted in ``empty_cases``), ``"one"`` or ``"zero"``. This holds
  for every metric, Hamming included, so one policy means one thing everywhere.
* only one of them empty: the score is a plain number, never NaN. A class absent
  from the target but predicted (TP = FN = 0, FP = 3) scores Dice 0, Jaccard 0,
  precision 0 — and sensitivity 0 too, although TP + FN = 0: a prediction of an
  absent class is an error. Likewise a class present in the target but not
  predicted (FN = 3) scores 0 for every ratio, precision included.

Both rules go through :func:`safe_divide`, the one division of the core: a ratio
whose denominator is 0 takes the value its ``zero_division`` policy names. The
metrics use ``"zero"`` (then the empty policy above); the region losses use ``"one"``
(an empty class with ``smooth=0`` scores 1, loss 0).

Aggregation (:func:`aggregate`, :class:`MetricAccumulator`) over images
:math:`b = 1..B` and selected classes :math:`c \in K`, with :math:`s(\cdot)` the
score of a triple of counts:

* **per class**: :math:`S_c = \operatorname{mean}_{b:\,s_{bc}\neq\mathrm{NaN}} s(TP_{bc}, FP_{bc}, FN_{bc})`;
* **macro**: :math:`\operatorname{mean}_{c \in K:\,S_c\neq\mathrm{NaN}} S_c`;
* **micro**: counts pooled over classes per image, then the mean over images,
  :math:`\operatorname{mean}_b s(\sum_{c\in K} TP_{bc}, \sum_{c\in K} FP_{bc}, \sum_{c\in K} FN_{bc})`;
* **global per class**: counts pooled over the whole dataset first,
  :math:`G_c = s(\sum_b TP_{bc}, \sum_b FP_{bc}, \sum_b FN_{bc})`;
  **global** is :math:`\operatorname{mean}_{c\in K} G_c` (NaN classes left out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from metricseg._checks import as_tensor, check_choice, check_ignore_index, check_num_classes
from metricseg.counts import FN, FP, TP, confusion
from metricseg.distributed import all_reduce_sum
from metricseg.types import (
    AGGREGATES,
    EMPTY_POLICIES,
    METRICS,
    REDUCTIONS,
    Aggregate,
    ArrayLike,
    EmptyPolicy,
    MetricName,
    Reduction,
)

__all__ = [
    "AGGREGATES",
    "EMPTY_POLICIES",
    "METRICS",
    "AggregateResult",
    "MetricAccumulator",
    "aggregate",
    "dice",
    "hamming",
    "jaccard",
    "precision",
    "safe_divide",
    "score_from_counts",
    "score_from_tp_fp_fn",
    "sensitivity",
    "tversky",
]

# METRICS (metric names understood by score_from_counts), EMPTY_POLICIES (values of
# ``empty``) and AGGREGATES (values of ``average``) come from metricseg.types.
_EMPTY_VALUE: dict[str, float] = {"nan": float("nan"), "one": 1.0, "zero": 0.0}
#: the fix named when ignore_index is a class label
_IGNORE_FIX = "To leave a class out of the scores use include_background=False or classes=[...]"


def _check_counts(counts: torch.Tensor, name: str = "counts") -> None:
    if counts.ndim not in (2, 3) or counts.shape[-1] != 3:
        raise ValueError(
            f"{name} must have shape (B, C, 3) or (C, 3) with last axis (TP, FP, FN), "
            f"got {tuple(counts.shape)}"
        )
    if counts.dtype.is_complex or counts.dtype == torch.bool:
        raise TypeError(f"{name} must be integer or float counts, got dtype {counts.dtype}")
    if counts.numel() and bool((counts < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a minimum of {counts.min().item()}")


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not value >= 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def safe_divide(num: Any, den: Any, *, zero_division: EmptyPolicy) -> Any:
    r"""``num / den`` where ``den > 0``, and the value ``zero_division`` names where ``den <= 0``.

    The one division rule of metrics and losses. ``zero_division`` is ``"zero"``,
    ``"one"`` or ``"nan"`` (the words of ``empty``). ``num`` and ``den`` are torch
    tensors or numpy arrays (the result is of their kind). Differentiable and safe
    for autograd: where ``den <= 0`` the division is by 1, so no ``inf`` or NaN
    reaches the gradient, which is 0 there.

    Example:
        >>> import torch
        >>> num, den = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([4.0, 0.0, 0.0])
        >>> safe_divide(num, den, zero_division="one").tolist()
        [0.25, 1.0, 1.0]
        >>> safe_divide(num, den, zero_division="nan").tolist()
        [0.25, nan, nan]
    """
    check_choice(zero_division, "zero_division", EMPTY_POLICIES)
    xp: Any = torch if isinstance(num, torch.Tensor) or isinstance(den, torch.Tensor) else np
    defined = den > 0
    # torch.where and numpy.where share this form; dividing by 1 where undefined keeps
    # the unused branch finite (no inf * 0 = NaN in a gradient, no numpy warning)
    ratio = num / xp.where(defined, den, 1.0)
    return xp.where(defined, ratio, _EMPTY_VALUE[zero_division])


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # den == 0 with the triple not all zero is a one-sided empty case: score 0
    # (the both-empty case is set by the empty policy afterwards)
    return safe_divide(num, den, zero_division="zero")


def score_from_counts(
    counts: ArrayLike,
    metric: MetricName,
    *,
    num_voxels: ArrayLike | None = None,
    alpha: float = 0.5,
    beta: float = 0.5,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
    empty: EmptyPolicy = "nan",
) -> Any:
    r"""One score from counts: the formula core behind every metric in this module.

    Args:
        counts: ``(..., 3)`` with last axis ``(TP, FP, FN)``, e.g. ``(B, C, 3)``
            from :func:`~metricseg.counts.confusion`; torch or numpy.
        metric: one of :data:`METRICS`.
        num_voxels: for ``"hamming"`` only: voxels counted per image, shape
            ``counts.shape[:-2]`` (``(B,)``) or broadcastable to ``counts.shape[:-1]``.
            ``None`` derives it as :math:`N_b = \sum_c (TP_{bc} + FN_{bc})`, right for
            label-map counts over all classes.
        alpha, beta: Tversky weights of FP and FN (Salehi et al. 2017);
            ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1`` is Jaccard. The one
            Tversky parametrisation of metricseg (the theory's :math:`T_\alpha` is
            ``alpha``, ``beta = 1 - alpha``).
        w_fp, w_fn: Hamming weights of FP and FN.
        empty: score when TP = FP = FN = 0: ``"nan"``, ``"one"`` or ``"zero"``.

    Returns:
        float64 scores of shape ``counts.shape[:-1]``, torch or numpy as ``counts``.
        Torch counts keep their autograd graph (the theory's adversarial search
        differentiates through this function).

    Example:
        >>> import numpy as np
        >>> counts = np.array([[6, 2, 2], [0, 3, 0], [0, 0, 0]])  # (C=3, 3)
        >>> score_from_counts(counts, "dice").tolist()
        [0.75, 0.0, nan]
        >>> score_from_counts(counts, "jaccard", empty="one").tolist()
        [0.6, 0.0, 1.0]
    """
    counts_t, was_numpy = as_tensor(counts, "counts")
    if counts_t.ndim < 1 or counts_t.shape[-1] != 3:
        raise ValueError(
            f"counts must have shape (..., 3) with last axis (TP, FP, FN), got "
            f"{tuple(counts_t.shape)}"
        )
    c = counts_t.to(torch.float64)
    score = score_from_tp_fp_fn(
        c[..., TP], c[..., FP], c[..., FN], metric, num_voxels=num_voxels, alpha=alpha,
        beta=beta, w_fp=w_fp, w_fn=w_fn, empty=empty,
    )  # fmt: skip
    return score.cpu().numpy() if was_numpy else score


def score_from_tp_fp_fn(
    tp: ArrayLike | float,
    fp: ArrayLike | float,
    fn: ArrayLike | float,
    metric: MetricName,
    *,
    num_voxels: ArrayLike | None = None,
    alpha: float = 0.5,
    beta: float = 0.5,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
    empty: EmptyPolicy = "nan",
) -> Any:
    r"""The score formulas of :func:`score_from_counts`, on TP, FP and FN given apart.

    For callers that hold the three counts as separate arrays (the theory's
    verifier: numpy arrays of every count triple, or torch tensors with gradients).
    ``tp``, ``fp``, ``fn`` are broadcastable torch tensors or numpy arrays (or
    numbers); ``num_voxels`` and the other options as in :func:`score_from_counts`,
    with ``counts.shape[:-1]`` read as ``tp.shape``. The formulas are written once,
    with operations numpy and torch share: numpy inputs are scored by numpy (the
    verifier's millions of triples, without conversion), torch inputs by torch.

    Returns:
        float64 scores of the broadcast shape: a torch tensor (with autograd) if any
        input is one, else a numpy array.

    Example:
        >>> import numpy as np
        >>> score_from_tp_fp_fn(np.array([6.0, 0.0]), np.array([2.0, 0.0]),
        ...                     np.array([2.0, 0.0]), "dice").tolist()
        [0.75, nan]
    """
    check_choice(metric, "metric", METRICS)
    check_choice(empty, "empty", EMPTY_POLICIES)
    tp_, fp_, fn_ = _float64_parts(tp, fp, fn)
    if metric == "dice":
        score = _ratio(2 * tp_, 2 * tp_ + fp_ + fn_)
    elif metric == "jaccard":
        score = _ratio(tp_, tp_ + fp_ + fn_)
    elif metric == "tversky":
        a, b = _check_positive(alpha, "alpha"), _check_positive(beta, "beta")
        score = _ratio(tp_, tp_ + a * fp_ + b * fn_)
    elif metric == "sensitivity":
        score = _ratio(tp_, tp_ + fn_)
    elif metric == "precision":
        score = _ratio(tp_, tp_ + fp_)
    else:  # hamming
        wp, wn = _check_positive(w_fp, "w_fp"), _check_positive(w_fn, "w_fn")
        n = _voxels(num_voxels, tp_, fn_)
        # an image of no voxels has no error: similarity 1
        score = safe_divide(n - (wp * fp_ + wn * fn_), n, zero_division="one")
    both_empty = (tp_ == 0) & (fp_ == 0) & (fn_ == 0)
    xp: Any = torch if isinstance(tp_, torch.Tensor) else np
    return xp.where(both_empty, _EMPTY_VALUE[empty], score)


def _float64_parts(tp: Any, fp: Any, fn: Any) -> tuple[Any, Any, Any]:
    """float64 torch tensors if any part is a tensor (autograd kept), else numpy arrays."""
    parts = (tp, fp, fn)
    tensors = [x for x in parts if isinstance(x, torch.Tensor)]
    if tensors:
        dev = tensors[0].device
        t = [torch.as_tensor(x, device=dev).to(torch.float64) for x in parts]
        return t[0], t[1], t[2]
    a = [np.asarray(x, dtype=np.float64) for x in parts]
    return a[0], a[1], a[2]


def _voxels(num_voxels: ArrayLike | None, tp: Any, fn: Any) -> Any:
    """Voxels per image for Hamming, broadcastable to ``tp`` (classes on the last axis)."""
    if num_voxels is None:
        total = tp + fn
        if isinstance(total, torch.Tensor):
            return total.sum(-1, keepdim=True)
        return total.sum(-1, keepdims=True)
    n: Any
    if isinstance(tp, torch.Tensor):
        n = torch.as_tensor(num_voxels, device=tp.device).to(torch.float64)
    else:
        n = np.asarray(num_voxels, dtype=np.float64)
    if n.ndim == tp.ndim - 1:
        n = n[..., None]
    try:
        np.broadcast_shapes(tuple(n.shape), tuple(tp.shape))
    except ValueError:
        raise ValueError(
            f"num_voxels must have shape {tuple(tp.shape[:-1])} (voxels per image), "
            f"got {tuple(np.shape(num_voxels))}"
        ) from None
    if bool((n < 0).any()):
        raise ValueError(f"num_voxels must be >= 0, got {n.tolist()}")
    return n


def _select(scores: torch.Tensor, include_background: bool) -> torch.Tensor:
    return scores if include_background else scores[..., 1:]


def _reduce(scores: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice(reduction, "reduction", REDUCTIONS)
    if reduction == "none":
        return scores
    if reduction == "sum":
        return torch.nansum(scores)
    # macro mean: per class over images, then over classes (NaN left out)
    per_class = torch.nanmean(scores, dim=0) if scores.ndim == 2 else scores
    return torch.nanmean(per_class)


def _metric(
    metric: MetricName,
    pred: ArrayLike,
    target: ArrayLike | None,
    num_classes: int | None,
    include_background: bool,
    ignore_index: int | None,
    empty: EmptyPolicy,
    reduction: Reduction,
    params: Mapping[str, float],
    num_voxels: ArrayLike | None = None,
) -> Any:
    """The body of every public metric function: counts, then one score formula."""
    check_choice(empty, "empty", EMPTY_POLICIES)
    check_choice(reduction, "reduction", REDUCTIONS)
    if target is not None and num_voxels is not None:
        raise ValueError("num_voxels is for counts input (target=None); label maps give N")
    if target is None and ignore_index is not None:
        raise ValueError(
            f"ignore_index={ignore_index} applies to label maps; counts (target=None) "
            "were counted already, leave the voxels out when counting them"
        )
    if target is None:
        counts, was_numpy = as_tensor(pred, "pred")
        _check_counts(counts, "pred (counts)")
        if num_classes is not None and counts.shape[-2] != num_classes:
            raise ValueError(
                f"num_classes={num_classes} does not match counts with "
                f"{counts.shape[-2]} classes (shape {tuple(counts.shape)})"
            )
    else:
        pred_t, was_numpy = as_tensor(pred, "pred")
        target_t, _ = as_tensor(target, "target")
        is_masks = pred_t.dtype == torch.bool
        if num_classes is None:
            if not is_masks:
                raise ValueError("num_classes is required for label maps (B, *spatial), got None")
            num_classes = pred_t.shape[1]
        if not is_masks:
            check_ignore_index(ignore_index, check_num_classes(num_classes), fix=_IGNORE_FIX)
        counts = confusion(pred_t, target_t, num_classes, ignore_index=ignore_index)
        if metric == "hamming":
            num_voxels = _voxels_per_image(target_t, is_masks, ignore_index)
    scores = score_from_counts(counts, metric, num_voxels=num_voxels, empty=empty, **params)
    out = _reduce(_select(scores, include_background), reduction)
    return out.cpu().numpy() if was_numpy else out


def _voxels_per_image(
    target: torch.Tensor, is_masks: bool, ignore_index: int | None
) -> torch.Tensor:
    b = target.shape[0]
    spatial = target.shape[2:] if is_masks else target.shape[1:]
    total = torch.full((b,), int(np.prod(spatial, dtype=np.int64)), dtype=torch.int64)
    if ignore_index is not None and not is_masks:
        total -= (target.reshape(b, -1) == ignore_index).sum(1).cpu()
    return total


def dice(
    pred: ArrayLike,
    target: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: EmptyPolicy = "nan",
    reduction: Reduction = "none",
) -> Any:
    r"""Dice score :math:`D = 2TP / (2TP + FP + FN)` per image and class.

    Args:
        pred: predicted label map ``(B, *spatial)`` of integers in ``[0, C)``, or a
            boolean mask stack ``(B, C, *spatial)``; or, with ``target=None``,
            counts ``(B, C, 3)`` / ``(C, 3)`` from :func:`~metricseg.counts.confusion`.
            Torch (CPU or CUDA) or numpy.
        target: ground truth of the same kind and shape as ``pred``, or None.
        num_classes: ``C``, background included (required for label maps).
        include_background: keep class 0 in the result (``False`` drops it).
        ignore_index: target label whose voxels are not counted; not a class
            (outside ``[0, C)``, e.g. 255 or -1).
        empty: score when prediction and target are both empty for an image and
            class: ``"nan"`` (left out of means), ``"one"`` or ``"zero"``.
        reduction: ``"none"`` gives ``(B, C)`` float64; ``"mean"`` the macro mean
            (per class over images, then over classes; NaN left out); ``"sum"``
            the sum of the non-NaN scores.

    Returns:
        float64 scores, torch or numpy as ``pred``.

    Example:
        >>> import numpy as np
        >>> pred = np.array([[0, 1, 1, 0]])
        >>> gt = np.array([[0, 1, 0, 0]])
        >>> dice(pred, gt, num_classes=3).tolist()  # class 2: both empty -> nan
        [[0.8, 0.6666666666666666, nan]]
        >>> dice(pred, gt, num_classes=3, empty="one", reduction="mean").item()
        0.8222222222222223
    """
    return _metric(
        "dice", pred, target, num_classes, include_background, ignore_index, empty, reduction, {}
    )


def jaccard(
    pred: ArrayLike,
    target: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: EmptyPolicy = "nan",
    reduction: Reduction = "none",
) -> Any:
    r"""Jaccard index :math:`J = TP / (TP + FP + FN)` per image and class; :math:`J = D/(2-D)`.

    Args:
        pred, target, num_classes, include_background, ignore_index, empty,
        reduction: as :func:`dice`.

    Returns:
        float64 scores ``(B, C)`` (reduced by ``reduction``), torch or numpy as ``pred``.

    Example:
        >>> import torch
        >>> pred = torch.tensor([[0, 1, 1, 0]])
        >>> gt = torch.tensor([[0, 2, 0, 0]])
        >>> jaccard(pred, gt, num_classes=3)  # class 1 predicted, absent: 0, not NaN
        tensor([[0.6667, 0.0000, 0.0000]], dtype=torch.float64)
    """
    return _metric(
        "jaccard", pred, target, num_classes, include_background, ignore_index, empty, reduction, {}
    )


def sensitivity(
    pred: ArrayLike,
    target: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: EmptyPolicy = "nan",
    reduction: Reduction = "none",
) -> Any:
    r"""Sensitivity (recall) :math:`TP / (TP + FN)`; 0 for a predicted class absent from the target.

    Args:
        pred, target, num_classes, include_background, ignore_index, empty,
        reduction: as :func:`dice`.

    Returns:
        float64 scores ``(B, C)`` (reduced by ``reduction``), torch or numpy as ``pred``.

    Example:
        >>> import numpy as np
        >>> counts = np.array([[3, 1, 1], [0, 2, 0], [0, 0, 0]])  # (C=3, 3)
        >>> sensitivity(counts).tolist()
        [0.75, 0.0, nan]
    """
    return _metric(
        "sensitivity", pred, target, num_classes, include_background, ignore_index, empty,
        reduction, {},
    )  # fmt: skip


def precision(
    pred: ArrayLike,
    target: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: EmptyPolicy = "nan",
    reduction: Reduction = "none",
) -> Any:
    r"""Precision :math:`TP / (TP + FP)`; 0 for a target class that was not predicted.

    Args:
        pred, target, num_classes, include_background, ignore_index, empty,
        reduction: as :func:`dice`.

    Returns:
        float64 scores ``(B, C)`` (reduced by ``reduction``), torch or numpy as ``pred``.

    Example:
        >>> import numpy as np
        >>> counts = np.array([[3, 1, 1], [0, 0, 2], [0, 0, 0]])  # (C=3, 3)
        >>> precision(counts).tolist()
        [0.75, 0.0, nan]
    """
    return _metric(
        "precision", pred, target, num_classes, include_background, ignore_index, empty,
        reduction, {},
    )  # fmt: skip


def tversky(
    pred: ArrayLike,
    target: ArrayLike | None = None,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: EmptyPolicy = "nan",
    reduction: Reduction = "none",
) -> Any:
    r"""Tversky index :math:`TP / (TP + \alpha FP + \beta FN)` (Salehi et al. 2017).

    Args:
        alpha: weight of the false positives.
        beta: weight of the false negatives; ½, ½ is Dice and 1, 1 is Jaccard.
        pred, target, num_classes, include_background, ignore_index, empty,
        reduction: as :func:`dice`.

    Returns:
        float64 scores ``(B, C)`` (reduced by ``reduction``), torch or numpy as ``pred``.

    Example:
        >>> import numpy as np
        >>> counts = np.array([[[2, 1, 3]]])  # (B=1, C=1, 3)
        >>> tversky(counts, alpha=0.3, beta=0.7).round(4).tolist()  # 2 / (2 + 0.3 + 2.1)
        [[0.4545]]
    """
    kw = {"alpha": alpha, "beta": beta}
    return _metric(
        "tversky", pred, target, num_classes, include_background, ignore_index, empty, reduction, kw
    )


def hamming(
    pred: ArrayLike,
    target: ArrayLike | None = None,
    *,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
    num_voxels: ArrayLike | None = None,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: EmptyPolicy = "nan",
    reduction: Reduction = "none",
) -> Any:
    r"""Weighted Hamming similarity :math:`1 - (w_{FP} FP + w_{FN} FN) / N` per image and class.

    :math:`N` is the number of voxels counted in the image: from label maps or
    masks it is the spatial size minus ignored voxels; from counts it is
    ``num_voxels`` (``(B,)``) or, when None, :math:`\sum_c (TP_c + FN_c)` (right for
    label-map counts over all classes).

    Args:
        w_fp, w_fn: weights of the false positives and false negatives.
        num_voxels: voxels counted per image, for counts input (``target=None``).
        pred, target, num_classes, include_background, ignore_index, empty,
        reduction: as :func:`dice`.

    Returns:
        float64 scores ``(B, C)`` (reduced by ``reduction``), torch or numpy as ``pred``.

    Example:
        >>> import numpy as np
        >>> pred = np.array([[0, 1, 1, 0]])
        >>> gt = np.array([[0, 1, 0, 0]])
        >>> hamming(pred, gt, num_classes=2, w_fp=2.0).tolist()  # class 1: 1 - 2*1/4
        [[0.75, 0.5]]
    """
    kw = {"w_fp": w_fp, "w_fn": w_fn}
    return _metric(
        "hamming", pred, target, num_classes, include_background, ignore_index, empty,
        reduction, kw, num_voxels,
    )  # fmt: skip


def aggregate(
    counts: ArrayLike,
    metric: MetricName,
    *,
    average: Aggregate = "macro",
    num_voxels: ArrayLike | None = None,
    classes: Sequence[int] | None = None,
    empty: EmptyPolicy = "nan",
    alpha: float = 0.5,
    beta: float = 0.5,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
) -> Any:
    r"""Aggregate a metric over images and classes from per-image counts ``(B, C, 3)``.

    ``average`` (definitions in the module docstring): ``"class"`` → ``(K,)`` mean over
    images per class; ``"macro"`` → mean of those; ``"micro"`` → counts pooled over
    classes per image, mean over images; ``"global_class"`` → ``(K,)`` score of the
    counts pooled over images; ``"global"`` → mean of those. ``K`` is the number of
    ``classes`` kept (default all). NaN (both-empty) cases are left out of means.
    ``alpha``, ``beta`` (Tversky) and ``w_fp``, ``w_fn`` (Hamming) as in
    :func:`score_from_counts`.

    Example:
        >>> import numpy as np
        >>> counts = np.array([[[1, 0, 1], [0, 0, 0]],
        ...                    [[3, 1, 0], [2, 2, 0]]])        # (B=2, C=2, 3)
        >>> aggregate(counts, "dice", average="class").tolist()  # [(2/3 + 6/7)/2, 4/6]
        [0.7619047619047619, 0.6666666666666666]
        >>> aggregate(counts, "dice", average="global_class").round(4).tolist()
        [0.8, 0.6667]
        >>> round(float(aggregate(counts, "dice", average="micro")), 4)  # (2/3 + 10/13)/2
        0.7179
    """
    check_choice(average, "average", AGGREGATES)
    counts_t, was_numpy = as_tensor(counts, "counts")
    _check_counts(counts_t)
    if counts_t.ndim == 2:
        counts_t = counts_t.unsqueeze(0)
    voxels: torch.Tensor | None = None
    if num_voxels is None and metric == "hamming":
        voxels = counts_t[..., [TP, FN]].sum((-1, -2))
    elif num_voxels is not None:
        voxels = as_tensor(num_voxels, "num_voxels")[0].reshape(-1)
    if classes is not None:
        counts_t = counts_t[:, _check_classes(classes, counts_t.shape[1])]

    def score(c: torch.Tensor, n: torch.Tensor | None) -> torch.Tensor:
        return score_from_counts(
            c, metric, num_voxels=n, empty=empty, alpha=alpha, beta=beta, w_fp=w_fp, w_fn=w_fn
        )

    if average in ("class", "macro"):
        out = _nanmean(score(counts_t, voxels), 0)
        if average == "macro":
            out = _nanmean(out, 0)
    elif average == "micro":
        out = _nanmean(score(counts_t.sum(1), voxels), 0)
    else:
        n_all = None if voxels is None else voxels.sum().reshape(1)
        out = score(counts_t.sum(0, keepdim=True), n_all)[0]
        if average == "global":
            out = _nanmean(out, 0)
    return out.cpu().numpy() if was_numpy else out


def _nanmean(x: torch.Tensor, dim: int) -> torch.Tensor:
    # torch.nanmean of an all-NaN slice is NaN, which is what an all-empty class should give
    return torch.nanmean(x, dim=dim)


def _check_classes(classes: Sequence[int], num_classes: int) -> list[int]:
    out = [int(c) for c in classes]
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad or not out:
        raise ValueError(
            f"classes must be a non-empty list of indices in [0, {num_classes - 1}], got {list(classes)}"
        )
    return out


@dataclass
class AggregateResult:
    """What :meth:`MetricAccumulator.compute` returns; arrays are float64 numpy.

    ``per_class[m]`` and ``global_per_class[m]`` have one entry per class in
    ``classes``; ``macro``, ``micro`` and ``global_`` map a metric name to a float.
    ``empty_cases[k]`` is the number of images where class ``classes[k]`` was empty
    in both prediction and target (NaN under ``empty="nan"``).
    """

    classes: list[int]
    num_images: int
    per_class: dict[str, np.ndarray] = field(default_factory=dict)
    macro: dict[str, float] = field(default_factory=dict)
    micro: dict[str, float] = field(default_factory=dict)
    global_per_class: dict[str, np.ndarray] = field(default_factory=dict)
    global_: dict[str, float] = field(default_factory=dict)
    empty_cases: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class MetricAccumulator:
    r"""Accumulate scores over batches, then aggregate (per class, macro, micro, global).

    The state is plain sums, so summing it over ``torch.distributed`` processes
    (done in :meth:`compute` by :func:`metricseg.distributed.all_reduce_sum`) gives
    the result of one process that saw all the data:

    * ``counts`` ``(C, 3)`` int64 — counts pooled over images (global scores);
    * ``num_voxels`` — voxels counted over all images (global Hamming);
    * ``score_sum`` ``(M, K)`` float64 and ``score_n`` ``(M, K)`` int64 — sum and
      number of the non-NaN per-image scores per metric and class (per class, macro);
    * ``micro_sum`` ``(M,)`` / ``micro_n`` ``(M,)`` — the same for micro scores;
    * ``empty_cases`` ``(K,)`` and ``num_images``.

    Args:
        num_classes: ``C``, background included.
        metrics: names from :data:`METRICS`.
        classes: class indices to report (default: all, or all but 0 when
            ``include_background=False``).
        include_background: see ``classes``.
        ignore_index: target label left out of every count; not a class (outside
            ``[0, num_classes)``, e.g. 255 or -1).
        empty: score of a both-empty image and class (see module docstring).
        alpha, beta, w_fp, w_fn: Tversky and Hamming weights.

    Example:
        >>> import numpy as np
        >>> acc = MetricAccumulator(3, metrics=("dice", "jaccard"), include_background=False)
        >>> acc.update(np.array([[0, 1, 1, 2]]), np.array([[0, 1, 2, 2]]))
        >>> acc.update(np.array([[0, 0, 1, 1]]), np.array([[0, 0, 1, 1]]))
        >>> r = acc.compute()
        >>> r.per_class["dice"].tolist(), r.empty_cases.tolist()  # class 2 empty in image 2
        ([0.8333333333333333, 0.6666666666666666], [0, 1])
        >>> round(r.global_["dice"], 4)   # class 1: 2*3/(6+1+0), class 2: 2*1/(2+0+1)
        0.7619
    """

    def __init__(
        self,
        num_classes: int,
        metrics: Sequence[MetricName] = ("dice", "jaccard"),
        *,
        classes: Sequence[int] | None = None,
        include_background: bool = True,
        ignore_index: int | None = None,
        empty: EmptyPolicy = "nan",
        alpha: float = 0.5,
        beta: float = 0.5,
        w_fp: float = 1.0,
        w_fn: float = 1.0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        if isinstance(metrics, str) or not metrics:
            raise ValueError(
                f"metrics must be a non-empty list of names from {METRICS}, got {metrics!r}"
            )
        self.metrics: list[MetricName] = [check_choice(m, "metrics", METRICS) for m in metrics]
        if classes is None:
            classes = range(0 if include_background else 1, self.num_classes)
        self.classes = _check_classes(classes, self.num_classes)
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes, fix=_IGNORE_FIX)
        self.empty: EmptyPolicy = check_choice(empty, "empty", EMPTY_POLICIES)
        self.params = {"alpha": alpha, "beta": beta, "w_fp": w_fp, "w_fn": w_fn}
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        m, k, d = len(self.metrics), len(self.classes), self.device
        self.counts = torch.zeros((self.num_classes, 3), dtype=torch.int64, device=d)
        self.num_voxels = torch.zeros((), dtype=torch.int64, device=d)
        self.score_sum = torch.zeros((m, k), dtype=torch.float64, device=d)
        self.score_n = torch.zeros((m, k), dtype=torch.int64, device=d)
        self.micro_sum = torch.zeros((m,), dtype=torch.float64, device=d)
        self.micro_n = torch.zeros((m,), dtype=torch.int64, device=d)
        self.empty_cases = torch.zeros((k,), dtype=torch.int64, device=d)
        self.num_images = torch.zeros((), dtype=torch.int64, device=d)

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add a batch of label maps ``(B, *spatial)`` or mask stacks ``(B, C, *spatial)``."""
        pred_t, _ = as_tensor(pred, "pred")
        target_t, _ = as_tensor(target, "target")
        counts = confusion(pred_t, target_t, self.num_classes, ignore_index=self.ignore_index)
        is_masks = pred_t.dtype == torch.bool
        self.update_counts(counts, _voxels_per_image(target_t, is_masks, self.ignore_index))

    def update_counts(self, counts: ArrayLike, num_voxels: ArrayLike) -> None:
        """Add per-image counts ``(B, C, 3)`` and voxels counted per image ``(B,)``."""
        counts_t = as_tensor(counts, "counts")[0].to(self.device)
        _check_counts(counts_t)
        if counts_t.ndim != 3 or counts_t.shape[1] != self.num_classes:
            raise ValueError(
                f"counts must have shape (B, {self.num_classes}, 3), got {tuple(counts_t.shape)}"
            )
        nv = as_tensor(num_voxels, "num_voxels")[0].to(self.device, torch.int64).reshape(-1)
        if nv.shape[0] != counts_t.shape[0]:
            raise ValueError(
                f"num_voxels must have one entry per image ({counts_t.shape[0]}), got {nv.shape[0]}"
            )
        counts_t = counts_t.to(torch.int64)
        self.counts += counts_t.sum(0)
        self.num_voxels += nv.sum()
        self.num_images += counts_t.shape[0]
        kept = counts_t[:, self.classes]
        self.empty_cases += (kept == 0).all(-1).sum(0)
        pooled = kept.sum(1)
        for i, metric in enumerate(self.metrics):
            s = score_from_counts(kept, metric, num_voxels=nv, empty=self.empty, **self.params)
            self.score_sum[i] += torch.nansum(s, 0)
            self.score_n[i] += (~torch.isnan(s)).sum(0)
            sm = score_from_counts(pooled, metric, num_voxels=nv, empty=self.empty, **self.params)
            self.micro_sum[i] += torch.nansum(sm)
            self.micro_n[i] += (~torch.isnan(sm)).sum()

    _STATE = ("counts", "num_voxels", "score_sum", "score_n", "micro_sum", "micro_n",
              "empty_cases", "num_images")  # fmt: skip

    def state(self, *, sync: bool = True) -> dict[str, torch.Tensor]:
        """The state tensors by name; with ``sync``, summed over all processes.

        The sums are returned, the accumulator itself is not changed, so ``compute``
        may be called any number of times (on every rank: it is a collective call).
        """
        return {
            name: all_reduce_sum(getattr(self, name), differentiable=False)
            if sync
            else getattr(self, name)
            for name in self._STATE
        }

    def compute(self, *, sync: bool = True) -> AggregateResult:
        """Aggregate everything seen; with ``sync`` over all ``torch.distributed`` processes."""
        st = self.state(sync=sync)
        res = AggregateResult(
            classes=list(self.classes),
            num_images=int(st["num_images"]),
            empty_cases=st["empty_cases"].cpu().numpy().copy(),
        )
        pooled = st["counts"][self.classes].unsqueeze(0)
        for i, metric in enumerate(self.metrics):
            n_scores = st["score_n"][i].cpu().numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                per_class = st["score_sum"][i].cpu().numpy() / n_scores
            per_class[n_scores == 0] = np.nan
            res.per_class[metric] = per_class
            res.macro[metric] = _nan_mean_np(per_class)
            n = int(st["micro_n"][i])
            res.micro[metric] = float(st["micro_sum"][i]) / n if n else float("nan")
            g = score_from_counts(
                pooled,
                metric,
                num_voxels=st["num_voxels"].reshape(1),
                empty=self.empty,
                **self.params,
            )[0]
            res.global_per_class[metric] = g.cpu().numpy()
            res.global_[metric] = _nan_mean_np(res.global_per_class[metric])
        return res


def _nan_mean_np(x: np.ndarray) -> float:
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else float("nan")
