r"""Statistics of the loss comparison: summaries, bootstrap intervals, paired tests, Holm.

The unit of analysis is the **test case**: for every run, a case's score is the
mean over the foreground classes that are present in its target or its
prediction (a class absent from both has no Dice); the runs of one loss (seeds,
folds) are then averaged per case. Losses are compared on the same cases, so
the tests are paired.

* :func:`bootstrap_ci` — percentile bootstrap interval of the mean.
* :func:`paired_wilcoxon` — Wilcoxon signed-rank test (``scipy.stats.wilcoxon``).
* :func:`holm` — Holm's step-down adjustment of a family of p-values,

  .. math::

      \tilde p_{(i)} = \min\Bigl(1, \max_{j \le i} (m - j + 1)\, p_{(j)}\Bigr)

  for the p-values sorted increasingly :math:`p_{(1)} \le \dots \le p_{(m)}`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FOREGROUND_BINS",
    "METRIC_SENSITIVE",
    "PIXEL_WISE",
    "SIZE_BINS",
    "GroupVerdict",
    "LossSummary",
    "PairTest",
    "band_check",
    "bootstrap_ci",
    "case_scores",
    "group_verdicts",
    "holm",
    "mean_ranks",
    "paired_wilcoxon",
    "pairwise_tests",
    "per_class",
    "stratified",
    "summarize",
    "trivial_dice",
]

#: Losses that optimise a surrogate of the Dice / Jaccard score itself.
METRIC_SENSITIVE = (
    "soft_dice",
    "soft_jaccard",
    "soft_tversky",
    "generalized_dice",
    "lovasz_softmax",
    "lovasz_hinge",
)
#: Per-pixel losses (cross-entropy family).
PIXEL_WISE = ("ce", "weighted_ce", "focal")
#: Mean object size bins (voxels): lower edges with labels.
SIZE_BINS: tuple[tuple[float, str], ...] = ((0, "< 50 vox"), (50, "50–500 vox"), (500, "≥ 500 vox"))
#: Foreground ratio bins: lower edges with labels.
FOREGROUND_BINS: tuple[tuple[float, str], ...] = ((0, "< 1 %"), (0.01, "1–10 %"), (0.10, "≥ 10 %"))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input order (NaN entries stay NaN and do not count).

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return out
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError(f"pvalues must lie in [0, 1], got {p[valid].tolist()}")
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return np.round(out, 15)


def bootstrap_ci(
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    r"""Percentile bootstrap confidence interval of the mean.

    Draws ``n_resamples`` samples of size :math:`n` with replacement
    (``numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))``) and
    returns the :math:`(1-c)/2` and :math:`(1+c)/2` quantiles of their means.

    Example:
        >>> lo, hi = bootstrap_ci([0.5] * 10)
        >>> (lo, hi)
        (0.5, 0.5)
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, (n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of ``a - b``: ``(statistic, p-value)``.

    When every difference is zero the two are indistinguishable and the result
    is ``(0.0, 1.0)`` (scipy would warn and return NaN). Fewer than two pairs
    give NaN.

    Example:
        >>> paired_wilcoxon([1, 2, 3], [1, 2, 3])
        (0.0, 1.0)
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"a and b must be paired (same length), got {x.shape} and {y.shape}")
    if x.size < 2:
        return (math.nan, math.nan)
    d = x - y
    if np.all(d == 0):
        return (0.0, 1.0)
    res = stats.wilcoxon(x, y)
    return (float(res.statistic), float(res.pvalue))


Key = tuple[str, str]  # (task, loss)


def case_scores(
    records: Iterable[Mapping[str, Any]], metric: str = "dice", *, class_index: int | None = None
) -> dict[Key, dict[str, float]]:
    """Per (task, loss) and test case, the score averaged over classes, then over runs.

    Args:
        records: rows as in ``runs.csv`` (keys ``task``, ``loss``, ``seed``,
            ``fold``, ``case``, ``class_index`` and the metric).
        metric: ``"dice"``, ``"jaccard"``, ``"tversky"`` or ``"hamming"``.
        class_index: only this class; None averages the foreground classes
            (``class_index > 0``) with a defined score.
    """
    per_run: dict[tuple[str, str, Any, Any, str], list[float]] = defaultdict(list)
    for r in records:
        c = int(r["class_index"])
        if (class_index is None and c == 0) or (class_index is not None and c != class_index):
            continue
        v = float(r[metric])
        if not math.isnan(v):
            per_run[(r["task"], r["loss"], r["seed"], r["fold"], r["case"])].append(v)
    per_case: dict[Key, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (task, loss, _seed, _fold, case), vals in per_run.items():
        per_case[(task, loss)][case].append(float(np.mean(vals)))
    return {k: {case: float(np.mean(v)) for case, v in d.items()} for k, d in per_case.items()}


def _run_means(records: Iterable[Mapping[str, Any]], metric: str) -> dict[Key, list[float]]:
    per_run: dict[tuple[str, str, Any, Any], list[float]] = defaultdict(list)
    for r in records:
        if int(r["class_index"]) > 0 and not math.isnan(float(r[metric])):
            per_run[(r["task"], r["loss"], r["seed"], r["fold"])].append(float(r[metric]))
    out: dict[Key, list[float]] = defaultdict(list)
    for (task, loss, _s, _f), vals in sorted(per_run.items(), key=lambda kv: str(kv[0])):
        out[(task, loss)].append(float(np.mean(vals)))
    return out


@dataclass
class LossSummary:
    """Mean ± std over test cases and 95 % bootstrap CI of Dice and Jaccard for one task and loss."""

    task: str
    loss: str
    n_cases: int
    n_runs: int
    dice_mean: float
    dice_std: float
    dice_ci: tuple[float, float]
    jaccard_mean: float
    jaccard_std: float
    jaccard_ci: tuple[float, float]
    run_std: float
    rank: float = math.nan


def _ranks_desc(values: Sequence[float]) -> list[float]:
    from scipy.stats import rankdata

    return rankdata([-v for v in values], method="average").tolist()


def summarize(
    records: Sequence[Mapping[str, Any]], *, n_resamples: int = 2000, seed: int = 0
) -> list[LossSummary]:
    """One :class:`LossSummary` per (task, loss), ranked within each task by mean Dice (1 = best)."""
    dice = case_scores(records, "dice")
    jac = case_scores(records, "jaccard")
    run_means = _run_means(records, "dice")
    out = []
    for key in sorted(dice):
        d = np.array(list(dice[key].values()))
        j = np.array(list(jac.get(key, {}).values()))
        runs = run_means.get(key, [])
        out.append(
            LossSummary(
                task=key[0],
                loss=key[1],
                n_cases=int(d.size),
                n_runs=len(runs),
                dice_mean=float(d.mean()),
                dice_std=float(d.std(ddof=1)) if d.size > 1 else math.nan,
                dice_ci=bootstrap_ci(d, n_resamples=n_resamples, seed=seed),
                jaccard_mean=float(j.mean()) if j.size else math.nan,
                jaccard_std=float(j.std(ddof=1)) if j.size > 1 else math.nan,
                jaccard_ci=bootstrap_ci(j, n_resamples=n_resamples, seed=seed),
                run_std=float(np.std(runs, ddof=1)) if len(runs) > 1 else math.nan,
            )
        )
    for task in {s.task for s in out}:
        group = [s for s in out if s.task == task]
        for s, r in zip(group, _ranks_desc([s.dice_mean for s in group])):
            s.rank = r
    return out


def mean_ranks(summaries: Sequence[LossSummary]) -> list[tuple[str, float, int]]:
    """``(loss, mean rank over tasks, number of tasks)``, best first."""
    by_loss: dict[str, list[float]] = defaultdict(list)
    for s in summaries:
        by_loss[s.loss].append(s.rank)
    return sorted(
        ((loss, float(np.mean(r)), len(r)) for loss, r in by_loss.items()),
        key=lambda t: (t[1], t[0]),
    )


@dataclass
class PairTest:
    """Paired Wilcoxon test of two losses on one task's test cases, Holm-adjusted within the task."""

    task: str
    metric: str
    loss_a: str
    loss_b: str
    n: int
    mean_diff: float  # mean of a - b
    statistic: float
    p: float
    p_holm: float = math.nan


def _paired(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    common = sorted(set(a) & set(b))
    return np.array([a[c] for c in common]), np.array([b[c] for c in common])


def pairwise_tests(records: Sequence[Mapping[str, Any]], metric: str = "dice") -> list[PairTest]:
    """All pairs of losses within each task; Holm over the pairs of one task (one family per task)."""
    scores = case_scores(records, metric)
    tasks = sorted({t for t, _ in scores})
    out: list[PairTest] = []
    for task in tasks:
        losses = sorted(loss for t, loss in scores if t == task)
        family = []
        for i, la in enumerate(losses):
            for lb in losses[i + 1 :]:
                x, y = _paired(scores[(task, la)], scores[(task, lb)])
                stat, p = paired_wilcoxon(x, y)
                diff = float(np.mean(x - y)) if x.size else math.nan
                family.append(PairTest(task, metric, la, lb, int(x.size), diff, stat, p))
        for t, ph in zip(family, holm([t.p for t in family])):
            t.p_holm = float(ph)
        out.extend(family)
    return out


@dataclass
class GroupVerdict:
    """Metric-sensitive losses against per-pixel losses on one task (per-case group means)."""

    task: str
    metric: str
    metric_sensitive: float
    pixel_wise: float
    n: int
    p: float
    p_holm: float = math.nan

    @property
    def metric_sensitive_better(self) -> bool:
        return self.metric_sensitive > self.pixel_wise


def group_verdicts(
    records: Sequence[Mapping[str, Any]], metric: str = "dice"
) -> list[GroupVerdict]:
    """Per task: mean over the metric-sensitive losses vs. mean over the per-pixel ones, paired
    over cases (Wilcoxon), Holm over tasks. Tasks lacking either group are left out."""
    scores = case_scores(records, metric)
    out = []
    for task in sorted({t for t, _ in scores}):
        groups = []
        for members in (METRIC_SENSITIVE, PIXEL_WISE):
            present = [scores[(task, m)] for m in members if (task, m) in scores]
            if not present:
                break
            cases = set.intersection(*(set(p) for p in present))
            groups.append({c: float(np.mean([p[c] for p in present])) for c in cases})
        if len(groups) < 2:
            continue
        x, y = _paired(groups[0], groups[1])
        _, p = paired_wilcoxon(x, y)
        out.append(GroupVerdict(task, metric, float(x.mean()), float(y.mean()), int(x.size), p))
    for v, ph in zip(out, holm([v.p for v in out])):
        v.p_holm = float(ph)
    return out


def _bin_label(value: float, bins: Sequence[tuple[float, str]]) -> str | None:
    if math.isnan(value):
        return None
    label = None
    for edge, name in bins:
        if value >= edge:
            label = name
    return label


def stratified(
    records: Sequence[Mapping[str, Any]], by: str = "mean_object_size", metric: str = "dice"
) -> list[tuple[str, str, str, int, float]]:
    """Mean score of the foreground (case, class) rows whose target is not empty, per task,
    loss and bin of ``by`` (``"mean_object_size"`` with :data:`SIZE_BINS`, or
    ``"foreground_ratio"`` with :data:`FOREGROUND_BINS`): ``(task, loss, bin, n, mean)``."""
    bins = {"mean_object_size": SIZE_BINS, "foreground_ratio": FOREGROUND_BINS}.get(by)
    if bins is None:
        raise ValueError(f"by must be 'mean_object_size' or 'foreground_ratio', got {by!r}")
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    order = {name: i for i, (_, name) in enumerate(bins)}
    for r in records:
        if int(r["class_index"]) == 0 or int(r["target_voxels"]) == 0:
            continue
        label = _bin_label(float(r[by]), bins)
        if label is not None:
            groups[(r["task"], r["loss"], label)].append(float(r[metric]))
    return [
        (t, loss, b, len(v), float(np.mean(v)))
        for (t, loss, b), v in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
        )
    ]


def per_class(
    records: Sequence[Mapping[str, Any]],
) -> list[tuple[str, str, str, int, float, float]]:
    """Per task, loss and foreground class: ``(task, loss, class, n cases, mean Dice, mean Jaccard)``."""
    names: dict[tuple[str, int], str] = {}
    for r in records:
        names[(r["task"], int(r["class_index"]))] = str(r["class_name"])
    out = []
    for (task, c), name in sorted(names.items()):
        if c == 0:
            continue
        dice = case_scores([r for r in records if r["task"] == task], "dice", class_index=c)
        jac = case_scores([r for r in records if r["task"] == task], "jaccard", class_index=c)
        for key in sorted(dice):
            d = list(dice[key].values())
            j = list(jac[key].values())
            out.append((task, key[1], name, len(d), float(np.mean(d)), float(np.mean(j))))
    return out


def trivial_dice(records: Sequence[Mapping[str, Any]], task: str) -> float:
    r"""Mean per-case foreground Dice of the trivial prediction "every voxel is class c".

    For a class with foreground ratio :math:`f` that prediction scores
    :math:`D = 2f/(1+f)`; averaged like :func:`case_scores` (foreground classes
    present in the target, then cases). A network that learns nothing scores
    about this much or 0; it is the chance level the report compares with.

    Example:
        >>> rows = [{"task": "t", "loss": "ce", "seed": 0, "fold": None, "case": "a",
        ...          "class_index": 1, "target_voxels": 1, "foreground_ratio": 0.25}]
        >>> trivial_dice(rows, "t")
        0.4
    """
    per_case: dict[str, list[float]] = defaultdict(list)
    seen = set()
    for r in records:
        key = (r["case"], int(r["class_index"]))
        if r["task"] != task or key[1] == 0 or int(r["target_voxels"]) == 0 or key in seen:
            continue
        seen.add(key)
        f = float(r["foreground_ratio"])
        per_case[str(r["case"])].append(2 * f / (1 + f))
    return float(np.mean([np.mean(v) for v in per_case.values()])) if per_case else math.nan


def band_check(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    r"""Per-case (Dice, Jaccard) pairs against the theoretical band.

    For one mask :math:`J = D/(2-D)` exactly; averages over classes or cases
    stay in the band :math:`(1-J)/2 \le 1-D \le 1-J`. Returns the pairs
    (``dice``, ``jaccard`` arrays), how many lie inside the band (to 1e-12), and
    the largest gap :math:`|J - D/(2-D)|` of single (case, class) rows.
    """
    dice = case_scores(records, "dice")
    jac = case_scores(records, "jaccard")
    d, j = [], []
    for key in dice:
        for case, v in dice[key].items():
            if case in jac.get(key, {}):
                d.append(v)
                j.append(jac[key][case])
    da, ja = np.array(d), np.array(j)
    eps = 1e-12
    inside = ((1 - ja) / 2 <= 1 - da + eps) & (1 - da <= 1 - ja + eps)
    single_gap = 0.0
    for r in records:
        dv, jv = float(r["dice"]), float(r["jaccard"])
        if not (math.isnan(dv) or math.isnan(jv)):
            single_gap = max(single_gap, abs(jv - dv / (2 - dv)))
    return {
        "dice": da,
        "jaccard": ja,
        "n": int(da.size),
        "inside": int(inside.sum()),
        "max_single_gap": single_gap,
    }
