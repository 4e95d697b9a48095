from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from metricseg.experiment import stats


def test_holm_hand_values():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]).tolist() == [0.03, 0.06, 0.06, 0.02]
    assert stats.holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # clipped at 1
    assert stats.holm([0.02]).tolist() == [0.02]  # one test: unchanged


def test_holm_ignores_nan_and_rejects_bad_values():
    out = stats.holm([0.01, math.nan, 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.1, 1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_properties(p):
    adj = stats.holm(p)
    p = np.asarray(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1)
    # monotone: a smaller raw p never gets a larger adjusted p
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)
    # at least as strict as nothing, at most Bonferroni
    assert np.all(adj <= np.minimum(1, p * len(p)) + 1e-15)


def test_bootstrap_ci_equals_explicit_loop_and_scipy():
    rng = np.random.default_rng(1)
    x = rng.beta(5, 2, size=40)
    lo, hi = stats.bootstrap_ci(x, n_resamples=3000, seed=7)
    # the same resamples drawn explicitly, one by one
    r = np.random.default_rng(7)
    idx = r.integers(0, x.size, (3000, x.size))
    means = np.array([np.mean(x[row]) for row in idx])
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)
    ref = sps.bootstrap((x,), np.mean, n_resamples=3000, method="percentile", random_state=3)
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.01)
    assert lo < x.mean() < hi


def test_paired_wilcoxon_matches_scipy_and_handles_ties():
    a = np.array([0.81, 0.75, 0.92, 0.66, 0.70, 0.88, 0.79, 0.83])
    b = np.array([0.78, 0.76, 0.85, 0.60, 0.69, 0.80, 0.71, 0.84])
    ref = sps.wilcoxon(a, b)
    assert stats.paired_wilcoxon(a, b) == pytest.approx((ref.statistic, ref.pvalue))
    # exact small-sample p-value by hand: 3 positive differences of 3 -> W = 0, p = 2/8
    assert stats.paired_wilcoxon([3, 2, 1], [0, 0, 0]) == pytest.approx((0.0, 0.25))
    assert stats.paired_wilcoxon(a, a) == (0.0, 1.0)
    assert all(math.isnan(v) for v in stats.paired_wilcoxon([1.0], [0.0]))
    with pytest.raises(ValueError, match="paired"):
        stats.paired_wilcoxon([1, 2], [1, 2, 3])


def _records(scores: dict[str, list[float]], task: str = "t") -> list[dict]:
    """Rows of a binary task: background scores 0.99 and foreground ``d`` with J = D/(2-D)."""
    rows = []
    for loss, values in scores.items():
        for i, d in enumerate(values):
            key = {"task": task, "loss": loss, "seed": 0, "fold": None, "case": f"c{i}"}
            for c, dice, size, ratio in ((0, 0.99, 100.0, 0.9), (1, d, 10.0 * (i + 1), 0.005)):
                rows.append(
                    {
                        **key,
                        "class_index": c,
                        "class_name": ("bg", "fg")[c],
                        "dice": dice,
                        "jaccard": dice / (2 - dice),
                        "target_voxels": 10,
                        "mean_object_size": size,
                        "foreground_ratio": ratio,
                    }
                )
    return rows


def test_summary_ranks_tests_and_verdict():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, 12)
    records = _records(
        {"soft_dice": list(base + 0.1), "ce": list(base), "lovasz_softmax": list(base + 0.05)}
    )
    summary = {s.loss: s for s in stats.summarize(records, n_resamples=500)}
    assert summary["soft_dice"].dice_mean == pytest.approx(np.mean(base + 0.1))
    assert summary["ce"].dice_std == pytest.approx(np.std(base, ddof=1))
    assert summary["ce"].jaccard_mean == pytest.approx(np.mean(base / (2 - base)))
    assert [summary[k].rank for k in ("soft_dice", "lovasz_softmax", "ce")] == [1, 2, 3]
    assert summary["ce"].n_cases == 12 and summary["ce"].n_runs == 1

    tests = {(t.loss_a, t.loss_b): t for t in stats.pairwise_tests(records)}
    t = tests[("ce", "soft_dice")]
    ref = sps.wilcoxon(base, base + 0.1)
    assert t.p == pytest.approx(ref.pvalue) and t.mean_diff == pytest.approx(-0.1)
    assert t.p_holm == pytest.approx(
        stats.holm([x.p for x in tests.values()])[list(tests).index(("ce", "soft_dice"))]
    )

    (verdict,) = stats.group_verdicts(records)
    assert verdict.metric_sensitive_better
    assert verdict.metric_sensitive == pytest.approx(np.mean(base + 0.075))
    assert verdict.pixel_wise == pytest.approx(np.mean(base))
    assert stats.mean_ranks(list(summary.values()))[0] == ("soft_dice", 1.0, 1)


def test_case_scores_average_seeds_and_skip_undefined():
    rows = [
        {
            "task": "t",
            "loss": "ce",
            "seed": s,
            "fold": None,
            "case": "a",
            "class_index": c,
            "dice": d,
        }
        for s, c, d in [(0, 1, 0.4), (0, 2, 0.8), (1, 1, 0.6), (1, 2, math.nan), (0, 0, 0.9)]
    ]
    # seed 0: mean(0.4, 0.8) = 0.6; seed 1: 0.6 (class 2 undefined); then mean over seeds
    assert stats.case_scores(rows)[("t", "ce")] == {"a": pytest.approx(0.6)}
    assert stats.case_scores(rows, class_index=1)[("t", "ce")]["a"] == pytest.approx(0.5)


def test_stratified_bins_and_band():
    records = _records({"ce": [0.2, 0.5, 0.9, 0.95, 0.7, 0.6]})
    # mean object sizes 10, 20, ..., 60: four below 50, two from 50
    strata = stats.stratified(records, "mean_object_size")
    assert [(r[2], r[3]) for r in strata] == [("< 50 vox", 4), ("50–500 vox", 2)]
    assert strata[0][4] == pytest.approx(np.mean([0.2, 0.5, 0.9, 0.95]))
    (fg,) = stats.stratified(records, "foreground_ratio")
    assert fg[2:4] == ("< 1 %", 6)
    records[-1]["mean_object_size"] = 600.0
    strata = {r[2]: r for r in stats.stratified(records, "mean_object_size")}
    assert strata["≥ 500 vox"][3] == 1 and strata["≥ 500 vox"][4] == pytest.approx(0.6)
    assert strata["< 50 vox"][3] == 4 and strata["50–500 vox"][3] == 1
    band = stats.band_check(records)
    assert band["n"] == 6 and band["inside"] == 6 and band["max_single_gap"] < 1e-12
    with pytest.raises(ValueError, match="by must be"):
        stats.stratified(records, "volume")
