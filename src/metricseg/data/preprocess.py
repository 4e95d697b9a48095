"""Preprocessing shared by every data source: resizing, intensity normalisation, splits.

Resampling uses :func:`scipy.ndimage.zoom` (linear for intensities and soft labels,
nearest neighbour for label maps), so that a label map never gains a value that
was not in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "ct_window",
    "evenly_spaced",
    "gapped_slab_split",
    "interleaved_slabs",
    "resize",
    "seeded_split",
    "zscore",
]


def resize(array: np.ndarray, shape: Sequence[int], *, order: int) -> np.ndarray:
    """Resample ``array`` to ``shape`` (same number of dims) with spline ``order`` (0 or 1).

    >>> resize(np.arange(4.0).reshape(2, 2), (4, 4), order=0).shape
    (4, 4)
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if len(shape) != array.ndim:
        raise ValueError(
            f"shape must have {array.ndim} entries for an array of shape {array.shape}, got {shape}"
        )
    if shape == array.shape:
        return array.copy()
    factors = [t / s for t, s in zip(shape, array.shape)]
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    if out.shape != shape:  # zoom rounds; fix an off-by-one by cropping or edge padding
        out = out[tuple(slice(0, s) for s in shape)]
        pad = [(0, s - o) for s, o in zip(shape, out.shape)]
        out = np.pad(out, pad, mode="edge")
    return out


def zscore(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    r"""Intensity z-score :math:`(x - \mu) / \sigma`, with :math:`\mu, \sigma` taken over ``mask``.

    MR intensities have no absolute scale, so each image is normalised on its own
    (over the foreground of the head when ``mask`` is given, as nnU-Net does).

    >>> float(zscore(np.array([1.0, 2.0, 3.0])).mean())
    0.0
    """
    values = image[mask] if mask is not None and mask.any() else image
    mean = float(values.mean())
    std = float(values.std())
    return ((image - mean) / (std if std > 0 else 1.0)).astype(np.float32)


def ct_window(image: np.ndarray, low: float = -1000.0, high: float = 1000.0) -> np.ndarray:
    r"""CT normalisation: clip Hounsfield units to ``[low, high]`` and map to :math:`[-1, 1]`.

    >>> ct_window(np.array([-2000.0, 0.0, 3000.0])).tolist()
    [-1.0, 0.0, 1.0]
    """
    if not high > low:
        raise ValueError(f"ct window must have high > low, got low={low}, high={high}")
    clipped = np.clip(image.astype(np.float32), low, high)
    return ((clipped - low) / (high - low) * 2.0 - 1.0).astype(np.float32)


def evenly_spaced(items: Sequence[int], count: int) -> list[int]:
    """``count`` items of ``items`` spread evenly from first to last (all of them if fewer).

    >>> evenly_spaced(list(range(10)), 3)
    [0, 4, 9]
    """
    items = list(items)
    if count >= len(items):
        return items
    if count <= 0:
        return []
    picks = np.round(np.linspace(0, len(items) - 1, count)).astype(int)
    return [items[i] for i in picks]


def interleaved_slabs(
    positions: Sequence[int], weights: Sequence[float], *, slab: int, gap: int
) -> tuple[list[int], list[int], list[int]]:
    """All positions of :func:`gapped_slab_split` per split, before thinning to the counts.

    >>> interleaved_slabs(range(12), (2, 1, 1), slab=2, gap=1)
    ([0, 1, 9, 10, 11], [3, 4], [6, 7])
    """
    if slab < 1 or gap < 0:
        raise ValueError(f"slab must be >= 1 and gap >= 0, got slab={slab}, gap={gap}")
    positions = sorted(int(p) for p in positions)
    # smooth weighted round robin: interleave slabs in proportion to the weights
    w = np.asarray(weights, dtype=float)
    credit = np.zeros(3)
    splits: tuple[list[int], list[int], list[int]] = ([], [], [])
    i, previous = 0, -1
    while i < len(positions):
        credit += w
        which = int(np.argmax(credit))
        credit[which] -= w.sum()
        if previous not in (-1, which):
            i += gap
        splits[which].extend(positions[i : i + slab])
        i += slab
        previous = which
    return splits


def gapped_slab_split(
    positions: Sequence[int],
    counts: tuple[int, int, int],
    *,
    slab: int = 4,
    gap: int = 3,
) -> tuple[list[int], list[int], list[int]]:
    """Split slice positions into train / val / test slabs with a gap between splits.

    One subject gives every slice, so neighbouring slices are near copies of each
    other. The positions (sorted slice indices) are cut into slabs of ``slab``
    consecutive positions, handed out to the splits in an interleaved pattern in
    proportion to ``counts`` (so every split sees the whole anatomy), and ``gap``
    positions are dropped wherever two neighbouring slabs belong to different
    splits: a test slice is then at least ``gap + 1`` positions from any training
    slice. Each split is finally thinned evenly to its count.

    Raises:
        ValueError: a split would get fewer positions than asked for; the message
            says how many there are.

    >>> tr, va, te = gapped_slab_split(range(40), (8, 2, 4), slab=4, gap=2)
    >>> len(tr), len(va), len(te)
    (8, 2, 4)
    >>> min(abs(a - b) for a in tr for b in te) > 2
    True
    """
    if any(c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(f"counts must be non-negative with a positive sum, got {counts}")
    splits = interleaved_slabs(positions, counts, slab=slab, gap=gap)
    names = ("num_train", "num_val", "num_test")
    for name, got, want in zip(names, splits, counts):
        if len(got) < want:
            raise ValueError(
                f"{name}={want} is more than the {len(got)} slices this source gives with "
                f"slab={slab}, gap={gap}; ask for at most {len(got)}"
            )
    return (
        evenly_spaced(splits[0], counts[0]),
        evenly_spaced(splits[1], counts[1]),
        evenly_spaced(splits[2], counts[2]),
    )


def seeded_split(
    n: int,
    seed: int,
    *,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    what: str = "the dataset",
    unit: str = "items",
) -> dict[str, list[int]]:
    """Split items ``0 .. n-1`` (cases or subjects) into train / val / test by a seeded shuffle.

    ``num_test`` and ``num_val`` default to ``round(n * fraction)``, ``num_train`` to the rest.
    In the order ``numpy.random.default_rng(seed).permutation(n)``, test takes the first
    ``num_test`` items, validation the next ``num_val`` and training the next ``num_train``;
    each list keeps that shuffled order (its first item is the first of the split).

    Raises:
        ValueError: a negative count, no training item, or more items asked for than ``n``;
            the message says ``what`` has ``n`` ``unit``.

    >>> seeded_split(5, 0, num_val=1, num_test=1)
    {'train': [3, 0, 1], 'val': [4], 'test': [2]}
    """
    n_test = num_test if num_test is not None else round(n * test_fraction)
    n_val = num_val if num_val is not None else round(n * val_fraction)
    n_train = num_train if num_train is not None else n - n_val - n_test
    if min(n_train, n_val, n_test) < 0 or n_train < 1 or n_train + n_val + n_test > n:
        raise ValueError(
            f"{what} has {n} {unit}; cannot split them into num_train={n_train}, "
            f"num_val={n_val}, num_test={n_test} (at least one for training)"
        )
    order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    return {
        "train": order[n_test + n_val : n_test + n_val + n_train],
        "val": order[n_test : n_test + n_val],
        "test": order[:n_test],
    }
