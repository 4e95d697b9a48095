"""Chunk loops on single-threaded workers (metricseg._parallel) and the kernels that use them.

The kernels must give the same values whichever way their chunks run: a plain loop in
the calling thread (one torch thread) or several single-threaded workers.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from metricseg import _parallel
from metricseg.counts import confusion, soft_counts
from metricseg.losses import lovasz as lovasz_module
from metricseg.losses import lovasz_hinge_loss, lovasz_softmax_loss, soft_dice_loss

needs_workers = pytest.mark.skipif(
    _parallel._omp_set_num_threads() is None, reason="torch does not run on OpenMP here"
)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_one_thread_is_a_plain_loop_in_order():
    seen = []
    with torch_threads(1):
        assert _parallel.workers(10, 1 << 20) == 1
        out = _parallel.map_chunks(
            lambda i: seen.append(threading.get_ident()) or i * i, 5, 1 << 20
        )
    assert out == [0, 1, 4, 9, 16]
    assert set(seen) == {threading.get_ident()}


@needs_workers
def test_workers_run_single_threaded_and_return_in_chunk_order():
    caller = threading.get_ident()
    threads = set()
    counts = set()
    helper_ran = threading.Event()

    def fn(i: int) -> int:
        threads.add(threading.get_ident())
        counts.add(torch.get_num_threads())
        assert not torch.is_grad_enabled()
        if threading.get_ident() != caller:
            helper_ran.set()
        elif i == 0:
            helper_ran.wait(timeout=30)  # so that the helper surely takes some chunks
        torch.randn(1 << 12).sort()
        return i

    with torch_threads(2):
        assert _parallel.workers(1, 1 << 20) == 1  # one chunk: no helper
        assert _parallel.workers(40, 1 << 20) == 2
        assert _parallel.workers(40, 1000) == 1  # chunks too small to share
        for _ in range(3):
            assert _parallel.map_chunks(fn, 40, 1 << 20) == list(range(40))
        assert torch.get_num_threads() == 2  # the caller's setting is back
    assert counts == {1}  # every chunk ran its ops on one thread
    assert len(threads) == 2 and helper_ran.is_set()  # the caller and one helper


@needs_workers
def test_one_thread_for_a_block_and_for_chunks_too_small_to_share():
    with torch_threads(2):
        with pytest.raises(KeyError), _parallel.one_thread():
            assert torch.get_num_threads() == 1
            raise KeyError("restored on the way out")
        assert torch.get_num_threads() == 2
        small = _parallel.map_chunks(lambda i: torch.get_num_threads(), 3, 1000)
        one_big = _parallel.map_chunks(lambda i: torch.get_num_threads(), 1, 1 << 20)
        assert small == [1, 1, 1] and one_big == [2]
        assert torch.get_num_threads() == 2


@needs_workers
def test_no_nested_workers_and_errors_propagate():
    with torch_threads(2):
        inner = _parallel.map_chunks(lambda i: _parallel.workers(10, 1 << 20), 4, 1 << 20)
        assert inner == [1, 1, 1, 1]  # inside a worker, a nested loop runs plainly

        def fn(i: int) -> int:
            if i == 3:
                raise ValueError(f"chunk {i}")
            return i

        with pytest.raises(ValueError, match="chunk 3"):
            _parallel.map_chunks(fn, 50, 1 << 20)
        # the pool still works after an error
        assert _parallel.map_chunks(lambda i: i, 6, 1 << 20) == list(range(6))


@needs_workers
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_pool():
    with torch_threads(2):
        _parallel.map_chunks(lambda i: torch.ones(1 << 12).sum(), 8, 1 << 20)  # the parent's pool
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: the parent's helper threads do not exist here
            try:
                out = _parallel.map_chunks(lambda i: i + 1, 8, 1 << 20)
                os.write(write, bytes(out))
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            got = f.read()
        os.waitpid(pid, 0)
    assert list(got) == list(range(1, 9))


@pytest.fixture
def shared_chunks(monkeypatch):
    """Share out even tiny chunks, and record how many workers each loop used."""
    monkeypatch.setattr(_parallel, "MIN_CHUNK_ELEMENTS", 1)
    used = []
    real = _parallel.workers
    monkeypatch.setattr(_parallel, "workers", lambda n, e: used.append(real(n, e)) or used[-1])
    return used


def _soft_dice_value_and_grad(logits, labels, **kw):
    x = logits.clone().requires_grad_()
    loss = soft_dice_loss(x, labels, per_image=True, **kw)
    loss.backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_fused_soft_dice_same_bits_on_one_thread_and_on_workers(
    monkeypatch, shared_chunks, squared, ignore
):
    from metricseg.losses import _softmax_counts as fused

    monkeypatch.setattr(fused, "_CHUNK_ELEMENTS", 256)  # many chunks of 64 voxels
    monkeypatch.setattr(fused, "_MIN_STEP", 8)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 9, 50, generator=g)
    labels = torch.randint(0, 4, (2, 9, 50), generator=g)
    kw = {"squared": squared}
    if ignore:
        labels[1, :2] = 255
        kw["ignore_index"] = 255
    with torch_threads(1):
        one = _soft_dice_value_and_grad(logits, labels, **kw)
    assert set(shared_chunks) == {1}
    with torch_threads(2):
        many = _soft_dice_value_and_grad(logits, labels, **kw)
    assert shared_chunks[-2:] == [2, 2] or not _parallel._omp_set_num_threads()  # fwd, bwd
    # chunk sums are added in chunk order: bit for bit the same
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])
    # and both equal the unfused path (softmax, then soft_counts)
    ref = soft_counts(
        torch.softmax(logits.double(), 1), labels, ignore_index=255 if ignore else None,
        squared=squared,
    )  # fmt: skip
    got = fused.SoftmaxSoftCounts.apply(
        logits.double().reshape(2, 4, -1),
        labels.reshape(2, -1).masked_fill(labels.reshape(2, -1) == 255, 0),
        (labels != 255).reshape(2, -1) if ignore else None,
        ref[..., 0] + ref[..., 2],
        squared,
        False,
    )
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_same_values_on_one_thread_and_on_workers(monkeypatch, shared_chunks, per_image):
    monkeypatch.setattr(lovasz_module, "_BLOCK_MIN_ELEMENTS", 64)  # several blocks
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, 17, 19, generator=g)
    labels = torch.randint(0, 5, (3, 17, 19), generator=g)
    labels[0, :2] = 255
    masks = torch.rand(3, 5, 17, 19, generator=g) < 0.4
    out = {}
    for threads in (1, 2):
        with torch_threads(threads):
            x = logits.clone().requires_grad_()
            soft = lovasz_softmax_loss(x, labels, per_image=per_image, ignore_index=255)
            h = logits.clone().requires_grad_()
            hinge = lovasz_hinge_loss(h, masks, per_image=per_image)
            (soft + hinge).backward()
            out[threads] = (soft.detach(), hinge.detach(), x.grad, h.grad)
        assert shared_chunks[-1] == (threads if _parallel._omp_set_num_threads() else 1)
    for a, b in zip(out[1], out[2]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_row_blocks_per_worker():
    # two workers: eight blocks of an eighth each, so a quarter of all elements in flight
    assert lovasz_module._row_blocks(8, 64**3, parts=8) == [(i, i + 1) for i in range(8)]
    # small rows: no block below 2^16 elements
    assert lovasz_module._row_blocks(16, 128 * 128, parts=8) == [(0, 4), (4, 8), (8, 12), (12, 16)]


@pytest.mark.parametrize("c", [5, 20])
def test_confusion_same_counts_on_one_thread_and_on_workers(monkeypatch, shared_chunks, c):
    import metricseg.counts as counts_mod

    monkeypatch.setattr(counts_mod, "_CPU_CHUNK", 500)  # 2 images x 8 chunks, ragged
    rng = np.random.default_rng(c)
    pred = torch.from_numpy(rng.integers(0, c, (2, 37, 101)))
    gt = torch.from_numpy(rng.integers(0, c, (2, 37, 101)))
    gt[0, :3] = 99
    with torch_threads(1):
        one = confusion(pred, gt, c, ignore_index=99)
    with torch_threads(2):
        many = confusion(pred, gt, c, ignore_index=99)
    assert shared_chunks == [1, 2 if _parallel._omp_set_num_threads() else 1]
    assert torch.equal(one, many)
    # TP + FN = voxels of each class in the target, ignored ones left out
    kept = gt[gt != 99]
    assert one[..., 0].sum() + one[..., 2].sum() == kept.numel()
    assert one.sum(0)[:, [0, 2]].sum(1).tolist() == torch.bincount(kept, minlength=c).tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_confusion_errors_and_leaves_narrow_inputs_alone(monkeypatch, shared_chunks, threads):
    import metricseg.counts as counts_mod

    monkeypatch.setattr(counts_mod, "_CPU_CHUNK", 100)
    pred = torch.randint(0, 3, (2, 40, 30), dtype=torch.uint8)
    gt = torch.randint(0, 3, (2, 40, 30), dtype=torch.uint8)
    pred_before, gt_before = pred.clone(), gt.clone()
    with torch_threads(threads):
        confusion(pred, gt, 3)
        assert torch.equal(pred, pred_before) and torch.equal(gt, gt_before)
        bad = gt.clone()
        bad[1, 39, 29] = 7  # in the last chunk of the last image
        with pytest.raises(ValueError, match="target holds label 7"):
            confusion(pred, bad, 3)
        bad_pred = pred.clone()
        bad_pred[0, 20, 0] = 9
        with pytest.raises(ValueError, match="pred holds label 9"):
            confusion(bad_pred, gt, 3)
