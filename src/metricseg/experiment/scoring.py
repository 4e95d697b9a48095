r"""Per-case, per-class rows of a run: counts, scores from the one scoring path, object statistics.

Counts come from :func:`metricseg.counts.confusion` and every score from
:func:`metricseg.metrics.score_from_counts` with its defaults for empty masks
(``empty="nan"``: a class absent from both prediction and target has no score;
absent from one side only it scores 0). The Tversky column names its weights
(α on FP, β on FN), so nobody reads it as the library's default ½, ½.

A stored row keeps TP, FP, FN and the voxel count, so a result file can be rescored
(:func:`rescore_rows`) when the columns change, without training again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metricseg.counts import FN, FP, TP, confusion
from metricseg.metrics import score_from_counts

__all__ = [
    "SCORE_COLUMNS",
    "TVERSKY_COLUMN",
    "TVERSKY_WEIGHTS",
    "case_rows",
    "object_sizes",
    "rescore_rows",
    "run_case_scores",
    "run_test_score",
    "score_columns",
]

#: Tversky weights of the report: false negatives cost more than false positives.
TVERSKY_WEIGHTS = (0.3, 0.7)
#: The Tversky column, named with its weights.
TVERSKY_COLUMN = f"tversky_a{TVERSKY_WEIGHTS[0]}_b{TVERSKY_WEIGHTS[1]}"
#: Score columns of every row, in order: column name -> (metric, parameters).
SCORE_COLUMNS: dict[str, tuple[str, dict[str, float]]] = {
    "dice": ("dice", {}),
    "jaccard": ("jaccard", {}),
    TVERSKY_COLUMN: ("tversky", {"alpha": TVERSKY_WEIGHTS[0], "beta": TVERSKY_WEIGHTS[1]}),
    "hamming": ("hamming", {}),
    "sensitivity": ("sensitivity", {}),
    "precision": ("precision", {}),
}


def score_columns(counts: np.ndarray, num_voxels: int) -> dict[str, np.ndarray]:
    """Every score column for counts ``(C, 3)`` of one case with ``num_voxels`` voxels.

    Example:
        >>> cols = score_columns(np.array([[2, 1, 1], [1, 1, 1]]), 4)
        >>> round(float(cols["dice"][1]), 4), round(float(cols["hamming"][1]), 4)
        (0.5, 0.5)
    """
    counts = np.asarray(counts, dtype=np.int64)
    return {
        column: score_from_counts(
            counts[None], metric, num_voxels=np.array([num_voxels]), **params
        )[0]
        for column, (metric, params) in SCORE_COLUMNS.items()
    }


def object_sizes(label: np.ndarray, num_classes: int) -> list[tuple[int, float]]:
    """Per class: ``(number of connected objects, mean object size in voxels)``.

    Objects are face-connected components (``scipy.ndimage.label``). A class with
    no voxel gives ``(0, nan)``.

    Example:
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
    subject: str | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
) -> list[dict[str, Any]]:
    """One row per class: counts, every score column, and object statistics of the target.

    Args:
        pred: predicted label map ``(*spatial)`` of ints in ``[0, num_classes)``.
        label: target label map of the same shape.
        num_classes: classes, background included.
        case_id: stored in every row.
        subject: the case's subject (default: the case itself).
        class_names: one per class (default ``"class<c>"``).
        ignore_index: a label value (``>= num_classes``, e.g. nnU-Net's ``"ignore"``
            label) whose voxels are left out: of the counts and of ``voxels``.

    Example:
        >>> rows = case_rows(np.array([[0, 1, 1, 0]]), np.array([[0, 1, 0, 0]]), 2, case_id="a")
        >>> rows[1]["dice"], rows[1]["jaccard"], rows[1]["hamming"]
        (0.6666666666666666, 0.5, 0.75)
    """
    if pred.shape != label.shape:
        raise ValueError(f"pred shape {pred.shape} differs from label shape {label.shape}")
    counts = np.asarray(
        confusion(pred[None], label[None], num_classes, ignore_index=ignore_index)[0]
    )
    voxels = int(label.size if ignore_index is None else np.count_nonzero(label != ignore_index))
    names = (
        list(class_names) if class_names is not None else [f"class{c}" for c in range(num_classes)]
    )
    sizes = object_sizes(label, num_classes)
    scores = score_columns(counts, voxels)
    rows = []
    for c in range(num_classes):
        tp, fp, fn = (int(counts[c, k]) for k in (TP, FP, FN))
        n_obj, mean_size = sizes[c]
        rows.append(
            {
                "case": case_id,
                "subject": subject if subject is not None else case_id,
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
                **{column: float(values[c]) for column, values in scores.items()},
            }
        )
    return rows


def rescore_rows(
    rows: Sequence[Mapping[str, Any]], subjects: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Rows of an older result file with every score column recomputed from their counts.

    Rows are grouped by case (all classes of a case share ``voxels``); columns that
    are no longer scores (a bare ``tversky`` of the first format) are dropped.
    ``subjects`` maps case ids to subjects for rows that lack one.
    """
    by_case: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(str(row["case"]), []).append(row)
    out = []
    for case, group in by_case.items():
        group = sorted(group, key=lambda r: int(r["class_index"]))
        if [int(r["class_index"]) for r in group] != list(range(len(group))):
            raise ValueError(f"case {case!r}: rows do not hold every class 0..C-1 once")
        counts = np.array([[r["tp"], r["fp"], r["fn"]] for r in group], dtype=np.int64)
        scores = score_columns(counts, int(group[0]["voxels"]))
        for c, row in enumerate(group):
            new = {k: v for k, v in row.items() if k != "tversky"}
            new.setdefault("subject", (subjects or {}).get(case, case))
            new.update({column: float(values[c]) for column, values in scores.items()})
            out.append(new)
    return out


def run_case_scores(result: Mapping[str, Any], metric: str = "dice") -> dict[str, float]:
    """The score of every test case of one run's result, by case
    (:func:`metricseg.experiment.stats.case_score`: the mean over the foreground classes
    present in the target; NaN for an empty target)."""
    from metricseg.experiment.stats import case_score

    by_case: dict[str, list[Mapping[str, Any]]] = {}
    for row in result["rows"]:
        by_case.setdefault(str(row["case"]), []).append(row)
    return {case: case_score(rows, metric) for case, rows in by_case.items()}


def run_test_score(result: Mapping[str, Any], metric: str = "dice") -> float:
    """Mean case score over the run's test cases with a foreground target: the progress
    line's test Dice, computed as the report computes it."""
    scores = [s for s in run_case_scores(result, metric).values() if not math.isnan(s)]
    return float(np.mean(scores)) if scores else math.nan
