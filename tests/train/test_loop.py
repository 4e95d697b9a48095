from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metricseg.experiment.scoring import TVERSKY_COLUMN, case_rows, object_sizes
from metricseg.train import CHECKPOINT_NAME, TrainConfig, train
from metricseg.train.validation import case_foreground_dice

from .conftest import make_task


def _test_dice(result, task) -> float:
    return float(
        np.mean(
            [
                case_foreground_dice(result.predictor(c.image), c.label, task.num_classes)
                for c in task.test
            ]
        )
    )


def test_tiny_2d_run_learns(task2d):
    cfg = TrainConfig(epochs=12, batch_size=4, channels=(8, 16, 32), lr=1e-2)
    result = train(task2d, torch.nn.CrossEntropyLoss(), cfg, seed=0)
    assert result.epochs_run == 12
    assert len(result.history) == 12
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert 1 <= result.best_epoch <= 12
    assert result.best_val_dice == max(h["val_dice"] for h in result.history)
    # chance level for this task is far below 0.5
    assert _test_dice(result, task2d) > 0.5


def test_tiny_3d_run_with_patches_and_sliding_window(task3d):
    cfg = TrainConfig(epochs=3, batch_size=2, channels=(4, 8, 16), steps_per_epoch=3)
    result = train(task3d, torch.nn.CrossEntropyLoss(), cfg, seed=1)
    assert result.epochs_run == 3
    assert result.predictor.roi_size == (16, 16, 16)  # sliding windows of the training patch
    pred = result.predictor(task3d.test[0].image)
    assert pred.shape == task3d.test[0].label.shape
    assert pred.min() >= 0 and pred.max() < 3
    assert all(math.isfinite(h["train_loss"]) for h in result.history)


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    task = make_task(2, n=(8, 2, 3), seed=3)
    cfg = TrainConfig(epochs=4, batch_size=4, channels=(4, 8, 16))
    full = train(task, torch.nn.CrossEntropyLoss(), cfg, seed=5, out_dir=tmp_path / "full")

    class Interrupt(Exception):
        pass

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            task,
            torch.nn.CrossEntropyLoss(),
            cfg,
            seed=5,
            out_dir=tmp_path / "cut",
            on_epoch_end=stop_after_two,
        )
    assert (tmp_path / "cut" / CHECKPOINT_NAME).is_file()
    resumed = train(
        task, torch.nn.CrossEntropyLoss(), cfg, seed=5, out_dir=tmp_path / "cut", resume=True
    )
    assert resumed.resumed_from_epoch == 2
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert [h["val_dice"] for h in resumed.history] == [h["val_dice"] for h in full.history]
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_resume_refuses_checkpoint_of_another_run(tmp_path):
    task = make_task(2, n=(4, 1, 1))
    cfg = TrainConfig(epochs=1, batch_size=2, channels=(4, 8))
    train(task, torch.nn.CrossEntropyLoss(), cfg, seed=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="another run"):
        train(task, torch.nn.CrossEntropyLoss(), cfg, seed=1, out_dir=tmp_path, resume=True)


def test_early_stopping_stops_after_patience():
    task = make_task(2, n=(4, 2, 1))
    # lr 0: nothing changes, so validation never improves after epoch 1
    cfg = TrainConfig(epochs=10, batch_size=2, channels=(4, 8), lr=1e-12, patience=2)
    result = train(task, torch.nn.CrossEntropyLoss(), cfg, seed=0)
    assert result.epochs_run == 3
    assert result.best_epoch == 1


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")


def test_case_rows_against_hand_values():
    pred = np.array([[0, 1, 1, 2], [2, 2, 0, 0]])
    gt = np.array([[0, 1, 2, 2], [2, 0, 0, 0]])
    rows = case_rows(pred, gt, 3, case_id="x")
    # class 2: TP=2 (0,3),(1,0); FP=1 (1,1); FN=1 (0,2)
    r = rows[2]
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert r["dice"] == pytest.approx(4 / 6)
    assert r["jaccard"] == pytest.approx(2 / 4)
    assert r[TVERSKY_COLUMN] == pytest.approx(2 / (2 + 0.3 + 0.7))
    assert r["hamming"] == pytest.approx(1 - 2 / 8)
    assert r["sensitivity"] == pytest.approx(2 / 3) and r["precision"] == pytest.approx(2 / 3)
    assert r["objects"] == 2  # (0,2)-(0,3) and (1,0) are not face-connected
    assert r["mean_object_size"] == pytest.approx(1.5)
    empty = case_rows(np.zeros((2, 2), int), np.zeros((2, 2), int), 2, case_id="e")[1]
    # absent from prediction and target: no score, for every metric (the library's rule)
    assert all(math.isnan(empty[k]) for k in ("dice", "jaccard", "hamming", TVERSKY_COLUMN))


def test_object_sizes_matches_scipy_3d():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    lab = (rng.random((6, 7, 8)) < 0.3).astype(np.int64)
    n, mean = object_sizes(lab, 2)[1]
    _, ref = ndimage.label(lab == 1)
    assert n == ref and mean == pytest.approx(lab.sum() / ref)


def test_weighted_ce_gets_training_frequencies_only_for_a_frequency_scheme():
    from metricseg.train import make_loss

    task = make_task(2, n=(4, 1, 1))
    freq = make_loss("weighted_ce", task, scheme="median_frequency")
    assert freq.call_options()["class_frequencies"] is not None
    fg = make_loss("weighted_ce", task, foreground_weight=5.0)  # its own weights, no frequencies
    explicit = make_loss("weighted_ce", task, scheme=[1.0, 2.0, 3.0])
    logits, labels = torch.zeros(1, 3, 4, 4), torch.ones(1, 4, 4, dtype=torch.long)
    assert torch.isfinite(fg(logits, labels)) and torch.isfinite(explicit(logits, labels))
