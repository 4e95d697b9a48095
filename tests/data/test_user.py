"""User datasets: MSD, nnU-Net raw and images/ + labels/ layouts; errors that name the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metricseg.data import get_task
from metricseg.data.user import find_dataset_files
from metricseg.io import Geometry, ImageReadError, write_image

GEOM = Geometry(
    spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)
)


def _volume(rng, shape=(6, 10, 12)):
    label = np.zeros(shape, dtype=np.uint8)
    label[2:4, 3:7, 4:9] = 1
    label[3, 5, 5] = 2
    image = (rng.normal(100, 10, size=shape) + 50 * label).astype(np.float32)
    return image, label


def _msd(root, n=5, modality="MRI"):
    rng = np.random.default_rng(0)
    training = []
    for i in range(n):
        image, label = _volume(rng)
        write_image(root / "imagesTr" / f"case_{i:03d}.nii.gz", image, GEOM)
        write_image(root / "labelsTr" / f"case_{i:03d}.nii.gz", label, GEOM)
        training.append(
            {"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"}
        )
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "Toy",
                "modality": {"0": modality},
                "labels": {"0": "background", "1": "organ", "2": "spot"},
                "training": training,
                "test": [],
            }
        )
    )
    return root


def test_msd_layout_3d_and_2d(tmp_path):
    root = _msd(tmp_path / "Task99_Toy")
    files = find_dataset_files(root)
    assert files.layout == "msd" and len(files.cases) == 5 and files.modalities == ["MRI"]
    task = get_task(f"folder:{root}", num_train=3, num_val=1, num_test=1)
    assert task.spatial_dims == 3 and task.class_names == ["background", "organ", "spot"]
    case = task.train[0]
    assert case.image.shape == (1, 6, 10, 12) and case.spacing == (2.0, 1.0, 1.0)
    nonzero = case.image[0]
    assert abs(float(nonzero.mean())) < 1e-3 and abs(float(nonzero.std()) - 1) < 1e-3  # MR z-score
    subjects = {
        split: {c.case_id for c in getattr(task, split)} for split in ("train", "val", "test")
    }
    assert sum(len(s) for s in subjects.values()) == 5
    assert not (subjects["train"] & subjects["test"]) and not (subjects["train"] & subjects["val"])

    slices = get_task(
        "user", path=root, spatial_dims=2, image_size=16, num_train=3, num_val=1, num_test=1
    )
    assert slices.spatial_dims == 2 and slices.train[0].image.shape == (1, 16, 16)
    # foreground slices only (z = 2, 3), and no subject in two splits
    assert {c.case_id[-4:] for c in slices.train} == {"s002", "s003"}
    owners = {
        split: {c.case_id.rsplit("-s", 1)[0] for c in getattr(slices, split)}
        for split in ("train", "test")
    }
    assert not owners["train"] & owners["test"]
    assert slices.train[0].spacing == pytest.approx((1.0 * 10 / 16, 1.0 * 12 / 16))


def test_lazy_cases_read_on_demand_and_match_eager(tmp_path):
    root = _msd(tmp_path / "Task98_Lazy", n=4)
    lazy = get_task(f"folder:{root}", num_train=2, num_val=1, num_test=1)
    eager = get_task(f"folder:{root}", num_train=2, num_val=1, num_test=1, lazy=False)
    assert type(lazy.train).__name__ == "LazyCases" and isinstance(eager.train, list)
    assert lazy.meta["lazy"] is True and eager.meta["lazy"] is False
    assert len(lazy.train._cache) <= 1  # only the probe case was read
    for a, b in zip([*lazy.train, *lazy.test], [*eager.train, *eager.test]):
        assert a.case_id == b.case_id
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
    assert lazy.train[-1].case_id == lazy.train[1].case_id and len(lazy.train[0:2]) == 2
    with pytest.raises(IndexError):
        lazy.train[2]


def test_ct_window_and_resampling(tmp_path):
    root = _msd(tmp_path / "ct", n=3, modality="CT")
    task = get_task(
        f"folder:{root}", num_train=1, num_val=1, num_test=1, target_spacing=(1.0, 1.0, 1.0)
    )
    case = task.train[0]
    assert case.image.shape == (1, 12, 10, 12) and case.spacing == (1.0, 1.0, 1.0)
    assert case.image.min() >= -1 and case.image.max() <= 1  # CT window maps HU to [-1, 1]
    assert set(np.unique(case.label)) <= {0, 1, 2}


def test_nnunet_layout_multichannel(tmp_path):
    root = tmp_path / "Dataset001_Toy"
    rng = np.random.default_rng(1)
    for i in range(4):
        image, label = _volume(rng)
        write_image(root / "imagesTr" / f"toy_{i:03d}_0000.nii.gz", image, GEOM)
        write_image(root / "imagesTr" / f"toy_{i:03d}_0001.nii.gz", -image, GEOM)
        write_image(root / "labelsTr" / f"toy_{i:03d}.nii.gz", label, GEOM)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T2", "1": "CT"},
                "labels": {"background": 0, "organ": 1, "spot": 2},
                "numTraining": 4,
                "file_ending": ".nii.gz",
            }
        )
    )
    task = get_task(f"folder:{root}", num_train=2, num_val=1, num_test=1)
    assert task.in_channels == 2 and task.class_names == ["background", "organ", "spot"]
    assert task.meta["normalization"] == ["zscore", "ct"]
    assert task.train[0].image.shape == (2, 6, 10, 12)


def test_png_folders_2d(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(5):
        label = np.zeros((20, 24), dtype=np.uint8)
        label[5 : 10 + i, 4:12] = 1
        write_image(
            tmp_path / "images" / f"img{i}.png", (rng.random((20, 24)) * 200).astype(np.uint8)
        )
        write_image(tmp_path / "labels" / f"img{i}.png", label)
    task = get_task(f"folder:{tmp_path}", seed=1)
    assert task.spatial_dims == 2 and task.num_classes == 2
    assert (len(task.train), len(task.val), len(task.test)) == (3, 1, 1)
    assert task.train[0].image.shape == (1, 20, 24)


@pytest.mark.parametrize("lazy", [None, False])
def test_errors_name_the_file(tmp_path, lazy):
    root = _msd(tmp_path / "bad", n=3)
    broken = root / "labelsTr" / "case_001.nii.gz"
    broken.write_bytes(b"this is not a nifti file")
    with pytest.raises(ImageReadError, match=r"case_001\.nii\.gz"):
        get_task(f"folder:{root}", num_train=1, num_val=1, num_test=1, lazy=lazy)

    root = _msd(tmp_path / "mismatch", n=3)
    write_image(root / "labelsTr" / "case_002.nii.gz", np.zeros((6, 10, 11), np.uint8), GEOM)
    with pytest.raises(ValueError, match=r"case_002.nii.gz.*\(6, 10, 11\)"):
        get_task(f"folder:{root}", num_train=1, num_val=1, num_test=1, lazy=lazy)

    folders = tmp_path / "folders"
    write_image(folders / "images" / "a.png", np.zeros((4, 4), np.uint8))
    (folders / "labels").mkdir()
    with pytest.raises(ValueError, match=r"a.png: no label file"):
        get_task(f"folder:{folders}")
    with pytest.raises(ValueError, match=r"no dataset\.json"):
        get_task(f"folder:{tmp_path / 'bad' / 'imagesTr'}")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        get_task("folder:/no/such/place")


def test_load_case_keeps_the_chosen_channels_of_a_4d_file(tmp_path):
    from metricseg.data.user import load_case

    image, label = _volume(np.random.default_rng(3))
    stack = np.stack([image, 2 * image, 3 * image])
    geometry_4d = Geometry((1.0, 1.0, 2.0, 1.0), (0.0,) * 4, tuple(np.eye(4).ravel().tolist()))
    write_image(tmp_path / "img.nii.gz", stack, geometry_4d)
    write_image(tmp_path / "lab.nii.gz", label, GEOM)
    files = ([tmp_path / "img.nii.gz"], tmp_path / "lab.nii.gz")
    case = load_case("c", *files, normalization="none", channels=[2, 0])
    np.testing.assert_allclose(case.image, np.stack([3 * image, image]))
    assert case.spacing == (2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"channels must be indices in \[0, 3\) .* got \[3\]"):
        load_case("c", *files, channels=[3])
