"""Issue 12: every score the bench stores comes from metricseg.metrics on the stored counts,
and the progress line says the test Dice the report says."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re

import numpy as np
import pytest

from metricseg.cli import main
from metricseg.experiment.scoring import TVERSKY_COLUMN, TVERSKY_WEIGHTS
from metricseg.metrics import score_from_counts
from metricseg.train.predictor import Predictor

STUDY = """
losses = ["soft_dice", "ce"]
tasks = [{name = "multiclass", options = {num_train = 4, num_val = 2, num_test = 6, image_size = 32}}]
[train]
epochs = 1
steps_per_epoch = 1
batch_size = 2
channels = [4, 8]
"""


LABELS: dict[bytes, np.ndarray] = {}


def _edited_task(real):
    """The real task with classes 2 and 3 taken out of some test targets."""

    def edited(name, seed, options_json):
        task = real(name, seed, options_json)
        test = []
        for i, case in enumerate(task.test):
            label = case.label.copy()
            if i % 2 == 0:
                label[label == 2] = 1  # class 2 absent from this target
            if i % 3 == 0:
                label[label == 3] = 1  # class 3 absent from this target
            test.append(dataclasses.replace(case, label=label))
        for case in [*task.train, *task.val, *test]:
            LABELS[case.image.tobytes()] = case.label
        return dataclasses.replace(task, test=test)

    return edited


def _prediction(self, image):
    """A fixed prediction of the target: class 3 never predicted (target only, or empty where
    the target lacks it), class 2 painted in a corner (prediction only where the target lacks it)."""
    label = LABELS[image.tobytes()]
    pred = label.copy()
    pred[label == 3] = 0
    pred[:2, :2] = 2
    return pred


def test_every_stored_score_is_the_library_score_of_the_stored_counts(
    tmp_path, monkeypatch, capsys
):
    from metricseg.experiment import grid

    monkeypatch.setattr(grid, "_cached_task", _edited_task(grid._cached_task))
    monkeypatch.setattr(Predictor, "__call__", _prediction)
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    assert (
        main(["bench", "--study", str(study), "--out", str(out), "--jobs", "1", "--no-plots"]) == 0
    )
    printed = capsys.readouterr().out
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    kinds = set()
    for r in rows:
        counts = np.array([[int(r["tp"]), int(r["fp"]), int(r["fn"])]])
        kinds.add(

                "empty"
                if not counts.any()
                else "pred only"
                if counts[0, 0] + counts[0, 2] == 0
                else "target only"
                if counts[0, 0] + counts[0, 1] == 0
                else "both"

        )
        expected = {
            "dice": score_from_counts(counts, "dice"),
            "jaccard": score_from_counts(counts, "jaccard"),
            TVERSKY_COLUMN: score_from_counts(
                counts, "tversky", alpha=TVERSKY_WEIGHTS[0], beta=TVERSKY_WEIGHTS[1]
            ),
            "hamming": score_from_counts(
                counts, "hamming", num_voxels=np.array([int(r["voxels"])])
            ),
            "sensitivity": score_from_counts(counts, "sensitivity"),
            "precision": score_from_counts(counts, "precision"),
        }
        for column, value in expected.items():
            stored = float(r[column]) if r[column] != "" else math.nan
            assert stored == pytest.approx(float(value[0]), nan_ok=True, abs=0, rel=1e-15), column
    assert kinds >= {"empty", "pred only", "target only", "both"}
    summary = json.loads((out / "summary.json").read_text())
    report = {s["loss"]: s["dice_mean"] for s in summary["summaries"]}
    progress = dict(re.findall(r"multiclass / (\w+) / seed0: test Dice ([0-9.]+)", printed))
    assert set(progress) == set(report) == {"soft_dice", "ce"}
    for loss, dice in progress.items():
        assert float(dice) == pytest.approx(report[loss], abs=5e-4)
