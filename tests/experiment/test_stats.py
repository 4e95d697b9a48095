from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from metricseg.experiment import stats

# ---------------------------------------------------------------------------
# record builders (shared with test_claims)
# ---------------------------------------------------------------------------


def binary_rows(
    task: str,
    loss: str,
    scores: Any,
    *,
    loss_name: str | None = None,
    loss_options: dict | None = None,
    target: Sequence[int] | None = None,
    fp: Any = None,
    subjects: Sequence[str] | None = None,
    folds: Sequence[int | None] | None = None,
    voxels: int = 10_000,
) -> list[dict[str, Any]]:
    """Rows of a binary task: ``scores[s, i]`` is the foreground Dice of seed ``s`` on case
    ``c{i:02d}`` (J = D/(2-D), exact for one mask). ``target[i]`` foreground voxels (0 = empty
    target: the score is then ignored and the row is Dice 0 if ``fp > 0`` else NaN); ``fp[s, i]``
    false-positive voxels of the foreground class."""
    sc = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    n_seeds, n_cases = sc.shape
    tv = list(target) if target is not None else [100] * n_cases
    fpv = np.zeros_like(sc) if fp is None else np.broadcast_to(np.asarray(fp, float), sc.shape)
    rows = []
    for s in range(n_seeds):
        for i in range(n_cases):
            case = f"c{i:02d}"
            if tv[i] == 0:
                d = 0.0 if fpv[s, i] > 0 else math.nan
            else:
                d = float(sc[s, i])
            key = {
                "task": task,
                "loss": loss,
                "loss_name": loss_name or loss,
                "loss_options": dict(loss_options or {}),
                "seed": s,
                "fold": None if folds is None else folds[i],
                "case": case,
                "subject": subjects[i] if subjects is not None else case,
            }
            fg = {
                "class_index": 1,
                "class_name": "fg",
                "tp": 0,
                "fp": float(fpv[s, i]),
                "fn": 0,
                "voxels": voxels,
                "target_voxels": tv[i],
                "pred_voxels": 0,
                "foreground_ratio": tv[i] / voxels,
                "objects": 1 if tv[i] else 0,
                "mean_object_size": float(tv[i]) if tv[i] else math.nan,
                "dice": d,
                "jaccard": d / (2 - d) if not math.isnan(d) else math.nan,
            }
            bg = {
                "class_index": 0,
                "class_name": "bg",
                "tp": voxels - tv[i],
                "fp": 0,
                "fn": 0,
                "voxels": voxels,
                "target_voxels": voxels - tv[i],
                "pred_voxels": voxels - tv[i],
                "foreground_ratio": 1 - tv[i] / voxels,
                "objects": 1,
                "mean_object_size": float(voxels - tv[i]),
                "dice": 0.99,
                "jaccard": 0.99 / 1.01,
            }
            rows += [{**key, **bg}, {**key, **fg}]
    return rows


# ---------------------------------------------------------------------------
# elementary tests
# ---------------------------------------------------------------------------


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
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_wilcoxon([1, math.nan], [1, 2])


def test_paired_wilcoxon_with_ties_and_zeros_equals_scipys_permutation_test():
    rng = np.random.default_rng(5)
    for n in (3, 5, 8):
        for _ in range(4):
            a = np.round(rng.uniform(0, 1, n), 1)  # coarse values: ties and zero differences
            b = np.round(rng.uniform(0, 1, n), 1)
            if np.all(a == b):
                continue
            ref = sps.wilcoxon(a, b)  # method="auto": 2^n-resample permutation test here
            assert stats.paired_wilcoxon(a, b) == pytest.approx((ref.statistic, ref.pvalue))
    # by hand: d = (1, 1, 1, 0): the zero is dropped, ranks 2, 2, 2 all positive;
    # of the 8 sign patterns of the three, 1 has R+ = 6 and 1 has R+ = 0 -> p = 2/8
    assert stats.paired_wilcoxon([1, 1, 1, 0], [0, 0, 0, 0]) == pytest.approx((0.0, 0.25))


def test_paired_wilcoxon_untied_equals_scipys_exact_and_asymptotic():
    rng = np.random.default_rng(7)
    for n in (6, 20, 50, 80):  # exact up to 50 pairs, normal approximation beyond
        a = rng.uniform(0, 1, n)
        b = a + rng.normal(0.05, 0.2, n)
        ref = sps.wilcoxon(a, b)
        stat, p = stats.paired_wilcoxon(a, b)
        assert stat == ref.statistic and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_wilcoxon_min_p_is_the_exact_extreme():
    for n in (3, 5, 6, 8):
        # n positive distinct differences: the most extreme outcome of the exact test
        assert stats.wilcoxon_min_p(n) == pytest.approx(
            sps.wilcoxon(np.arange(1.0, n + 1), np.zeros(n)).pvalue
        )
    assert stats.wilcoxon_min_p(5) > 0.05 > stats.wilcoxon_min_p(6)


def test_paired_effect_t_interval_matches_scipy_and_hand():
    a = np.array([0.81, 0.75, 0.92, 0.66, 0.70, 0.88, 0.79, 0.83])
    b = np.array([0.78, 0.76, 0.85, 0.60, 0.69, 0.80, 0.71, 0.84])
    e = stats.paired_effect(a, b)
    ref = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert e.estimate == pytest.approx(np.mean(a - b))
    assert (e.ci_low, e.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert e.method == "t" and e.n == 8 and e.sd == pytest.approx(np.std(a - b, ddof=1))
    # by hand: d = (0.1, 0.1, 0.2, 0), mean 0.1, sd = sqrt(0.02/3), t_{3,0.975} = 3.18245
    h = stats.paired_effect([0.8, 0.7, 0.9, 0.6], [0.7, 0.6, 0.7, 0.6])
    half = 3.182446305284263 * math.sqrt(0.02 / 3) / 2
    assert (h.ci_low, h.ci_high) == pytest.approx((0.1 - half, 0.1 + half))
    # bootstrap over cases: the percentile interval of the mean of d, as bootstrap_ci of d
    bs = stats.paired_effect(a, b, method="bootstrap", n_resamples=500, seed=3)
    assert (bs.ci_low, bs.ci_high) == stats.bootstrap_ci(a - b, n_resamples=500, seed=3)
    z = stats.paired_effect([0.5, 0.5], [0.5, 0.5])
    assert (z.estimate, z.ci_low, z.ci_high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="method"):
        stats.paired_effect(a, b, method="wald")


def test_compare_paired_direction_and_ranks():
    c = stats.compare_paired([0.5, 0.6, 0.7, 0.9], [0.4, 0.4, 0.4, 0.95])
    # d = (0.1, 0.2, 0.3, -0.05): ranks of |d| 2, 3, 4, 1 -> R+ = 9, R- = 1
    assert (c.rank_plus, c.rank_minus) == (9.0, 1.0)
    assert c.mean_diff == pytest.approx(0.1375) and c.direction == 1
    assert c.p == pytest.approx(sps.wilcoxon([0.5, 0.6, 0.7, 0.9], [0.4, 0.4, 0.4, 0.95]).pvalue)
    # mean up, ranks down: the direction is undecided
    odd = stats.compare_paired([1.0, 0.0, 0.0, 0.0], [0.0, 0.1, 0.1, 0.1])
    assert odd.mean_diff > 0 and odd.rank_plus < odd.rank_minus and odd.direction == 0
    assert stats.compare_paired([0.2, 0.3], [0.5, 0.6]).direction == -1


def test_minimal_detectable_difference_power_by_simulation():
    # G*Power's one-sample / paired t-test, two-sided, alpha 0.05, power 0.8, n = 10: d = 0.996
    mdd = stats.minimal_detectable_difference(1.0, 10)
    assert mdd == pytest.approx(0.996, abs=5e-4)
    # it scales with the sd
    assert stats.minimal_detectable_difference(0.03, 10) == pytest.approx(0.03 * mdd)
    # large n: the normal approximation (z_0.975 + z_0.8) s / sqrt(n)
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert stats.minimal_detectable_difference(1.0, 5000) == pytest.approx(
        z / math.sqrt(5000), rel=1e-3
    )
    # Monte Carlo: a true difference of mdd is found ~80 % of the time by the t-test
    rng = np.random.default_rng(0)
    x = rng.normal(mdd, 1.0, (40_000, 10))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(10))
    assert np.mean(np.abs(t) > sps.t.ppf(0.975, 9)) == pytest.approx(0.8, abs=0.01)
    # a Holm family of 3 is tested at alpha / 3 first: a larger difference is needed
    assert stats.minimal_detectable_difference(1.0, 10, comparisons=3) > mdd
    # 5 cases: the signed-rank test can never reach 0.05
    assert stats.minimal_detectable_difference(0.01, 5) == math.inf
    assert stats.minimal_detectable_difference(0.0, 10) == 0.0
    # every n from 6 on gives a finite value that shrinks with n (large noncentralities
    # make scipy's lower tail NaN; it is 0 there)
    seq = [stats.minimal_detectable_difference(1.0, n, comparisons=3) for n in range(8, 60)]
    assert all(math.isfinite(v) for v in seq) and np.all(np.diff(seq) < 0)
    with pytest.raises(ValueError, match="sd_diff"):
        stats.minimal_detectable_difference(-1.0, 10)


def _page_l_by_hand(x: np.ndarray) -> float:
    ranks = np.apply_along_axis(sps.rankdata, 1, x)
    k = x.shape[1]
    return float(sum((k - j) * ranks[:, j].sum() for j in range(k)))  # weight k+1-(j+1)


def test_page_trend_hand_values_monotone_and_flat():
    # two cases, perfectly falling: L = 3*3*2 + 2*2*2 + 1*1*2 = 28, exact p = (1/3!)^2 = 1/36
    t = stats.page_trend([[3, 2, 1], [0.9, 0.5, 0.1]])
    assert t.statistic == 28.0 and t.p_decreasing == pytest.approx(1 / 36)
    assert t.p == pytest.approx(2 / 36) and t.direction == -1
    # a constructed monotone sequence: 8 cases falling over 5 levels, with noise
    rng = np.random.default_rng(0)
    mono = 0.8 - 0.05 * np.arange(5) + rng.normal(0, 0.01, (8, 5))
    tm = stats.page_trend(mono)
    assert tm.statistic == pytest.approx(_page_l_by_hand(mono))
    assert tm.p_decreasing < 1e-6 and tm.direction == -1 and tm.p_increasing > 0.99
    ref = sps.page_trend_test(mono[:, ::-1])  # scipy's increasing test on reversed columns
    assert tm.p_decreasing == pytest.approx(ref.pvalue)
    # increasing is the mirror image
    assert stats.page_trend(mono[:, ::-1]).direction == 1
    # flat: identical scores give no evidence at all; noise alone gives none at 0.05
    flat = stats.page_trend(np.full((8, 5), 0.7))
    assert (flat.p, flat.p_decreasing, flat.p_increasing) == (1.0, 1.0, 1.0)
    assert flat.direction == 0
    noisy = stats.page_trend(0.7 + rng.normal(0, 0.01, (8, 5)))
    assert noisy.p > 0.05
    with pytest.raises(ValueError, match="conditions >= 3"):
        stats.page_trend([[1, 2], [3, 4]])


def test_kendall_tau_matches_scipy_and_hand():
    # one discordant pair among three: tau = (2 - 1) / 3
    tau, p = stats.kendall_tau([0.9, 0.8, 0.5], [0.7, 0.8, 0.3])
    assert tau == pytest.approx(1 / 3)
    ref = sps.kendalltau([0.9, 0.8, 0.5], [0.7, 0.8, 0.3])
    assert p == pytest.approx(ref.pvalue)
    assert stats.kendall_tau([1, 2, 3, 4], [2, 4, 6, 8])[0] == 1.0
    assert all(math.isnan(v) for v in stats.kendall_tau([1, 1, 1], [1, 2, 3]))


# ---------------------------------------------------------------------------
# the case set and the case score
# ---------------------------------------------------------------------------


def _row(case, c, tv, d, **kw):
    return {"task": "t", "loss": "ce", "seed": 0, "case": case, "class_index": c,
            "target_voxels": tv, "dice": d, **kw}  # fmt: skip


def test_case_score_averages_classes_present_in_the_target():
    rows = [
        _row("a", 0, 80, 0.95),
        _row("a", 1, 10, 0.4),
        _row("a", 2, 10, 0.8),
        _row("a", 3, 0, 0.0),  # predicted only: false-positive volume, not averaged in
        _row("a", 4, 0, math.nan),  # absent from both
    ]
    assert stats.case_score(rows) == pytest.approx(0.6)
    assert stats.case_score(rows, class_index=2) == pytest.approx(0.8)
    assert math.isnan(stats.case_score(rows, class_index=3))
    empty = [_row("e", 0, 100, 1.0), _row("e", 1, 0, 0.0)]
    assert math.isnan(stats.case_score(empty))  # empty target: out of the tests
    with pytest.raises(ValueError, match="one run and one case"):
        stats.case_score([_row("a", 1, 10, 0.4), _row("b", 1, 10, 0.4)])
    with pytest.raises(ValueError, match="twice"):
        stats.case_score([_row("a", 1, 10, 0.4), _row("a", 1, 10, 0.4)])
    with pytest.raises(ValueError, match="corrupt"):
        stats.case_score([_row("a", 1, 10, math.nan)])


def test_case_set_is_fixed_by_the_target_for_every_loss():
    # case c01 has an empty target; ce predicts 7 voxels there, soft_dice nothing.
    # on c02 soft_dice also predicts a second class that is absent from the target.
    rows = binary_rows("t", "ce", [[0.5, 0.0, 0.7]], target=[100, 0, 50], fp=[[0, 7, 0]])
    rows += binary_rows("t", "soft_dice", [[0.6, 0.0, 0.9]], target=[100, 0, 50])
    for r in rows:  # add a class 2 absent from every target
        if r["class_index"] == 1:
            extra = {**r, "class_index": 2, "class_name": "other", "target_voxels": 0,
                     "foreground_ratio": 0.0, "mean_object_size": math.nan, "fp": 0.0,
                     "dice": math.nan, "jaccard": math.nan}  # fmt: skip
            if r["loss"] == "soft_dice" and r["case"] == "c02":
                extra.update(fp=12.0, dice=0.0, jaccard=0.0)
            rows.append(extra)
    m = stats.case_matrix(rows, "t")
    assert m.cases == ("c00", "c02") and m.losses == ("ce", "soft_dice")
    assert m.values.tolist() == [[0.5, 0.6], [0.7, 0.9]]
    scores = stats.case_scores(rows)
    assert set(scores[("t", "ce")]) == set(scores[("t", "soft_dice")]) == {"c00", "c02"}
    fpv = {v.loss: v for v in stats.false_positive_volume(rows)}
    assert fpv["ce"].empty_cases == 1 and fpv["ce"].empty_fp_voxels == 7.0
    assert fpv["ce"].empty_cases_predicted == 1.0 and fpv["soft_dice"].empty_cases_predicted == 0
    # absent pairs: class 2 on c00 and c02 (class 1 is present in both)
    assert fpv["soft_dice"].absent_pairs == 2 and fpv["soft_dice"].absent_fp_voxels == 6.0
    assert fpv["soft_dice"].absent_pairs_predicted == 1.0 and fpv["ce"].absent_fp_voxels == 0


def test_seed_averaging_and_spread():
    per_seed = np.array([[0.4, 0.6, 0.8], [0.6, 0.8, 0.7], [0.5, 0.7, 0.9]])
    rows = binary_rows("t", "ce", per_seed)
    m = stats.case_matrix(rows, "t")
    assert m.seeds == (0, 1, 2)
    assert m.column("ce") == pytest.approx(per_seed.mean(axis=0))
    (sp,) = stats.seed_spread(m)
    seed_means = per_seed.mean(axis=1)  # 0.6, 0.7, 0.7
    assert sp.mean == pytest.approx(seed_means.mean())
    assert sp.sd == pytest.approx(np.std(seed_means, ddof=1))
    assert (sp.low, sp.high) == pytest.approx((0.6, 0.7)) and sp.range == pytest.approx(0.1)
    # folds only say which model tested a case
    cv = binary_rows("t", "ce", per_seed, folds=[0, 1, 2])
    assert stats.case_matrix(cv, "t").values == pytest.approx(m.values)


def test_missing_runs_cases_and_classes_are_errors_that_name_them():
    full = binary_rows("t", "ce", np.full((2, 3), 0.5)) + binary_rows(
        "t", "soft_dice", np.full((2, 3), 0.6)
    )
    # a whole run missing: soft_dice seed 1
    rows = [r for r in full if not (r["loss"] == "soft_dice" and r["seed"] == 1)]
    with pytest.raises(stats.IncompleteRecordsError, match=r"run soft_dice/seed1") as e:
        stats.case_matrix(rows, "t")
    assert e.value.missing == ["run soft_dice/seed1 (all 3 cases)"]
    # asking only for ce is fine: its runs are complete
    assert stats.case_matrix(rows, "t", losses=["ce"]).n_cases == 3
    # a case missing from one run
    rows = [r for r in full if not (r["loss"] == "ce" and r["seed"] == 0 and r["case"] == "c02")]
    with pytest.raises(stats.IncompleteRecordsError, match=r"ce/seed0: cases \['c02'\]"):
        stats.case_matrix(rows, "t")
    # a class row missing
    rows = [
        r for r in full if not (r["loss"] == "ce" and r["case"] == "c01" and r["class_index"] == 0)
    ]
    with pytest.raises(stats.IncompleteRecordsError, match=r"case 'c01': classes \[0\]"):
        stats.case_matrix(rows, "t")
    # one case tested by two folds of one seed
    twice = full + [{**r, "fold": 1} for r in full if r["loss"] == "ce" and r["seed"] == 0][:2]
    with pytest.raises(ValueError, match="tested by folds None and 1"):
        stats.case_matrix(twice, "t")
    # targets that differ between runs
    bad = [dict(r) for r in full]
    bad[-1]["target_voxels"] = 99
    with pytest.raises(ValueError, match="did not score the same targets"):
        stats.case_matrix(bad, "t")
    with pytest.raises(ValueError, match="no records"):
        stats.case_matrix(full, "other")


def test_index_records_builds_each_matrix_once():
    rows = binary_rows("a", "ce", [[0.5, 0.6]]) + binary_rows("b", "ce", [[0.7, 0.8]])
    index = stats.index_records(rows)
    assert list(index) == ["a", "b"]
    m = index["b"].matrix("dice")
    assert index["b"].matrix("dice") is m and m.values.tolist() == [[0.7], [0.8]]
    with pytest.raises(ValueError, match="read-only"):
        m.per_seed[0, 0, 0] = 1.0


def test_group_scores_weigh_registry_names_equally():
    rows = binary_rows("t", "soft_dice", [[0.8, 0.6]])
    rows += binary_rows("t", "w1", [[0.2, 0.2]], loss_name="weighted_ce")
    rows += binary_rows("t", "w2", [[0.4, 0.6]], loss_name="weighted_ce")
    rows += binary_rows("t", "ce", [[0.5, 0.5]])
    tr = stats.TaskRecords.from_records(rows, "t")
    assert tr.variants(["weighted_ce"]) == ("w1", "w2")
    m = tr.matrix("dice")
    ce_group = stats.group_scores(m, tr.loss_names, stats.CE_BASED)
    # per case: mean(ce, mean(w1, w2)) = mean(0.5, 0.3), mean(0.5, 0.4)
    assert ce_group == pytest.approx([0.4, 0.45])
    with pytest.raises(ValueError, match="none of the losses"):
        stats.group_scores(m, tr.loss_names, ["focal"])


def test_trivial_score_is_the_chance_level_of_scored_cases():
    rows = binary_rows("t", "ce", [[0.5, 0.5, 0.5]], target=[100, 0, 2500], voxels=10_000)
    # f = 0.01 -> 2f/(1+f); f = 0.25 -> 0.4; the empty case is not scored
    want = np.mean([0.02 / 1.01, 0.4])
    assert stats.trivial_dice(rows, "t") == pytest.approx(want)
    assert stats.trivial_score(rows, "t", "jaccard") == pytest.approx(np.mean([0.01, 0.25]))
    tr = stats.TaskRecords.from_records(rows, "t")
    assert tr.chance_scores("dice") == pytest.approx([0.02 / 1.01, 0.4])


# ---------------------------------------------------------------------------
# the report's tables
# ---------------------------------------------------------------------------


def test_summary_ranks_tests_and_verdict():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, 12)
    records = binary_rows("t", "soft_dice", [base + 0.1]) + binary_rows("t", "ce", [base])
    records += binary_rows("t", "lovasz_softmax", [base + 0.05])
    summary = {s.loss: s for s in stats.summarize(records, n_resamples=500)}
    assert summary["soft_dice"].dice_mean == pytest.approx(np.mean(base + 0.1))
    assert summary["ce"].dice_std == pytest.approx(np.std(base, ddof=1))
    assert summary["ce"].jaccard_mean == pytest.approx(np.mean(base / (2 - base)))
    assert [summary[k].rank for k in ("soft_dice", "lovasz_softmax", "ce")] == [1, 2, 3]
    assert summary["ce"].n_cases == 12 and summary["ce"].n_runs == 1
    assert summary["ce"].independent is None and summary["ce"].loss_name == "ce"
    # with the task info: a task that is not independent gets no CI
    dep = stats.summarize(records, tasks={"t": {"independent": False}}, n_resamples=100)
    assert all(math.isnan(s.dice_ci[0]) and s.independent is False for s in dep)
    assert stats.pairwise_tests(records, tasks={"t": {"independent": False}}) == []

    tests = {(t.loss_a, t.loss_b): t for t in stats.pairwise_tests(records)}
    t = tests[("soft_dice", "ce")]
    ref = sps.wilcoxon(base + 0.1, base)
    assert t.p == pytest.approx(ref.pvalue) and t.mean_diff == pytest.approx(0.1)
    assert t.ci_low == pytest.approx(0.1) and t.ci_high == pytest.approx(0.1)  # constant diff
    assert t.p_holm == pytest.approx(
        stats.holm([x.p for x in tests.values()])[list(tests).index(("soft_dice", "ce"))]
    )

    (verdict,) = stats.group_verdicts(records)
    assert verdict.metric_sensitive_better
    assert verdict.metric_sensitive == pytest.approx(np.mean(base + 0.075))
    assert verdict.pixel_wise == pytest.approx(np.mean(base))
    assert verdict.mean_diff == pytest.approx(0.075)
    assert stats.mean_ranks(list(summary.values()))[0] == ("soft_dice", 1.0, 1)


def test_summary_seed_spread():
    records = binary_rows("t", "ce", [[0.4, 0.6], [0.6, 0.8], [0.5, 0.5]])
    (s,) = stats.summarize(records, n_resamples=100)
    assert s.n_seeds == 3 and s.n_runs == 3 and s.n_cases == 2
    assert s.dice_mean == pytest.approx(0.5667, abs=1e-4)
    assert s.seed_sd == pytest.approx(np.std([0.5, 0.7, 0.5], ddof=1))
    assert (s.seed_low, s.seed_high) == pytest.approx((0.5, 0.7))


def test_stratified_bins_per_class_and_band():
    sizes = [10, 20, 30, 40, 60, 600]
    records = binary_rows("t", "ce", [[0.2, 0.5, 0.9, 0.95, 0.7, 0.6]], target=sizes)
    strata = stats.stratified(records, "mean_object_size")
    assert [(r[2], r[3]) for r in strata] == [("< 50 vox", 4), ("50–500 vox", 1), ("≥ 500 vox", 1)]
    assert strata[0][4] == pytest.approx(np.mean([0.2, 0.5, 0.9, 0.95]))
    assert strata[2][4] == pytest.approx(0.6)
    # foreground ratio: 600 / 10000 = 6 % is the only one from 1 %
    fg = stats.stratified(records, "foreground_ratio")
    assert [(r[2], r[3]) for r in fg] == [("< 1 %", 5), ("1–10 %", 1)]
    with pytest.raises(ValueError, match="by must be"):
        stats.stratified(records, "volume")
    (pc,) = stats.per_class(records)
    assert pc[:4] == ("t", "ce", "fg", 6)
    band = stats.band_check(records)
    assert band["n"] == 6 and band["inside"] == 6 and band["max_single_gap"] < 1e-12
    assert band["max_violation"] == 0.0


def test_band_violation_hand_values():
    # J = D/(2-D) lies inside; J > D breaks 1-D <= 1-J; J far below breaks the lower bound
    v = stats.band_violation(np.array([0.5, 0.5, 0.8]), np.array([1 / 3, 0.6, 0.4]))
    # (1-J)/2 - (1-D) for the last: 0.3 - 0.2 = 0.1
    assert v == pytest.approx([0.0, 0.1, 0.1])
