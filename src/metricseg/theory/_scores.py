"""Scores from counts, written with arithmetic only so that one function serves
numpy arrays (the exhaustive enumeration) and torch tensors (the gradient-based
adversarial search, where the scores must stay differentiable).

These take counts that are known to be valid (the verifier builds them); the
public, checked metrics live in :mod:`metricseg.metrics`.
"""

from __future__ import annotations

from typing import Any


def dice(tp: Any, fp: Any, fn: Any) -> Any:
    return 2 * tp / (2 * tp + fp + fn)


def jaccard(tp: Any, fp: Any, fn: Any) -> Any:
    return tp / (tp + fp + fn)


def tversky(tp: Any, fp: Any, fn: Any, alpha: float) -> Any:
    return tp / (tp + alpha * fp + (1 - alpha) * fn)


def hamming(fp: Any, fn: Any, num_voxels: Any, w_fp: float, w_fn: float) -> Any:
    return 1 - (w_fp * fp + w_fn * fn) / num_voxels
