"""Foreground-aware random patches."""

from __future__ import annotations

import numpy as np
import pytest

from metricseg.data.patches import random_patch


def _coords_image(shape):
    """Image whose channels are the voxel coordinates, to see where a patch came from."""
    return np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).astype(np.float32)


@pytest.mark.parametrize("shape,patch", [((20, 24), (8, 10)), ((12, 14, 16), (6, 8, 4))])
def test_patch_is_a_crop_of_the_case(shape, patch):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, size=shape)
    image = _coords_image(shape)
    for _ in range(20):
        ip, lp = random_patch(image, label, patch, rng)
        assert ip.shape == (len(shape), *patch) and lp.shape == patch
        start = tuple(int(ip[a].flat[0]) for a in range(len(shape)))
        window = tuple(slice(s, s + p) for s, p in zip(start, patch))
        np.testing.assert_array_equal(lp, label[window])
        np.testing.assert_array_equal(ip, image[(slice(None), *window)])


def test_foreground_prob_one_always_hits_foreground_and_balances_classes():
    rng = np.random.default_rng(1)
    label = np.zeros((64, 64), dtype=np.int64)
    label[5, 5] = 1
    label[50:60, 50:60] = 2
    hits = {1: 0, 2: 0}
    for _ in range(400):
        _, lp = random_patch(
            label[None].astype(np.float32), label, (8, 8), rng, foreground_prob=1.0
        )
        assert lp.max() > 0
        hits[1] += int((lp == 1).any())
        hits[2] += int((lp == 2).any())
    # a class is drawn first, then a voxel: the one-voxel class is not drowned by the big one
    assert 150 < hits[1] < 250


def test_uniform_positions_cover_the_case():
    rng = np.random.default_rng(2)
    image = _coords_image((10, 10))
    label = np.zeros((10, 10), dtype=np.int64)
    starts = {
        tuple(int(v) for v in random_patch(image, label, (4, 4), rng, 0.0)[0][:, 0, 0])
        for _ in range(500)
    }
    assert starts == {(i, j) for i in range(7) for j in range(7)}


def test_pads_when_case_is_smaller():
    image = np.ones((2, 3, 5), dtype=np.float32)
    label = np.ones((3, 5), dtype=np.int64)
    ip, lp = random_patch(image, label, (7, 5), np.random.default_rng(0))
    assert ip.shape == (2, 7, 5) and lp.shape == (7, 5)
    assert lp.sum() == 15 and ip[0].sum() == 15  # the case once, padding is 0
    assert lp[:2].sum() == 0 and lp[-2:].sum() == 0  # padded evenly on both sides


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="patch_size"):
        random_patch(np.zeros((1, 4, 4)), np.zeros((4, 4), int), (2, 2, 2), rng)
    with pytest.raises(ValueError, match="image must be"):
        random_patch(np.zeros((4, 4)), np.zeros((4, 4), int), (2, 2), rng)
    with pytest.raises(ValueError, match="foreground_prob"):
        random_patch(np.zeros((1, 4, 4)), np.zeros((4, 4), int), (2, 2), rng, 1.5)
