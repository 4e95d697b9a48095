"""Train in 2D, score in 3D: slices of volumes in, stacked volumes out, scored as one volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metricseg.counts import confusion
from metricseg.data.task import Case, Task
from metricseg.experiment.scoring import case_rows
from metricseg.train import Predictor, TrainConfig, train
from metricseg.train.sampler import BatchSampler


def _volume_task(n: int = 6, shape=(6, 12, 10)) -> Task:
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n):
        label = np.zeros(shape, np.int64)
        z = rng.integers(1, shape[0] - 2)
        label[z : z + 2, 3:8, 2:7] = 1  # foreground in two slices only
        image = (label + rng.normal(0, 0.3, shape)).astype(np.float32)[None]
        cases.append(Case(f"v{i}", image, label, subject=f"s{i}"))
    return Task(
        "vols", 3, 2, 1, ["bg", "fg"], cases[:4], cases[4:5], cases[5:], patch_size=(4, 8, 8)
    )


def test_a_2d_network_on_a_volume_predicts_slice_by_slice_and_stacks():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(2, 3, 3, padding=1)
    volume = np.random.default_rng(1).normal(size=(2, 7, 9, 11)).astype(np.float32)
    predictor = Predictor(net, network_dims=2, divisor=4, slice_batch=3)
    stacked = np.stack([predictor(volume[:, z]) for z in range(volume.shape[1])])
    assert np.array_equal(predictor(volume), stacked)
    logits = predictor.logits(volume)
    assert tuple(logits.shape) == (3, 7, 9, 11)


def test_scoring_the_stacked_volume_equals_a_direct_3d_scoring():
    rng = np.random.default_rng(2)
    label = rng.integers(0, 3, (5, 8, 8))
    net = torch.nn.Conv2d(1, 3, 1)
    pred = Predictor(net, network_dims=2)(rng.normal(size=(1, 5, 8, 8)).astype(np.float32))
    per_slice = sum(confusion(pred[z][None], label[z][None], 3)[0] for z in range(5))
    direct = confusion(pred[None], label[None], 3)[0]
    assert np.array_equal(per_slice, direct)
    rows = case_rows(pred, label, 3, case_id="v")
    for c, row in enumerate(rows):
        tp, fp, fn = direct[c]
        assert (row["tp"], row["fp"], row["fn"]) == (tp, fp, fn)
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_slice_sampler_draws_2d_patches_with_foreground_and_resumes():
    task = _volume_task()
    cfg = TrainConfig(network_dims=2, patch_size=[8, 8], batch_size=5, foreground_prob=1.0)
    sampler = BatchSampler(task, cfg, seed=3)
    x, y = sampler.batch()
    assert tuple(x.shape) == (5, 1, 8, 8) and tuple(y.shape) == (5, 8, 8)
    assert all(bool((y[i] > 0).any()) for i in range(5))  # every slice holds foreground
    state = sampler.state()
    after = [sampler.batch() for _ in range(3)]
    again = BatchSampler(task, cfg, seed=0)
    again.load_state(state)
    for (xa, ya), (xb, yb) in zip(after, [again.batch() for _ in range(3)]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # a 2D patch of three sizes is refused, with the fix in the message
    with pytest.raises(ValueError, match="give 2"):
        BatchSampler(task, TrainConfig(network_dims=2, patch_size=[4, 8, 8]), seed=0)


def test_train_2d_on_a_3d_task_returns_a_volume_predictor():
    task = _volume_task()
    cfg = TrainConfig(network_dims=2, epochs=1, batch_size=4, steps_per_epoch=2, channels=(4, 8))
    result = train(task, "soft_dice", cfg, seed=0)
    assert result.predictor.network_dims == 2 and result.predictor.roi_size is None
    pred = result.predictor(task.test[0].image)
    assert pred.shape == task.test[0].label.shape
