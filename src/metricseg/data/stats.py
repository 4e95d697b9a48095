"""Per-case task statistics: foreground ratio and object (connected component) sizes per class.

The bench report stratifies its results by these numbers (small objects versus
large ones, rare classes versus common ones). For case :math:`n` and class
:math:`k`,

.. math::

    \\text{ratio}_{n,k} = \\frac{|\\{x : y_n(x) = k\\}|}{|\\Omega|}, \\qquad
    \\text{sizes}_{n,k} = \\big(|O_1|, \\dots, |O_m|\\big),

with :math:`O_1, \\dots, O_m` the connected components of :math:`\\{y_n = k\\}`
(face connectivity by default, :func:`scipy.ndimage.label`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from metricseg._checks import check_num_classes
from metricseg.data.task import Case, Task

__all__ = ["CaseStatistics", "summarise", "task_statistics"]


@dataclass(frozen=True)
class CaseStatistics:
    """Statistics of one case.

    Attributes:
        case_id: the case.
        split: ``"train"``, ``"val"``, ``"test"`` or ``""`` when cases were passed directly.
        foreground_ratio: float64 ``(num_classes,)``, fraction of voxels of each class.
        component_sizes: per class, int64 array of the voxel counts of its objects,
            largest first (the background entry is empty).
    """

    case_id: str
    split: str
    foreground_ratio: np.ndarray
    component_sizes: tuple[np.ndarray, ...]

    @property
    def num_objects(self) -> np.ndarray:
        """int64 ``(num_classes,)``: connected components per class (0 for background)."""
        return np.array([len(s) for s in self.component_sizes], dtype=np.int64)


def _case_statistics(case: Case, split: str, num_classes: int, connectivity: int) -> CaseStatistics:
    from scipy import ndimage

    label = np.asarray(case.label)
    counts = np.bincount(label.ravel(), minlength=num_classes)
    if counts.size > num_classes:
        bad = int(np.flatnonzero(counts[num_classes:])[0] + num_classes)
        raise ValueError(
            f"case {case.case_id!r}: label value {bad} is outside [0, {num_classes}) for num_classes={num_classes}"
        )
    structure = ndimage.generate_binary_structure(label.ndim, connectivity)
    sizes: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for k in range(1, num_classes):
        if counts[k] == 0:
            sizes.append(np.zeros(0, dtype=np.int64))
            continue
        components, m = ndimage.label(label == k, structure=structure)
        per = np.bincount(components.ravel(), minlength=m + 1)[1:].astype(np.int64)
        sizes.append(np.sort(per)[::-1])
    return CaseStatistics(case.case_id, split, counts / label.size, tuple(sizes))


def task_statistics(
    task_or_cases: Task | Iterable[Case],
    num_classes: int | None = None,
    *,
    connectivity: int = 1,
) -> list[CaseStatistics]:
    """Statistics of every case of a task (all splits, in order) or of a list of cases.

    Args:
        task_or_cases: a :class:`Task`, or cases ``(label (*spatial))``.
        num_classes: classes, background included; taken from the task when omitted.
        connectivity: 1 for face neighbours, ``ndim`` for full (corner) connectivity.

    >>> lab = np.array([[1, 1, 0, 2], [0, 0, 0, 0], [1, 0, 0, 0]])
    >>> s = task_statistics([Case("a", lab[None].astype(np.float32), lab)], 3)[0]
    >>> s.foreground_ratio.round(3).tolist(), [x.tolist() for x in s.component_sizes]
    ([0.667, 0.25, 0.083], [[], [2, 1], [1]])
    """
    if isinstance(task_or_cases, Task):
        task = task_or_cases
        num_classes = task.num_classes if num_classes is None else num_classes
        items: list[tuple[Case, str]] = [
            (c, split) for split in ("train", "val", "test") for c in getattr(task, split)
        ]
    else:
        if num_classes is None:
            raise ValueError(
                "num_classes must be given when passing cases instead of a Task, got None"
            )
        items = [(c, "") for c in task_or_cases]
    num_classes = check_num_classes(num_classes)
    if connectivity not in range(1, 4):
        raise ValueError(f"connectivity must be 1, 2 or 3, got {connectivity!r}")
    return [
        _case_statistics(case, split, num_classes, min(connectivity, case.label.ndim))
        for case, split in items
    ]


def summarise(
    stats: Sequence[CaseStatistics], class_names: Sequence[str]
) -> list[dict[str, object]]:
    """One row per foreground class: mean / min / max ratio, cases where present,
    objects per case, and object-size quantiles (5 %, 50 %, 95 %) in voxels.

    >>> lab = np.array([[1, 1, 0, 0]])
    >>> rows = summarise(task_statistics([Case("a", lab[None] * 1.0, lab)], 2), ["bg", "fg"])
    >>> rows[0]["class"], rows[0]["mean_ratio"], rows[0]["size_p50"]
    ('fg', 0.5, 2.0)
    """
    rows = []
    for k in range(1, len(class_names)):
        ratios = np.array([s.foreground_ratio[k] for s in stats])
        sizes = np.concatenate([s.component_sizes[k] for s in stats]) if stats else np.zeros(0)
        q = np.quantile(sizes, [0.05, 0.5, 0.95]) if sizes.size else [np.nan] * 3
        rows.append(
            {
                "class": class_names[k],
                "mean_ratio": float(ratios.mean()) if ratios.size else float("nan"),
                "min_ratio": float(ratios.min()) if ratios.size else float("nan"),
                "max_ratio": float(ratios.max()) if ratios.size else float("nan"),
                "present_in": int((ratios > 0).sum()),
                "cases": len(stats),
                "objects_per_case": float(sizes.size / max(len(stats), 1)),
                "size_p05": float(q[0]),
                "size_p50": float(q[1]),
                "size_p95": float(q[2]),
            }
        )
    return rows
