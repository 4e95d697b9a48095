"""Closed forms of metricseg.theory.bounds against hand values, dense-grid and scipy
optima, and hypothesis properties on random counts and random soft predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from metricseg.counts import FN, FP, TP, soft_counts
from metricseg.theory import bounds
from metricseg.theory.verify import default_claims

TOL = 1e-12


def scores(t, f, n, alpha=0.5):
    d = 2 * t / (2 * t + f + n)
    j = t / (t + f + n)
    tv = t / (t + alpha * f + (1 - alpha) * n)
    return d, j, tv


def test_dice_jaccard_conversions_hand_values():
    # t=1, f=1, n=1: D = 2/4, J = 1/3
    assert bounds.dice_from_jaccard(1 / 3) == pytest.approx(0.5, abs=TOL)
    assert bounds.jaccard_from_dice(0.5) == pytest.approx(1 / 3, abs=TOL)
    assert bounds.dice_from_jaccard(0.0) == 0.0 and bounds.dice_from_jaccard(1.0) == 1.0


def test_conversions_work_on_numpy_and_torch_and_invert_each_other():
    j = np.linspace(0, 1, 101)
    np.testing.assert_allclose(bounds.jaccard_from_dice(bounds.dice_from_jaccard(j)), j, atol=1e-15)
    jt = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = bounds.dice_from_jaccard(jt)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, 2 * jt / (1 + jt))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), np.array([0.2, 1.2])])
def test_conversions_reject_values_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="jaccard must lie in"):
        bounds.dice_from_jaccard(bad)
    with pytest.raises(ValueError, match="dice must lie in"):
        bounds.jaccard_from_dice(bad)


def test_max_dice_jaccard_gap_against_scipy():
    res = minimize_scalar(
        lambda j: -(2 * j / (1 + j) - j), bounds=(0, 1), method="bounded", options={"xatol": 1e-12}
    )
    assert -res.fun == pytest.approx(bounds.MAX_DICE_JACCARD_GAP, abs=1e-12)
    assert res.x == pytest.approx(bounds.JACCARD_AT_MAX_GAP, abs=1e-6)
    assert bounds.dice_from_jaccard(bounds.JACCARD_AT_MAX_GAP) == pytest.approx(
        bounds.DICE_AT_MAX_GAP, abs=TOL
    )
    assert bounds.MAX_DICE_JACCARD_GAP == pytest.approx(0.17157287525381, abs=1e-13)


def test_dice_loss_bounds_hand_values():
    assert bounds.dice_loss_bounds(0.4) == (0.2, 0.4)


def _tversky_gap_on_dense_grid(alpha: float) -> float:
    # t = 1, f = x, n = y on a dense log grid; independent of the closed form
    r = np.concatenate(([0.0], np.geomspace(1e-3, 1e3, 1500)))
    x, y = np.meshgrid(r, r, indexing="ij")
    d = 2 / (2 + x + y)
    tv = 1 / (1 + alpha * x + (1 - alpha) * y)
    return float(np.abs(tv - d).max())


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.35, 0.5, 0.6, 0.75, 0.9, 0.99])
def test_tversky_max_gap_matches_dense_grid(alpha):
    assert _tversky_gap_on_dense_grid(alpha) == pytest.approx(
        bounds.tversky_dice_max_gap(alpha), abs=2e-5
    )


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.7, 0.9])
def test_tversky_worst_case_is_where_the_gap_is(alpha):
    w = bounds.tversky_dice_worst_case(alpha)
    d, _, tv = scores(1.0, w.fp_per_tp, w.fn_per_tp, alpha)
    assert d == pytest.approx(w.dice, abs=TOL) and tv == pytest.approx(w.tversky, abs=TOL)
    assert abs(tv - d) == pytest.approx(bounds.tversky_dice_max_gap(alpha), abs=TOL)
    assert tv > d  # the worst case over-scores: errors of the smaller weight


def test_tversky_closed_forms_hand_values():
    # alpha = 0.9: m = 0.1, sqrt(0.2) = 1/sqrt(5): gap = (sqrt5 - 1)/(sqrt5 + 1) = (3 - sqrt5)/2
    assert bounds.tversky_dice_max_gap(0.9) == pytest.approx((3 - math.sqrt(5)) / 2, abs=TOL)
    assert bounds.tversky_dice_max_gap(0.5) == 0.0
    assert bounds.tversky_dice_max_gap(1.0) == 1.0
    assert bounds.tversky_dice_ratio_range(0.5) == (1.0, 1.0)
    lo, hi = bounds.tversky_dice_ratio_range(0.8)
    assert lo == pytest.approx(1 / 1.6) and hi == pytest.approx(1 / 0.4)
    assert bounds.tversky_dice_ratio_range(1.0)[1] == math.inf


def test_tversky_bounds_grow_monotonically_in_distance_from_half():
    alphas = np.linspace(0.5, 0.999, 200)
    gaps = [bounds.tversky_dice_max_gap(a) for a in alphas]
    widths = [np.subtract(*bounds.tversky_dice_ratio_range(a)[::-1]) for a in alphas]
    assert np.all(np.diff(gaps) > 0) and np.all(np.diff(widths) > 0)
    for a in alphas:  # symmetric in alpha <-> 1 - alpha
        assert bounds.tversky_dice_max_gap(a) == pytest.approx(bounds.tversky_dice_max_gap(1 - a))


def test_tversky_ratio_extremes_approached_along_the_edges():
    # t = 1 and f -> inf (n = 0) drives T/D to 1/(2 alpha); n -> inf to 1/(2 beta)
    alpha = 0.7
    lo, hi = bounds.tversky_dice_ratio_range(alpha)
    d, _, tv = scores(1.0, 1e9, 0.0, alpha)
    assert tv / d == pytest.approx(lo, rel=1e-8)
    d, _, tv = scores(1.0, 0.0, 1e9, alpha)
    assert tv / d == pytest.approx(hi, rel=1e-8)


@pytest.mark.parametrize("alpha", [-0.1, 1.1, float("nan")])
def test_alpha_out_of_range_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha must lie in"):
        bounds.tversky_dice_max_gap(alpha)


def test_alpha_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="alpha"):
        bounds.tversky_dice_ratio_range("0.5")  # type: ignore[arg-type]


def test_hamming_loss_bound_and_its_checks():
    assert bounds.hamming_loss_bound(0.5, 3.0) == 3.0
    with pytest.raises(ValueError, match="w_fn must be a finite float >= 0, got -1"):
        bounds.hamming_loss_bound(1.0, -1.0)


# --- every claim on random counts and random soft predictions -----------------------------

CLAIMS = default_claims(
    alphas=(0.0, 0.1, 0.3, 0.5, 0.65, 0.9, 1.0),
    hamming_weights=((1.0, 1.0), (0.2, 3.0), (0.0, 1.0)),
)


def _assert_claims_hold(tp, fp, fn, tn):
    for c in CLAIMS:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.asarray(c.quantity(tp, fp, fn, tn), dtype=np.float64)
        v = v[~np.isnan(v)]
        if c.lower is not None:
            assert (v >= c.lower - 1e-9).all(), (c.name, c.params, v.min())
        if c.upper is not None:
            assert (v <= c.upper + 1e-9).all(), (c.name, c.params, v.max())


counts = st.integers(min_value=0, max_value=10**6)


@settings(max_examples=300, deadline=None)
@given(counts, counts, counts, counts)
def test_every_claim_holds_on_random_count_quadruples(t, f, n, tn):
    if t + f + n == 0:
        t = 1
    _assert_claims_hold(*(np.array([float(x)]) for x in (t, f, n, tn)))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 64), st.booleans())
def test_every_claim_holds_on_random_soft_predictions(seed, voxels, hard_target):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(4, 1, voxels, generator=g, dtype=torch.float64) ** 3
    target = torch.rand(4, 1, voxels, generator=g, dtype=torch.float64)
    if hard_target:
        target = (target > 0.5).double()
    c = soft_counts(probs, target)[:, 0]
    tp, fp, fn = c[:, TP], c[:, FP], c[:, FN]
    keep = (tp + fp + fn) > 1e-12
    if not keep.any():
        return
    tn = voxels - tp - fp - fn
    _assert_claims_hold(*(x[keep].numpy() for x in (tp, fp, fn, tn)))
