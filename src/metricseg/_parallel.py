"""Chunk loops that keep their speed when other processes hold the cores.

torch runs every large CPU op as one parallel region over all its intra-op
threads (OpenMP), and every region ends at a barrier. On an idle machine that
costs microseconds; when other processes hold the cores (data loading,
augmentation, other jobs), each barrier waits until the scheduler gives the
descheduled thread its core back, and a loop of many chunk-sized ops pays that
wait once per op (``benchmarks/bench_losses.py --busy 2`` measures it).

:func:`map_chunks` runs ``fn(0), ..., fn(n - 1)`` instead on
``torch.get_num_threads()`` workers — the calling thread and helper threads —
each of which runs its ops on one thread (OpenMP's thread count is a setting of
the calling thread, so the helpers' setting changes nothing elsewhere). The
workers take chunk indices from a shared counter, so a worker that the
scheduler puts aside simply takes fewer chunks: the only wait is the final
join. torch releases the GIL inside its kernels, so the workers do run in
parallel. The results come back in chunk order, so a caller that sums them in
that order gets the same bits however the chunks were shared out.

Where torch's threads are not OpenMP's (or OpenMP's thread count cannot be set
from here), with one torch thread, or for a single chunk, the chunks run one
after another in the calling thread, as a plain loop would. Chunks too small
to share (:data:`MIN_CHUNK_ELEMENTS`) run that way too, each op on one thread.

The chunk functions must not call ops that run on MKL's own threads (``bmm``,
``matmul``, ``einsum``): MKL keeps a thread count of its own per thread, which
torch sets but which cannot be set from here, so such an op in a helper would
start a team of threads of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

__all__ = ["map_chunks", "one_thread", "workers"]

T = TypeVar("T")

#: chunks smaller than this run in a plain loop: their ops are so short (tens of µs)
#: that a worker waiting for the GIL loses the race for it to one that returns from an op
MIN_CHUNK_ELEMENTS = 1 << 17
#: how long the calling thread waits for a helper to start before it starts alone
_START_WAIT_S = 0.002

_local = threading.local()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


@functools.cache
def _omp_set_num_threads() -> Any:
    """OpenMP's ``omp_set_num_threads`` as torch uses it, or None."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        fn = ctypes.CDLL(None).omp_set_num_threads
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = None
    return fn


def _single_threaded() -> bool:
    """Make this thread's torch ops run on one thread; True if that took effect."""
    setter = _omp_set_num_threads()
    if setter is None:
        return False
    torch.get_num_threads()  # torch sets a new thread's count on first use: do it first
    setter(1)
    return torch.get_num_threads() == 1


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the calling thread's torch ops on one thread for the block (where OpenMP allows).

    For ops whose parallel form has many barriers inside (the radix sort), which
    stall whenever another process holds a core. Only this thread's setting
    changes, and it is restored on exit.
    """
    setter = _omp_set_num_threads()
    previous = torch.get_num_threads()
    if setter is None or previous == 1:
        yield
        return
    setter(1)
    try:
        yield
    finally:
        setter(previous)


def _pool(helpers: int) -> ThreadPoolExecutor:
    key = (os.getpid(), helpers)  # a forked child has none of its parent's threads
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ThreadPoolExecutor(helpers, "metricseg-chunks", initializer=_single_threaded)
            _pools[key] = pool
        return pool


def _forget_pools() -> None:
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def workers(n: int, chunk_elements: int) -> int:
    """How many workers :func:`map_chunks` would use for ``n`` chunks now (1: a plain loop)."""
    k = min(torch.get_num_threads(), n)
    if (
        k <= 1
        or chunk_elements < MIN_CHUNK_ELEMENTS
        or getattr(_local, "worker", False)
        or _omp_set_num_threads() is None
    ):
        return 1
    return k


def map_chunks(fn: Callable[[int], T], n: int, chunk_elements: int) -> list[T]:
    """``[fn(i) for i in range(n)]``, on single-threaded workers where that pays (module docs).

    ``chunk_elements``: about how many tensor elements one call works on. Below
    :data:`MIN_CHUNK_ELEMENTS` the calls run in a plain loop in the calling
    thread, on one thread (:func:`one_thread`); a single large chunk runs in
    the calling thread on all of torch's threads.

    ``fn`` runs under ``torch.no_grad()``; calls for different ``i`` may run at
    the same time, so they must write to disjoint memory. The first exception
    raised by any call is raised here, after the other workers have stopped
    taking chunks.

    Example:
        >>> import torch
        >>> x = torch.arange(10.0)
        >>> parts = map_chunks(lambda i: x[5 * i : 5 * i + 5].sum(), 2, chunk_elements=5)
        >>> [float(p) for p in parts]
        [10.0, 35.0]
    """
    k = workers(n, chunk_elements)
    if k == 1:
        # chunks too small to share gain little from a second thread per op either,
        # and each op's barrier stalls while another process holds a core
        small = chunk_elements < MIN_CHUNK_ELEMENTS
        with torch.no_grad(), one_thread() if small else contextlib.nullcontext():
            return [fn(i) for i in range(n)]
    results: list[Any] = [None] * n
    counter = itertools.count()
    failed: list[BaseException] = []
    lock = threading.Lock()
    idle = threading.Event()
    state = {"active": 0, "closed": False}

    def loop() -> None:
        with lock:
            if state["closed"]:  # a helper that woke after the work was done
                return
            state["active"] += 1
        started.set()
        _local.worker = True
        try:
            with torch.no_grad():
                for i in counter:
                    if i >= n or failed:
                        break
                    results[i] = fn(i)
        except BaseException as e:
            failed.append(e)
        finally:
            _local.worker = False
            with lock:
                state["active"] -= 1
                if state["closed"] and state["active"] == 0:
                    idle.set()

    pool = _pool(k - 1)
    started = threading.Event()
    for _ in range(k - 1):
        pool.submit(loop)
    # Let a helper get going first. A thread woken while another runs short ops that
    # each release and retake the GIL only gets the GIL when the switch interval
    # (5 ms) forces it: waiting here, with the GIL released, lets it in at once.
    # Bounded, for a machine whose cores are all held: then the caller starts alone.
    started.wait(_START_WAIT_S)
    # the calling thread takes chunks too, on one thread for the while
    previous = torch.get_num_threads()
    setter = _omp_set_num_threads()
    setter(1)
    try:
        loop()
    finally:
        setter(previous)
    # wait only for helpers still inside a chunk, not for those yet to wake up
    with lock:
        state["closed"] = True
        if state["active"] == 0:
            idle.set()
    idle.wait()
    if failed:
        raise failed[0]
    return results
