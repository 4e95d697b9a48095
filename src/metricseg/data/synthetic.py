"""Synthetic segmentation tasks with the object size and foreground ratio under control.

Each image holds irregular ellipses (2D) or ellipsoids (3D) on a textured, noisy
background with a smooth bias field. Per class, the generator draws a target
foreground fraction :math:`f \\sim U(f_{lo}, f_{hi})` and a number of objects
:math:`k`, splits :math:`f N` voxels among the objects with log-uniform weights
(``size_spread`` is the largest-to-smallest ratio), and gives object :math:`i`
the radius of a ball of that volume, :math:`r_i = (V_i/\\pi)^{1/2}` in 2D and
:math:`(3V_i/4\\pi)^{1/3}` in 3D. The border is irregular:

.. math::

    \\text{inside}(x) \\iff \\rho(x) < 1 + a\\, n(u(x)), \\qquad
    \\rho = \\lVert A^{-1} R^\\top (x - c) \\rVert,

with semi-axes :math:`A` (elongation, equal volume), a random rotation :math:`R`,
direction :math:`u = A^{-1} R^\\top (x-c) / \\rho` and a smooth random function
:math:`n` on the unit sphere (a few random cosine waves). The bias field is at
least as strong as the class contrast, so a global threshold cannot solve the
task (the tests check this); a network must use local contrast and shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from metricseg.data.task import Case, Task, check_task_options

__all__ = [
    "PRESETS",
    "ObjectClass",
    "SyntheticSpec",
    "generate_case",
    "make_synthetic_task",
    "synthetic_task",
]


@dataclass(frozen=True)
class ObjectClass:
    """How the objects of one foreground class look and how much of the image they cover.

    Attributes:
        name: class name.
        fraction: range of the per-image target foreground fraction of this class.
        count: inclusive range of the number of objects per image.
        size_spread: volume ratio between the largest and smallest object of an image.
        elongation: range of the ratio of the longest to the shortest semi-axis.
        irregularity: amplitude ``a`` of the border perturbation (0: smooth ellipse).
        contrast: mean intensity added inside the objects (background std is about 1).
        texture: amplitude of a fine texture inside the objects.
        inside: name of a class whose interior hosts these objects (a lesion in an organ).
    """

    name: str
    fraction: tuple[float, float]
    count: tuple[int, int] = (1, 1)
    size_spread: float = 1.0
    elongation: tuple[float, float] = (1.0, 1.6)
    irregularity: float = 0.2
    contrast: float = 1.0
    texture: float = 0.0
    inside: str | None = None


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic task: image size, classes (painted in order) and appearance.

    Attributes:
        noise: std of white noise; bias: amplitude of the smooth background field;
        background_texture: amplitude of the fine background texture.
    """

    name: str
    spatial_dims: int
    image_size: int
    classes: tuple[ObjectClass, ...]
    noise: float = 0.35
    bias: float = 1.0
    background_texture: float = 0.35
    num_train: int = 48
    num_val: int = 16
    num_test: int = 32
    description: str = ""
    patch_size: tuple[int, ...] | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    field_ = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    std = field_.std()
    return field_ / (std if std > 0 else 1.0)


def _random_rotation(dims: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dims, dims)))
    return q * np.sign(np.diag(r))


def _object_mask(
    shape: tuple[int, ...],
    centre: np.ndarray,
    semi_axes: np.ndarray,
    rotation: np.ndarray,
    irregularity: float,
    rng: np.random.Generator,
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Mask of one irregular ellipsoid, returned as (bounding box, mask inside the box)."""
    dims = len(shape)
    reach = float(semi_axes.max()) * (1 + 2 * irregularity) + 1
    box = tuple(
        slice(max(0, int(np.floor(c - reach))), min(s, int(np.ceil(c + reach)) + 1))
        for c, s in zip(centre, shape)
    )
    grids = np.meshgrid(*[np.arange(b.start, b.stop) + 0.5 for b in box], indexing="ij")
    offset = np.stack([g - c for g, c in zip(grids, centre)], axis=-1)
    local = offset @ rotation / semi_axes  # (…, dims) in units of the semi-axes
    rho = np.linalg.norm(local, axis=-1)
    direction = local / np.maximum(rho, 1e-9)[..., None]
    waves = np.zeros_like(rho)
    for _ in range(4):  # a smooth random function on the unit sphere
        axis = rng.standard_normal(dims)
        axis /= np.linalg.norm(axis)
        waves += np.cos(rng.uniform(2, 5) * (direction @ axis) + rng.uniform(0, 2 * np.pi))
    waves /= 2.0
    return box, rho < 1 + irregularity * waves


def _place(
    label: np.ndarray,
    cls_index: int,
    spec: ObjectClass,
    parent_index: int | None,
    volume: float,
    rng: np.random.Generator,
) -> None:
    from scipy import ndimage

    shape = label.shape
    dims = label.ndim
    radius = (volume / np.pi) ** 0.5 if dims == 2 else (3 * volume / (4 * np.pi)) ** (1 / 3)
    radius = max(radius, 0.8)
    elong = rng.uniform(*spec.elongation)
    axes = np.ones(dims)
    axes[0] = elong
    semi_axes = radius * axes / elong ** (1 / dims)  # same volume as the ball
    semi_axes = np.minimum(semi_axes, min(shape) / 2 - 1)
    rotation = _random_rotation(dims, rng)
    reach = float(semi_axes.max())
    if parent_index is not None and (label == parent_index).any():
        depth = ndimage.distance_transform_edt(label == parent_index)
        candidates = np.argwhere(depth >= min(reach, depth.max()))
    else:
        lo = np.minimum(reach + 1, np.array(shape) / 2)
        candidates = None
    attempts = 30
    for attempt in range(attempts):
        if candidates is not None:
            centre = candidates[rng.integers(len(candidates))] + 0.5
        else:
            centre = np.array([rng.uniform(lo[d], shape[d] - lo[d]) for d in range(dims)])
        box, mask = _object_mask(shape, centre, semi_axes, rotation, spec.irregularity, rng)
        region = label[box]
        allowed = (region == 0) if parent_index is None else (region == parent_index)
        # keep objects apart so that their sizes are what was asked; after enough tries
        # accept a touching one, clipped to where this class may go
        if attempt == attempts - 1 or not (mask & ~allowed).any():
            region[mask & allowed] = cls_index
            return


def generate_case(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image and its label map.

    Returns:
        ``image`` float32 ``(1, *spatial)`` (z-scored) and ``label`` int64 ``(*spatial)``.

    >>> img, lab = generate_case(PRESETS["tiny-lesions"], np.random.default_rng(0))
    >>> img.shape, lab.shape, int(lab.max())
    ((1, 64, 64), (64, 64), 1)
    """
    from scipy import ndimage

    shape = (spec.image_size,) * spec.spatial_dims
    n = float(np.prod(shape))
    label = np.zeros(shape, dtype=np.int64)
    names = [c.name for c in spec.classes]
    for index, cls in enumerate(spec.classes, start=1):
        parent = names.index(cls.inside) + 1 if cls.inside is not None else None
        target = rng.uniform(*cls.fraction) * n
        k = int(rng.integers(cls.count[0], cls.count[1] + 1))
        weights = np.exp(rng.uniform(0, np.log(max(cls.size_spread, 1.0)), size=k))
        for volume in sorted(target * weights / weights.sum(), reverse=True):
            _place(label, index, cls, parent, float(volume), rng)

    image = spec.bias * _smooth_noise(shape, spec.image_size / 6, rng)
    image += spec.background_texture * _smooth_noise(shape, 1.0, rng)
    contrast = np.zeros(shape)
    for index, cls in enumerate(spec.classes, start=1):
        inside = label == index
        contrast[inside] = cls.contrast
        if cls.texture:
            contrast[inside] += cls.texture * _smooth_noise(shape, 0.8, rng)[inside]
    image += ndimage.gaussian_filter(contrast, 0.6)  # partial-volume blur at the borders
    image += spec.noise * rng.standard_normal(shape)
    image = (image - image.mean()) / image.std()
    return image[None].astype(np.float32), label


def make_synthetic_task(spec: SyntheticSpec, *, seed: int = 0) -> Task:
    """Generate every case of ``spec``; split ``i`` uses its own seed stream, so the
    test set does not change when ``num_train`` does."""
    splits = {}
    for split_index, (split, count) in enumerate(
        (("train", spec.num_train), ("val", spec.num_val), ("test", spec.num_test))
    ):
        rng = np.random.default_rng([seed, split_index, spec.image_size])
        cases = []
        for i in range(count):
            image, label = generate_case(spec, rng)
            cases.append(
                Case(f"{spec.name}-{split}-{i:04d}", image, label, (1.0,) * spec.spatial_dims)
            )
        splits[split] = cases
    return Task(
        name=spec.name,
        spatial_dims=spec.spatial_dims,
        num_classes=len(spec.classes) + 1,
        in_channels=1,
        class_names=["background", *(c.name for c in spec.classes)],
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        description=spec.description,
        source=f"metricseg.data.synthetic, seed={seed}",
        patch_size=spec.patch_size,
        meta={"spec": dataclasses.asdict(spec), "seed": seed},
    )


PRESETS: dict[str, SyntheticSpec] = {
    "tiny-lesions": SyntheticSpec(
        name="tiny-lesions",
        spatial_dims=2,
        image_size=64,
        classes=(
            ObjectClass(
                "lesion",
                fraction=(0.002, 0.008),
                count=(1, 3),
                size_spread=3.0,
                contrast=2.2,
                irregularity=0.15,
            ),
        ),
        description="2D binary, 1-3 tiny bright lesions, foreground < 1 %",
    ),
    "large-organ": SyntheticSpec(
        name="large-organ",
        spatial_dims=2,
        image_size=64,
        classes=(
            ObjectClass(
                "organ",
                fraction=(0.25, 0.35),
                count=(1, 1),
                contrast=1.0,
                texture=0.4,
                irregularity=0.25,
                elongation=(1.0, 1.8),
            ),
        ),
        description="2D binary, one large textured organ, foreground ≈ 30 %",
    ),
    "mixed-sizes": SyntheticSpec(
        name="mixed-sizes",
        spatial_dims=2,
        image_size=64,
        classes=(
            ObjectClass(
                "object",
                fraction=(0.06, 0.14),
                count=(3, 6),
                size_spread=60.0,
                contrast=1.2,
                irregularity=0.2,
            ),
        ),
        description="2D binary, 3-6 objects from tiny to large in each image, foreground ≈ 10 %",
    ),
    "multiclass": SyntheticSpec(
        name="multiclass",
        spatial_dims=2,
        image_size=64,
        classes=(
            ObjectClass(
                "large",
                fraction=(0.18, 0.26),
                count=(1, 1),
                contrast=0.9,
                texture=0.3,
                elongation=(1.0, 1.5),
            ),
            ObjectClass(
                "medium", fraction=(0.03, 0.05), count=(1, 2), contrast=-1.3, irregularity=0.25
            ),
            ObjectClass(
                "small",
                fraction=(0.003, 0.006),
                count=(1, 3),
                size_spread=2.0,
                contrast=2.6,
                inside="large",
                irregularity=0.1,
            ),
        ),
        description="2D, 3 foreground classes of very different sizes (≈22 %, 4 %, 0.5 %)",
    ),
    "synthetic-3d": SyntheticSpec(
        name="synthetic-3d",
        spatial_dims=3,
        image_size=32,
        classes=(
            ObjectClass(
                "organ",
                fraction=(0.10, 0.16),
                count=(1, 1),
                contrast=1.0,
                texture=0.3,
                elongation=(1.0, 1.6),
            ),
            ObjectClass(
                "lesion",
                fraction=(0.004, 0.012),
                count=(1, 2),
                size_spread=3.0,
                contrast=1.6,
                inside="organ",
                irregularity=0.15,
            ),
        ),
        num_train=16,
        num_val=8,
        num_test=16,
        description="3D 32³, an organ (≈13 %) holding 1-2 small lesions (≈0.8 %)",
    ),
}


def synthetic_task(name: str, *, seed: int = 0, **options: object) -> Task:
    """A preset by name, with ``options`` overriding fields of its :class:`SyntheticSpec`
    (``image_size``, ``num_train``, ``num_val``, ``num_test``, ``noise``, ``bias``, ...).

    >>> task = synthetic_task("large-organ", num_train=2, num_val=1, num_test=1)
    >>> len(task.train), task.num_classes, task.train[0].image.shape
    (2, 2, (1, 64, 64))
    """
    if name not in PRESETS:
        raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
    spec = PRESETS[name]
    known = {f.name for f in dataclasses.fields(SyntheticSpec)} - {
        "name",
        "spatial_dims",
        "classes",
    }
    check_task_options(name, options, known)
    spec = dataclasses.replace(spec, **options)  # type: ignore[arg-type]
    if spec.spatial_dims == 3 and spec.patch_size is None and spec.image_size > 48:
        spec = dataclasses.replace(spec, patch_size=(48, 48, 48))
    return make_synthetic_task(spec, seed=seed)
