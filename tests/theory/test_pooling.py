"""Per-image mean against pooled scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from metricseg.counts import confusion
from metricseg.theory.pooling import compare_per_image_and_pooled, synthetic_disc_counts


def test_hand_example():
    r = compare_per_image_and_pooled(np.array([[900, 100, 100], [0, 0, 10]]))
    assert r.mean_dice == pytest.approx(0.45)
    assert r.pooled_dice == pytest.approx(1800 / 2010)
    assert r.mean_jaccard == pytest.approx(900 / 1100 / 2)
    assert r.pooled_jaccard == pytest.approx(900 / 1110)
    assert r.images == 2


def test_empty_images_are_left_out_and_all_empty_raises():
    r = compare_per_image_and_pooled(np.array([[5, 0, 0], [0, 0, 0]]))
    assert r.images == 1 and r.mean_dice == 1.0
    with pytest.raises(ValueError, match="no image with TP \\+ FP \\+ FN > 0"):
        compare_per_image_and_pooled(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shape \\(B, 3\\)"):
        compare_per_image_and_pooled(np.zeros((3, 4)))


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 8), st.just(3)), elements=st.integers(0, 1000)))
def test_pooled_is_the_weighted_mean_with_weights_2t_plus_f_plus_n(c):
    c = c[c.sum(1) > 0]
    if len(c) == 0:
        return
    r = compare_per_image_and_pooled(c)
    t, f, n = c.T.astype(float)
    d = 2 * t / (2 * t + f + n)
    w = 2 * t + f + n
    assert r.pooled_dice == pytest.approx(float((w * d).sum() / w.sum()), abs=1e-12)
    # both lie between the smallest and the largest per-image score
    assert d.min() - 1e-12 <= r.pooled_dice <= d.max() + 1e-12
    assert d.min() - 1e-12 <= r.mean_dice <= d.max() + 1e-12


def test_synthetic_counts_agree_with_confusion_and_show_the_gap():
    c = synthetic_disc_counts(60, 64, seed=3)
    assert c.shape == (60, 3) and c.dtype == np.int64 and (c >= 0).all()
    np.testing.assert_array_equal(c, synthetic_disc_counts(60, 64, seed=3))
    r = compare_per_image_and_pooled(c)
    # small discs are segmented worse and missed ones score 0: the pooled score is higher
    assert r.pooled_dice > r.mean_dice + 0.05


def test_synthetic_counts_match_a_direct_count():
    # rebuild one image's masks by the same recipe and count with metricseg.counts
    rng = np.random.default_rng(7)
    size = 48
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = float(np.exp(rng.uniform(np.log(2.0), np.log(40.0))))
    cy, cx = rng.uniform(r, max(size - r, r + 1e-9), size=2)
    target = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if rng.random() < 0.1:
        pred = np.zeros_like(target)
    else:
        dy, dx = rng.normal(0.0, 2.0, size=2)
        rp = r * rng.uniform(0.8, 1.2)
        pred = (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= rp * rp
    expected = confusion(pred[None].astype(np.int64), target[None].astype(np.int64), 2)[0, 1]
    np.testing.assert_array_equal(synthetic_disc_counts(1, size, seed=7)[0], expected)
