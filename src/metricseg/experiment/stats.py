r"""Statistics of the loss comparison: the case set, case scores, paired tests, effects, trends.

**The case set and the case score** (one rule for every number of the report):

* a run's score on a test case is the mean of the metric over the foreground
  classes (``class_index > 0``) **present in the target** of that case. A class
  absent from the target is not averaged in; the voxels predicted as it are
  false-positive volume (:func:`false_positive_volume`);
* a case whose target has no foreground at all has no score: it is out of every
  test and reported as false-positive volume per loss;
* so the set of scored cases depends on the targets alone and is the same for
  every loss: a cases × losses matrix (:class:`CaseMatrix`) is complete by
  construction, and a missing run raises :class:`IncompleteRecordsError`
  naming what is missing, never a silently smaller case set;
* each case is tested once per seed (by the model of the fold that held it
  out); its score is then the **mean over seeds**. The seed spread (sd and
  range over seeds of the per-seed mean over cases) is :func:`seed_spread`.

Restricting the classes by ``class_index`` or by a ``stratum`` (object size or
foreground ratio of the class in the target) keeps the rule: the restriction is
a property of the target, so the case set stays the same for every loss.

**Tests and effects** (the unit is a case; paired over the cases of a matrix):

* :func:`paired_wilcoxon` — two-sided Wilcoxon signed-rank test;
* :func:`paired_effect` — mean difference with a 95 % CI, by default the
  paired *t*-interval :math:`\bar d \pm t_{n-1,\,0.975}\, s_d/\sqrt n`
  (percentile bootstrap over cases on request);
* :func:`compare_paired` — both at once, with the direction of the ranks;
* :func:`holm` — Holm's step-down adjustment,
  :math:`\tilde p_{(i)} = \min\bigl(1, \max_{j \le i} (m - j + 1)\, p_{(j)}\bigr)`;
* :func:`page_trend` — Page's L test for an ordered trend across conditions;
* :func:`kendall_tau` — Kendall's :math:`\tau` of two rankings;
* :func:`minimal_detectable_difference` — the paired difference a two-sided
  paired *t*-test detects with the given power.

Everything here is a pure function of the records (the rows of ``runs.csv``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "CE_BASED",
    "FOREGROUND_BINS",
    "METRIC_SENSITIVE",
    "METRIC_SENSITIVE_CORE",
    "PIXEL_WISE",
    "SIZE_BINS",
    "STRATA",
    "CaseMatrix",
    "FalsePositiveVolume",
    "GroupVerdict",
    "IncompleteRecordsError",
    "LossSummary",
    "PairTest",
    "PairedComparison",
    "PairedEffect",
    "SeedSpread",
    "TaskRecords",
    "TrendTest",
    "band_check",
    "band_violation",
    "bootstrap_ci",
    "case_matrix",
    "case_score",
    "case_scores",
    "compare_paired",
    "false_positive_volume",
    "group_scores",
    "group_verdicts",
    "holm",
    "index_records",
    "kendall_tau",
    "mean_ranks",
    "minimal_detectable_difference",
    "page_trend",
    "paired_effect",
    "paired_wilcoxon",
    "pairwise_tests",
    "per_class",
    "seed_spread",
    "stratified",
    "stratum_of",
    "summarize",
    "trivial_dice",
    "trivial_score",
    "wilcoxon_min_p",
]

#: Losses that optimise a surrogate of the Dice / Jaccard score itself (registry names).
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
#: The metric-sensitive group of claim C1 (the paper's three losses).
METRIC_SENSITIVE_CORE = ("soft_dice", "soft_jaccard", "lovasz_softmax")
#: The CE-based group of claim C1.
CE_BASED = PIXEL_WISE
#: Mean object size bins (voxels): lower edges with labels.
SIZE_BINS: tuple[tuple[float, str], ...] = ((0, "< 50 vox"), (50, "50–500 vox"), (500, "≥ 500 vox"))
#: Foreground ratio bins: lower edges with labels.
FOREGROUND_BINS: tuple[tuple[float, str], ...] = ((0, "< 1 %"), (0.01, "1–10 %"), (0.10, "≥ 10 %"))
#: Target properties a stratum can be defined by, with their bins.
STRATA: dict[str, tuple[tuple[float, str], ...]] = {
    "mean_object_size": SIZE_BINS,
    "foreground_ratio": FOREGROUND_BINS,
}

#: Fields of a row that describe the target alone (equal in every run of a case).
_TARGET_FIELDS = ("voxels", "target_voxels", "foreground_ratio", "objects", "mean_object_size")

Stratum = tuple[str, str]  # (target property, bin label), e.g. ("mean_object_size", "< 50 vox")


# ---------------------------------------------------------------------------
# elementary tests
# ---------------------------------------------------------------------------


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


def _paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"a and b must be paired 1-D sequences of the same length, got {x.shape} and {y.shape}"
        )
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("a and b must not contain NaN: every case of a comparison has a score")
    return x, y


def _exact_p(ranks: np.ndarray, positive: np.ndarray) -> float:
    """Two-sided p-value of the signed-rank sum over all 2^n sign flips.

    The exact permutation distribution, ties included, by dynamic programming over the
    rank sum in half units (tied ranks are multiples of ½), O(n³) at most. Without
    ties it is the exact signed-rank distribution. ``ranks`` are those of the nonzero
    differences (zeros contribute nothing either way).
    """
    half = np.rint(2 * ranks).astype(np.int64)  # integer rank units of ½
    counts = np.zeros(int(half.sum()) + 1)
    counts[0] = 1.0
    for v in half:
        shifted = np.zeros_like(counts)
        shifted[v:] = counts[: counts.size - v]
        counts = counts + shifted
    prob = counts / counts.sum()
    observed = int(half[positive].sum())
    p_less = float(prob[: observed + 1].sum())
    p_greater = float(prob[observed:].sum())
    return min(1.0, 2 * min(p_less, p_greater))


def _signed_rank(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """``(R+, R-, two-sided p)`` of the signed-rank test of ``x - y`` (see
    :func:`paired_wilcoxon`); NaN p for fewer than two pairs."""
    from scipy import stats

    d = x - y
    nz = d[d != 0]
    ranks = stats.rankdata(np.abs(nz)) if nz.size else np.zeros(0)
    r_plus, r_minus = float(ranks[nz > 0].sum()), float(ranks[nz < 0].sum())
    if d.size < 2:
        return r_plus, r_minus, math.nan
    if nz.size == 0:
        return r_plus, r_minus, 1.0
    tied = nz.size < d.size or np.unique(ranks).size < nz.size
    if d.size <= (13 if tied else 50):
        return r_plus, r_minus, _exact_p(ranks, nz > 0)
    return r_plus, r_minus, float(stats.wilcoxon(x, y).pvalue)


def paired_wilcoxon(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of ``a - b``: ``(statistic, p-value)``.

    The same p-value as ``scipy.stats.wilcoxon(a, b)`` (``zero_method="wilcox"``,
    ``method="auto"``): the exact null distribution for up to 50 pairs without ties or
    zeros, and for up to 13 pairs with them — computed here by one dynamic program in
    microseconds, where scipy takes milliseconds, or seconds for its 2^n-resample
    permutation test with ties; beyond that scipy's normal approximation with
    continuity correction. The statistic is ``min(R+, R-)``. When every difference is
    zero the result is ``(0.0, 1.0)`` (scipy would warn and return NaN). Fewer than
    two pairs give NaN.

    Example:
        >>> paired_wilcoxon([1, 2, 3], [1, 2, 3])
        (0.0, 1.0)
    """
    x, y = _paired_arrays(a, b)
    if x.size < 2:
        return (math.nan, math.nan)
    r_plus, r_minus, p = _signed_rank(x, y)
    return (min(r_plus, r_minus), p)


def wilcoxon_min_p(n: int) -> float:
    r"""Smallest two-sided p-value the exact signed-rank test can give with ``n`` nonzero pairs.

    All :math:`2^n` sign patterns are equally likely under the null; the two
    extreme ones give :math:`p = 2 / 2^n`. With 5 cases this is 0.0625: no
    difference can ever be significant at 0.05.

    Example:
        >>> wilcoxon_min_p(5), wilcoxon_min_p(10)
        (0.0625, 0.001953125)
    """
    if n < 1:
        return 1.0
    return min(1.0, math.ldexp(1.0, 1 - n))  # 2 / 2^n, 0.0 once it underflows


@dataclass(frozen=True)
class PairedEffect:
    """Mean paired difference ``mean(a - b)`` with its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    sd: float  # sample sd (ddof=1) of the differences
    method: str  # "t" or "bootstrap"
    confidence: float


def paired_effect(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    n_resamples: int = 10000,
    seed: int = 0,
) -> PairedEffect:
    r"""Mean of the paired differences :math:`d_i = a_i - b_i` with a confidence interval.

    ``method="t"`` (default): the paired *t*-interval
    :math:`\bar d \pm t_{n-1,(1+c)/2}\; s_d / \sqrt n` — exact under normal
    differences and, unlike the percentile bootstrap, not too narrow for the
    10–20 subjects of a real study. ``method="bootstrap"``: percentile interval of
    the mean difference over ``n_resamples`` resamples of the cases (pairs kept
    together), as :func:`bootstrap_ci` of ``d``.

    Example:
        >>> e = paired_effect([0.8, 0.7, 0.9, 0.6], [0.7, 0.6, 0.7, 0.6])
        >>> round(e.estimate, 3), round(e.ci_low, 3), round(e.ci_high, 3)
        (0.1, -0.03, 0.23)
    """
    from scipy import stats

    x, y = _paired_arrays(a, b)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = x - y
    n = int(d.size)
    if n == 0:
        return PairedEffect(math.nan, math.nan, math.nan, 0, math.nan, method, confidence)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if method == "t":
        if n < 2:
            lo = hi = math.nan
        else:
            half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
            lo, hi = mean - half, mean + half
    elif method == "bootstrap":
        lo, hi = bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    else:
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    return PairedEffect(mean, float(lo), float(hi), n, sd, method, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of ``a`` and ``b`` over the same cases: effect, CI, Wilcoxon test.

    ``direction`` is +1 when ``a`` is better by the mean difference *and* by the
    signed ranks (sum of the ranks of the positive differences larger than that
    of the negative ones), −1 when worse by both, 0 when they disagree or tie: a
    significant p-value then says the two differ without saying which is better.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    median_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    ci_method: str
    statistic: float
    p: float
    rank_plus: float
    rank_minus: float

    @property
    def direction(self) -> int:
        if self.mean_diff > 0 and self.rank_plus > self.rank_minus:
            return 1
        if self.mean_diff < 0 and self.rank_plus < self.rank_minus:
            return -1
        return 0


def compare_paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    ci_method: Literal["t", "bootstrap"] = "t",
    n_resamples: int = 10000,
    seed: int = 0,
) -> PairedComparison:
    """:func:`paired_effect` and :func:`paired_wilcoxon` of ``a - b`` in one result.

    Example:
        >>> c = compare_paired([3, 2, 1], [0, 0, 0])
        >>> c.mean_diff, c.p, c.direction
        (2.0, 0.25, 1)
    """
    x, y = _paired_arrays(a, b)
    eff = paired_effect(
        x, y, confidence=confidence, method=ci_method, n_resamples=n_resamples, seed=seed
    )
    r_plus, r_minus, p = _signed_rank(x, y)
    d = x - y
    return PairedComparison(
        n=int(d.size),
        mean_a=float(x.mean()) if x.size else math.nan,
        mean_b=float(y.mean()) if y.size else math.nan,
        mean_diff=eff.estimate,
        median_diff=float(np.median(d)) if d.size else math.nan,
        sd_diff=eff.sd,
        ci_low=eff.ci_low,
        ci_high=eff.ci_high,
        ci_method=ci_method,
        statistic=min(r_plus, r_minus) if d.size >= 2 else math.nan,
        p=p,
        rank_plus=r_plus,
        rank_minus=r_minus,
    )


def minimal_detectable_difference(
    sd_diff: float,
    n: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> float:
    r"""Smallest mean paired difference detected with probability ``power``.

    For a two-sided paired *t*-test at level :math:`\alpha' = \alpha /
    \mathrm{comparisons}` (the level the smallest p-value of a Holm family must
    pass) with :math:`n` cases and sd of the differences :math:`s`, the
    difference :math:`\delta` solves

    .. math::

        P\bigl(|T| > t_{n-1,1-\alpha'/2}\bigr) = \mathrm{power}, \qquad
        T \sim t_{n-1}\bigl(\lambda = \delta\sqrt n / s\bigr)

    (noncentral *t*). For large :math:`n`, :math:`\delta \approx (z_{1-\alpha'/2}
    + z_{\mathrm{power}})\, s / \sqrt n`. The signed-rank test has an asymptotic
    relative efficiency of 0.955 against the *t*-test for normal differences, so
    this is a close lower bound for it — except with few cases: when even the
    most extreme signed-rank outcome cannot reach :math:`\alpha'`
    (:func:`wilcoxon_min_p`), nothing is detectable and the result is ``inf``.

    Example:
        >>> round(minimal_detectable_difference(1.0, 10), 3)
        0.996
        >>> minimal_detectable_difference(0.02, 5)
        inf
    """
    from scipy import optimize, stats

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if comparisons < 1:
        raise ValueError(f"comparisons must be >= 1, got {comparisons}")
    if math.isnan(sd_diff) or sd_diff < 0:
        raise ValueError(f"sd_diff must be a non-negative number, got {sd_diff}")
    level = alpha / comparisons
    if n < 2 or wilcoxon_min_p(n) > level:
        return math.inf
    if sd_diff == 0:
        return 0.0
    df = n - 1
    crit = float(stats.t.ppf(1 - level / 2, df))

    def excess(ncp: float) -> float:
        upper = float(stats.nct.sf(crit, df, ncp))
        lower = float(stats.nct.cdf(-crit, df, ncp))  # NaN where it underflows (large ncp)
        return upper + (0.0 if math.isnan(lower) else lower) - power

    hi = 1.0
    while excess(hi) < 0:
        hi *= 2
    ncp = optimize.brentq(excess, 0.0, hi, xtol=1e-10)
    return float(ncp * sd_diff / math.sqrt(n))


@dataclass(frozen=True)
class TrendTest:
    """Page's L test on a cases × ordered-conditions matrix.

    ``p_decreasing`` / ``p_increasing``: one-sided p-values for scores that fall /
    rise along the column order; ``p``: two-sided, ``min(1, 2 min(...))``.
    """

    statistic: float  # Page's L for the decreasing alternative
    p: float
    p_decreasing: float
    p_increasing: float
    n: int
    k: int
    method: str

    @property
    def direction(self) -> int:
        """−1 when the data lean to a decreasing trend, +1 increasing, 0 neither."""
        if self.p_decreasing < self.p_increasing:
            return -1
        if self.p_increasing < self.p_decreasing:
            return 1
        return 0


def page_trend(values: Any) -> TrendTest:
    r"""Page's L test of an ordered trend across the columns of ``values`` ``(n cases, k ≥ 3)``.

    Each row is ranked (ties get average ranks); with :math:`R_j` the rank sum of
    column :math:`j`, :math:`L = \sum_j (k + 1 - j) R_j` is large when the scores
    fall along the columns (``scipy.stats.page_trend_test`` with the predicted
    ranks reversed). The exact null distribution is used where scipy has it and
    no row has ties; otherwise the normal approximation. Rows whose values are
    all equal carry no information; if every row is so, both one-sided p-values
    are 1.

    Example:
        >>> t = page_trend([[3, 2, 1], [3, 2, 1]])   # 2 cases, perfectly falling
        >>> t.statistic, round(t.p_decreasing, 4), t.p_increasing
        (28.0, 0.0278, 1.0)
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 3:
        raise ValueError(
            f"values must be a (cases >= 2, conditions >= 3) matrix, got shape {x.shape}"
        )
    if np.isnan(x).any():
        raise ValueError("values must not contain NaN")
    n, k = x.shape
    if np.all(x == x[:, :1]):
        expected = n * (k + 1) ** 2 * k / 4.0
        return TrendTest(expected, 1.0, 1.0, 1.0, n, k, "all rows tied")
    ties = any(len(np.unique(row)) < k for row in x)
    method = "asymptotic" if ties else "auto"
    dec = stats.page_trend_test(x, predicted_ranks=list(range(k, 0, -1)), method=method)
    inc = stats.page_trend_test(x, predicted_ranks=list(range(1, k + 1)), method=method)
    p_dec, p_inc = float(dec.pvalue), float(inc.pvalue)
    return TrendTest(
        statistic=float(dec.statistic),
        p=min(1.0, 2 * min(p_dec, p_inc)),
        p_decreasing=p_dec,
        p_increasing=p_inc,
        n=n,
        k=k,
        method=str(dec.method),
    )


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b of two sequences and its two-sided p-value (``scipy.stats.kendalltau``).

    Fewer than two values, or a constant sequence, give NaN.

    Example:
        >>> kendall_tau([0.9, 0.8, 0.5], [0.8, 0.7, 0.3])
        (1.0, 0.3333333333333333)
    """
    from scipy import stats

    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got {a.shape} and {b.shape}")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return (math.nan, math.nan)
    res = stats.kendalltau(a, b)
    return (float(res.statistic), float(res.pvalue))


# ---------------------------------------------------------------------------
# the case set and the case score
# ---------------------------------------------------------------------------


class IncompleteRecordsError(ValueError):
    """Records that lack a run, a case or a class row; ``missing`` lists what is missing."""

    def __init__(self, task: str, missing: Sequence[str]) -> None:
        self.task = task
        self.missing = list(missing)
        shown = "; ".join(self.missing[:8])
        if len(self.missing) > 8:
            shown += f"; and {len(self.missing) - 8} more"
        super().__init__(
            f"records of task {task!r} are incomplete: {shown}. Every (loss, seed) must score "
            "every test case of the task exactly once, with one row per class: rerun the "
            "missing runs, or leave those losses out (losses=...)"
        )


def _bin_label(value: float, bins: Sequence[tuple[float, str]]) -> str | None:
    if math.isnan(value):
        return None
    label = None
    for edge, name in bins:
        if value >= edge:
            label = name
    return label


def _check_stratum(stratum: Stratum | None) -> None:
    if stratum is None:
        return
    by, label = stratum
    if by not in STRATA:
        raise ValueError(f"stratum must be (one of {sorted(STRATA)}, bin label), got {stratum!r}")
    if label not in {name for _, name in STRATA[by]}:
        raise ValueError(
            f"stratum bin {label!r} is not a bin of {by}: expected one of "
            f"{[name for _, name in STRATA[by]]}"
        )


def stratum_of(row: Mapping[str, Any], by: str) -> str | None:
    """The bin of a (case, class) row by a target property (``"mean_object_size"`` or
    ``"foreground_ratio"``); None for background or a class absent from the target.

    Example:
        >>> stratum_of({"class_index": 1, "target_voxels": 30, "mean_object_size": 30.0},
        ...            "mean_object_size")
        '< 50 vox'
    """
    if by not in STRATA:
        raise ValueError(f"by must be one of {sorted(STRATA)}, got {by!r}")
    if int(row["class_index"]) == 0 or int(row["target_voxels"]) == 0:
        return None
    return _bin_label(float(row[by]), STRATA[by])


def _selected(row: Mapping[str, Any], class_index: int | None, stratum: Stratum | None) -> bool:
    """A foreground class present in the target, within the requested class / stratum."""
    c = int(row["class_index"])
    if c == 0 or int(row["target_voxels"]) == 0:
        return False
    if class_index is not None and c != class_index:
        return False
    return stratum is None or stratum_of(row, stratum[0]) == stratum[1]


def case_score(
    rows: Iterable[Mapping[str, Any]],
    metric: str = "dice",
    *,
    class_index: int | None = None,
    stratum: Stratum | None = None,
) -> float:
    """Score of one run on one test case: the mean of ``metric`` over the foreground
    classes present in the target (optionally one class, or the classes of one stratum).

    NaN when no class qualifies — for the whole foreground, a case whose target is
    empty: it is out of the tests (its predicted voxels are false-positive volume).
    Whether a class counts depends on the target alone, never on the prediction.

    Args:
        rows: the per-class rows of **one run and one case** (keys ``case``,
            ``class_index``, ``target_voxels`` and ``metric``; ``mean_object_size`` /
            ``foreground_ratio`` for a stratum).
        metric: a score column, e.g. ``"dice"`` or ``"jaccard"``.

    Example:
        >>> rows = [
        ...     {"case": "a", "class_index": 0, "target_voxels": 90, "dice": 0.98},
        ...     {"case": "a", "class_index": 1, "target_voxels": 10, "dice": 0.6},
        ...     {"case": "a", "class_index": 2, "target_voxels": 0, "dice": 0.0},  # predicted only
        ... ]
        >>> case_score(rows)
        0.6
    """
    _check_stratum(stratum)
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold the class rows of one run and case, got none")
    cases = {str(r["case"]) for r in rows}
    runs = {(r.get("task"), r.get("loss"), r.get("seed"), r.get("fold")) for r in rows}
    if len(cases) > 1 or len(runs) > 1:
        raise ValueError(
            f"rows must come from one run and one case, got cases {sorted(cases)} "
            f"and runs {sorted(map(str, runs))}"
        )
    classes = [int(r["class_index"]) for r in rows]
    if len(set(classes)) != len(classes):
        raise ValueError(f"rows hold a class twice for case {cases.pop()!r}: {sorted(classes)}")
    values = []
    for r in rows:
        if _selected(r, class_index, stratum):
            v = float(r[metric])
            if math.isnan(v):
                raise ValueError(
                    f"{metric} is NaN for class {r['class_index']} of case {r['case']!r} although "
                    "its target is not empty: the row is corrupt (recompute the run)"
                )
            values.append(v)
    return float(np.mean(values)) if values else math.nan


def _options(value: Any) -> dict[str, Any]:
    """``loss_options`` of a row: a dict, or its JSON text as read back from a CSV file."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        import json

        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"loss_options must be a dict or its JSON text, got {value!r}")
    return dict(value)


def _norm_fold(fold: Any) -> int | None:
    if fold is None or fold == "" or (isinstance(fold, float) and math.isnan(fold)):
        return None
    return int(fold)


def _same(a: Any, b: Any) -> bool:
    fa, fb = float(a), float(b)
    return (math.isnan(fa) and math.isnan(fb)) or fa == fb


_REQUIRED = ("task", "loss", "seed", "case", "class_index", "target_voxels")


@dataclass(eq=False)
class TaskRecords:
    """The records of one task, grouped and checked once; builds :class:`CaseMatrix` objects.

    Checks on construction: the required keys, one row per (run, case, class), and
    the same target (voxels, target voxels, object statistics) for a (case, class)
    in every run. Completeness is checked per matrix (:meth:`matrix`), for the
    losses it is asked about.

    Attributes:
        cases: every test case seen in the task (empty targets included), sorted.
        losses: loss variant labels in the order first seen.
        loss_names: variant label → registry name (``loss_name``; the label when absent).
        loss_options: variant label → options (``loss_options``; ``{}`` when absent).
        subjects: case → subject (``subject``; the case itself when absent).
        classes: class indices, background included.
        class_names: class index → name.
        target: (case, class) → the target fields of that row.
        runs: (loss, seed) → case → (fold, class → row).
    """

    task: str
    cases: tuple[str, ...]
    losses: tuple[str, ...]
    loss_names: dict[str, str]
    loss_options: dict[str, dict[str, Any]]
    subjects: dict[str, str]
    classes: tuple[int, ...]
    class_names: dict[int, str]
    target: dict[tuple[str, int], dict[str, Any]]
    runs: dict[tuple[str, int], dict[str, tuple[int | None, dict[int, Mapping[str, Any]]]]]
    # matrices and case sets already built (the records do not change after construction)
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], task: str) -> TaskRecords:
        """Group the rows of ``task`` (rows of other tasks are ignored)."""
        losses: dict[str, None] = {}
        loss_names: dict[str, str] = {}
        loss_options: dict[str, dict[str, Any]] = {}
        subjects: dict[str, str] = {}
        class_names: dict[int, str] = {}
        target: dict[tuple[str, int], dict[str, Any]] = {}
        runs: dict[tuple[str, int], dict[str, tuple[int | None, dict[int, Mapping[str, Any]]]]]
        runs = defaultdict(dict)
        for r in records:
            if r.get("task") != task:
                continue
            missing = [k for k in _REQUIRED if k not in r]
            if missing:
                raise ValueError(f"record of task {task!r} lacks the keys {missing}: {dict(r)}")
            loss, seed, case = str(r["loss"]), int(r["seed"]), str(r["case"])
            c, fold = int(r["class_index"]), _norm_fold(r.get("fold"))
            losses.setdefault(loss)
            name = str(r.get("loss_name") or loss)
            if loss_names.setdefault(loss, name) != name:
                raise ValueError(
                    f"loss variant {loss!r} of task {task!r} has two registry names: "
                    f"{loss_names[loss]!r} and {name!r}; a variant label must name one loss"
                )
            loss_options.setdefault(loss, _options(r.get("loss_options")))
            subject = str(r["subject"]) if r.get("subject") not in (None, "") else case
            if subjects.setdefault(case, subject) != subject:
                raise ValueError(
                    f"case {case!r} of task {task!r} belongs to two subjects: "
                    f"{subjects[case]!r} and {subject!r}"
                )
            class_names.setdefault(c, str(r.get("class_name", f"class{c}")))
            fields = {k: r[k] for k in _TARGET_FIELDS if k in r}
            seen = target.setdefault((case, c), fields)
            for k, v in fields.items():
                if k in seen and not _same(seen[k], v):
                    raise ValueError(
                        f"case {case!r} class {c} of task {task!r} has {k}={v} in run "
                        f"{loss}/seed{seed} but {seen[k]} in another run: the runs did not "
                        "score the same targets (different data or data seed)"
                    )
            by_case = runs[(loss, seed)]
            prev_fold, by_class = by_case.setdefault(case, (fold, {}))
            if prev_fold != fold:
                raise ValueError(
                    f"case {case!r} of task {task!r} was tested by folds {prev_fold} and {fold} "
                    f"for loss {loss!r} seed {seed}: each case must be tested exactly once per "
                    "seed (outer cross-validation by subject)"
                )
            if c in by_class:
                raise ValueError(
                    f"two rows for class {c} of case {case!r}, loss {loss!r}, seed {seed} "
                    f"in task {task!r}: the same run was collected twice"
                )
            by_class[c] = r
        if not losses:
            raise ValueError(f"no records of task {task!r}")
        return cls(
            task=task,
            cases=tuple(sorted({case for case, _ in target})),
            losses=tuple(losses),
            loss_names=loss_names,
            loss_options=loss_options,
            subjects=subjects,
            classes=tuple(sorted({c for _, c in target})),
            class_names=class_names,
            target=target,
            runs=dict(runs),
        )

    # -- the case set (targets only) ------------------------------------------------

    def _target_row(self, case: str, c: int) -> dict[str, Any]:
        return {"class_index": c, **self.target[(case, c)]}

    def scored_cases(
        self, *, class_index: int | None = None, stratum: Stratum | None = None
    ) -> tuple[str, ...]:
        """Cases with at least one selected foreground class in the target — from the
        targets alone, so the same for every loss."""
        _check_stratum(stratum)
        key = ("cases", class_index, stratum)
        if key not in self._cache:
            self._cache[key] = tuple(
                case
                for case in self.cases
                if any(
                    _selected(self._target_row(case, c), class_index, stratum)
                    for c in self.classes
                    if (case, c) in self.target
                )
            )
        return self._cache[key]

    def empty_cases(self) -> tuple[str, ...]:
        """Cases whose target has no foreground voxel."""
        scored = set(self.scored_cases())
        return tuple(c for c in self.cases if c not in scored)

    def chance_scores(
        self,
        metric: str = "dice",
        *,
        class_index: int | None = None,
        stratum: Stratum | None = None,
    ) -> np.ndarray:
        """Per scored case (order of :meth:`scored_cases`), the case score of the trivial
        prediction "every voxel is class c" (see :func:`trivial_score`)."""
        if metric not in ("dice", "jaccard"):
            raise ValueError(
                f"metric must be 'dice' or 'jaccard' for a chance level, got {metric!r}"
            )
        out = []
        for case in self.scored_cases(class_index=class_index, stratum=stratum):
            vals = []
            for c in self.classes:
                row = self._target_row(case, c)
                if not _selected(row, class_index, stratum):
                    continue
                if "foreground_ratio" in row:
                    f = float(row["foreground_ratio"])
                elif "voxels" in row:
                    f = int(row["target_voxels"]) / int(row["voxels"])
                else:
                    raise ValueError(
                        f"rows of task {self.task!r} need foreground_ratio or voxels for a chance level"
                    )
                vals.append(2 * f / (1 + f) if metric == "dice" else f)
            out.append(float(np.mean(vals)))
        return np.array(out)

    def variants(self, names: Iterable[str]) -> tuple[str, ...]:
        """Loss variant labels whose registry name is in ``names``, in the order first seen."""
        wanted = set(names)
        return tuple(loss for loss in self.losses if self.loss_names[loss] in wanted)

    def seeds(self, losses: Iterable[str] | None = None) -> tuple[int, ...]:
        """Seeds run for any of ``losses`` (default: all)."""
        chosen = set(self.losses if losses is None else losses)
        return tuple(sorted({s for (loss, s) in self.runs if loss in chosen}))

    def check_complete(self, losses: Sequence[str]) -> tuple[int, ...]:
        """Raise :class:`IncompleteRecordsError` unless every (loss, seed) — seeds being
        those run for any of ``losses`` — scores every case of the task with every class.
        Returns the seeds."""
        unknown = [loss for loss in losses if loss not in self.loss_names]
        if unknown:
            raise ValueError(
                f"losses {unknown} have no records in task {self.task!r}; "
                f"it has {list(self.losses)}"
            )
        seeds = self.seeds(losses)
        missing = []
        for loss in losses:
            for seed in seeds:
                by_case = self.runs.get((loss, seed))
                if by_case is None:
                    missing.append(f"run {loss}/seed{seed} (all {len(self.cases)} cases)")
                    continue
                lost = [c for c in self.cases if c not in by_case]
                if lost:
                    missing.append(f"{loss}/seed{seed}: cases {lost}")
                for case, (_fold, by_class) in by_case.items():
                    gone = [c for c in self.classes if c not in by_class]
                    if gone:
                        missing.append(f"{loss}/seed{seed} case {case!r}: classes {gone}")
        if missing:
            raise IncompleteRecordsError(self.task, missing)
        return seeds

    def matrix(
        self,
        metric: str = "dice",
        *,
        losses: Sequence[str] | None = None,
        class_index: int | None = None,
        stratum: Stratum | None = None,
    ) -> CaseMatrix:
        """The cases × losses matrix of ``metric`` (see :func:`case_matrix`); built once per
        argument set and shared (its array is read-only)."""
        chosen = tuple(self.losses if losses is None else losses)
        if not chosen:
            raise ValueError("losses must name at least one loss variant")
        key = ("matrix", metric, chosen, class_index, stratum)
        if key in self._cache:
            return self._cache[key]
        seeds = self.check_complete(chosen)
        cases = self.scored_cases(class_index=class_index, stratum=stratum)
        per_seed = np.empty((len(seeds), len(cases), len(chosen)))
        for si, seed in enumerate(seeds):
            for li, loss in enumerate(chosen):
                by_case = self.runs[(loss, seed)]
                for ci, case in enumerate(cases):
                    rows = by_case[case][1].values()
                    per_seed[si, ci, li] = case_score(
                        rows, metric, class_index=class_index, stratum=stratum
                    )
        per_seed.flags.writeable = False
        self._cache[key] = CaseMatrix(
            task=self.task,
            metric=metric,
            cases=cases,
            subjects=tuple(self.subjects[c] for c in cases),
            losses=chosen,
            seeds=seeds,
            per_seed=per_seed,
            class_index=class_index,
            stratum=stratum,
        )
        return self._cache[key]


@dataclass(eq=False)
class CaseMatrix:
    """Case scores of one task: ``per_seed[s, i, l]`` for seed ``s``, case ``i``, loss ``l``.

    Complete by construction: every loss has a score on every case for every seed.
    ``values`` is the mean over seeds ``(cases, losses)`` — the numbers every test uses.
    """

    task: str
    metric: str
    cases: tuple[str, ...]
    subjects: tuple[str, ...]
    losses: tuple[str, ...]
    seeds: tuple[int, ...]
    per_seed: np.ndarray
    class_index: int | None = None
    stratum: Stratum | None = None

    @property
    def values(self) -> np.ndarray:
        """``(cases, losses)``: per case, the mean over seeds."""
        if self.per_seed.shape[1] == 0:
            return np.zeros((0, len(self.losses)))
        return self.per_seed.mean(axis=0)

    @property
    def n_cases(self) -> int:
        return len(self.cases)

    def column(self, loss: str) -> np.ndarray:
        """Seed-averaged scores of one loss, in case order ``(cases,)``."""
        if loss not in self.losses:
            raise ValueError(f"loss {loss!r} is not in this matrix; it has {list(self.losses)}")
        return self.values[:, self.losses.index(loss)]

    def means(self) -> dict[str, float]:
        """Loss → mean over cases (NaN when the matrix has no case)."""
        v = self.values
        return {
            loss: float(v[:, i].mean()) if v.shape[0] else math.nan
            for i, loss in enumerate(self.losses)
        }

    def seed_means(self) -> np.ndarray:
        """``(seeds, losses)``: per seed, the mean over cases."""
        if self.per_seed.shape[1] == 0:
            return np.full((len(self.seeds), len(self.losses)), np.nan)
        return self.per_seed.mean(axis=1)

    def subjects_unique(self) -> bool:
        """Whether every case is its own subject (the matrix rows are independent)."""
        return len(set(self.subjects)) == len(self.subjects)


def case_matrix(
    records: Iterable[Mapping[str, Any]],
    task: str,
    metric: str = "dice",
    *,
    losses: Sequence[str] | None = None,
    class_index: int | None = None,
    stratum: Stratum | None = None,
) -> CaseMatrix:
    """Cases × losses matrix of seed-averaged case scores of one task.

    The cases are those whose target has a selected foreground class (all
    foreground classes; one ``class_index``; or the classes of one ``stratum``) —
    the same for every loss. Raises :class:`IncompleteRecordsError` when a loss
    lacks a seed that another of ``losses`` has, or a run lacks a case or a class.

    Example:
        >>> rows = [{"task": "t", "loss": loss, "seed": s, "fold": None, "case": "a",
        ...          "class_index": c, "target_voxels": tv, "dice": d}
        ...         for loss, s, c, tv, d in [("ce", 0, 0, 9, 0.9), ("ce", 0, 1, 1, 0.4),
        ...                                   ("ce", 1, 0, 9, 0.9), ("ce", 1, 1, 1, 0.6)]]
        >>> m = case_matrix(rows, "t")
        >>> m.cases, m.seeds, m.values.tolist()
        (('a',), (0, 1), [[0.5]])
    """
    return TaskRecords.from_records(records, task).matrix(
        metric, losses=losses, class_index=class_index, stratum=stratum
    )


def _by_task(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        out.setdefault(str(r["task"]), []).append(r)
    return out


def index_records(records: Iterable[Mapping[str, Any]]) -> dict[str, TaskRecords]:
    """Task → :class:`TaskRecords`, in the order the tasks first appear; build it once and
    pass it to the claims (:mod:`metricseg.experiment.claims`) instead of the rows."""
    return {task: TaskRecords.from_records(rows, task) for task, rows in _by_task(records).items()}


def case_scores(
    records: Iterable[Mapping[str, Any]],
    metric: str = "dice",
    *,
    class_index: int | None = None,
    stratum: Stratum | None = None,
) -> dict[tuple[str, str], dict[str, float]]:
    """``(task, loss) → {case: score}``: every task's :func:`case_matrix` as dictionaries
    (all losses of the task; identical case sets for every loss of a task)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for task, rows in _by_task(records).items():
        m = case_matrix(rows, task, metric, class_index=class_index, stratum=stratum)
        for loss in m.losses:
            out[(task, loss)] = dict(zip(m.cases, m.column(loss).tolist()))
    return out


def group_scores(
    matrix: CaseMatrix, loss_names: Mapping[str, str], members: Iterable[str]
) -> np.ndarray:
    """Per case, the mean over the registry names in ``members`` of the mean over their
    variants in ``matrix`` — every registry name weighs the same however many variants
    it has (``weighted_ce`` swept over 10 weights counts once). Shape ``(cases,)``.

    Example:
        >>> m = CaseMatrix("t", "dice", ("a",), ("a",), ("w1", "w2", "ce"), (0,),
        ...                np.array([[[0.2, 0.4, 0.6]]]))
        >>> group_scores(m, {"w1": "weighted_ce", "w2": "weighted_ce", "ce": "ce"},
        ...              ["ce", "weighted_ce"]).tolist()
        [0.45]
    """
    cols = []
    for name in dict.fromkeys(members):
        idx = [i for i, loss in enumerate(matrix.losses) if loss_names.get(loss, loss) == name]
        if idx:
            cols.append(matrix.values[:, idx].mean(axis=1))
    if not cols:
        raise ValueError(
            f"none of the losses {list(members)} is in the matrix (losses {list(matrix.losses)})"
        )
    return np.mean(cols, axis=0)


# ---------------------------------------------------------------------------
# chance level, seed spread, false-positive volume
# ---------------------------------------------------------------------------


def trivial_score(
    records: Iterable[Mapping[str, Any]],
    task: str,
    metric: str = "dice",
    *,
    class_index: int | None = None,
    stratum: Stratum | None = None,
) -> float:
    r"""Chance level: the mean case score of the trivial prediction "every voxel is class c".

    For a class with foreground ratio :math:`f` that prediction scores
    :math:`D = 2f/(1+f)` and :math:`J = f`; averaged like a case score (selected
    foreground classes present in the target, then the scored cases). A network
    that learns nothing scores about this much or 0.

    Example:
        >>> rows = [{"task": "t", "loss": "ce", "seed": 0, "fold": None, "case": "a",
        ...          "class_index": 1, "target_voxels": 1, "foreground_ratio": 0.25}]
        >>> trivial_score(rows, "t"), trivial_score(rows, "t", "jaccard")
        (0.4, 0.25)
    """
    if metric not in ("dice", "jaccard"):
        raise ValueError(f"metric must be 'dice' or 'jaccard' for a chance level, got {metric!r}")
    _check_stratum(stratum)
    per_case: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        if r["task"] != task or not _selected(r, class_index, stratum):
            continue
        f = float(r["foreground_ratio"])
        per_case[str(r["case"])][int(r["class_index"])] = 2 * f / (1 + f) if metric == "dice" else f
    if not per_case:
        return math.nan
    return float(np.mean([np.mean(list(v.values())) for v in per_case.values()]))


def trivial_dice(records: Sequence[Mapping[str, Any]], task: str) -> float:
    """:func:`trivial_score` of Dice (kept for the report).

    Example:
        >>> rows = [{"task": "t", "loss": "ce", "seed": 0, "fold": None, "case": "a",
        ...          "class_index": 1, "target_voxels": 1, "foreground_ratio": 0.25}]
        >>> trivial_dice(rows, "t")
        0.4
    """
    return trivial_score(records, task, "dice")


@dataclass(frozen=True)
class SeedSpread:
    """Spread over seeds of the per-seed mean score over cases, for one task and loss."""

    task: str
    loss: str
    metric: str
    n_seeds: int
    mean: float
    sd: float  # ddof=1; NaN for one seed
    low: float
    high: float

    @property
    def range(self) -> float:
        return self.high - self.low


def seed_spread(matrix: CaseMatrix) -> list[SeedSpread]:
    """One :class:`SeedSpread` per loss of ``matrix``.

    Example:
        >>> m = CaseMatrix("t", "dice", ("a", "b"), ("a", "b"), ("ce",), (0, 1),
        ...                np.array([[[0.4], [0.6]], [[0.6], [0.8]]]))
        >>> s = seed_spread(m)[0]
        >>> round(s.mean, 3), round(s.sd, 4), round(s.range, 3)
        (0.6, 0.1414, 0.2)
    """
    sm = matrix.seed_means()
    out = []
    for i, loss in enumerate(matrix.losses):
        col = sm[:, i]
        out.append(
            SeedSpread(
                task=matrix.task,
                loss=loss,
                metric=matrix.metric,
                n_seeds=len(matrix.seeds),
                mean=float(col.mean()),
                sd=float(col.std(ddof=1)) if col.size > 1 else math.nan,
                low=float(col.min()),
                high=float(col.max()),
            )
        )
    return out


@dataclass(frozen=True)
class FalsePositiveVolume:
    """Voxels predicted where the target has nothing, for one task and loss (seed-averaged).

    ``empty_*``: cases whose target has no foreground (out of the tests): the mean
    over them of the voxels predicted as any foreground class, and the mean over
    seeds of how many of them got any. ``absent_*``: (case, class) pairs of scored
    cases whose class is absent from the target: the same for the voxels
    predicted as that class.
    """

    task: str
    loss: str
    empty_cases: int
    empty_fp_voxels: float
    empty_cases_predicted: float
    absent_pairs: int
    absent_fp_voxels: float
    absent_pairs_predicted: float


def _fp(row: Mapping[str, Any]) -> float:
    if "fp" in row:
        return float(row["fp"])
    return float(row["pred_voxels"]) - float(row.get("tp", 0))


def false_positive_volume(
    records: Iterable[Mapping[str, Any]], task: str | None = None
) -> list[FalsePositiveVolume]:
    """One :class:`FalsePositiveVolume` per (task, loss) (of one task, or of all).

    Example:
        >>> rows = [{"task": "t", "loss": "ce", "seed": 0, "case": "e", "class_index": c,
        ...          "target_voxels": tv, "fp": fp} for c, tv, fp in [(0, 100, 0), (1, 0, 7)]]
        >>> v = false_positive_volume(rows)[0]
        >>> v.empty_cases, v.empty_fp_voxels, v.empty_cases_predicted
        (1, 7.0, 1.0)
    """
    out = []
    groups = _by_task(records)
    for name in [task] if task is not None else list(groups):
        tr = TaskRecords.from_records(groups.get(name, []), name)
        seeds = tr.check_complete(tr.losses)
        empty = tr.empty_cases()
        scored = tr.scored_cases()
        absent = [
            (case, c)
            for case in scored
            for c in tr.classes
            if c > 0 and int(tr.target[(case, c)]["target_voxels"]) == 0
        ]
        for loss in tr.losses:
            # per seed: voxels per empty case / per absent pair
            e = np.array(
                [
                    [
                        sum(_fp(row) for c, row in tr.runs[(loss, s)][case][1].items() if c > 0)
                        for case in empty
                    ]
                    for s in seeds
                ]
            ).reshape(len(seeds), len(empty))
            a = np.array(
                [[_fp(tr.runs[(loss, s)][case][1][c]) for case, c in absent] for s in seeds]
            ).reshape(len(seeds), len(absent))
            out.append(
                FalsePositiveVolume(
                    task=name,
                    loss=loss,
                    empty_cases=len(empty),
                    empty_fp_voxels=float(e.mean()) if empty else math.nan,
                    empty_cases_predicted=float((e > 0).sum(axis=1).mean()) if empty else 0.0,
                    absent_pairs=len(absent),
                    absent_fp_voxels=float(a.mean()) if absent else math.nan,
                    absent_pairs_predicted=float((a > 0).sum(axis=1).mean()) if absent else 0.0,
                )
            )
    return out


# ---------------------------------------------------------------------------
# tables of the report
# ---------------------------------------------------------------------------


def _independent(tasks: Mapping[str, Mapping[str, Any]] | None, task: str) -> bool | None:
    if tasks is None:
        return None
    if task not in tasks:
        raise ValueError(f"tasks has no entry for task {task!r}; it has {sorted(tasks)}")
    return bool(tasks[task].get("independent", False))


@dataclass
class LossSummary:
    """Mean ± sd over test cases and 95 % bootstrap CI of Dice and Jaccard for one task and
    loss, with the seed spread of the mean Dice.

    ``independent``: from ``tasks`` (None when not given). For a task whose cases are
    not independent the CIs are NaN: a bootstrap over slices of one subject would
    claim a precision the data do not have.
    """

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
    n_seeds: int = 1
    seed_sd: float = math.nan
    seed_low: float = math.nan
    seed_high: float = math.nan
    loss_name: str = ""
    independent: bool | None = None
    rank: float = math.nan


def _ranks_desc(values: Sequence[float]) -> list[float]:
    from scipy.stats import rankdata

    return rankdata([-v for v in values], method="average").tolist()


def summarize(
    records: Sequence[Mapping[str, Any]],
    *,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[LossSummary]:
    """One :class:`LossSummary` per (task, loss), ranked within each task by mean Dice (1 = best)."""
    out = []
    for task, rows in _by_task(records).items():
        tr = TaskRecords.from_records(rows, task)
        dice = tr.matrix("dice")
        jac = tr.matrix("jaccard")
        indep = _independent(tasks, task)
        spreads = {s.loss: s for s in seed_spread(dice)}
        group = []
        for loss in tr.losses:
            d, j = dice.column(loss), jac.column(loss)
            # a run is a (seed, fold) model; with outer cross-validation one seed has k runs
            runs = {
                (s, fold)
                for (lo, s), by_case in tr.runs.items()
                if lo == loss
                for fold, _ in by_case.values()
            }
            ci = indep is not False
            sp = spreads[loss]
            group.append(
                LossSummary(
                    task=task,
                    loss=loss,
                    n_cases=int(d.size),
                    n_runs=len(runs),
                    dice_mean=float(d.mean()) if d.size else math.nan,
                    dice_std=float(d.std(ddof=1)) if d.size > 1 else math.nan,
                    dice_ci=bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
                    if ci
                    else (math.nan, math.nan),
                    jaccard_mean=float(j.mean()) if j.size else math.nan,
                    jaccard_std=float(j.std(ddof=1)) if j.size > 1 else math.nan,
                    jaccard_ci=bootstrap_ci(j, n_resamples=n_resamples, seed=seed)
                    if ci
                    else (math.nan, math.nan),
                    n_seeds=sp.n_seeds,
                    seed_sd=sp.sd,
                    seed_low=sp.low,
                    seed_high=sp.high,
                    loss_name=tr.loss_names[loss],
                    independent=indep,
                )
            )
        for s, r in zip(group, _ranks_desc([s.dice_mean for s in group])):
            s.rank = r
        out.extend(group)
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
    """Paired Wilcoxon test of two losses on one task's test cases, Holm-adjusted within the
    task and metric; ``mean_diff`` = mean of a − b with its 95 % paired *t*-interval."""

    task: str
    metric: str
    loss_a: str
    loss_b: str
    n: int
    mean_diff: float
    statistic: float
    p: float
    p_holm: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan


def pairwise_tests(
    records: Sequence[Mapping[str, Any]],
    metric: str = "dice",
    *,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[PairTest]:
    """All pairs of losses within each task; Holm over the pairs of one task (one family per
    task). With ``tasks``, tasks that are not independent get no tests."""
    out: list[PairTest] = []
    for task, rows in _by_task(records).items():
        if _independent(tasks, task) is False:
            continue
        m = case_matrix(rows, task, metric)
        family = []
        for i, la in enumerate(m.losses):
            for lb in m.losses[i + 1 :]:
                c = compare_paired(m.column(la), m.column(lb))
                family.append(
                    PairTest(
                        task,
                        metric,
                        la,
                        lb,
                        c.n,
                        c.mean_diff,
                        c.statistic,
                        c.p,
                        ci_low=c.ci_low,
                        ci_high=c.ci_high,
                    )
                )
        for t, ph in zip(family, holm([t.p for t in family])):
            t.p_holm = float(ph)
        out.extend(family)
    return out


@dataclass
class GroupVerdict:
    """Metric-sensitive (:data:`METRIC_SENSITIVE_CORE`) against CE-based (:data:`CE_BASED`)
    losses on one task: per-case group means (:func:`group_scores`), paired Wilcoxon, Holm
    over tasks; ``mean_diff`` with its 95 % paired *t*-interval."""

    task: str
    metric: str
    metric_sensitive: float
    pixel_wise: float
    n: int
    p: float
    p_holm: float = math.nan
    mean_diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def metric_sensitive_better(self) -> bool:
        return self.metric_sensitive > self.pixel_wise


def group_verdicts(
    records: Sequence[Mapping[str, Any]],
    metric: str = "dice",
    *,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[GroupVerdict]:
    """Per task, the two groups of claim C1 paired over cases; tasks lacking either group (or,
    with ``tasks``, not independent) are left out. The claim itself is
    :func:`metricseg.experiment.claims.claim_c1` (chance level and the verdict rule)."""
    out = []
    for task, rows in _by_task(records).items():
        if _independent(tasks, task) is False:
            continue
        tr = TaskRecords.from_records(rows, task)
        ms, ce = tr.variants(METRIC_SENSITIVE_CORE), tr.variants(CE_BASED)
        if not ms or not ce:
            continue
        m = tr.matrix(metric, losses=ms + ce)
        x = group_scores(m, tr.loss_names, METRIC_SENSITIVE_CORE)
        y = group_scores(m, tr.loss_names, CE_BASED)
        c = compare_paired(x, y)
        out.append(
            GroupVerdict(
                task,
                metric,
                c.mean_a,
                c.mean_b,
                c.n,
                c.p,
                mean_diff=c.mean_diff,
                ci_low=c.ci_low,
                ci_high=c.ci_high,
            )
        )
    for v, ph in zip(out, holm([v.p for v in out])):
        v.p_holm = float(ph)
    return out


def stratified(
    records: Sequence[Mapping[str, Any]], by: str = "mean_object_size", metric: str = "dice"
) -> list[tuple[str, str, str, int, float]]:
    """Mean case score per task, loss and stratum of ``by`` (``"mean_object_size"`` with
    :data:`SIZE_BINS`, ``"foreground_ratio"`` with :data:`FOREGROUND_BINS`):
    ``(task, loss, bin, n cases, mean)``. A case's stratum score is the mean over its
    foreground classes in that bin (present in the target), then over seeds."""
    bins = STRATA.get(by)
    if bins is None:
        raise ValueError(f"by must be 'mean_object_size' or 'foreground_ratio', got {by!r}")
    out = []
    for task, rows in _by_task(records).items():
        tr = TaskRecords.from_records(rows, task)
        for loss in tr.losses:
            for _, label in bins:
                m = tr.matrix(metric, losses=[loss], stratum=(by, label))
                if m.n_cases:
                    out.append((task, loss, label, m.n_cases, float(m.column(loss).mean())))
    return out


def per_class(
    records: Sequence[Mapping[str, Any]],
) -> list[tuple[str, str, str, int, float, float]]:
    """Per task, loss and foreground class: ``(task, loss, class, n cases, mean Dice, mean
    Jaccard)`` over the cases whose target has that class."""
    out = []
    for task, rows in _by_task(records).items():
        tr = TaskRecords.from_records(rows, task)
        for c in tr.classes:
            if c == 0:
                continue
            dice = tr.matrix("dice", class_index=c)
            jac = tr.matrix("jaccard", class_index=c)
            if not dice.n_cases:
                continue
            for loss in tr.losses:
                out.append(
                    (
                        task,
                        loss,
                        tr.class_names[c],
                        dice.n_cases,
                        float(dice.column(loss).mean()),
                        float(jac.column(loss).mean()),
                    )
                )
    return out


def band_violation(dice: np.ndarray, jaccard: np.ndarray) -> np.ndarray:
    r"""How far each (D, J) pair lies outside the band :math:`(1-J)/2 \le 1-D \le 1-J`
    (0 inside).

    Example:
        >>> band_violation(np.array([0.5, 0.5]), np.array([1/3, 0.6])).round(3).tolist()
        [0.0, 0.1]
    """
    d = np.asarray(dice, dtype=np.float64)
    j = np.asarray(jaccard, dtype=np.float64)
    low = (1 - j) / 2 - (1 - d)  # > 0: 1 − D below the lower bound
    high = (1 - d) - (1 - j)  # > 0: 1 − D above the upper bound
    return np.maximum(0.0, np.maximum(low, high))


def band_check(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    r"""Per-case (Dice, Jaccard) pairs against the theoretical band.

    For one mask :math:`J = D/(2-D)` exactly; means over classes and seeds stay in
    the band :math:`(1-J)/2 \le 1-D \le 1-J` (both bounds are linear in (D, J)).
    Returns the pairs (``dice``, ``jaccard`` arrays, every loss and scored case of
    every task), how many lie inside the band (to 1e-12), the largest violation
    (:func:`band_violation`), and the largest gap :math:`|J - D/(2-D)|` of single
    (case, class) rows.
    """
    d_all, j_all = [], []
    for task, rows in _by_task(records).items():
        tr = TaskRecords.from_records(rows, task)
        d_all.append(tr.matrix("dice").values.ravel())
        j_all.append(tr.matrix("jaccard").values.ravel())
    da = np.concatenate(d_all) if d_all else np.zeros(0)
    ja = np.concatenate(j_all) if j_all else np.zeros(0)
    viol = band_violation(da, ja)
    single_gap = 0.0
    for r in records:
        dv, jv = float(r["dice"]), float(r["jaccard"])
        if not (math.isnan(dv) or math.isnan(jv)):
            single_gap = max(single_gap, abs(jv - dv / (2 - dv)))
    return {
        "dice": da,
        "jaccard": ja,
        "n": int(da.size),
        "inside": int((viol <= 1e-12).sum()),
        "max_violation": float(viol.max()) if viol.size else 0.0,
        "max_single_gap": single_gap,
    }
