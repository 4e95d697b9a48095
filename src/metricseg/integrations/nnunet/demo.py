"""A small generated nnU-Net raw dataset, for smoke runs and tests of the trainers.

:func:`write_demo_dataset` writes ``DatasetXXX_MetricsegDemo`` in nnU-Net's raw layout
(``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``, ``dataset.json``): small
3D volumes with one intensity channel holding a large and a small ball (labels 1
and 2) in noise. Needs only numpy and metricseg's image writer (SimpleITK), not nnU-Net.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from metricseg.atomic import atomic_write_text
from metricseg.io import write_image

__all__ = ["DEMO_NAME", "demo_dataset_name", "write_demo_dataset"]

DEMO_NAME = "MetricsegDemo"


def demo_dataset_name(dataset_id: int) -> str:
    """nnU-Net's folder name for the demo dataset with this id.

    Example:
        >>> demo_dataset_name(7)
        'Dataset007_MetricsegDemo'
    """
    if not 1 <= dataset_id <= 999:
        raise ValueError(
            f"dataset_id must lie in 1..999 (nnU-Net's three digits), got {dataset_id}"
        )
    return f"Dataset{dataset_id:03d}_{DEMO_NAME}"


def _ball(shape: tuple[int, ...], centre: np.ndarray, radius: float) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    d2 = sum((grid[i] - centre[i]) ** 2 for i in range(len(shape)))
    return d2 <= radius * radius


def write_demo_dataset(
    raw_root: str | Path,
    dataset_id: int = 901,
    *,
    num_cases: int = 6,
    shape: tuple[int, int, int] = (32, 32, 32),
    seed: int = 0,
    labels: dict[str, Any] | None = None,
    ignore_width: int = 0,
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Write the demo dataset under ``raw_root`` and return its folder.

    Args:
        raw_root: nnU-Net's raw folder (``$nnUNet_raw``); the dataset goes into
            ``raw_root/DatasetXXX_MetricsegDemo``, which must not exist yet.
        dataset_id: nnU-Net's dataset id (1..999).
        num_cases: cases (at least 5: nnU-Net splits into 5 folds).
        shape: volume shape ``(z, y, x)``.
        seed: seed of the generator; the same seed gives the same dataset.
        labels: ``dataset.json`` labels (default background 0, large 1, small 2);
            region-based datasets give a label a list of label values here.
        ignore_width: if > 0, the first ``ignore_width`` slices along the last axis get
            label 3, declared as nnU-Net's ``"ignore"`` label in ``dataset.json``.
        extra_json: more ``dataset.json`` entries (e.g. ``{"regions_class_order": [1, 2]}``).

    Example:
        >>> import tempfile
        >>> folder = write_demo_dataset(tempfile.mkdtemp(), 902, num_cases=5, shape=(8, 8, 8))
        >>> sorted(p.name for p in folder.iterdir())
        ['dataset.json', 'imagesTr', 'labelsTr']
    """
    if num_cases < 5:
        raise ValueError(f"num_cases must be at least 5 (nnU-Net's 5 folds), got {num_cases}")
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be 3 sizes of at least 8, got {shape}")
    folder = Path(raw_root) / demo_dataset_name(dataset_id)
    if folder.exists():
        raise ValueError(f"{folder} exists already; pick another dataset_id or remove it")
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, dtype=np.float32)
    for i in range(num_cases):
        case = f"demo_{i:03d}"
        label = np.zeros(shape, dtype=np.uint8)
        big = rng.uniform(0.3, 0.7, 3) * size
        label[_ball(shape, big, float(rng.uniform(0.15, 0.25) * size.min()))] = 1
        small = rng.uniform(0.2, 0.8, 3) * size
        label[_ball(shape, small, float(rng.uniform(0.06, 0.1) * size.min()))] = 2
        image = rng.normal(0.0, 0.5, shape).astype(np.float32)
        image += np.where(label == 1, 1.5, 0.0) + np.where(label == 2, 3.0, 0.0)
        if ignore_width > 0:
            label[..., :ignore_width] = 3  # the image is the same; only its labels are withheld
        write_image(folder / "imagesTr" / f"{case}_0000.nii.gz", image.astype(np.float32))
        write_image(folder / "labelsTr" / f"{case}.nii.gz", label)
    meta: dict[str, Any] = {
        "name": DEMO_NAME,
        "description": "metricseg demo: a large (1) and a small (2) ball in noise",
        "channel_names": {"0": "demo"},
        "labels": dict(labels or {"background": 0, "large": 1, "small": 2}),
        "numTraining": num_cases,
        "file_ending": ".nii.gz",
    }
    if ignore_width > 0:
        meta["labels"]["ignore"] = 3
    meta.update(extra_json or {})
    atomic_write_text(folder / "dataset.json", json.dumps(meta, indent=2) + "\n")
    return folder
