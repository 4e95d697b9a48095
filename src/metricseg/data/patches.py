"""Foreground-aware random patches for training on cases larger than the network input.

With probability ``foreground_prob`` the patch is centred on a voxel of a
foreground class (a present class drawn uniformly, then one of its voxels drawn
uniformly, as nnU-Net oversamples foreground); otherwise the patch position is
uniform. Cases smaller than the patch are padded (image with 0, the mean of a
z-scored image, label with background).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["random_patch"]


def random_patch(
    image: np.ndarray,
    label: np.ndarray,
    patch_size: Sequence[int],
    rng: np.random.Generator,
    foreground_prob: float = 0.33,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a random patch of ``patch_size`` from an image and its label map.

    Args:
        image: ``(C_in, *spatial)``.
        label: ``(*spatial)`` integer label map (0 = background).
        patch_size: one size per spatial axis.
        rng: the random generator (the caller owns the seed).
        foreground_prob: probability of centring the patch on a foreground voxel.

    Returns:
        ``(image_patch (C_in, *patch_size), label_patch (*patch_size))``, copies.

    >>> img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> lab = np.zeros((4, 4), dtype=np.int64); lab[3, 3] = 1
    >>> ip, lp = random_patch(img, lab, (2, 2), np.random.default_rng(0), foreground_prob=1.0)
    >>> int(lp.sum()), ip.shape
    (1, (1, 2, 2))
    >>> random_patch(img, lab, (6, 6), np.random.default_rng(0))[1].shape
    (6, 6)
    """
    patch = tuple(int(p) for p in patch_size)
    if image.ndim != label.ndim + 1 or image.shape[1:] != label.shape:
        raise ValueError(
            f"image must be (C_in, *spatial) matching label (*spatial), got image {image.shape} "
            f"and label {label.shape}"
        )
    if len(patch) != label.ndim or any(p < 1 for p in patch):
        raise ValueError(f"patch_size must be {label.ndim} positive sizes, got {tuple(patch_size)}")
    if not 0.0 <= foreground_prob <= 1.0:
        raise ValueError(f"foreground_prob must be in [0, 1], got {foreground_prob}")

    # pad symmetrically up to the patch size where the case is smaller
    pad = [
        (max(p - s, 0) // 2, max(p - s, 0) - max(p - s, 0) // 2) for p, s in zip(patch, label.shape)
    ]
    if any(a or b for a, b in pad):
        image = np.pad(image, [(0, 0), *pad], mode="constant", constant_values=0)
        label = np.pad(label, pad, mode="constant", constant_values=0)
    shape = np.array(label.shape)
    size = np.array(patch)

    start = None
    if rng.random() < foreground_prob:
        present = np.unique(label[label > 0])
        if present.size:
            k = present[rng.integers(present.size)]
            voxels = np.flatnonzero(label == k)
            centre = np.array(np.unravel_index(voxels[rng.integers(voxels.size)], label.shape))
            # random offset of the voxel inside the patch, clipped to the case
            start = np.clip(centre - rng.integers(0, size), 0, shape - size)
    if start is None:
        start = np.array([rng.integers(0, s - p + 1) for s, p in zip(shape, size)])
    window = tuple(slice(int(a), int(a) + p) for a, p in zip(start, patch))
    return image[(slice(None), *window)].copy(), label[window].copy()
