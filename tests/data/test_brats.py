"""The ``brats`` task: three layouts, preprocessing values, cache, names, availability."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from metricseg.cli import main
from metricseg.data import get_task, list_tasks
from metricseg.data.brats import (
    BRATS_ENV,
    box_shape,
    check_subject_name,
    clear_memory_cache,
    find_brats_subjects,
    head_box,
    preprocess_subject,
    resample_box,
)
from metricseg.data.real import SourceUnavailableError
from metricseg.io import read_image, write_image

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brats2018"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No BraTS folder from the environment, an empty download cache, a fresh memory cache."""
    monkeypatch.delenv(BRATS_ENV, raising=False)
    monkeypatch.setenv("METRICSEG_DATA", str(tmp_path / "download-cache"))
    clear_memory_cache()
    yield
    clear_memory_cache()


def _all_cases(task):
    return {c.subject: c for c in task.cases}


# ------------------------------------------------------------------ preprocessing, by hand


def test_head_box_is_the_nonzero_box_widened_by_the_margin_in_mm():
    image = np.zeros((2, 20, 30, 40), np.float32)
    image[0, 5:9, 10:12, 20:31] = 1.0
    image[1, 12, 11, 15] = -3.0  # negative intensities are head too; a second channel counts
    assert head_box(image, (1.0, 1.0, 1.0), 0.0) == ((5, 13), (10, 12), (15, 31))
    # 3 mm at (2, 1, 0.5) mm is 2, 3 and 6 voxels; the box stays inside the volume
    assert head_box(image, (2.0, 1.0, 0.5), 3.0) == ((3, 15), (7, 15), (9, 37))
    assert head_box(image, (1.0, 1.0, 1.0), 100.0) == ((0, 20), (0, 30), (0, 40))
    with pytest.raises(ValueError, match="0 everywhere"):
        head_box(np.zeros((1, 3, 3, 3), np.float32), (1.0, 1.0, 1.0), 0.0)


def test_two_mm_grid_shape_from_the_file_spacing():
    # extent in mm / 2, rounded up: 155 mm -> 78, 190 * 1 mm -> 95, 99 * 1.5 mm -> 74.25 -> 75
    assert box_shape(((0, 155), (10, 200), (0, 99)), (1.0, 1.0, 1.5), (2.0, 2.0, 2.0)) == (
        78,
        95,
        75,
    )
    array = np.ones((31, 40, 26), np.float32)
    out = resample_box(array, (0.5, 1.0, 3.0), ((0, 31), (0, 40), (0, 26)), (2.0,) * 3, order=1)
    assert out.shape == (8, 20, 39)  # 15.5 mm, 40 mm, 78 mm


def test_resampling_is_linear_for_images_and_nearest_for_labels():
    # a linear ramp is reproduced exactly by linear interpolation inside the volume:
    # output voxel o sits at c + (o - (n - 1) / 2) * t / s input voxels
    x = np.arange(40, dtype=np.float32)
    ramp = np.broadcast_to(x, (4, 4, 40)).copy()
    box = ((0, 4), (0, 4), (10, 30))  # 20 voxels of 0.8 mm -> 16 mm -> 8 voxels of 2 mm
    out = resample_box(ramp, (1.0, 1.0, 0.8), box, (1.0, 1.0, 2.0), order=1)
    centre, step = (10 + 30 - 1) / 2, 2.0 / 0.8
    positions = centre + (np.arange(8) - 3.5) * step
    assert out.shape == (4, 4, 8)
    np.testing.assert_allclose(out[2, 1], positions, atol=1e-4)
    labels = (x.astype(np.int64) % 3 + 4)[None, None].repeat(4, 0).repeat(4, 1)
    nearest = resample_box(labels, (1.0, 1.0, 0.8), box, (1.0, 1.0, 2.0), order=0)
    assert nearest.dtype == labels.dtype and set(np.unique(nearest)) <= {4, 5, 6}
    np.testing.assert_array_equal(
        nearest[0, 0], labels[0, 0, np.floor(positions + 0.5).astype(int)]
    )


@pytest.mark.parametrize("seed", range(12))
def test_resample_box_equals_scipy_affine_transform(seed):
    """The separable interpolation against scipy's general one (random shapes, boxes, spacings)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(3, 25, 3))
    spacing = tuple(float(s) for s in rng.choice([0.5, 0.8, 1.0, 1.5, 3.0], 3))
    target = tuple(float(t) for t in rng.choice([1.0, 2.0, 2.5], 3))
    box = []
    for n in shape:
        lo = int(rng.integers(0, n))
        box.append((lo, int(rng.integers(lo + 1, n + 1))))
    out_shape = box_shape(box, spacing, target)
    step = np.array(target) / np.array(spacing)
    offset = [(lo + hi - 1) / 2 - (k - 1) / 2 * st for (lo, hi), k, st in zip(box, out_shape, step)]

    def scipy(array, order):
        return ndimage.affine_transform(
            array, step, offset=offset, output_shape=out_shape, order=order,
            mode="grid-constant", cval=0, prefilter=False,
        )  # fmt: skip

    image = rng.normal(size=shape).astype(np.float32)
    got = resample_box(image, spacing, box, target, order=1)
    assert got.shape == out_shape and got.dtype == np.float32
    np.testing.assert_allclose(got, scipy(image, 1), atol=1e-5)
    labels = rng.integers(0, 5, size=shape).astype(np.uint8)
    nearest = resample_box(labels, spacing, box, target, order=0)
    # where a sample lies half-way between two voxels the nearest one is a tie: compare the rest
    positions = np.meshgrid(
        *[np.arange(k) * st + off for k, st, off in zip(out_shape, step, offset)], indexing="ij"
    )
    tie = np.any([np.isclose(p % 1, 0.5) for p in positions], axis=0)
    np.testing.assert_array_equal(nearest[~tie], scipy(labels, 0)[~tie])


def test_preprocess_subject_values(brats_data):
    channels, label = brats_data.subject_arrays(3, (2, 1, 4))
    image = np.stack([channels["FLAIR"], channels["T1"]])
    out = preprocess_subject(image, label, brats_data.SPACING, target=(2.0, 2.0, 2.0), margin=4.0)
    want_image, want_label = brats_data.expected(channels, label, ["FLAIR", "T1"])
    assert out.image.dtype == np.float32 and out.image.shape == (2, *brats_data.OUT_SHAPE)
    np.testing.assert_allclose(out.image, want_image, atol=1e-5)
    head = out.image[(slice(None), *brats_data.HEAD_OUT)]
    np.testing.assert_allclose(head.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)  # z-score over the head
    np.testing.assert_allclose(head.std(axis=(1, 2, 3)), 1.0, atol=1e-5)
    outside = np.ones(brats_data.OUT_SHAPE, bool)
    outside[brats_data.HEAD_OUT] = False
    assert np.all(out.image[:, outside] == 0)  # 0 outside the head, as padding
    # whole tumour: labels 1, 2 and 4 all become 1; 2 mm voxels of the 4 x 5 x 5 mm box
    assert out.label.dtype == np.uint8 and set(np.unique(out.label)) == {0, 1}
    np.testing.assert_array_equal(out.label, want_label)
    assert int(out.label.sum()) == 4 * 3 * 2
    assert out.box.tolist() == [[1, 13], [1, 18], [2, 21]]
    assert out.source_shape.tolist() == list(brats_data.SHAPE)


# ------------------------------------------------------------------ the three layouts


@pytest.mark.parametrize("layout", ["nnunet", "msd", "official"])
def test_every_layout_gives_the_same_preprocessed_subjects(layout, brats_data, tmp_path):
    writer = {
        "nnunet": brats_data.write_nnunet,
        "msd": brats_data.write_msd,
        "official": brats_data.write_official,
    }[layout]
    root = writer(tmp_path / layout, n=5)
    task = get_task("brats", path=str(root), num_val=1, num_test=1, seed=3)
    assert task.name == "brats" and task.spatial_dims == 3 and task.num_classes == 2
    assert task.class_names == ["background", "whole-tumour"] and task.in_channels == 2
    assert (len(task.train), len(task.val), len(task.test)) == (3, 1, 1)
    assert task.meta["layout"] == layout and task.meta["channels"] == ["FLAIR", "T1"]
    assert task.patch_size == (48, 48, 48) and task.independent
    prefix = {"nnunet": "Brats18_T_", "msd": "BRATS_00", "official": "Brats18_2013_"}[layout]
    cases = _all_cases(task)
    assert len(cases) == 5
    for index, (subject, case) in enumerate(sorted(cases.items())):
        assert subject.startswith(prefix) and case.case_id == subject
        assert case.subject == subject and case.subject_id == subject
        assert case.spacing == (2.0, 2.0, 2.0)
        assert case.image.dtype == np.float32 and case.label.dtype == np.int64
        channels, label = brats_data.subject_arrays(index, (1, 1, 1))
        want_image, want_label = brats_data.expected(channels, label, ["FLAIR", "T1"])
        np.testing.assert_allclose(case.image, want_image, atol=1e-5)  # FLAIR first, then T1
        np.testing.assert_array_equal(case.label, want_label)
    # no subject in two splits
    split_of = [c.subject for s in (task.train, task.val, task.test) for c in s]
    assert len(split_of) == len(set(split_of)) == 5


@pytest.mark.parametrize("layout", ["nnunet", "msd", "official"])
def test_channels_are_picked_by_name(layout, brats_data, tmp_path):
    writer = {
        "nnunet": brats_data.write_nnunet,
        "msd": brats_data.write_msd,
        "official": brats_data.write_official,
    }[layout]
    root = writer(tmp_path / layout, n=3)
    task = get_task("brats", path=root, channels="T2,flair", num_val=0, num_test=0)
    assert task.in_channels == 2 and task.meta["channels"] == ["T2", "FLAIR"]
    case = _all_cases(task)[sorted(_all_cases(task))[1]]
    channels, label = brats_data.subject_arrays(1, (1, 1, 1))
    want, _ = brats_data.expected(channels, label, ["T2", "FLAIR"])
    np.testing.assert_allclose(case.image, want, atol=1e-5)
    missing = "T1CE" if layout == "nnunet" else "PD"
    with pytest.raises(ValueError, match=f"channels: '{missing}' is not among"):
        get_task("brats", path=root, channels=[missing])


def test_msd_picks_channels_inside_the_4d_file(brats_data, tmp_path):
    root = brats_data.write_msd(tmp_path / "Task01_BrainTumour", n=2)
    image, _ = read_image(root / "imagesTr" / "BRATS_000.nii.gz")
    assert image.shape == (4, *brats_data.SHAPE)  # a true 4D file, channels first
    source = find_brats_subjects(root, ("t1gd", "T1w"))
    assert source.layout == "msd" and source.channels == ("T1CE", "T1")
    assert [s.channels for s in source.subjects] == [(2, 1), (2, 1)]
    assert source.available_channels == ("FLAIR", "T1w", "t1gd", "T2w")


def test_nnunet_channel_files_must_be_complete(brats_data, tmp_path):
    root = brats_data.write_nnunet(tmp_path / "nn", n=2)
    (root / "imagesTr" / "Brats18_T_1_0001.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"case 'Brats18_T_1' has channel files .* ending in"):
        find_brats_subjects(root)


def test_official_layout_errors_name_the_folder(brats_data, tmp_path):
    root = brats_data.write_official(tmp_path / "off", n=2)
    # macOS "._" copies next to the real files are not a second FLAIR
    folder = next(root.glob("*/Brats18_2013_0_1"))
    (folder / "._Brats18_2013_0_1_flair.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    assert [s.subject for s in find_brats_subjects(root).subjects] == [
        "Brats18_2013_0_1",
        "Brats18_2013_1_1",
    ]
    (folder / "Brats18_2013_0_1_FLAIR.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Brats18_2013_0_1: more than one \*_flair file"):
        find_brats_subjects(root)
    (folder / "Brats18_2013_0_1_FLAIR.nii.gz").unlink()
    seg = next(root.glob("*/Brats18_2013_1_1/*_seg.nii.gz"))
    seg.unlink()
    with pytest.raises(ValueError, match=r"Brats18_2013_1_1: no \*_seg.nii.gz label file"):
        find_brats_subjects(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no BraTS subjects found"):
        find_brats_subjects(empty)


# ------------------------------------------------------------------ names


def test_subject_names_that_cannot_be_file_names_are_refused(brats_data, tmp_path):
    for bad in ("../x", "a/b", "..", "a..b", ".hidden", "-x", "a b", "", "x" * 129, 7):
        with pytest.raises(ValueError, match="cannot be a file name"):
            check_subject_name(bad, "here")
    # official layout: the folder name is the subject
    root = brats_data.write_official(tmp_path / "off", n=1)
    folder = next(root.glob("*/Brats18_2013_0_1"))
    folder.rename(folder.parent / "bad name")
    with pytest.raises(ValueError, match="subject name 'bad name' cannot be a file name"):
        get_task("brats", path=root)
    # MSD layout: the image file name from dataset.json
    msd = brats_data.write_msd(tmp_path / "msd", n=1)
    (msd / "imagesTr" / "BRATS_000.nii.gz").rename(msd / "imagesTr" / "..evil.nii.gz")
    meta = json.loads((msd / "dataset.json").read_text())
    meta["training"][0]["image"] = "./imagesTr/..evil.nii.gz"
    (msd / "dataset.json").write_text(json.dumps(meta))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"subject name '\.\.evil' cannot be a file name"):
        get_task("brats", path=msd, cache_dir=cache, num_val=0, num_test=0)
    assert not cache.exists()  # refused before anything was written


# ------------------------------------------------------------------ cache


def test_disk_cache_miss_hit_and_memory(brats_data, tmp_path):
    root = brats_data.write_nnunet(tmp_path / "nn", n=3)
    cache = tmp_path / "cache"
    first = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=1)
    assert first.meta["cache"] == {"memory": 0, "disk": 0, "built": 3, "rebuilt": []}
    folder = Path(first.meta["cache_folder"])
    assert folder.parent == cache and folder.name == f"brats-{first.meta['cache_key']}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Brats18_T_0.npz",
        "Brats18_T_1.npz",
        "Brats18_T_2.npz",
        "key.json",
    ]
    again = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=1)
    assert again.meta["cache"] == {"memory": 3, "disk": 0, "built": 0, "rebuilt": []}
    clear_memory_cache()
    from_disk = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=1)
    assert from_disk.meta["cache"] == {"memory": 0, "disk": 3, "built": 0, "rebuilt": []}
    for name, case in _all_cases(first).items():
        other = _all_cases(from_disk)[name]
        np.testing.assert_array_equal(case.image, other.image)
        np.testing.assert_array_equal(case.label, other.label)
    # tasks get copies: changing one task's arrays leaves the cache and other tasks alone
    _all_cases(again)["Brats18_T_0"].image[:] = 7.0
    fresh = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=1)
    assert not np.any(_all_cases(fresh)["Brats18_T_0"].image == 7.0)


def test_cache_key_follows_files_and_parameters(brats_data, tmp_path):
    root = brats_data.write_nnunet(tmp_path / "nn", n=2)
    cache = tmp_path / "cache"
    key = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0).meta["cache_key"]
    assert (
        get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0, seed=5).meta[
            "cache_key"
        ]
        == key
    )  # the split is not part of the preprocessing
    for change in ({"margin": 2.0}, {"spacing": 3.0}, {"channels": "T1,FLAIR"}):
        other = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0, **change)
        assert other.meta["cache_key"] != key and other.meta["cache"]["built"] == 2
    # a source file rewritten with other content (size and mtime change) gives a new key
    label_file = root / "labelsTr" / "Brats18_T_1.nii.gz"
    label, _ = read_image(label_file)
    label[7, 10, 13] = 1
    time.sleep(0.01)
    write_image(label_file, label, brats_data.GEOMETRY_3D)
    rebuilt = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0)
    assert rebuilt.meta["cache_key"] != key and rebuilt.meta["cache"]["built"] == 2
    assert len(list(cache.iterdir())) == 5  # one folder per (files, parameters)


def _corrupt(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "pickle":  # an object array can only be read by unpickling: refused
        arrays = dict(np.load(path))
        arrays["label"] = np.array([{"x": 1}], dtype=object)
        np.savez(path.with_suffix(""), **arrays)
    elif how == "dtype":
        arrays = dict(np.load(path))
        arrays["label"] = arrays["label"].astype(np.int64)
        np.savez(path.with_suffix(""), **arrays)
    elif how == "shape":
        arrays = dict(np.load(path))
        arrays["image"] = arrays["image"][:, :-1]
        arrays["label"] = arrays["label"][:-1]
        np.savez(path.with_suffix(""), **arrays)
    elif how == "values":
        arrays = dict(np.load(path))
        arrays["label"][0, 0, 0] = 3
        np.savez(path.with_suffix(""), **arrays)
    elif how == "missing-key":
        arrays = dict(np.load(path))
        del arrays["box"]
        np.savez(path.with_suffix(""), **arrays)


@pytest.mark.parametrize(
    "how", ["garbage", "truncated", "pickle", "dtype", "shape", "values", "missing-key"]
)
def test_invalid_cache_file_is_rebuilt(how, brats_data, tmp_path):
    root = brats_data.write_msd(tmp_path / "msd", n=2)
    cache = tmp_path / "cache"
    first = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0)
    target = Path(first.meta["cache_folder"]) / "BRATS_001.npz"
    _corrupt(target, how)
    clear_memory_cache()
    second = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0)
    report = second.meta["cache"]
    assert report["disk"] == 1 and report["built"] == 1 and len(report["rebuilt"]) == 1
    assert report["rebuilt"][0].startswith("BRATS_001.npz: ")
    np.testing.assert_array_equal(
        _all_cases(second)["BRATS_001"].image, _all_cases(first)["BRATS_001"].image
    )
    with np.load(target, allow_pickle=False) as data:  # rewritten, valid again
        assert data["label"].dtype == np.uint8 and set(data.files) >= {"image", "label", "box"}
    clear_memory_cache()
    third = get_task("brats", path=root, cache_dir=cache, num_val=0, num_test=0)
    assert third.meta["cache"]["disk"] == 2


def test_no_cache_dir_writes_nothing(brats_data, tmp_path):
    root = brats_data.write_official(tmp_path / "off", n=2)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    task = get_task("brats", path=root, num_val=0, num_test=0)
    assert task.meta["cache_folder"] is None and task.meta["cache"]["built"] == 2
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# ------------------------------------------------------------------ path, options, listing


def test_missing_folder_says_how_to_get_the_data(tmp_path, monkeypatch):
    with pytest.raises(
        SourceUnavailableError, match="metricseg data download msd:Task01_BrainTumour"
    ):
        get_task("brats")
    with pytest.raises(SourceUnavailableError, match=r"'.*nowhere' \(from path=\) is not a folder"):
        get_task("brats", path=tmp_path / "nowhere")
    monkeypatch.setenv(BRATS_ENV, str(tmp_path / "gone"))
    with pytest.raises(
        SourceUnavailableError, match=r"\(from \$METRICSEG_BRATS\).*BraTS challenge"
    ):
        get_task("brats")
    info = {i.name: i for i in list_tasks()}["brats"]
    assert not info.available and "METRICSEG_BRATS" in info.how_to_get


def test_env_var_and_cli(brats_data, tmp_path, monkeypatch, capsys):
    root = brats_data.write_official(tmp_path / "off", n=3)
    assert main(["data", "list"]) == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("│ brats "))
    assert "no: set $METRICSEG_BRATS or -o path=FOLDER" in line
    assert "metricseg data download msd:Task01_BrainTumour" in line
    monkeypatch.setenv(BRATS_ENV, str(root))
    assert main(["data", "list"]) == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("│ brats "))
    assert "3 subjects (official)" in line and " yes " in line
    task = get_task("brats", num_val=1, num_test=1)
    assert task.source == str(root)
    monkeypatch.delenv(BRATS_ENV)
    out = tmp_path / "show.png"
    assert main(["data", "show", "brats", "-o", f"path={root}", "-o", "channels=T1,T2",
                 "-o", "num_test=1", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "3D, 2 classes, 2 channel(s); train 1, val 1, test 1 cases; image (12, 9, 10)" in printed
    assert out.is_file()
    assert main(["data", "show", "brats", "--out", str(tmp_path / "x.png")]) == 1
    assert "metricseg data download msd:Task01_BrainTumour" in capsys.readouterr().err


def test_options_are_checked(brats_data, tmp_path):
    root = brats_data.write_nnunet(tmp_path / "nn", n=3)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['image_size'\] for task 'brats'"):
        get_task("brats", path=root, image_size=64)
    with pytest.raises(ValueError, match="spacing must be one number or three"):
        get_task("brats", path=root, spacing=(1.0, 2.0))
    with pytest.raises(TypeError, match="num_test must be an integer"):
        get_task("brats", path=root, num_test=0.5)
    with pytest.raises(
        ValueError, match="cannot split them into num_train=1, num_val=1, num_test=2"
    ):
        get_task("brats", path=root, num_train=1, num_val=1, num_test=2, max_subjects=3)
    with pytest.raises(ValueError, match="path must name the BraTS folder"):
        get_task("brats", path="")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match=r"cache_dir '.*a-file': cannot create"):
        get_task("brats", path=root, cache_dir=tmp_path / "a-file")
    task = get_task(
        "brats", path=root, spacing=(2.0, 4.0, 4.0), patch_size=None, max_subjects=2, num_val=0
    )
    assert task.patch_size is None and len(task.cases) == 2
    assert task.cases[0].spacing == (2.0, 4.0, 4.0) and task.cases[0].image.shape[1:] == (12, 5, 5)


def test_splits_are_seeded_and_default_to_60_20_20(brats_data, tmp_path):
    root = brats_data.write_official(tmp_path / "off", n=10)
    a = get_task("brats", path=root, seed=1)
    b = get_task("brats", path=root, seed=1)
    c = get_task("brats", path=root, seed=2)
    assert {k: len(v) for k, v in a.meta["subjects"].items()} == {"train": 6, "val": 2, "test": 2}
    assert a.meta["subjects"] == b.meta["subjects"] != c.meta["subjects"]


# ------------------------------------------------------------------ the real 10 subjects


def _real_or_skip() -> Path:
    if REAL.is_dir():
        return REAL
    if os.environ.get("CI") == "true":
        pytest.fail(f"{REAL} is missing: CI must provide the 10 BraTS 2018 subjects")
    pytest.skip(f"{REAL} not here (the 10 BraTS 2018 subjects are not part of the repository)")


def test_real_brats2018_reader_and_one_subject(tmp_path):
    root = _real_or_skip()
    source = find_brats_subjects(root)
    subjects = json.loads((root / "dataset.json").read_text())["subjects"]
    assert source.layout == "nnunet" and [s.subject for s in source.subjects] == sorted(subjects)
    assert all(s.images[0].name.endswith("_0000.nii.gz") for s in source.subjects)  # FLAIR
    assert all(s.images[1].name.endswith("_0001.nii.gz") for s in source.subjects)  # T1
    task = get_task("brats", path=root, max_subjects=1, num_val=0, num_test=0)
    case = task.train[0]
    assert case.subject == "Brats18_CBICA_AAB_1" and case.spacing == (2.0, 2.0, 2.0)
    # the head of a 240 x 240 x 155 mm BraTS volume is about 140 x 180 x 145 mm
    assert case.image.shape[0] == 2 and all(60 <= n <= 110 for n in case.image.shape[1:])
    # whole tumour volume in mm^3 within 1 % of the 1 mm label's
    label, _ = read_image(root / "labelsTr" / "Brats18_CBICA_AAB_1.nii.gz")
    assert abs(8 * int(case.label.sum()) / int((label > 0).sum()) - 1) < 0.01
    head = case.image != 0
    for c in range(2):
        values = case.image[c][head[c]]
        assert abs(values.mean()) < 0.02 and abs(values.std() - 1) < 0.02


@pytest.mark.slow
def test_real_brats2018_all_subjects_and_cache(tmp_path):
    root = _real_or_skip()
    cache = tmp_path / "cache"
    t0 = time.perf_counter()
    task = get_task("brats", path=root, cache_dir=cache)
    built = time.perf_counter() - t0
    clear_memory_cache()
    t0 = time.perf_counter()
    again = get_task("brats", path=root, cache_dir=cache)
    cached = time.perf_counter() - t0
    assert task.meta["cache"]["built"] == 10 and again.meta["cache"]["disk"] == 10
    assert cached < built  # not a benchmark: the cache must not be slower than the build
    assert (len(task.train), len(task.val), len(task.test)) == (6, 2, 2)
    for case in task.cases:
        assert case.label.max() == 1 and 0.003 < case.label.mean() < 0.1
        assert all(60 <= n <= 110 for n in case.image.shape[1:])
