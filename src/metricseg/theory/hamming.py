r"""Why no weighting of the Hamming similarity approximates Dice or Jaccard.

The weighted Hamming similarity of an image of :math:`N` voxels is

.. math:: H = 1 - \frac{w_{fp} f + w_{fn} n}{N},

which is what weighted cross-entropy optimises in the hard limit. It does not
look at the true positives at all. So an image with no true positive and a
fixed number of errors in a growing background has

.. math::

    t = 0,\ f = f_0,\ n = n_0:\qquad D = J = 0,\qquad
    H = 1 - \frac{w_{fp} f_0 + w_{fn} n_0}{N} \xrightarrow[N\to\infty]{} 1

for any fixed weights, so neither :math:`|H - D|` nor :math:`(1 - D)/(1 - H)`
is bounded: no absolute and no relative approximation exists. The case
``fp=0, fn=P`` is the everyday one: a small object of ``P`` voxels that the
prediction misses entirely.

Weights set per image from the class frequencies (:math:`w_{fn} = N/(2P)`,
:math:`w_{fp} = N/(2(N - P))` for a target of :math:`P` voxels, i.e. balanced
accuracy) rule that family out but fail through the false positives instead
(:func:`inverse_frequency_counterexample`).

The converse does not exist: :math:`1 - H \le \max(w_{fp}, w_{fn})(1 - J)`
(:func:`metricseg.theory.bounds.hamming_loss_bound`), so a Dice or Jaccard
score near 1 forces a Hamming similarity near 1 for any fixed weights.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from metricseg.theory import _scores
from metricseg.theory._args import check_int, check_weight

__all__ = [
    "HammingCase",
    "hamming_counterexample",
    "hamming_counterexample_family",
    "inverse_frequency_counterexample",
]


class HammingCase(NamedTuple):
    """One image of the counterexample family: its counts and scores."""

    tp: int
    fp: int
    fn: int
    tn: int
    hamming: float
    dice: float
    jaccard: float


def hamming_counterexample(
    num_voxels: int, *, fp: int = 1, fn: int = 1, w_fp: float = 1.0, w_fn: float = 1.0
) -> HammingCase:
    r"""An image of ``num_voxels`` voxels with no true positive, ``fp`` false
    positives and ``fn`` false negatives; its Dice and Jaccard are 0 while its
    Hamming similarity is :math:`1 - (w_{fp} f + w_{fn} n)/N`.

    Args:
        num_voxels: image size :math:`N`, at least ``fp + fn``.
        fp, fn: numbers of errors, at least one in all.
        w_fp, w_fn: Hamming weights of false positives and false negatives (>= 0).

    Example:
        >>> c = hamming_counterexample(1000, fp=1, fn=1)
        >>> c.hamming, c.dice, c.jaccard
        (0.998, 0.0, 0.0)
    """
    fp = check_int(fp, "fp", 0)
    fn = check_int(fn, "fn", 0)
    if fp + fn == 0:
        raise ValueError("fp + fn must be at least 1 (with no error and no TP the image is empty)")
    n = check_int(num_voxels, "num_voxels", fp + fn)
    w_fp = check_weight(w_fp, "w_fp")
    w_fn = check_weight(w_fn, "w_fn")
    h = float(_scores.hamming(0, fp, fn, n, w_fp, w_fn))
    return HammingCase(0, fp, fn, n - fp - fn, h, 0.0, 0.0)


def hamming_counterexample_family(
    sizes: np.ndarray | list[int],
    *,
    fp: int = 1,
    fn: int = 1,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
) -> dict[str, np.ndarray]:
    """The family :func:`hamming_counterexample` over image sizes ``sizes`` (1-D).

    Returns:
        dict of 1-D float64 arrays ``num_voxels``, ``hamming``, ``dice``,
        ``jaccard``, one entry per size.

    Example:
        >>> fam = hamming_counterexample_family([10, 100, 1000], w_fp=2.0, w_fn=0.5)
        >>> fam["hamming"].tolist(), fam["dice"].tolist()
        ([0.75, 0.975, 0.9975], [0.0, 0.0, 0.0])
    """
    cases = [
        hamming_counterexample(int(s), fp=fp, fn=fn, w_fp=w_fp, w_fn=w_fn)
        for s in np.asarray(sizes).reshape(-1)
    ]
    return {
        "num_voxels": np.array([c.tp + c.fp + c.fn + c.tn for c in cases], dtype=np.float64),
        "hamming": np.array([c.hamming for c in cases], dtype=np.float64),
        "dice": np.array([c.dice for c in cases], dtype=np.float64),
        "jaccard": np.array([c.jaccard for c in cases], dtype=np.float64),
    }


def inverse_frequency_counterexample(num_voxels: int, object_voxels: int = 1) -> HammingCase:
    r"""An image where inverse-frequency weights give Hamming near 1 and Dice near 0.

    The target has ``object_voxels`` = :math:`P` voxels; the weights are
    :math:`w_{fn} = N/(2P)`, :math:`w_{fp} = N/(2(N-P))`, so that
    :math:`H = \tfrac12(\text{recall} + \text{specificity})`. The prediction
    finds the whole object and adds :math:`f = \lceil\sqrt N\rceil` false positives:

    .. math::

        H = 1 - \frac{f}{2(N - P)} \to 1,\qquad D = \frac{2P}{2P + f} \to 0
        \quad (N \to \infty,\ P \text{ fixed}).

    Example:
        >>> c = inverse_frequency_counterexample(10**8, 10)
        >>> round(c.hamming, 5), round(c.dice, 5)
        (0.99995, 0.002)
    """
    p = check_int(object_voxels, "object_voxels", 1)
    n = check_int(num_voxels, "num_voxels", p + 1)
    fp = min(math.isqrt(n - 1) + 1, n - p)  # ceil(sqrt(N)), at most the background
    w_fp = n / (2 * (n - p))
    h = float(_scores.hamming(p, fp, 0, n, w_fp, 0.0))
    return HammingCase(
        p, fp, 0, n - p - fp, h, float(_scores.dice(p, fp, 0)), float(_scores.jaccard(p, fp, 0))
    )
