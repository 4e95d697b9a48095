"""MetricAccumulator: batches equal one call, the aggregates match their definitions,
and the state summed over two gloo processes equals one process on all the data."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
import torch

from metricseg.counts import confusion
from metricseg.metrics import MetricAccumulator, aggregate

METRICS = ("dice", "jaccard", "tversky", "hamming", "sensitivity", "precision")


def _data(seed: int = 0, n: int = 6, c: int = 4):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, c, (n, 9, 10, 3))
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, c, gt.shape))
    gt[0][gt[0] == 3] = 0  # class 3 absent in image 0 ...
    pred[0][pred[0] == 3] = 0  # ... and not predicted: one empty case
    gt[1][gt[1] == 2] = 0  # class 2 absent from the target but predicted in image 1
    return pred, gt


def test_hand_derived_empty_cases_and_aggregates():
    acc = MetricAccumulator(3, metrics=("dice",), include_background=False)
    acc.update(np.array([[0, 1, 1, 2]]), np.array([[0, 1, 2, 2]]))  # c1: 2/3, c2: 2/3
    acc.update(np.array([[0, 0, 1, 1]]), np.array([[0, 0, 1, 1]]))  # c1: 1, c2: empty
    acc.update(np.array([[2, 0, 0, 0]]), np.array([[0, 0, 0, 0]]))  # c1: empty, c2: 0
    r = acc.compute()
    assert r.num_images == 3 and r.classes == [1, 2]
    assert r.empty_cases.tolist() == [1, 1]
    np.testing.assert_allclose(r.per_class["dice"], [(2 / 3 + 1) / 2, (2 / 3 + 0) / 2])
    assert r.macro["dice"] == pytest.approx((5 / 6 + 1 / 3) / 2)
    # micro per image: (2 TP, 1 FP, 1 FN) -> 2/3; (2, 0, 0) -> 1; (0, 1, 0) -> 0
    assert r.micro["dice"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # global: class 1 (3, 1, 0) -> 6/7; class 2 (1, 1, 1) -> 1/2
    np.testing.assert_allclose(r.global_per_class["dice"], [6 / 7, 1 / 2])
    assert r.global_["dice"] == pytest.approx((6 / 7 + 0.5) / 2)
    acc.reset()
    assert acc.compute().num_images == 0 and math.isnan(acc.compute().macro["dice"])


@pytest.mark.parametrize("empty", ["nan", "one", "zero"])
def test_batches_equal_aggregate_of_all_counts(empty):
    pred, gt = _data()
    acc = MetricAccumulator(4, metrics=METRICS, empty=empty, alpha=0.3, beta=0.7, w_fp=2.0)
    for lo, hi in ((0, 1), (1, 4), (4, 6)):
        acc.update(torch.from_numpy(pred[lo:hi]), torch.from_numpy(gt[lo:hi]))
    r = acc.compute()
    counts = confusion(pred, gt, 4)
    voxels = np.full(len(pred), pred[0].size)
    for m in METRICS:
        kw = {"alpha": 0.3, "beta": 0.7} if m == "tversky" else {}
        if m == "hamming":
            kw = {"w_fp": 2.0, "num_voxels": voxels}
        a = lambda avg, m=m, kw=kw: aggregate(counts, m, average=avg, empty=empty, **kw)  # noqa: E731
        np.testing.assert_allclose(r.per_class[m], a("class"), rtol=1e-12)
        np.testing.assert_allclose(r.global_per_class[m], a("global_class"), rtol=1e-12)
        assert r.macro[m] == pytest.approx(float(a("macro")), rel=1e-12)
        assert r.micro[m] == pytest.approx(float(a("micro")), rel=1e-12)
        assert r.global_[m] == pytest.approx(float(a("global")), rel=1e-12)
    assert r.empty_cases.tolist() == [0, 0, 0, 1]


def test_ignore_index_and_classes():
    pred, gt = _data(1)
    gt[:, 0] = 7
    acc = MetricAccumulator(4, metrics=("dice", "hamming"), classes=[2, 1], ignore_index=7)
    acc.update(pred, gt)
    r = acc.compute()
    counts = confusion(pred, gt, 4, ignore_index=7)
    np.testing.assert_allclose(
        r.per_class["dice"], aggregate(counts, "dice", average="class", classes=[2, 1])
    )
    n = np.full(len(pred), pred[0].size - pred[0, 0].size)
    np.testing.assert_allclose(
        r.global_per_class["hamming"],
        aggregate(counts, "hamming", average="global_class", classes=[2, 1], num_voxels=n),
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="metrics must be one of"):
        MetricAccumulator(3, metrics=("dice", "f1"))
    with pytest.raises(ValueError, match=r"classes must be .* in \[0, 2\], got \[3\]"):
        MetricAccumulator(3, classes=[3])
    acc = MetricAccumulator(3)
    with pytest.raises(ValueError, match=r"counts must have shape \(B, 3, 3\)"):
        acc.update_counts(np.zeros((1, 2, 3), dtype=np.int64), [4])


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        pred, gt = _data()
        acc = MetricAccumulator(4, metrics=METRICS)
        # uneven shards: rank 0 gets images 0..1, rank 1 gets 2..5, in two batches
        shard = range(0, 2) if rank == 0 else range(2, 6)
        for i in shard:
            acc.update(pred[i : i + 1], gt[i : i + 1])
        r = acc.compute()
        r2 = acc.compute()  # compute does not change the state: same result again
        assert r2.num_images == r.num_images
        np.savez(
            os.path.join(out_dir, f"rank{rank}.npz"),
            num_images=r.num_images,
            empty=r.empty_cases,
            **{f"pc_{m}": r.per_class[m] for m in METRICS},
            **{f"gc_{m}": r.global_per_class[m] for m in METRICS},
            **{f"agg_{m}": [r.macro[m], r.micro[m], r.global_[m]] for m in METRICS},
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_process_gloo_equals_single_process():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_worker, args=(2, init_file, tmp), nprocs=2, join=True)
        pred, gt = _data()
        acc = MetricAccumulator(4, metrics=METRICS)
        acc.update(pred, gt)
        ref = acc.compute()
        for rank in range(2):
            got = np.load(os.path.join(tmp, f"rank{rank}.npz"))
            assert int(got["num_images"]) == 6
            np.testing.assert_array_equal(got["empty"], ref.empty_cases)
            for m in METRICS:
                np.testing.assert_allclose(got[f"pc_{m}"], ref.per_class[m], rtol=1e-13)
                # global scores come from integer counts: exactly equal
                np.testing.assert_array_equal(got[f"gc_{m}"], ref.global_per_class[m])
                np.testing.assert_allclose(
                    got[f"agg_{m}"], [ref.macro[m], ref.micro[m], ref.global_[m]], rtol=1e-13
                )
