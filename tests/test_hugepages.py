"""Huge-page backed buffers: same tensors as torch.empty_like, advice on the aligned interior."""

import torch

from metricseg import _hugepages


def test_large_buffer_gets_aligned_advice(monkeypatch):
    calls = []
    monkeypatch.setattr(_hugepages, "_madvise", lambda: lambda *a: calls.append(a) or 0)
    like = torch.empty(3, 5, 1 << 20)  # 60 MiB
    out = _hugepages.empty_like(like)
    assert out.shape == like.shape and out.dtype == like.dtype and out.is_contiguous()
    (start, length, advice), = calls
    huge = 1 << 21
    assert advice == 14 and start % huge == 0 and length % huge == 0 and length > 0
    lo, hi = out.data_ptr(), out.data_ptr() + out.numel() * 4
    assert lo <= start and start + length <= hi and start - lo < huge and hi - start - length < huge
    out.fill_(2.0)  # the memory is ordinary, writable memory
    assert float(out.sum()) == 2.0 * out.numel()


def test_small_buffers_and_unsupported_systems_are_plain(monkeypatch):
    calls = []
    monkeypatch.setattr(_hugepages, "_madvise", lambda: lambda *a: calls.append(a) or 0)
    out = _hugepages.empty_like(torch.empty(2, 3, dtype=torch.float64))
    assert out.shape == (2, 3) and out.dtype == torch.float64 and not calls
    monkeypatch.setattr(_hugepages, "_madvise", lambda: None)
    assert _hugepages.empty_like(torch.empty(3, 5, 1 << 20)).shape == (3, 5, 1 << 20)


def test_real_madvise_call_is_harmless():
    _hugepages._madvise.cache_clear()
    out = _hugepages.empty_like(torch.empty(1 << 23))
    out.copy_(torch.arange(1 << 23, dtype=torch.float32))
    assert float(out[-1]) == (1 << 23) - 1
