r"""Per-case, per-class scores of a predicted label map, plus object statistics.

From the hard counts of :func:`metricseg.counts.confusion`,

.. math::

    D = \frac{2TP}{2TP + FP + FN},\quad
    J = \frac{TP}{TP + FP + FN},\quad
    T_{\alpha\beta} = \frac{TP}{TP + \alpha FP + \beta FN},\quad
    H = 1 - \frac{FP + FN}{N},

with :math:`N` the number of voxels. When a class is absent from both the
prediction and the target, Dice, Jaccard and Tversky are undefined and stored
as NaN (the statistics leave such rows out); Hamming is then 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metricseg.counts import FN, FP, TP, confusion

__all__ = ["TVERSKY_ALPHA", "TVERSKY_BETA", "case_rows", "foreground_dice", "object_sizes"]

#: Tversky weights used in the reports: false negatives cost more than false positives.
TVERSKY_ALPHA = 0.3
TVERSKY_BETA = 0.7


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def object_sizes(label: np.ndarray, num_classes: int) -> list[tuple[int, float]]:
    """Per class: ``(number of connected objects, mean object size in voxels)``.

    Objects are face-connected components (``scipy.ndimage.label``). A class with
    no voxel gives ``(0, nan)``.

    Example:
        >>> import numpy as np
        >>> lab = np.array([[1, 1, 0, 1], [0, 0, 0, 0]])
        >>> object_sizes(lab, 2)
        [(1, 5.0), (2, 1.5)]
    """
    from scipy import ndimage

    out: list[tuple[int, float]] = []
    for c in range(num_classes):
        mask = label == c
        voxels = int(mask.sum())
        if voxels == 0:
            out.append((0, math.nan))
            continue
        _, n = ndimage.label(mask)
        out.append((int(n), voxels / int(n)))
    return out


def case_rows(
    pred: np.ndarray,
    label: np.ndarray,
    num_classes: int,
    *,
    case_id: str,
    class_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per class with counts, Dice, Jaccard, Tversky, Hamming and object statistics.

    Args:
        pred: predicted label map ``(*spatial)`` of ints in ``[0, num_classes)``.
        label: target label map of the same shape.
        num_classes: classes, background included.
        case_id: stored in every row.
        class_names: one per class (default ``"class<c>"``).

    Example:
        >>> import numpy as np
        >>> rows = case_rows(np.array([[0, 1, 1, 0]]), np.array([[0, 1, 0, 0]]), 2, case_id="a")
        >>> rows[1]["dice"], rows[1]["jaccard"], rows[1]["hamming"]
        (0.6666666666666666, 0.5, 0.75)
    """
    if pred.shape != label.shape:
        raise ValueError(f"pred shape {pred.shape} differs from label shape {label.shape}")
    counts = confusion(pred[None], label[None], num_classes)[0]
    voxels = int(label.size)
    names = class_names or [f"class{c}" for c in range(num_classes)]
    sizes = object_sizes(label, num_classes)
    rows = []
    for c in range(num_classes):
        tp, fp, fn = (int(counts[c, k]) for k in (TP, FP, FN))
        n_obj, mean_size = sizes[c]
        rows.append(
            {
                "case": case_id,
                "class_index": c,
                "class_name": names[c],
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "voxels": voxels,
                "target_voxels": tp + fn,
                "pred_voxels": tp + fp,
                "foreground_ratio": (tp + fn) / voxels,
                "objects": n_obj,
                "mean_object_size": mean_size,
                "dice": _ratio(2 * tp, 2 * tp + fp + fn),
                "jaccard": _ratio(tp, tp + fp + fn),
                "tversky": _ratio(tp, tp + TVERSKY_ALPHA * fp + TVERSKY_BETA * fn),
                "hamming": 1.0 - (fp + fn) / voxels,
            }
        )
    return rows


def foreground_dice(pred: np.ndarray, label: np.ndarray, num_classes: int) -> float:
    """Mean Dice over the foreground classes present in ``pred`` or ``label`` (NaN if none).

    Example:
        >>> import numpy as np
        >>> foreground_dice(np.array([[0, 1, 2, 2]]), np.array([[0, 1, 2, 0]]), 3)
        0.8333333333333333
    """
    counts = confusion(pred[None], label[None], num_classes)[0, 1:]
    den = 2 * counts[:, TP] + counts[:, FP] + counts[:, FN]
    present = den > 0
    if not present.any():
        return math.nan
    return float(np.mean(2 * counts[present, TP] / den[present]))
