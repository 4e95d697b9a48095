"""Executors run a list of :class:`~metricseg.experiment.grid.RunSpec` and report as runs finish.

The contract is small on purpose, so that other back ends plug in: an executor
has ``run(specs, out_dir, on_done=None) -> list[RunOutcome]`` and calls
:func:`~metricseg.experiment.grid.run_one_safe` (module-level, picklable,
self-contained) once per spec, wherever it likes. A Ray executor, for
instance, wraps it in ``ray.remote`` and gathers the outcomes with ``ray.wait``;
it is found by :func:`get_executor` as ``metricseg.experiment.ray_executor.RayExecutor``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from metricseg.experiment.grid import RunOutcome, run_one_safe
from metricseg.experiment.spec import RunSpec

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "get_executor"]

OnDone = Callable[[int, int, RunOutcome], None]


class Executor(Protocol):
    def run(
        self, specs: Sequence[RunSpec], out_dir: str | Path, on_done: OnDone | None = None
    ) -> list[RunOutcome]:
        """Run every spec; call ``on_done(index_done, total, outcome)`` as each finishes."""
        ...


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``).

    A worker of a killed bench (``kill -9``) would otherwise train the rest of the grid
    and then wait forever for work. Elsewhere :func:`_run_in_worker` checks the parent
    between runs.
    """
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _init_worker(threads: int, parent: int) -> None:
    import os

    import torch

    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    torch.set_num_threads(threads)


def _run_in_worker(spec: RunSpec, out_dir: str, parent: int) -> RunOutcome:
    import os

    if os.getppid() != parent:  # the bench that asked for this run is gone
        os._exit(1)
    return run_one_safe(spec, out_dir, progress=False)


class LocalExecutor:
    """Runs the specs on this machine: in this process (``jobs=1``) or in ``jobs`` worker processes.

    Small CPU networks use two cores better as two single-threaded runs than as
    one run with two intra-op threads, so the bench runs one job per core.
    Every run is seeded on its own, so the order and the worker do not change
    its result (up to float reduction order with a different thread count).

    Example:
        >>> LocalExecutor().run([], "unused")
        []
    """

    def __init__(
        self, jobs: int = 1, threads_per_job: int = 1, progress: bool | None = None
    ) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
        self.jobs = jobs
        self.threads_per_job = threads_per_job
        self.progress = progress

    def run(
        self, specs: Sequence[RunSpec], out_dir: str | Path, on_done: OnDone | None = None
    ) -> list[RunOutcome]:
        if self.jobs == 1 or len(specs) <= 1:
            outcomes = []
            for i, spec in enumerate(specs):
                outcome = run_one_safe(spec, out_dir, progress=self.progress)
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(i + 1, len(specs), outcome)
            return outcomes
        return self._run_pool(specs, out_dir, on_done)

    def _run_pool(
        self, specs: Sequence[RunSpec], out_dir: str | Path, on_done: OnDone | None
    ) -> list[RunOutcome]:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a fresh interpreter per worker, safe with torch's thread pools
        pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(specs)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads_per_job, os.getpid()),
        )
        by_future = {}
        outcomes: list[RunOutcome | None] = [None] * len(specs)
        try:
            for i, spec in enumerate(specs):
                by_future[pool.submit(_run_in_worker, spec, str(out_dir), os.getpid())] = i
            for done, future in enumerate(as_completed(by_future), start=1):
                outcome = future.result()
                outcomes[by_future[future]] = outcome
                if on_done is not None:
                    on_done(done, len(specs), outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return [o for o in outcomes if o is not None]


#: executor name -> "module:Class"
EXECUTORS: dict[str, str] = {
    "local": "metricseg.experiment.executor:LocalExecutor",
    "ray": "metricseg.experiment.ray_executor:RayExecutor",
}


def get_executor(name: str, **options: Any) -> Executor:
    """An executor by name (``"local"``, ``"ray"``), constructed with ``options``.

    Example:
        >>> type(get_executor("local")).__name__
        'LocalExecutor'
    """
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, got {name!r}")
    module_name, cls_name = EXECUTORS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ValueError(
                f"executor {name!r} is not available in this installation ({module_name} is missing)"
            ) from None
        raise ValueError(
            f"executor {name!r} needs {exc.name!r}: pip install 'metricseg[{name}]'"
        ) from None
    return getattr(module, cls_name)(**options)
