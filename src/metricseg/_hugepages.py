"""Large CPU buffers backed by transparent huge pages, where Linux allows it.

A fresh ``torch.empty`` of many megabytes costs little until it is written:
then every 4 KiB page faults into the kernel, which zeroes it. For the
input-sized gradient buffers of the losses (99 MiB for a (2, 14, 96³) input)
those first-touch faults can cost more than the arithmetic that fills the buffer
(``benchmarks/bench_losses.py`` measures the losses with fresh inputs).
:func:`empty_like` advises the kernel
(``madvise(MADV_HUGEPAGE)``) to back the buffer's 2 MiB-aligned interior with
huge pages before it is touched, as PyTorch's own ``THP_MEM_ALLOC_ENABLE=1``
does for every allocation: 512 times fewer faults.

The advice is a hint about this buffer's own pages only: it changes no
values, and where it does not apply (not Linux, transparent huge pages set to
``never``, a GPU tensor, a small buffer, a failing call) the buffer is an
ordinary ``torch.empty_like``.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Sequence

import torch

__all__ = ["empty", "empty_like"]

_HUGE_PAGE = 1 << 21
_MADV_HUGEPAGE = 14  # linux/mman.h
#: buffers smaller than this are left alone (a few huge pages gain nothing)
_MIN_BYTES = 2 * _HUGE_PAGE


@functools.cache
def _madvise() -> object | None:
    """libc's ``madvise``, or None where huge pages cannot be asked for."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            mode = f.read()
        if "[never]" in mode:
            return None
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def empty_like(like: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(like)`` (contiguous), on huge pages where the OS allows."""
    return empty(like.shape, dtype=like.dtype, device=like.device)


def empty(shape: Sequence[int], *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty(shape, dtype=dtype, device=device)``, on huge pages where the OS allows."""
    out = torch.empty(tuple(shape), dtype=dtype, device=device)
    nbytes = out.numel() * out.element_size()
    if out.device.type != "cpu" or nbytes < _MIN_BYTES:
        return out
    madvise = _madvise()
    if madvise is not None:
        start = out.data_ptr()
        first = (start + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
        last = (start + nbytes) & ~(_HUGE_PAGE - 1)
        if last > first:
            madvise(first, last - first, _MADV_HUGEPAGE)  # type: ignore[operator]
    return out
