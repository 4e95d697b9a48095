"""The theory's scores, from the one scoring path: :func:`metricseg.metrics.score_from_counts`.

The verifier and the counterexamples hold ``tp``, ``fp``, ``fn`` as separate
numbers or arrays: numpy arrays in the exhaustive enumeration, torch tensors with
gradients in the adversarial search. These names hand them to
:func:`~metricseg.metrics.score_from_tp_fp_fn`, the formulas of
:func:`~metricseg.metrics.score_from_counts` on counts given apart, so
the theory checks the very formulas (and the one Tversky parametrisation,
``alpha`` on FP and ``beta`` on FN) that the metrics and the bench use. Torch
inputs keep their autograd graph; numpy inputs and numbers give numpy (float64).

The counts built here are never all zero (every enumerated image has
``t + f + n >= 1``; soft counts are positive), so the empty policy does not arise.
"""

from __future__ import annotations

from typing import Any

from metricseg.metrics import score_from_tp_fp_fn

__all__ = ["dice", "hamming", "jaccard", "tversky"]


def dice(tp: Any, fp: Any, fn: Any) -> Any:
    """Dice score of counts (numbers, numpy arrays or torch tensors)."""
    return score_from_tp_fp_fn(tp, fp, fn, "dice")


def jaccard(tp: Any, fp: Any, fn: Any) -> Any:
    """Jaccard index of counts."""
    return score_from_tp_fp_fn(tp, fp, fn, "jaccard")


def tversky(tp: Any, fp: Any, fn: Any, alpha: float, beta: float) -> Any:
    """Tversky index, ``alpha`` on FP and ``beta`` on FN (the theory's :math:`T_\\alpha`
    has ``beta = 1 - alpha``)."""
    return score_from_tp_fp_fn(tp, fp, fn, "tversky", alpha=alpha, beta=beta)


def hamming(tp: Any, fp: Any, fn: Any, num_voxels: Any, w_fp: float, w_fn: float) -> Any:
    """Weighted Hamming similarity of an image of ``num_voxels`` voxels."""
    return score_from_tp_fp_fn(tp, fp, fn, "hamming", num_voxels=num_voxels, w_fp=w_fp, w_fn=w_fn)
