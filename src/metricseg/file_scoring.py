r"""Score predicted label files against ground-truth files: the engine of ``metricseg evaluate``.

Cases are matched by file name without the image suffix (``case_01.nii.gz`` in
the prediction folder pairs with ``case_01.nii`` or ``case_01.nii.gz`` in the
ground-truth folder). For each case the two images must have the same shape,
and, where both formats carry geometry (NIfTI, NRRD, MHA), the same spacing,
origin and direction within a tolerance. Each case is read once and counted with
:func:`metricseg.counts.confusion`; scores and aggregates come from
:func:`metricseg.metrics.score_from_counts` and
:class:`metricseg.metrics.MetricAccumulator` (the one scoring path).

Safe with any input:

* only the labels present in a case are counted (remapped to ``0..K-1``, in
  blocks of :data:`_LABEL_BLOCK` classes), so a stray label 70000 costs memory
  in proportion to the voxels, not a ``70001²`` table;
* label files must hold integers ``>= 0`` (float files with integral values
  are read as labels; NaN is refused by :func:`metricseg.io.read_image`); a
  negative ground-truth label is accepted only as the ``ignore_index``;
* the ``ignore_index`` must lie outside the classes ``[0, C)`` — the rule of
  the losses — and not among the labels reported;
* the CSV is never written over an input, inside an input folder, or over a
  file that is not a CSV written here (unless ``force``), and is written
  atomically.

Two kinds of error: :class:`EvaluationError` for one case that cannot be scored
(``keep_going`` records it and goes on) and :class:`SettingsError` for settings
that do not fit the files or an output path that cannot be written (the whole
evaluation stops; ``metricseg evaluate`` reports it as a usage error).
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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
from metricseg.metrics import METRICS, MetricAccumulator, score_from_counts

if TYPE_CHECKING:
    from metricseg.metrics import AggregateResult

__all__ = [
    "CSV_COLUMNS",
    "CaseCounts",
    "EvaluationError",
    "EvaluationResult",
    "SettingsError",
    "check_csv_path",
    "check_settings",
    "count_case",
    "evaluate_pairs",
    "is_scores_csv",
    "match_cases",
    "write_case_csv",
]

#: The first columns of every CSV that :func:`write_case_csv` writes; metric names follow.
CSV_COLUMNS: tuple[str, ...] = ("case", "label", "tp", "fp", "fn", "voxels")

#: Classes per :func:`~metricseg.counts.confusion` call: its ``C²`` table stays 512 KiB.
#: Cases whose labels all lie below it are counted in one call, labels as they are.
_LABEL_BLOCK = 256

#: Above this label, the labels present are found by sorting instead of a bincount
#: (whose table has one int64 entry per label value: 32 MiB here).
_BINCOUNT_MAX_LABEL = 1 << 22


class EvaluationError(ValueError):
    """A case could not be evaluated; the message names the file and the problem."""


class SettingsError(ValueError):
    """Settings that do not fit the files, or an output path that cannot be written.

    Stops the whole evaluation, also with ``keep_going``; the message names the
    setting, the value and the fix.
    """


@dataclass
class CaseCounts:
    """Counts of one case, for the labels present in it.

    Attributes:
        labels: ``(K,)`` int64, sorted: every label ``0..max_label`` when the
            largest is below 256, else only the labels present in the prediction
            or in the counted (not ignored) ground truth.
        counts: ``(K, 3)`` int64, ``(TP, FP, FN)`` of those labels.
        num_voxels: voxels counted (ignored ground-truth voxels left out).
    """

    name: str
    pred_path: Path
    gt_path: Path
    labels: np.ndarray
    counts: np.ndarray
    num_voxels: int

    @property
    def max_label(self) -> int:
        """The largest label in the case, -1 for an empty image."""
        return int(self.labels[-1]) if len(self.labels) else -1

    def counts_of(self, labels: Sequence[int]) -> np.ndarray:
        """``(len(labels), 3)`` counts of ``labels``; zeros for a label absent from the case.

        Example:
            >>> k = CaseCounts("a", Path("p"), Path("g"), np.array([0, 7]),
            ...                np.array([[5, 1, 0], [2, 0, 1]]), 9)
            >>> k.counts_of([7, 3]).tolist()
            [[2, 0, 1], [0, 0, 0]]
        """
        want = np.asarray(labels, dtype=np.int64)
        out = np.zeros((len(want), 3), dtype=np.int64)
        if len(self.labels) and len(want):
            pos = np.searchsorted(self.labels, want).clip(max=len(self.labels) - 1)
            found = self.labels[pos] == want
            out[found] = self.counts[pos[found]]
        return out


@dataclass
class EvaluationResult:
    """Per-case counts and scores, the aggregate, and the cases that failed.

    ``scores[metric]`` is ``(cases, len(labels))``; ``summary.classes`` are the labels.
    """

    num_classes: int
    labels: list[int]
    metrics: list[str]
    cases: list[CaseCounts] = field(default_factory=list)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
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
        SettingsError: one is a file and the other a folder, or a folder holds no images.
    """
    pred_p, gt_p = Path(pred), Path(gt)
    for what, p in (("prediction", pred_p), ("ground truth", gt_p)):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder ({what})")
    if pred_p.is_file() and gt_p.is_file():
        case = strip_image_suffix(gt_p.name) or gt_p.name
        return [(case, pred_p, gt_p)], []
    if pred_p.is_dir() != gt_p.is_dir():
        raise SettingsError(
            f"PRED and GT must be two folders or two files, got {pred_p} "
            f"({'folder' if pred_p.is_dir() else 'file'}) and {gt_p} "
            f"({'folder' if gt_p.is_dir() else 'file'})"
        )
    pred_files, problems = _image_files(pred_p)
    gt_files, gt_problems = _image_files(gt_p)
    problems += gt_problems
    if not gt_files:
        raise SettingsError(f"{gt_p}: no ground-truth images (.nii.gz, .nrrd, .mha, .png, .tif …)")
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


def check_settings(
    *,
    labels: Sequence[int] | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> None:
    """Check the settings of an evaluation before any file is read.

    The ignore index follows the rule of the losses and of
    :func:`~metricseg.counts.confusion`: it lies outside the classes
    ``[0, num_classes)``, so it is never one of the labels scored. Whether a
    label in the files makes it a class is checked per case by :func:`count_case`.

    Raises:
        SettingsError: naming the setting, the value and the fix.

    Example:
        >>> check_settings(labels=[1, 2], ignore_index=255)
        >>> check_settings(labels=[1, 2], ignore_index=2)
        Traceback (most recent call last):
        ...
        metricseg.file_scoring.SettingsError: --ignore-index 2 is one of the labels reported ([1, 2]); ...
    """
    if num_classes is not None and num_classes < 1:
        raise SettingsError(f"--num-classes must be >= 1, got {num_classes}")
    if labels is not None:
        if not labels:
            raise SettingsError("--labels must name at least one label")
        negative = [int(x) for x in labels if x < 0]
        if negative:
            raise SettingsError(f"--labels must be >= 0, got {negative}")
        if num_classes is not None and max(labels) >= num_classes:
            raise SettingsError(
                f"--labels {[int(x) for x in labels if x >= num_classes]} outside the classes "
                f"[0, {num_classes - 1}] of --num-classes {num_classes}"
            )
    if ignore_index is None:
        return
    if labels is not None and ignore_index in labels:
        raise SettingsError(
            f"--ignore-index {ignore_index} is one of the labels reported ({list(labels)}); "
            "the ignore index marks ground-truth voxels left out, outside the classes "
            "(e.g. 255 or -1)"
        )
    if num_classes is not None and 0 <= ignore_index < num_classes:
        raise SettingsError(
            f"--ignore-index {ignore_index} is a class of --num-classes {num_classes} "
            f"([0, {num_classes - 1}]); it must lie outside the classes, as in the losses "
            f"(e.g. {max(num_classes, 255)} or -1)"
        )


def _as_labels(
    array: np.ndarray, path: Path, *, ignore_index: int | None = None, is_gt: bool = False
) -> np.ndarray:
    """``array`` as int64 labels, or an :class:`EvaluationError` naming ``path``.

    Integral floats are labels; NaN, fractions, negative labels (other than the
    ground truth's ``ignore_index``) and labels too large for int64 are refused.
    """
    if array.dtype.kind == "b":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not (array == np.round(array)).all():
            raise EvaluationError(f"{path}: not a label image (holds non-integer values)")
        if array.size and float(np.abs(array).max()) > 2.0**53:
            raise EvaluationError(f"{path}: holds a label too large to count ({array.max()})")
    elif array.dtype.kind not in "iu":
        raise EvaluationError(f"{path}: not a label image (pixel type {array.dtype})")
    elif array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise EvaluationError(f"{path}: holds a label too large to count ({array.max()})")
    labels = array.astype(np.int64, copy=False)
    if labels.size and labels.min() < 0:
        negative = labels < 0
        if is_gt and ignore_index is not None:
            negative &= labels != ignore_index
        if negative.any():
            first = int(labels[negative].min())
            hint = (
                f"; if {first} marks voxels to leave out, pass --ignore-index {first}"
                if is_gt
                else ""
            )
            raise EvaluationError(
                f"{path}: holds negative label {first} ({int(negative.sum())} voxels); "
                f"labels must be integers >= 0{hint}"
            )
    return labels


def _present(labels: np.ndarray) -> np.ndarray:
    """Sorted distinct values of non-negative int64 ``labels``; memory O(voxels)."""
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    hi = int(labels.max())
    if hi < _BINCOUNT_MAX_LABEL:
        return np.flatnonzero(np.bincount(labels.ravel(), minlength=hi + 1)).astype(np.int64)
    return np.unique(labels)


def _count_labels(
    pred: np.ndarray, gt: np.ndarray, keep: np.ndarray | None, max_label: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and their counts ``(K,)``, ``(K, 3)``, from :func:`confusion`.

    ``pred`` and ``gt`` are non-negative int64 label maps of one shape whose
    largest label is ``max_label``; ``keep`` (boolean, same shape, or None) marks
    the voxels counted. Labels below :data:`_LABEL_BLOCK` are counted as they are
    (every label ``0..max_label`` is returned). Otherwise only the labels present
    are returned: remapped to ``0..K-1`` and counted in blocks of
    ``_LABEL_BLOCK - 1`` labels (every other label mapped to a spare class 0), so
    that no table has more than ``_LABEL_BLOCK²`` bins whatever the labels are.
    """
    mask = None if keep is None else keep[None]
    if max_label < 0:  # an empty image
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.int64)
    if max_label < _LABEL_BLOCK:
        c = max_label + 1
        return np.arange(c, dtype=np.int64), confusion(pred[None], gt[None], c, mask=mask)[0]
    labels = np.union1d(_present(pred), _present(gt))
    k = len(labels)
    p = np.searchsorted(labels, pred)
    g = np.searchsorted(labels, gt)
    if k <= _LABEL_BLOCK:
        return labels, confusion(p[None], g[None], k, mask=mask)[0]
    counts = np.empty((k, 3), dtype=np.int64)
    step = _LABEL_BLOCK - 1
    for start in range(0, k, step):
        stop = min(start + step, k)
        # labels start..stop-1 become classes 1..stop-start; every other label class 0
        pb = np.where((p >= start) & (p < stop), p - (start - 1), 0)
        gb = np.where((g >= start) & (g < stop), g - (start - 1), 0)
        counts[start:stop] = confusion(pb[None], gb[None], stop - start + 1, mask=mask)[0][1:]
    return labels, counts


def count_case(
    case: str,
    pred_path: Path,
    gt_path: Path,
    *,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    geometry_tolerance: float | None = 1e-3,
) -> CaseCounts:
    """Read one pair of files, check them, and count TP, FP, FN per label present.

    ``num_classes=None`` accepts any label ``>= 0``; otherwise a label outside
    ``[0, num_classes)`` is an error. ``ignore_index`` marks ground-truth voxels
    left out (it may be negative). A label at or above a non-negative
    ``ignore_index`` — anywhere in the prediction (which holds classes only), or
    in the counted ground truth — makes it a class, which is refused.
    ``geometry_tolerance=None`` skips the geometry check.

    Raises:
        FileNotFoundError, EvaluationError, ImageReadError: this case cannot be
            scored (the message names the file and the problem).
        SettingsError: the ignore index is a class label in these files.
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
    gt_l = _as_labels(gt_arr, gt_path, ignore_index=ignore_index, is_gt=True)
    keep = None
    if ignore_index is not None:
        keep = gt_l != ignore_index
        # ignored voxels still go through the counting as label 0, masked out
        gt_l = np.where(keep, gt_l, 0)
    # every value of a prediction is a class, also where the ground truth is ignored:
    # a prediction holding the ignore index makes it a label
    pred_max = int(pred_l.max(initial=-1))
    gt_max = int(gt_l.max(initial=-1))
    max_label, max_path = max((pred_max, pred_path), (gt_max, gt_path), key=lambda t: t[0])
    if ignore_index is not None and 0 <= ignore_index <= max_label:
        raise SettingsError(
            f"--ignore-index {ignore_index} is a class label: {max_path} holds label "
            f"{max_label}, so the classes include [0, {max_label}]; the ignore index must lie "
            f"outside the classes, as in the losses (e.g. {max(max_label + 1, 255)} or -1)"
        )
    if num_classes is not None and max_label >= num_classes:
        raise EvaluationError(
            f"{max_path}: holds label {max_label}, outside [0, {num_classes - 1}] for "
            f"--num-classes {num_classes}; pass --num-classes {max_label + 1} or more, or leave "
            "it out (the largest label found + 1)"
        )
    labels, counts = _count_labels(pred_l, gt_l, keep, max_label)
    n = gt_l.size if keep is None else int(keep.sum())
    return CaseCounts(case, pred_path, gt_path, labels, counts.astype(np.int64), int(n))


def _metric_options(
    metric: str, alpha: float, beta: float, w_fp: float, w_fn: float
) -> dict[str, float]:
    """The keyword arguments of :func:`score_from_counts` that ``metric`` reads."""
    if metric == "tversky":
        return {"alpha": alpha, "beta": beta}
    if metric == "hamming":
        return {"w_fp": w_fp, "w_fn": w_fn}
    return {}


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
    alpha: float = 0.5,
    beta: float = 0.5,
    w_fp: float = 1.0,
    w_fn: float = 1.0,
) -> EvaluationResult:
    """Count every case, then score and aggregate over the ones that could be read.

    Args:
        pairs: ``(case, pred_path, gt_path)`` from :func:`match_cases`.
        metrics: metric names (:data:`metricseg.metrics.METRICS`).
        labels: labels to report; default every foreground label ``1..C-1``.
        num_classes: ``C``; default the largest label seen in any case + 1.
        ignore_index: ground-truth label whose voxels are not counted; must lie
            outside ``[0, C)`` (e.g. 255 or -1).
        empty: score of a case where prediction and ground truth both lack a label.
        geometry_tolerance: absolute tolerance on spacing, origin, direction;
            None skips the check.
        keep_going: on a failing case record it and go on; otherwise raise.
        failures: problems found before counting (from :func:`match_cases`).
        alpha, beta: Tversky weights of FP and FN; w_fp, w_fn: Hamming weights.

    Memory is in proportion to the voxels of one case plus ``cases × len(labels)``,
    whatever the label values are.

    Raises:
        SettingsError: the settings do not fit the files (also with ``keep_going``).
        EvaluationError / FileNotFoundError / ImageReadError: the first failing
            case, when not ``keep_going``.
    """
    check_settings(labels=labels, num_classes=num_classes, ignore_index=ignore_index)
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
    c = num_classes or max([k.max_label + 1 for k in cases] + [2])
    if labels is None:
        labels = list(range(1, c))
        if not labels:
            raise SettingsError(f"--num-classes {c} leaves no label to report; pass --labels 0")
    labels = [int(label) for label in labels]
    bad = [label for label in labels if not 0 <= label < c]
    if bad:
        raise SettingsError(
            f"--labels {bad} outside the classes seen, [0, {c - 1}] (use --num-classes to widen)"
        )
    result = EvaluationResult(num_classes=c, labels=labels, metrics=list(metrics), cases=cases)
    result.failures = failed
    if not cases:
        return result
    # only the reported labels are kept: the accumulator's classes are their positions
    counts = np.stack([k.counts_of(labels) for k in cases])  # (cases, len(labels), 3)
    voxels = np.array([k.num_voxels for k in cases], dtype=np.int64)
    acc = MetricAccumulator(
        len(labels), metrics, empty=empty, alpha=alpha, beta=beta, w_fp=w_fp, w_fn=w_fn
    )
    acc.update_counts(counts, voxels)
    for metric in metrics:
        kw = _metric_options(metric, alpha, beta, w_fp, w_fn)
        result.scores[metric] = score_from_counts(
            counts, metric, num_voxels=voxels, empty=empty, **kw
        )
    result.summary = acc.compute(sync=False)
    result.summary.classes = list(labels)
    return result


def is_scores_csv(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a CSV written by :func:`write_case_csv` (judged by its header row).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
        >>> _ = f.write_text("case,label,tp,fp,fn,voxels,dice\\na,1,3,0,1,60,0.857\\n")
        >>> is_scores_csv(f), is_scores_csv(f.parent)
        (True, False)
    """
    try:
        with open(path, "rb") as f:
            head = f.readline(1 << 16)
    except OSError:
        return False
    try:
        fields = head.decode("utf-8").rstrip("\r\n").split(",")
    except UnicodeDecodeError:
        return False
    n = len(CSV_COLUMNS)
    return (
        tuple(fields[:n]) == CSV_COLUMNS
        and len(fields) > n
        and all(m in METRICS for m in fields[n:])
    )


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_csv_path(
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
) -> Path:
    """Check, before any work, that the scores CSV can be written to ``path``.

    Refused: ``path`` is one of ``inputs`` or lies inside an input folder
    (symlinks resolved; ``force`` does not change this); ``path`` is a folder
    or not a regular file; an existing file that is not a CSV written by
    :func:`write_case_csv` (unless ``force``); a parent that is a file; a
    folder this process cannot write in (tried with a temporary file, removed
    at once). Returns ``path`` as a ``Path``.

    Raises:
        SettingsError: naming the path, the problem and the fix.
    """
    out = Path(path)
    target = out.resolve()
    for given in inputs:
        src = Path(given).resolve()
        if target == src or (target.exists() and src.exists() and os.path.samefile(target, src)):
            raise SettingsError(f"--out {out} is the input {given}; an input is never overwritten")
        if src.is_dir() and target.is_relative_to(src):
            raise SettingsError(
                f"--out {out} lies inside the input folder {given}; write the scores elsewhere"
            )
    if target.is_dir():
        raise SettingsError(f"--out {out} is a folder; give a file name, e.g. {out / 'scores.csv'}")
    if target.exists():
        if not target.is_file():
            raise SettingsError(f"--out {out} exists and is not a regular file")
        if not force and not is_scores_csv(target):
            raise SettingsError(
                f"--out {out} exists and is not a CSV written by metricseg evaluate (its first "
                f"line is not {','.join(CSV_COLUMNS)},<metrics>); choose another file, or pass "
                "--force to replace it"
            )
    folder = _first_existing(target.parent)
    if not folder.is_dir():
        raise SettingsError(f"--out {out}: {folder} is a file, not a folder")
    try:  # the one sure test of writability (permissions, read-only mounts, root or not)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise SettingsError(
            f"--out {out}: cannot write in {folder} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return out


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else repr(float(x))


def write_case_csv(
    path: str | os.PathLike[str],
    result: EvaluationResult,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
) -> Path:
    """Write one row per case and label (``case,label,tp,fp,fn,voxels,<metrics…>``), atomically.

    ``path`` is checked first by :func:`check_csv_path` (with ``inputs`` and ``force``).
    """
    out = check_csv_path(path, inputs=inputs, force=force)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_COLUMNS, *result.metrics])
    for i, case in enumerate(result.cases):
        for j, (label, row_counts) in enumerate(zip(result.labels, case.counts_of(result.labels))):
            tp, fp, fn = (int(v) for v in row_counts)
            row = [case.name, label, tp, fp, fn, case.num_voxels]
            row += [_fmt(result.scores[m][i, j]) for m in result.metrics]
            w.writerow(row)
    return atomic_write_text(out, buf.getvalue())
