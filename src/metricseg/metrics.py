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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from metricseg._checks import as_tensor, check_choice, check_num_classes
from metricseg.counts import FN, FP, TP, confusion
from metricseg.distributed import all_reduce_sum

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
    "score_from_counts",
    "sensitivity",
    "tversky",
]

#: Metric names understood by :func:`score_from_counts`.
METRICS: tuple[str, ...] = ("dice", "jaccard", "tversky", "hamming", "sensitivity", "precision")
#: Values of ``empty``: the score when prediction and target are both empty.
EMPTY_POLICIES: tuple[str, ...] = ("nan", "one", "zero")
#: Values of ``average`` in :func:`aggregate`.
AGGREGATES: tuple[str, ...] = ("class", "macro", "micro", "global_class", "global")
_REDUCTIONS = ("none", "mean", "sum")
_EMPTY_VALUE = {"nan": float("nan"), "one": 1.0, "zero": 0.0}


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


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # den == 0 with the triple not all zero is a one-sided empty case: score 0
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(num.dtype).tiny), 0.0)


def score_from_counts(
    counts: Any,
    metric: str,
    *,
    num_voxels: Any = None,
    alpha: float = 0.5,
    beta: float = 0.5,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
    empty: str = "nan",
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
            ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1`` is Jaccard.
        w_fp, w_fn: Hamming weights of FP and FN.
        empty: score when TP = FP = FN = 0: ``"nan"``, ``"one"`` or ``"zero"``.

    Returns:
        float64 scores of shape ``counts.shape[:-1]``, torch or numpy as ``counts``.

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
    check_choice(metric, "metric", METRICS)
    check_choice(empty, "empty", EMPTY_POLICIES)
    c = counts_t.to(torch.float64)
    tp, fp, fn = c[..., TP], c[..., FP], c[..., FN]
    if metric == "dice":
        score = _ratio(2 * tp, 2 * tp + fp + fn)
    elif metric == "jaccard":
        score = _ratio(tp, tp + fp + fn)
    elif metric == "tversky":
        a, b = _check_positive(alpha, "alpha"), _check_positive(beta, "beta")
        score = _ratio(tp, tp + a * fp + b * fn)
    elif metric == "sensitivity":
        score = _ratio(tp, tp + fn)
    elif metric == "precision":
        score = _ratio(tp, tp + fp)
    else:  # hamming
        wp, wn = _check_positive(w_fp, "w_fp"), _check_positive(w_fn, "w_fn")
        if num_voxels is None:
            n = (tp + fn).sum(-1, keepdim=True)
        else:
            n_t, _ = as_tensor(num_voxels, "num_voxels")
            n = n_t.to(device=c.device, dtype=torch.float64)
            if n.ndim == tp.ndim - 1:
                n = n.unsqueeze(-1)
            try:
                torch.broadcast_shapes(n.shape, tp.shape)
            except RuntimeError:
                raise ValueError(
                    f"num_voxels must have shape {tuple(tp.shape[:-1])} (voxels per image), "
                    f"got {tuple(n_t.shape)}"
                ) from None
            if bool((n < 0).any()):
                raise ValueError(f"num_voxels must be >= 0, got {n_t.tolist()}")
        score = _ratio(n - (wp * fp + wn * fn), n)
        score = torch.where(n > 0, score, 1.0)
    both_empty = (tp == 0) & (fp == 0) & (fn == 0)
    score = torch.where(both_empty, _EMPTY_VALUE[empty], score)
    return score.cpu().numpy() if was_numpy else score


def _select(scores: torch.Tensor, include_background: bool) -> torch.Tensor:
    return scores if include_background else scores[..., 1:]


def _reduce(scores: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice(reduction, "reduction", _REDUCTIONS)
    if reduction == "none":
        return scores
    if reduction == "sum":
        return torch.nansum(scores)
    # macro mean: per class over images, then over classes (NaN left out)
    per_class = torch.nanmean(scores, dim=0) if scores.ndim == 2 else scores
    return torch.nanmean(per_class)


def _metric(
    metric: str,
    pred: Any,
    target: Any,
    num_classes: int | None,
    include_background: bool,
    ignore_index: int | None,
    empty: str,
    reduction: str,
    params: dict[str, float],
    num_voxels: Any = None,
) -> Any:
    """The body of every public metric function: counts, then one score formula."""
    check_choice(empty, "empty", EMPTY_POLICIES)
    check_choice(reduction, "reduction", _REDUCTIONS)
    if target is not None and num_voxels is not None:
        raise ValueError("num_voxels is for counts input (target=None); label maps give N")
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


_SHARED_DOC = """
    Args:
        pred: predicted label map ``(B, *spatial)`` of integers in ``[0, C)``, or a
            boolean mask stack ``(B, C, *spatial)``; or, with ``target=None``,
            counts ``(B, C, 3)`` / ``(C, 3)`` from :func:`~metricseg.counts.confusion`.
            Torch (CPU or CUDA) or numpy.
        target: ground truth of the same kind and shape as ``pred``, or None.
        num_classes: ``C``, background included (required for label maps).
        include_background: keep class 0 in the result (``False`` drops it).
        ignore_index: target label whose voxels are not counted.
        empty: score when prediction and target are both empty for an image and
            class: ``"nan"`` (left out of means), ``"one"`` or ``"zero"``.
        reduction: ``"none"`` gives ``(B, C)`` float64; ``"mean"`` the macro mean
            (per class over images, then over classes; NaN left out); ``"sum"``
            the sum of the non-NaN scores.

    Returns:
        float64 scores, torch or numpy as ``pred``.
"""


def _plain_metric(name: str, doc: str) -> Any:
    """Build the public function of a metric with no parameters of its own."""

    def metric(
        pred: Any,
        target: Any = None,
        *,
        num_classes: int | None = None,
        include_background: bool = True,
        ignore_index: int | None = None,
        empty: str = "nan",
        reduction: str = "none",
    ) -> Any:
        return _metric(
            name, pred, target, num_classes, include_background, ignore_index, empty, reduction, {}
        )

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = doc.replace("{shared}", _SHARED_DOC)
    return metric


dice = _plain_metric(
    "dice",
    r"""Dice score :math:`D = 2TP / (2TP + FP + FN)` per image and class.
    {shared}
    Example:
        >>> import numpy as np
        >>> pred = np.array([[0, 1, 1, 0]])
        >>> gt = np.array([[0, 1, 0, 0]])
        >>> dice(pred, gt, num_classes=3).tolist()  # class 2: both empty -> nan
        [[0.8, 0.6666666666666666, nan]]
        >>> dice(pred, gt, num_classes=3, empty="one", reduction="mean").item()
        0.8222222222222223
    """,
)

jaccard = _plain_metric(
    "jaccard",
    r"""Jaccard index :math:`J = TP / (TP + FP + FN)` per image and class; :math:`J = D/(2-D)`.
    {shared}
    Example:
        >>> import torch
        >>> pred = torch.tensor([[0, 1, 1, 0]])
        >>> gt = torch.tensor([[0, 2, 0, 0]])
        >>> jaccard(pred, gt, num_classes=3)  # class 1 predicted, absent: 0, not NaN
        tensor([[0.6667, 0.0000, 0.0000]], dtype=torch.float64)
    """,
)

sensitivity = _plain_metric(
    "sensitivity",
    r"""Sensitivity (recall) :math:`TP / (TP + FN)`; 0 for a predicted class absent from the target.
    {shared}
    Example:
        >>> import numpy as np
        >>> counts = np.array([[3, 1, 1], [0, 2, 0], [0, 0, 0]])  # (C=3, 3)
        >>> sensitivity(counts).tolist()
        [0.75, 0.0, nan]
    """,
)

precision = _plain_metric(
    "precision",
    r"""Precision :math:`TP / (TP + FP)`; 0 for a target class that was not predicted.
    {shared}
    Example:
        >>> import numpy as np
        >>> counts = np.array([[3, 1, 1], [0, 0, 2], [0, 0, 0]])  # (C=3, 3)
        >>> precision(counts).tolist()
        [0.75, 0.0, nan]
    """,
)


def tversky(
    pred: Any,
    target: Any = None,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: str = "nan",
    reduction: str = "none",
) -> Any:
    r"""Tversky index :math:`TP / (TP + \alpha FP + \beta FN)` (Salehi et al. 2017).

    ``alpha`` weights false positives, ``beta`` false negatives; ½, ½ is Dice and
    1, 1 is Jaccard.
    {shared}
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
    pred: Any,
    target: Any = None,
    *,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
    num_voxels: Any = None,
    num_classes: int | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    empty: str = "nan",
    reduction: str = "none",
) -> Any:
    r"""Weighted Hamming similarity :math:`1 - (w_{FP} FP + w_{FN} FN) / N` per image and class.

    :math:`N` is the number of voxels counted in the image: from label maps or
    masks it is the spatial size minus ignored voxels; from counts it is
    ``num_voxels`` (``(B,)``) or, when None, :math:`\sum_c (TP_c + FN_c)` (right for
    label-map counts over all classes).
    {shared}
    Example:
        >>> import numpy as np
        >>> pred = np.array([[0, 1, 1, 0]])
        >>> gt = np.array([[0, 1, 0, 0]])
        >>> hamming(pred, gt, num_classes=2, w_fp=2.0).tolist()  # class 1: 1 - 2*1/4
        [[0.75, 0.5]]
    """
    kw = {"w_fp": w_fp, "w_fn": w_fn}
    return _metric(
        "hamming",
        pred,
        target,
        num_classes,
        include_background,
        ignore_index,
        empty,
        reduction,
        kw,
        num_voxels,
    )


for _fn in (tversky, hamming):
    _fn.__doc__ = (_fn.__doc__ or "").replace("{shared}", _SHARED_DOC)


def _metric_params(metric: str, params: dict[str, float]) -> dict[str, float]:
    if metric == "tversky":
        return {k: params[k] for k in ("alpha", "beta") if k in params}
    if metric == "hamming":
        return {k: params[k] for k in ("w_fp", "w_fn") if k in params}
    return {}


def aggregate(
    counts: Any,
    metric: str,
    *,
    average: str = "macro",
    num_voxels: Any = None,
    classes: Sequence[int] | None = None,
    empty: str = "nan",
    **params: float,
) -> Any:
    r"""Aggregate a metric over images and classes from per-image counts ``(B, C, 3)``.

    ``average`` (definitions in the module docstring): ``"class"`` → ``(K,)`` mean over
    images per class; ``"macro"`` → mean of those; ``"micro"`` → counts pooled over
    classes per image, mean over images; ``"global_class"`` → ``(K,)`` score of the
    counts pooled over images; ``"global"`` → mean of those. ``K`` is the number of
    ``classes`` kept (default all). NaN (both-empty) cases are left out of means.

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
    if num_voxels is None and metric == "hamming":
        num_voxels = counts_t[..., [TP, FN]].sum((-1, -2))
    if num_voxels is not None:
        num_voxels = as_tensor(num_voxels, "num_voxels")[0].reshape(-1)
    if classes is not None:
        counts_t = counts_t[:, _check_classes(classes, counts_t.shape[1])]
    kw = {"empty": empty, **_metric_params(metric, params)}
    if average in ("class", "macro"):
        s = score_from_counts(counts_t, metric, num_voxels=num_voxels, **kw)
        out = _nanmean(s, 0)
        if average == "macro":
            out = _nanmean(out, 0)
    elif average == "micro":
        s = score_from_counts(counts_t.sum(1), metric, num_voxels=num_voxels, **kw)
        out = _nanmean(s, 0)
    else:
        n_all = None if num_voxels is None else num_voxels.sum().reshape(1)
        out = score_from_counts(counts_t.sum(0, keepdim=True), metric, num_voxels=n_all, **kw)[0]
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
        ignore_index: target label left out of every count.
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
        metrics: Sequence[str] = ("dice", "jaccard"),
        *,
        classes: Sequence[int] | None = None,
        include_background: bool = True,
        ignore_index: int | None = None,
        empty: str = "nan",
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
        self.metrics = [check_choice(m, "metrics", METRICS) for m in metrics]
        if classes is None:
            classes = range(0 if include_background else 1, self.num_classes)
        self.classes = _check_classes(classes, self.num_classes)
        self.ignore_index = ignore_index
        self.empty = check_choice(empty, "empty", EMPTY_POLICIES)
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

    def update(self, pred: Any, target: Any) -> None:
        """Add a batch of label maps ``(B, *spatial)`` or mask stacks ``(B, C, *spatial)``."""
        pred_t, _ = as_tensor(pred, "pred")
        target_t, _ = as_tensor(target, "target")
        counts = confusion(pred_t, target_t, self.num_classes, ignore_index=self.ignore_index)
        is_masks = pred_t.dtype == torch.bool
        self.update_counts(counts, _voxels_per_image(target_t, is_masks, self.ignore_index))

    def update_counts(self, counts: Any, num_voxels: Any) -> None:
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
            kw = _metric_params(metric, self.params)
            s = score_from_counts(kept, metric, num_voxels=nv, empty=self.empty, **kw)
            self.score_sum[i] += torch.nansum(s, 0)
            self.score_n[i] += (~torch.isnan(s)).sum(0)
            sm = score_from_counts(pooled, metric, num_voxels=nv, empty=self.empty, **kw)
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
            kw = _metric_params(metric, self.params)
            g = score_from_counts(
                pooled, metric, num_voxels=st["num_voxels"].reshape(1), empty=self.empty, **kw
            )[0]
            res.global_per_class[metric] = g.cpu().numpy()
            res.global_[metric] = _nan_mean_np(res.global_per_class[metric])
        return res


def _nan_mean_np(x: np.ndarray) -> float:
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else float("nan")
