"""metricseg.counts.confusion: hand-derived counts, a slow loop reference, input kinds and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metricseg.counts as counts_mod
from metricseg.counts import FN, FP, TP, confusion, soft_counts


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
    pred = torch.from_numpy(rng.integers(0, 4, (2, 8, 9, 10)))
    gt = torch.from_numpy(rng.integers(0, 5, (2, 8, 9, 10)))  # 4: ignored, not a class
    out = confusion(pred.cuda(), gt.cuda(), 4, ignore_index=4)
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), confusion(pred, gt, 4, ignore_index=4))


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


# --- issue 11 (items 9, 12) and issue 12 (validate_args) ------------------------------------


def test_ignore_index_that_is_a_class_is_refused_as_in_the_losses():
    # before: accepted, silently dropping every voxel of class 2 from the counts
    gt = np.array([[0, 1, 2, 2]])
    with pytest.raises(ValueError, match=r"ignore_index=2 lies inside the class range \[0, 2\]"):
        confusion(gt, gt, 3, ignore_index=2)
    with pytest.raises(ValueError, match="ignore_index=0 lies inside"):
        soft_counts(torch.rand(1, 3, 4), torch.from_numpy(gt), ignore_index=0)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        confusion(gt, gt, 3, ignore_index=2.5)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_ignore_index_minus_one_in_a_signed_label_map(dtype):
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 4, (2, 9, 11)).astype(dtype)
    gt = rng.integers(0, 4, (2, 9, 11)).astype(dtype)
    gt[rng.random(gt.shape) < 0.3] = -1
    ref = loop_confusion(pred.astype(np.int64), gt.astype(np.int64), 4, -1)
    np.testing.assert_array_equal(confusion(pred, gt, 4, ignore_index=-1), ref)
    # the accelerator path (one bincount for the batch), run on CPU tensors
    p, t = torch.from_numpy(pred).reshape(2, -1).long(), torch.from_numpy(gt).reshape(2, -1).long()
    cm = counts_mod._confusion_matrix_whole(p, t, 4, t == -1)
    tp = torch.diagonal(cm, dim1=1, dim2=2)
    np.testing.assert_array_equal(torch.stack((tp, cm.sum(1) - tp, cm.sum(2) - tp), -1), ref)
    # soft counts of a one-hot prediction agree
    probs = torch.nn.functional.one_hot(torch.from_numpy(pred).long(), 4).movedim(-1, 1).double()
    got = soft_counts(probs, torch.from_numpy(gt), ignore_index=-1)
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize(
    "shape, message",
    [((0, 4, 4), r"empty batch \(B = 0"), ((2, 0, 4), "spatial size of 0"), ((2, 4, 0), "spatial")],
)
def test_empty_inputs_are_refused(shape, message):
    labels = np.zeros(shape, dtype=np.int64)
    with pytest.raises(ValueError, match=message):
        confusion(labels, labels, 3)
    probs = torch.full((shape[0], 3, *shape[1:]), 1 / 3)
    with pytest.raises(ValueError, match=message):
        soft_counts(probs, torch.from_numpy(labels))


def test_soft_counts_refuses_numpy_and_dense_targets_outside_0_1():
    probs = torch.full((1, 2, 4), 0.5)
    with pytest.raises(TypeError, match=r"torch\.from_numpy"):
        soft_counts(probs, np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="divide by 255"):
        soft_counts(probs, torch.full((1, 2, 4), 255.0))


def _forbid(monkeypatch, module, names):
    def boom(*args, **kwargs):
        raise AssertionError("a value check ran although validate_args=False")

    for name in names:
        monkeypatch.setattr(module, name, boom)


@pytest.mark.parametrize("chunk", [None, 7])
def test_validate_args_false_skips_the_range_checks_and_keeps_the_counts(monkeypatch, chunk):
    if chunk is not None:
        monkeypatch.setattr(counts_mod, "_CPU_CHUNK", chunk)
    rng = np.random.default_rng(3)
    pred = torch.from_numpy(rng.integers(0, 5, (2, 6, 7)))
    gt = torch.from_numpy(rng.integers(0, 5, (2, 6, 7)))
    gt[0, 0] = 255
    masks = torch.from_numpy(rng.random((2, 5, 6, 7)) < 0.5).long()
    probs = torch.rand(2, 5, 6, 7, dtype=torch.float64)
    soft_t = torch.rand(2, 5, 6, 7, dtype=torch.float64)
    want = [
        confusion(pred, gt, 5, ignore_index=255),
        confusion(masks, masks.flip(0), 5, one_hot=True),
        soft_counts(probs, gt, ignore_index=255),
        soft_counts(probs, soft_t),
    ]
    _forbid(monkeypatch, counts_mod, ["check_label_range", "_in_range", "check_dense_target"])
    monkeypatch.setattr(torch, "aminmax", lambda *a, **k: pytest.fail("aminmax: a value read"))
    got = [
        confusion(pred, gt, 5, ignore_index=255, validate_args=False),
        confusion(masks, masks.flip(0), 5, one_hot=True, validate_args=False),
        soft_counts(probs, gt, ignore_index=255, validate_args=False),
        soft_counts(probs, soft_t, validate_args=False),
    ]
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    # the default still checks
    with pytest.raises(AssertionError, match="validate_args=False"):
        confusion(pred, gt, 5, ignore_index=255)
