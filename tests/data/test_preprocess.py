"""Gapped slab splits, resizing and intensity normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricseg.data.preprocess import (
    ct_window,
    gapped_slab_split,
    interleaved_slabs,
    resize,
    zscore,
)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(30, 200),
    weights=st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(1, 4)),
    slab=st.integers(1, 8),
    gap=st.integers(0, 5),
)
def test_slabs_are_disjoint_and_separated_by_the_gap(n, weights, slab, gap):
    splits = interleaved_slabs(range(n), weights, slab=slab, gap=gap)
    flat = [p for s in splits for p in s]
    assert len(flat) == len(set(flat)) and set(flat) <= set(range(n))
    for a in range(3):
        for b in range(a + 1, 3):
            if splits[a] and splits[b]:
                assert min(abs(x - y) for x in splits[a] for y in splits[b]) > gap


def test_split_counts_interleaving_and_error():
    train, val, test = gapped_slab_split(range(146), (48, 16, 32), slab=8, gap=3)
    assert (len(train), len(val), len(test)) == (48, 16, 32)
    # interleaved: every split reaches into the first and the last third of the volume
    for split in (train, val, test):
        assert min(split) < 146 / 3 and max(split) > 2 * 146 / 3
    with pytest.raises(ValueError, match=r"num_train=200 .* at most"):
        gapped_slab_split(range(146), (200, 16, 32))
    with pytest.raises(ValueError, match="slab"):
        interleaved_slabs(range(10), (1, 1, 1), slab=0, gap=1)


def test_resize_keeps_label_values_and_shape():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, size=(37, 51))
    out = resize(label, (64, 64), order=0)
    assert out.shape == (64, 64) and set(np.unique(out)) <= set(np.unique(label))
    smooth = resize(np.linspace(0, 1, 50)[None].repeat(3, 0), (3, 20), order=1)
    assert np.all(np.diff(smooth[0]) >= 0) and 0 <= smooth.min() and smooth.max() <= 1


def test_normalisations():
    x = np.array([0.0, 0.0, 2.0, 4.0])
    z = zscore(x, x > 0)
    assert z[2:].mean() == pytest.approx(0) and z[2:].std() == pytest.approx(1)
    assert ct_window(np.array([-1000.0, 0.0, 500.0]), -1000, 1000).tolist() == [-1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="high > low"):
        ct_window(x, 5, 5)
