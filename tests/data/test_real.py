"""Real offline tasks: shapes, labels, splits with gaps, and the message when a package is missing."""

from __future__ import annotations

import numpy as np
import pytest

from metricseg.data import get_task
from metricseg.data import real as real_module
from metricseg.data.real import REAL_TASKS, SourceUnavailableError

EXPECTED = {
    # name: (num_classes, (train, val, test), gap between splits in source slices)
    "aal": (9, (48, 16, 32), 3),
    "aal-small": (4, (24, 8, 16), 3),
    "colin-brain": (2, (48, 16, 32), 3),
    "mni-tissue": (3, (48, 16, 32), 3),
    "inia19": (5, (32, 8, 16), 4),
    "dsb-nuclei": (2, (48, 8, 16), None),
}


@pytest.fixture(scope="session")
def real_tasks():
    """Each available task built once per session (reading the volumes takes a moment)."""
    cache = {}

    def build(name):
        info = REAL_TASKS[name]
        if not info.available():
            pytest.skip(f"{name} needs {info.package} ({info.install}); not installed here")
        if name not in cache:
            cache[name] = get_task(name)
        return cache[name]

    return build


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loads_with_expected_shapes_and_labels(real_tasks, name):
    task = real_tasks(name)
    num_classes, counts, _ = EXPECTED[name]
    assert task.num_classes == num_classes == REAL_TASKS[name].num_classes
    assert (len(task.train), len(task.val), len(task.test)) == counts
    present = set()
    for case in [*task.train, *task.val, *task.test]:
        assert case.image.shape == (1, 64, 64) and case.image.dtype == np.float32
        assert case.label.shape == (64, 64) and case.label.dtype == np.int64
        assert np.isfinite(case.image).all()
        assert case.label.min() >= 0 and case.label.max() < num_classes
        present |= set(np.unique(case.label).tolist())
    assert present == set(range(num_classes))  # every class appears somewhere


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_splits_share_no_slice_and_keep_the_gap(real_tasks, name):
    task = real_tasks(name)
    ids = {split: {c.case_id for c in getattr(task, split)} for split in ("train", "val", "test")}
    assert (
        not ids["train"] & ids["val"]
        and not ids["train"] & ids["test"]
        and not ids["val"] & ids["test"]
    )
    gap = EXPECTED[name][2]
    if gap is None:  # tiles: bands of rows; a test tile's rows never meet a training tile's rows
        rows = {
            split: [int(c.case_id.split("-y")[1][:3]) for c in getattr(task, split)]
            for split in ("train", "val", "test")
        }
        assert max(rows["train"]) + 64 + 16 <= min(rows["val"])
        assert max(rows["val"]) + 64 <= min(rows["test"])
        return
    slices = task.meta["slices"]
    distance = min(abs(a - b) for a in slices["train"] for b in slices["test"])
    assert distance > gap


def test_aal_lobes_and_small_regions_have_the_expected_sizes(real_tasks):
    aal = real_tasks("aal")
    ratios = np.mean(
        [np.bincount(c.label.ravel(), minlength=9) / c.label.size for c in aal.train], axis=0
    )
    names = dict(zip(aal.class_names, ratios))
    assert names["frontal"] > names["temporal"] > names["insula"]  # frontal lobe is the largest
    small = real_tasks("aal-small")
    fg = np.mean([(c.label > 0).mean() for c in [*small.train, *small.val, *small.test]])
    assert 0 < fg < 0.02  # small structures: about 1 % of a slice


def test_mni_soft_labels_are_distributions_whose_argmax_is_the_label(real_tasks):
    task = real_tasks("mni-tissue")
    for case in task.train[::8]:
        assert case.soft_label is not None and case.soft_label.shape == (3, 64, 64)
        np.testing.assert_allclose(case.soft_label.sum(axis=0), 1.0, atol=1e-5)
        assert case.soft_label.min() >= -1e-6
        np.testing.assert_array_equal(case.soft_label.argmax(axis=0), case.label)


def test_options_resize_and_error(real_tasks):
    real_tasks("colin-brain")  # skips when mricron-data is missing
    task = get_task("colin-brain", image_size=96, num_train=8, num_val=2, num_test=4)
    assert task.train[0].image.shape == (1, 96, 96)
    with pytest.raises(ValueError, match="at most"):
        get_task("colin-brain", num_train=500)
    with pytest.raises(ValueError, match="unknown option"):
        get_task("colin-brain", size=3)


def test_missing_packages_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICSEG_MRICRON_DIR", str(tmp_path))
    with pytest.raises(SourceUnavailableError, match="apt-get install mricron-data"):
        get_task("aal")
    assert not REAL_TASKS["aal"].available()
    monkeypatch.setattr(real_module, "_package_dir", lambda package: None)
    with pytest.raises(SourceUnavailableError, match="pip install --no-deps stardist"):
        get_task("dsb-nuclei")
    with pytest.raises(SourceUnavailableError, match="pip install nilearn"):
        get_task("mni-tissue")
