r"""Mean of per-image scores against the score of pooled counts.

For images :math:`i = 1..B` with counts :math:`(t_i, f_i, n_i)`, the Dice score
of the pooled counts is a **weighted** mean of the per-image scores,

.. math::

    D_{pool} = \frac{2\sum_i t_i}{\sum_i (2t_i + f_i + n_i)}
             = \frac{\sum_i w_i D_i}{\sum_i w_i},\qquad w_i = 2t_i + f_i + n_i,

(and :math:`J_{pool}` likewise with :math:`w_i = t_i + f_i + n_i`), whereas the
per-image mean gives every image weight 1. Large objects dominate the pooled
score; a missed small object costs the per-image mean :math:`1/B` but the pooled
score almost nothing. Both lie between the smallest and the largest per-image
score, and that is all one can say in general: they can be that far apart.
This decides the ``per_image`` choice of the losses and metrics.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from metricseg.theory import _scores
from metricseg.theory._args import check_int

__all__ = ["PoolingComparison", "compare_per_image_and_pooled", "synthetic_disc_counts"]


class PoolingComparison(NamedTuple):
    """Mean of per-image scores and scores of the pooled counts, for Dice and Jaccard."""

    mean_dice: float
    pooled_dice: float
    mean_jaccard: float
    pooled_jaccard: float
    images: int


def compare_per_image_and_pooled(counts: np.ndarray) -> PoolingComparison:
    """Mean per-image Dice/Jaccard against Dice/Jaccard of the summed counts.

    Args:
        counts: ``(B, 3)`` array of ``(TP, FP, FN)`` per image, e.g. one class of
            :func:`metricseg.counts.confusion` ``[:, c]``. Images with
            ``TP + FP + FN = 0`` (empty target and prediction) have no defined
            score and are left out of both.

    Example:
        >>> import numpy as np
        >>> big = (900, 100, 100)    # a large organ, segmented well: D = 0.9
        >>> small = (0, 0, 10)       # a small lesion, missed:          D = 0
        >>> r = compare_per_image_and_pooled(np.array([big, small]))
        >>> round(r.mean_dice, 4), round(r.pooled_dice, 4)
        (0.45, 0.8955)
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"counts must have shape (B, 3) of (TP, FP, FN), got {c.shape}")
    if np.isnan(c).any() or (c < 0).any():
        raise ValueError("counts must be non-negative numbers without NaN")
    c = c[c.sum(1) > 0]
    if len(c) == 0:
        raise ValueError("counts has no image with TP + FP + FN > 0; no score is defined")
    tp, fp, fn = c[:, 0], c[:, 1], c[:, 2]
    pooled = c.sum(0)
    return PoolingComparison(
        mean_dice=float(_scores.dice(tp, fp, fn).mean()),
        pooled_dice=float(_scores.dice(*pooled)),
        mean_jaccard=float(_scores.jaccard(tp, fp, fn).mean()),
        pooled_jaccard=float(_scores.jaccard(*pooled)),
        images=len(c),
    )


def synthetic_disc_counts(
    num_images: int = 200,
    size: int = 128,
    *,
    seed: int = 0,
    min_radius: float = 2.0,
    max_radius: float = 40.0,
    shift: float = 2.0,
    miss_probability: float = 0.1,
) -> np.ndarray:
    """Counts of a simulated segmenter on random discs of widely varying size.

    Each ``size × size`` image holds one disc whose radius is log-uniform in
    ``[min_radius, max_radius]``; the prediction is the same disc moved by a
    random offset of about ``shift`` pixels with a radius off by up to 20 %,
    or nothing at all with probability ``miss_probability``. A fixed boundary
    error costs small discs a larger share of their area, as in real data.

    Returns:
        int64 ``(num_images, 3)`` of ``(TP, FP, FN)``.

    Example:
        >>> synthetic_disc_counts(3, 32, seed=1).shape
        (3, 3)
    """
    check_int(num_images, "num_images", 1)
    check_int(size, "size", 1)
    if not 0 < min_radius <= max_radius:
        raise ValueError(
            f"need 0 < min_radius <= max_radius, got min_radius={min_radius}, "
            f"max_radius={max_radius}"
        )
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((num_images, 3), dtype=np.int64)
    for i in range(num_images):
        r = float(np.exp(rng.uniform(np.log(min_radius), np.log(max_radius))))
        cy, cx = rng.uniform(r, max(size - r, r + 1e-9), size=2)
        target = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if rng.random() < miss_probability:
            pred = np.zeros_like(target)
        else:
            dy, dx = rng.normal(0.0, shift, size=2)
            rp = r * rng.uniform(0.8, 1.2)
            pred = (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= rp * rp
        tp = int(np.count_nonzero(pred & target))
        out[i] = (tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(target)) - tp)
    return out
