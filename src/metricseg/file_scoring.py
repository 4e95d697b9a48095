r"""Evaluate predicted label images against ground truth files: the engine of ``metricseg evaluate``.

Cases are matched by file name without the image suffix (``case_01.nii.gz`` in
the prediction folder pairs with ``case_01.nii`` or ``case_01.nii.gz`` in the
ground-truth folder). For each case the two images must have the same shape,
and, where both formats carry geometry (NIfTI, NRRD, MHA), the same spacing,
origin and direction within a tolerance. Each case is read once and counted with
:func:`metricseg.counts.confusion`; scores and aggregates come from
:mod:`metricseg.metrics`.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metricseg.atomic import atomic_write_text
from metricseg.counts import confusion
from metricseg.io import (
    GEOMETRY_SUFFIXES,
    ImageReadError,
    check_geometry,
    read_image,
    strip_image_suffix,
)
from metricseg.metrics import (
    AggregateResult,
    MetricAccumulator,
    _metric_params,
    score_from_counts,
)

__all__ = [
    "CaseCounts",
    "EvaluationError",
    "EvaluationResult",
    "count_case",
    "evaluate_pairs",
    "match_cases",
    "write_case_csv",
]


class EvaluationError(ValueError):
    """A case could not be evaluated; the message names the file and the problem."""


@dataclass
class CaseCounts:
    """Counts of one case: ``counts`` ``(C_case, 3)`` int64 and the voxels counted."""

    name: str
    pred_path: Path
    gt_path: Path
    counts: np.ndarray
    num_voxels: int


@dataclass
class EvaluationResult:
    """Per-case counts and scores, the aggregate, and the cases that failed."""

    num_classes: int
    labels: list[int]
    metrics: list[str]
    cases: list[CaseCounts] = field(default_factory=list)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (cases, labels)
    summary: AggregateResult | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)  # (case, message)


def _image_files(folder: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    files: dict[str, Path] = {}
    problems: list[tuple[str, str]] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        case = strip_image_suffix(p.name)
        if case is None:
            continue
        if case in files:
            problems.append(
                (case, f"{p}: two files for case {case!r} ({files[case].name}, {p.name})")
            )
            continue
        files[case] = p
    return files, problems


def match_cases(
    pred: str | os.PathLike[str], gt: str | os.PathLike[str]
) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, str]]]:
    """Pair prediction and ground-truth files by case name.

    ``pred`` and ``gt`` are two folders or two files. Returns ``(pairs, problems)``:
    pairs ``(case, pred_path, gt_path)`` sorted by case, and ``(case, message)``
    for every case that has no partner or is ambiguous.

    Raises:
        FileNotFoundError: ``pred`` or ``gt`` does not exist.
        EvaluationError: one is a file and the other a folder, or a folder holds no images.
    """
    pred_p, gt_p = Path(pred), Path(gt)
    for what, p in (("prediction", pred_p), ("ground truth", gt_p)):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder ({what})")
    if pred_p.is_file() and gt_p.is_file():
        case = strip_image_suffix(gt_p.name) or gt_p.name
        return [(case, pred_p, gt_p)], []
    if pred_p.is_dir() != gt_p.is_dir():
        raise EvaluationError(
            f"PRED and GT must be two folders or two files, got {pred_p} "
            f"({'folder' if pred_p.is_dir() else 'file'}) and {gt_p} "
            f"({'folder' if gt_p.is_dir() else 'file'})"
        )
    pred_files, problems = _image_files(pred_p)
    gt_files, gt_problems = _image_files(gt_p)
    problems += gt_problems
    if not gt_files:
        raise EvaluationError(
            f"{gt_p}: no ground-truth images (.nii.gz, .nrrd, .mha, .png, .tif …)"
        )
    pairs = []
    for case in sorted(gt_files):
        if case in pred_files:
            pairs.append((case, pred_files[case], gt_files[case]))
        else:
            problems.append(
                (case, f"{gt_files[case]}: no prediction for case {case!r} in {pred_p}")
            )
    for case in sorted(set(pred_files) - set(gt_files)):
        problems.append((case, f"{pred_files[case]}: no ground truth for case {case!r} in {gt_p}"))
    return pairs, problems


def _as_labels(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind == "b":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not (array == np.round(array)).all():
            raise EvaluationError(f"{path}: not a label image (holds non-integer values)")
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise EvaluationError(f"{path}: not a label image (pixel type {array.dtype})")
    if array.size and array.min() < 0:
        raise EvaluationError(f"{path}: holds negative label {int(array.min())}")
    return array.astype(np.int64, copy=False)


def count_case(
    case: str,
    pred_path: Path,
    gt_path: Path,
    *,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    geometry_tolerance: float | None = 1e-3,
) -> CaseCounts:
    """Read one pair of files, check them, and count TP, FP, FN per class.

    ``num_classes=None`` counts classes up to the largest label in the two
    images; the caller pads to a common number. ``geometry_tolerance=None``
    skips the geometry check.

    Raises:
        FileNotFoundError, EvaluationError (an ``ImageReadError`` is one): the
        message names the file and the problem.
    """
    pred_arr, pred_geom = read_image(pred_path)
    gt_arr, gt_geom = read_image(gt_path)
    if pred_arr.shape != gt_arr.shape:
        raise EvaluationError(
            f"{pred_path}: shape {pred_arr.shape} differs from ground truth {gt_path} "
            f"shape {gt_arr.shape}"
        )
    geo_formats = all(
        any(p.name.lower().endswith(s) for s in GEOMETRY_SUFFIXES) for p in (pred_path, gt_path)
    )
    if geometry_tolerance is not None and geo_formats:
        problem = check_geometry(
            pred_geom, gt_geom, atol=geometry_tolerance, names=("prediction", "ground truth")
        )
        if problem:
            raise EvaluationError(f"{pred_path}: {problem} ({gt_path})")
    pred_l = _as_labels(pred_arr, pred_path)
    gt_l = _as_labels(gt_arr, gt_path)
    valid_gt = gt_l if ignore_index is None else gt_l[gt_l != ignore_index]
    seen = max(int(pred_l.max(initial=0)), int(valid_gt.max(initial=0))) + 1
    if num_classes is None:
        c = seen
    else:
        c = num_classes
        if seen > c:
            bad_path = pred_path if int(pred_l.max(initial=0)) >= c else gt_path
            raise EvaluationError(
                f"{bad_path}: holds label {seen - 1}, outside [0, {c - 1}] for --num-classes {c}"
            )
    counts = confusion(pred_l[None], gt_l[None], c, ignore_index=ignore_index)[0]
    n = gt_l.size - (0 if ignore_index is None else int((gt_l == ignore_index).sum()))
    return CaseCounts(case, pred_path, gt_path, counts.astype(np.int64), int(n))


def evaluate_pairs(
    pairs: Sequence[tuple[str, Path, Path]],
    *,
    metrics: Sequence[str] = ("dice", "jaccard"),
    labels: Sequence[int] | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    empty: str = "nan",
    geometry_tolerance: float | None = 1e-3,
    keep_going: bool = False,
    failures: Sequence[tuple[str, str]] = (),
    **params: float,
) -> EvaluationResult:
    """Count every case, then score and aggregate over the ones that could be read.

    Args:
        pairs: ``(case, pred_path, gt_path)`` from :func:`match_cases`.
        metrics: metric names (:data:`metricseg.metrics.METRICS`).
        labels: classes to report; default every foreground label ``1..C-1``.
        num_classes: ``C``; default the largest label seen in any case + 1.
        ignore_index: ground-truth label whose voxels are not counted.
        empty: score of a case where prediction and ground truth both lack a label.
        geometry_tolerance: absolute tolerance on spacing, origin, direction;
            None skips the check.
        keep_going: on a failing case record it and go on; otherwise raise.
        failures: problems found before counting (from :func:`match_cases`).
        params: ``alpha``, ``beta`` (Tversky), ``w_fp``, ``w_fn`` (Hamming).

    Raises:
        EvaluationError / FileNotFoundError: the first failure when not ``keep_going``.
    """
    failed = list(failures)
    if failed and not keep_going:
        raise EvaluationError(failed[0][1])
    cases: list[CaseCounts] = []
    for case, pred_path, gt_path in pairs:
        try:
            cases.append(
                count_case(
                    case,
                    pred_path,
                    gt_path,
                    num_classes=num_classes,
                    ignore_index=ignore_index,
                    geometry_tolerance=geometry_tolerance,
                )
            )
        except (FileNotFoundError, EvaluationError, ImageReadError) as exc:
            if not keep_going:
                raise
            failed.append((case, str(exc)))
    c = num_classes or max([len(k.counts) for k in cases] + [2])
    if labels is None:
        labels = list(range(1, c))
    labels = [int(label) for label in labels]
    bad = [label for label in labels if not 0 <= label < c]
    if bad:
        raise EvaluationError(
            f"--labels {bad} outside the classes seen, [0, {c - 1}] (use --num-classes to widen)"
        )
    result = EvaluationResult(num_classes=c, labels=labels, metrics=list(metrics), cases=cases)
    result.failures = failed
    acc = MetricAccumulator(c, metrics, classes=labels, empty=empty, **params)
    if cases:
        counts = np.zeros((len(cases), c, 3), dtype=np.int64)
        for i, k in enumerate(cases):
            counts[i, : len(k.counts)] = k.counts
        voxels = np.array([k.num_voxels for k in cases], dtype=np.int64)
        acc.update_counts(counts, voxels)
        for metric in metrics:
            kw = _metric_params(metric, params)
            s = score_from_counts(counts, metric, num_voxels=voxels, empty=empty, **kw)
            result.scores[metric] = s[:, labels]
        result.cases = cases
        result.summary = acc.compute(sync=False)
    return result


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else repr(float(x))


def write_case_csv(path: str | os.PathLike[str], result: EvaluationResult) -> Path:
    """Write one row per case and label (``case,label,tp,fp,fn,voxels,<metrics…>``), atomically."""
    out = Path(path)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "label", "tp", "fp", "fn", "voxels", *result.metrics])
    for i, case in enumerate(result.cases):
        for j, label in enumerate(result.labels):
            tp, fp, fn = (int(v) for v in _padded(case.counts, label))
            row = [case.name, label, tp, fp, fn, case.num_voxels]
            row += [_fmt(result.scores[m][i, j]) for m in result.metrics]
            w.writerow(row)
    return atomic_write_text(out, buf.getvalue())


def _padded(counts: np.ndarray, label: int) -> np.ndarray:
    return counts[label] if label < len(counts) else np.zeros(3, dtype=np.int64)
