r"""Closed-form relations between the Dice score, the Jaccard index and the Tversky index.

All scores here are functions of the counts of one image (or of counts pooled
over a batch): true positives :math:`t`, false positives :math:`f` and false
negatives :math:`n`,

.. math::

    D = \frac{2t}{2t + f + n},\qquad
    J = \frac{t}{t + f + n},\qquad
    T_\alpha = \frac{t}{t + \alpha f + \beta n},\quad \beta = 1 - \alpha,

with :math:`\alpha` weighting false positives and :math:`\beta` false negatives
(Salehi et al. 2017). The relations hold for any real :math:`t, f, n \ge 0`
with :math:`t + f + n > 0`, so they hold for hard counts and for the soft counts
of the soft relaxations (:func:`metricseg.counts.soft_counts` with
``squared=False``) alike. Derivations: ``docs/theory.md``.

Every function accepts Python floats, numpy arrays or torch tensors (it only
uses arithmetic) and checks that its inputs lie in the stated range.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from metricseg.theory._args import check_weight

__all__ = [
    "DICE_AT_MAX_GAP",
    "JACCARD_AT_MAX_GAP",
    "MAX_DICE_JACCARD_GAP",
    "TverskyWorstCase",
    "dice_from_jaccard",
    "dice_jaccard_gap",
    "dice_loss_bounds",
    "hamming_loss_bound",
    "jaccard_from_dice",
    "tversky_dice_max_gap",
    "tversky_dice_ratio_range",
    "tversky_dice_worst_case",
]

#: The largest value of :math:`D - J` over all images: :math:`3 - 2\sqrt2 \approx 0.1716`.
MAX_DICE_JACCARD_GAP: float = 3.0 - 2.0 * math.sqrt(2.0)
#: The Jaccard index where :math:`D - J` is largest: :math:`\sqrt2 - 1 \approx 0.4142`.
JACCARD_AT_MAX_GAP: float = math.sqrt(2.0) - 1.0
#: The Dice score where :math:`D - J` is largest: :math:`2 - \sqrt2 \approx 0.5858`.
DICE_AT_MAX_GAP: float = 2.0 - math.sqrt(2.0)


def _check_unit_interval(x: Any, name: str) -> None:
    if isinstance(x, torch.Tensor):
        lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
        bad_nan = bool(torch.isnan(x).any())
    else:
        arr = np.asarray(x, dtype=np.float64)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        bad_nan = bool(np.isnan(arr).any())
    if bad_nan or lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1], got values from {lo} to {hi}"
            + (" (NaN present)" if bad_nan else "")
        )


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a float in [0, 1], got {alpha!r}")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (beta = 1 - alpha), got {alpha}")
    return alpha


def dice_from_jaccard(jaccard: Any) -> Any:
    r"""The Dice score of an image whose Jaccard index is ``jaccard``.

    .. math:: D = \frac{2J}{1 + J}

    Exact per image and for pooled counts; **not** for means over images
    (:math:`D` is concave in :math:`J`, so the mean Dice is at most
    ``dice_from_jaccard(mean Jaccard)``, by Jensen's inequality).

    Args:
        jaccard: float, numpy array or torch tensor of values in [0, 1], any shape.

    Returns:
        Dice scores of the same kind and shape.

    Example:
        >>> dice_from_jaccard(0.5)
        0.6666666666666666
    """
    _check_unit_interval(jaccard, "jaccard")
    return 2 * jaccard / (1 + jaccard)


def jaccard_from_dice(dice: Any) -> Any:
    r"""The Jaccard index of an image whose Dice score is ``dice``.

    .. math:: J = \frac{D}{2 - D}

    Args:
        dice: float, numpy array or torch tensor of values in [0, 1], any shape.

    Returns:
        Jaccard indices of the same kind and shape.

    Example:
        >>> jaccard_from_dice(0.5)   # 0.5 / 1.5
        0.3333333333333333
    """
    _check_unit_interval(dice, "dice")
    return dice / (2 - dice)


def dice_jaccard_gap(jaccard: Any) -> Any:
    r"""The gap :math:`D - J` as a function of :math:`J`.

    .. math:: D - J = \frac{J(1 - J)}{1 + J} \in [0,\ 3 - 2\sqrt2],

    largest at :math:`J = \sqrt2 - 1` (:math:`D = 2 - \sqrt2`), zero at
    :math:`J \in \{0, 1\}`.

    Example:
        >>> round(dice_jaccard_gap(JACCARD_AT_MAX_GAP), 12) == round(MAX_DICE_JACCARD_GAP, 12)
        True
    """
    _check_unit_interval(jaccard, "jaccard")
    return jaccard * (1 - jaccard) / (1 + jaccard)


def dice_loss_bounds(jaccard_loss: Any) -> tuple[Any, Any]:
    r"""The interval that the Dice loss :math:`1 - D` lies in, given the Jaccard loss.

    .. math:: \frac{1 - J}{2} \;\le\; 1 - D \;\le\; 1 - J

    The lower end is approached as :math:`t/(f + n) \to \infty`, the upper end is
    reached at :math:`t = 0`. Both ends are linear, so the bound carries over
    to expectations over images (risks): :math:`\tfrac12 E[1-J] \le E[1-D] \le E[1-J]`.

    Returns:
        ``(lower, upper)`` of the same kind as ``jaccard_loss``.

    Example:
        >>> dice_loss_bounds(0.5)
        (0.25, 0.5)
    """
    _check_unit_interval(jaccard_loss, "jaccard_loss")
    return jaccard_loss / 2, jaccard_loss


def tversky_dice_ratio_range(alpha: float) -> tuple[float, float]:
    r"""The infimum and supremum of :math:`T_\alpha / D` over all images with :math:`t > 0`.

    .. math::

        \frac{1}{2\max(\alpha, \beta)} \;\le\; \frac{T_\alpha}{D} \;\le\;
        \frac{1}{2\min(\alpha, \beta)}

    Neither end is reached for :math:`\alpha \ne \tfrac12`; they are approached as
    the false positives (weight :math:`\alpha`) or the false negatives (weight
    :math:`\beta`) outnumber the true positives without limit. The width of the
    range grows monotonically with :math:`|\alpha - \tfrac12|`; at :math:`\alpha
    \in \{0, 1\}` the ratio is unbounded above (``inf``).

    Example:
        >>> [round(r, 6) for r in tversky_dice_ratio_range(0.7)]   # 1/1.4, 1/0.6
        [0.714286, 1.666667]
    """
    alpha = _check_alpha(alpha)
    lo_w, hi_w = min(alpha, 1.0 - alpha), max(alpha, 1.0 - alpha)
    return 1.0 / (2.0 * hi_w), (math.inf if lo_w == 0.0 else 1.0 / (2.0 * lo_w))


def _gap_for_weight(c: float) -> float:
    # worst |T - D| along the edge where only the errors of weight c/2 occur
    s = math.sqrt(c)
    return abs(s - 1.0) / (s + 1.0)


def tversky_dice_max_gap(alpha: float) -> float:
    r"""The largest :math:`|T_\alpha - D|` over all images.

    .. math::

        \max |T_\alpha - D| = \frac{1 - \sqrt{2m}}{1 + \sqrt{2m}},
        \qquad m = \min(\alpha, 1 - \alpha),

    reached (in the limit of exact irrational ratios) with no errors of the
    larger weight and :math:`(\text{errors of weight } m)/t = \sqrt{2/m}`,
    where :math:`D = \sqrt{2m}/(1 + \sqrt{2m})` and :math:`T_\alpha > D`. It is
    0 at :math:`\alpha = \tfrac12`, grows monotonically with
    :math:`|\alpha - \tfrac12|` and tends to 1 as :math:`m \to 0`.

    Example:
        >>> round(tversky_dice_max_gap(0.9), 6)   # (3 - sqrt 5) / 2
        0.381966
        >>> tversky_dice_max_gap(0.5)
        0.0
    """
    alpha = _check_alpha(alpha)
    return _gap_for_weight(2.0 * min(alpha, 1.0 - alpha))


class TverskyWorstCase(NamedTuple):
    """Where :math:`|T_\\alpha - D|` is largest (see :func:`tversky_dice_worst_case`)."""

    gap: float
    dice: float
    tversky: float
    fp_per_tp: float
    fn_per_tp: float


def tversky_dice_worst_case(alpha: float) -> TverskyWorstCase:
    r"""The counts ratios, Dice and Tversky scores at the largest :math:`|T_\alpha - D|`.

    With :math:`t = 1`, errors of the smaller weight :math:`m` only, in number
    :math:`x = 2/\sqrt{2m}`: :math:`D = 2/(2 + x)`, :math:`T = 1/(1 + m x)`.
    At :math:`\alpha = \tfrac12` every image is a worst case (gap 0); this
    returns the one with :math:`f = n = 0`.

    Example:
        >>> w = tversky_dice_worst_case(0.9)
        >>> round(w.fn_per_tp, 4), w.fp_per_tp, round(w.tversky - w.dice, 6)
        (4.4721, 0.0, 0.381966)
    """
    alpha = _check_alpha(alpha)
    m = min(alpha, 1.0 - alpha)
    if alpha == 0.5:
        return TverskyWorstCase(0.0, 1.0, 1.0, 0.0, 0.0)
    if m == 0.0:
        # errors of weight 0 without limit: T = 1 while D -> 0
        x = math.inf
        dice, tversky = 0.0, 1.0
    else:
        x = 2.0 / math.sqrt(2.0 * m)
        dice, tversky = 2.0 / (2.0 + x), 1.0 / (1.0 + m * x)
    fp, fn = (x, 0.0) if alpha < 0.5 else (0.0, x)
    return TverskyWorstCase(abs(tversky - dice), dice, tversky, fp, fn)


def hamming_loss_bound(w_fp: float, w_fn: float) -> float:
    r"""The constant :math:`k` in :math:`1 - H \le k\,(1 - J) \le 2k\,(1 - D)`.

    With the weighted Hamming similarity :math:`H = 1 - (w_{fp} f + w_{fn} n)/N`
    over :math:`N \ge t + f + n` voxels,

    .. math:: 1 - H \le \max(w_{fp}, w_{fn})\,\frac{f + n}{t + f + n} = k\,(1 - J),

    with equality when there are no true negatives and only errors of the larger
    weight. This is the only direction that exists: a small Jaccard or Dice loss
    forces a small Hamming loss, but no weights make a small Hamming loss force a
    small Dice loss (see :mod:`metricseg.theory.hamming`).

    Example:
        >>> hamming_loss_bound(1.0, 0.5)
        1.0
    """
    return max(check_weight(w_fp, "w_fp"), check_weight(w_fn, "w_fn"))
