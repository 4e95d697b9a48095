"""The weighted-Hamming counterexample family and the one bound that does exist."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricseg.theory import bounds
from metricseg.theory.hamming import hamming_counterexample, hamming_counterexample_family


def test_counterexample_hand_values():
    c = hamming_counterexample(100, fp=1, fn=1, w_fp=2.0, w_fn=0.5)
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 1, 1, 98)
    assert c.hamming == pytest.approx(1 - 2.5 / 100)
    assert c.dice == 0.0 and c.jaccard == 0.0


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.1, 10.0), (50.0, 50.0)])
def test_hamming_tends_to_one_while_dice_is_zero(weights):
    fam = hamming_counterexample_family([10, 10**3, 10**6, 10**9], w_fp=weights[0], w_fn=weights[1])
    assert (fam["dice"] == 0).all() and (fam["jaccard"] == 0).all()
    assert np.all(np.diff(fam["hamming"]) > 0)
    assert 1 - fam["hamming"][-1] == pytest.approx(sum(weights) / 1e9)
    # neither an absolute nor a relative approximation: |H - D| -> 1, (1 - D)/(1 - H) -> inf
    assert fam["hamming"][-1] - fam["dice"][-1] > 1 - 1e-6
    assert (1 - fam["dice"][-1]) / (1 - fam["hamming"][-1]) > 1e6


def test_missed_small_object():
    # a 5-voxel lesion missed in a 64^3 volume: Hamming 0.99998, Dice 0
    c = hamming_counterexample(64**3, fp=0, fn=5)
    assert c.hamming == pytest.approx(1 - 5 / 64**3) and c.dice == 0.0


def test_counterexample_rejects_bad_arguments():
    with pytest.raises(ValueError, match="fp \\+ fn must be at least 1"):
        hamming_counterexample(10, fp=0, fn=0)
    with pytest.raises(ValueError, match="num_voxels must be an int >= 5, got 3"):
        hamming_counterexample(3, fp=2, fn=3)
    with pytest.raises(TypeError, match="w_fp must be a float"):
        hamming_counterexample(10, w_fp="1")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**5),
    st.integers(0, 10**5),
    st.integers(0, 10**5),
    st.integers(0, 10**5),
    st.floats(0, 100),
    st.floats(0, 100),
)
def test_hamming_loss_bound_holds_and_is_tight(t, f, n, tn, w_fp, w_fn):
    if f + n == 0:
        f = 1
    total = t + f + n + tn
    hamming_loss = (w_fp * f + w_fn * n) / total
    jaccard_loss = (f + n) / (t + f + n)
    k = bounds.hamming_loss_bound(w_fp, w_fn)
    assert hamming_loss <= k * jaccard_loss * (1 + 1e-12) + 1e-300
    # and in terms of Dice: 1 - J <= 2 (1 - D)
    dice_loss = (f + n) / (2 * t + f + n)
    assert hamming_loss <= 2 * k * dice_loss * (1 + 1e-12) + 1e-300
    # equality with no true negatives and only the heavier error
    heavy_f, heavy_n = (f + n, 0) if w_fp >= w_fn else (0, f + n)
    eq_loss = (w_fp * heavy_f + w_fn * heavy_n) / (t + f + n)
    assert eq_loss == pytest.approx(k * jaccard_loss, rel=1e-12, abs=1e-300)


def test_inverse_frequency_weights_fail_through_false_positives():
    from metricseg.theory.hamming import inverse_frequency_counterexample

    prev_h = -1.0
    for n in (10**2, 10**4, 10**6, 10**8):
        c = inverse_frequency_counterexample(n, 5)
        assert (c.tp, c.fn) == (5, 0) and c.fp == math.ceil(math.sqrt(n))
        # balanced accuracy by hand: recall 1, specificity 1 - f/(N - P)
        assert c.hamming == pytest.approx(0.5 * (1 + 1 - c.fp / (n - 5)))
        assert c.dice == pytest.approx(10 / (10 + c.fp))
        assert c.hamming > prev_h
        prev_h = c.hamming
    assert c.hamming > 0.9999 and c.dice < 0.001
