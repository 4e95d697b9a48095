"""metricseg.counts.confusion: hand-derived counts, a slow loop reference, input kinds and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metricseg.counts as counts_mod
from metricseg.counts import FN, FP, TP, confusion


def loop_confusion(pred: np.ndarray, target: np.ndarray, c: int, ignore_index=None) -> np.ndarray:
    """The obvious reference: a Python loop over images and classes with numpy masks."""
    out = np.zeros((pred.shape[0], c, 3), dtype=np.int64)
    for b in range(pred.shape[0]):
        keep = np.ones(target[b].shape, bool) if ignore_index is None else target[b] != ignore_index
        for k in range(c):
            p = (pred[b] == k) & keep
            t = (target[b] == k) & keep
            out[b, k] = [(p & t).sum(), (p & ~t).sum(), (~p & t).sum()]
    return out


def test_hand_derived_2d_multiclass():
    pred = np.array([[[0, 1], [2, 2]]])
    gt = np.array([[[0, 1], [1, 2]]])
    # class 0: TP 1; class 1: TP 1, FN 1 (voxel (1,0)); class 2: TP 1, FP 1
    assert confusion(pred, gt, 3).tolist() == [[[1, 0, 0], [1, 0, 1], [1, 1, 0]]]


def test_hand_derived_3d_binary_and_pooled():
    gt = np.zeros((2, 2, 2, 2), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[0, 0, 0, :] = 1  # 2 foreground voxels in image 0
    pred[0, 0, 0, 0] = 1  # one hit
    pred[1, 1, 1, 1] = 1  # image 1: one false positive, empty target
    c = confusion(pred, gt, 2)
    assert c[0].tolist() == [[6, 1, 0], [1, 0, 1]]
    assert c[1].tolist() == [[7, 0, 1], [0, 1, 0]]
    assert confusion(pred, gt, 2, per_image=False).tolist() == [[13, 1, 1], [1, 1, 1]]


def test_ignore_index_leaves_voxels_out():
    pred = np.array([[1, 1, 0, 0]])
    gt = np.array([[1, 255, 0, 255]])
    c = confusion(pred, gt, 2, ignore_index=255)
    assert c[0].tolist() == [[1, 0, 0], [1, 0, 0]]


def test_mask_stack_multilabel():
    pred = torch.tensor([[[1, 1, 0], [0, 1, 1]]], dtype=torch.bool)  # (1, 2, 3)
    gt = torch.tensor([[[1, 0, 0], [1, 1, 1]]], dtype=torch.bool)
    assert confusion(pred, gt, 2).tolist() == [[[1, 1, 0], [2, 0, 1]]]


@pytest.mark.parametrize("shape", [(3, 17, 19), (2, 5, 6, 7)])
@pytest.mark.parametrize("ignore", [None, 9])
def test_matches_loop_reference(shape, ignore):
    rng = np.random.default_rng(sum(shape))
    c = 5
    pred = rng.integers(0, c, shape)
    gt = rng.integers(0, c, shape)
    if ignore is not None:
        gt[rng.random(shape) < 0.2] = ignore
    np.testing.assert_array_equal(
        confusion(pred, gt, c, ignore_index=ignore), loop_confusion(pred, gt, c, ignore)
    )


@pytest.mark.parametrize("c", [14, 16, 20])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64])
def test_chunking_and_narrow_dtypes(monkeypatch, c, dtype):
    # chunks smaller than an image and a ragged last chunk; label dtypes in which
    # t*C + p overflows (int8: 13*14 + 13 = 195; uint8 with C = 20: 399), index
    # dtypes uint8 (C*C < 256) and int64; ignored voxels whose index is garbage
    monkeypatch.setattr(counts_mod, "_CPU_CHUNK", 1000)
    rng = np.random.default_rng(c)
    pred = rng.integers(0, c, (2, 37, 71)).astype(dtype)
    gt = rng.integers(0, c, (2, 37, 71)).astype(dtype)
    ignore = 100
    gt[0, :3] = ignore
    ref = loop_confusion(pred.astype(np.int64), gt.astype(np.int64), c, ignore)
    np.testing.assert_array_equal(confusion(pred, gt, c, ignore_index=ignore), ref)
    np.testing.assert_array_equal(
        confusion(torch.from_numpy(pred), torch.from_numpy(gt).int(), c, ignore_index=ignore), ref
    )


def test_whole_batch_path_used_on_accelerators():
    # the one-bincount path that CUDA tensors take, run here on CPU tensors
    rng = np.random.default_rng(12)
    c = 6
    pred = rng.integers(0, c, (3, 11, 13))
    gt = rng.integers(0, c, (3, 11, 13))
    gt[1, :2] = 42
    p, t = torch.from_numpy(pred).reshape(3, -1), torch.from_numpy(gt).reshape(3, -1)
    cm = counts_mod._confusion_matrix_whole(p, t, c, t == 42)
    tp = torch.diagonal(cm, dim1=1, dim2=2)
    got = torch.stack((tp, cm.sum(1) - tp, cm.sum(2) - tp), dim=-1)
    np.testing.assert_array_equal(got.numpy(), loop_confusion(pred, gt, c, 42))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(13)
    pred = torch.from_numpy(rng.integers(0, 5, (2, 8, 9, 10)))
    gt = torch.from_numpy(rng.integers(0, 5, (2, 8, 9, 10)))
    out = confusion(pred.cuda(), gt.cuda(), 5, ignore_index=4)
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), confusion(pred, gt, 5, ignore_index=4))


@pytest.mark.slow
def test_matches_loop_reference_large_volume():
    rng = np.random.default_rng(7)
    c = 14
    pred = rng.integers(0, c, (2, 64, 64, 64))
    gt = np.where(rng.random(pred.shape) < 0.7, pred, rng.integers(0, c, pred.shape))
    np.testing.assert_array_equal(confusion(pred, gt, c), loop_confusion(pred, gt, c))


def test_numpy_and_torch_agree_and_kinds():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 4, (2, 9, 9))
    gt = rng.integers(0, 4, (2, 9, 9))
    out_np = confusion(pred, gt, 4)
    out_t = confusion(torch.from_numpy(pred), torch.from_numpy(gt), 4)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.int64
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.int64
    np.testing.assert_array_equal(out_np, out_t.numpy())
    # every voxel counted once as TP or FN of its target class
    assert (out_np[..., TP] + out_np[..., FN]).sum() == pred.size
    assert (out_np[..., TP] + out_np[..., FP]).sum() == pred.size


def test_errors_name_the_argument():
    ok = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="pred holds label 3"):
        confusion(np.array([[0, 3, 0, 0]]), ok, 3)
    with pytest.raises(ValueError, match="target holds label -1"):
        confusion(ok, np.array([[0, -1, 0, 0]]), 3)
    with pytest.raises(ValueError, match=r"target holds label 5, outside .* or ignore_index=255"):
        confusion(ok, np.array([[0, 255, 5, 0]]), 3, ignore_index=255)
    with pytest.raises(ValueError, match="same shape"):
        confusion(ok, np.zeros((1, 5), dtype=np.int64), 3)
    with pytest.raises(TypeError, match="pred must hold integer labels"):
        confusion(ok.astype(float), ok, 3)
    with pytest.raises(TypeError, match="num_classes"):
        confusion(ok, ok, 2.0)
