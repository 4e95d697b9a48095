"""Small generated BraTS folders in the three layouts the ``brats`` task reads.

Every subject is a ``(14, 21, 23)`` volume (z, y, x) at 2 × 1 × 1 mm with a box-shaped head
and a box-shaped tumour, and one intensity ramp per channel, so that the 2 mm grid of the
preprocessing (default 4 mm margin) samples exactly the native voxels ``GRID``: the expected
output is a slice of the input, computed here without the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from metricseg.io import Geometry, write_image

SHAPE = (14, 21, 23)
SPACING = (2.0, 1.0, 1.0)  # array order (z, y, x); ITK order is reversed
HEAD = (slice(3, 11), slice(5, 14), slice(6, 17))
TUMOUR = (slice(5, 9), slice(7, 12), slice(9, 14))
# the head box + 4 mm is z [1, 13), y [1, 18), x [2, 21): odd widths in y and x, so the 2 mm
# grid centred on it falls on native voxel centres (no interpolation between voxels)
GRID = (slice(1, 13), slice(1, 18, 2), slice(2, 21, 2))
OUT_SHAPE = (12, 9, 10)
HEAD_OUT = (slice(2, 10), slice(2, 7), slice(2, 8))

GEOMETRY_3D = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
GEOMETRY_4D = Geometry((1.0, 1.0, 2.0, 1.0), (0.0,) * 4, tuple(np.eye(4).ravel().tolist()))


def subject_arrays(
    i: int, labels: tuple[int, int, int]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Channels by name (raw intensities, 0 outside the head) and a label map using ``labels``."""
    z, y, x = np.indices(SHAPE).astype(np.float32)
    head = np.zeros(SHAPE, bool)
    head[HEAD] = True
    ramps = {
        "FLAIR": 100 + 10 * x + 3 * i,
        "T1": 500 + 7 * y - 2 * z + i,
        "T1CE": 300 + 5 * z + 2 * x,
        "T2": 900 - 9 * x + 2 * y + i * i,
    }
    channels = {k: np.where(head, v, 0).astype(np.float32) for k, v in ramps.items()}
    label = np.zeros(SHAPE, np.uint8)
    label[TUMOUR] = labels[0]
    label[5:7, 7:9, 9:11] = labels[1]
    label[7, 10, 12] = labels[2]
    return channels, label


def expected(channels: dict[str, np.ndarray], label: np.ndarray, names: list[str]):
    """The preprocessed subject, from slicing: (image (C, *OUT_SHAPE), whole-tumour label)."""
    out = []
    for name in names:
        sampled = channels[name][GRID].astype(np.float64)
        head = sampled[HEAD_OUT]
        z = np.zeros(OUT_SHAPE)
        z[HEAD_OUT] = (head - head.mean()) / head.std()
        out.append(z)
    return np.stack(out), (label[GRID] > 0).astype(np.int64)


def write_nnunet(root: Path, n: int = 4, names: tuple[str, ...] = ("T1", "FLAIR", "T2")) -> Path:
    """nnU-Net raw: channels in a non-default order, binary labels."""
    for i in range(n):
        channels, label = subject_arrays(i, (1, 1, 1))
        for k, name in enumerate(names):
            write_image(
                root / "imagesTr" / f"Brats18_T_{i}_{k:04d}.nii.gz", channels[name], GEOMETRY_3D
            )
        write_image(root / "labelsTr" / f"Brats18_T_{i}.nii.gz", label, GEOMETRY_3D)
    meta = {
        "channel_names": {str(k): name for k, name in enumerate(names)},
        "labels": {"background": 0, "whole_tumour": 1},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


MSD_MODALITIES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}


def write_msd(root: Path, n: int = 4) -> Path:
    """MSD Task01_BrainTumour: one 4D file per subject (FLAIR, T1w, t1gd, T2w), labels 0-3."""
    training = []
    for i in range(n):
        channels, label = subject_arrays(i, (2, 1, 3))
        stack = np.stack([channels[k] for k in ("FLAIR", "T1", "T1CE", "T2")])
        write_image(root / "imagesTr" / f"BRATS_{i:03d}.nii.gz", stack, GEOMETRY_4D)
        write_image(root / "labelsTr" / f"BRATS_{i:03d}.nii.gz", label, GEOMETRY_3D)
        training.append(
            {
                "image": f"./imagesTr/BRATS_{i:03d}.nii.gz",
                "label": f"./labelsTr/BRATS_{i:03d}.nii.gz",
            }
        )
    meta = {
        "name": "BRATS",
        "modality": MSD_MODALITIES,
        "labels": {
            "0": "background",
            "1": "edema",
            "2": "non-enhancing tumor",
            "3": "enhancing tumour",
        },
        "numTraining": n,
        "training": training,
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def write_official(root: Path, n: int = 4) -> Path:
    """Official BraTS 2018 training layout: HGG/ and LGG/ folders of subject folders."""
    suffixes = {"FLAIR": "flair", "T1": "t1", "T1CE": "t1ce", "T2": "t2"}
    for i in range(n):
        subject = f"Brats18_2013_{i}_1"
        folder = root / ("HGG" if i % 2 == 0 else "LGG") / subject
        channels, label = subject_arrays(i, (2, 1, 4))
        for name, suffix in suffixes.items():
            write_image(folder / f"{subject}_{suffix}.nii.gz", channels[name], GEOMETRY_3D)
        write_image(folder / f"{subject}_seg.nii.gz", label, GEOMETRY_3D)
    return root


@pytest.fixture
def brats_data() -> SimpleNamespace:
    """The writers and constants above, for tests in this folder."""
    return SimpleNamespace(
        subject_arrays=subject_arrays,
        expected=expected,
        write_nnunet=write_nnunet,
        write_msd=write_msd,
        write_official=write_official,
        OUT_SHAPE=OUT_SHAPE,
        HEAD_OUT=HEAD_OUT,
        GRID=GRID,
        SPACING=SPACING,
        SHAPE=SHAPE,
        GEOMETRY_3D=GEOMETRY_3D,
    )
