"""The grid on a Ray cluster: every (task, loss, seed, fold) run is one Ray task.

:class:`RayExecutor` implements the executor contract of
:mod:`metricseg.experiment.executor`: ``run(specs, out_dir, on_done)`` ships
each :class:`~metricseg.experiment.spec.RunSpec` to a Ray worker with its CPU
and GPU request, where :func:`~metricseg.experiment.grid.run_one_safe` trains,
evaluates and writes the result file under ``out_dir`` — which must therefore
be storage that every node sees at the same path (NFS, a cluster file system;
on one machine any folder). Runs whose result file already exists for the same
spec are skipped without sending them anywhere; a run that raises, or whose
worker dies, is reported as failed and the others go on.

Ray is an optional extra: ``pip install 'metricseg[ray]'``. Every node needs
metricseg (and its ``train`` extra) installed in the Python that Ray runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metricseg.atomic import atomic_write_text
from metricseg.experiment.executor import OnDone
from metricseg.experiment.grid import RunOutcome, load_result, result_path, run_one_safe
from metricseg.experiment.spec import RunSpec, run_paths

__all__ = ["RayExecutor"]


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise ValueError(
            "the Ray executor needs the package 'ray': pip install 'metricseg[ray]'"
        ) from None
    return ray


def _run_on_worker(spec: RunSpec, out_dir: str, threads: int, progress: bool | None) -> RunOutcome:
    """One run inside a Ray worker, with as many torch threads as CPUs were requested."""
    import torch

    torch.set_num_threads(threads)
    return run_one_safe(spec, out_dir, progress=progress)


def _count(value: Any, name: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")
    return value


class RayExecutor:
    """Runs every spec as a Ray task on a local Ray instance or a cluster.

    Args:
        address: ``None`` starts (or reuses) a Ray instance on this machine;
            ``"auto"`` joins the cluster this node belongs to (after
            ``ray start``); ``"HOST:6379"`` or ``"ray://HOST:10001"`` a given one.
            Ignored when Ray is already initialised in this process.
        num_cpus_per_run: CPUs Ray reserves for each run; the run uses this many
            torch threads (at least 1).
        num_gpus_per_run: GPUs per run (Ray sets ``CUDA_VISIBLE_DEVICES``, so a
            spec with ``device="cuda"`` trains on the GPU it was given;
            fractions share a GPU between runs).
        max_retries: how often Ray reruns a run whose worker process died
            (a run that raises is not retried: it fails the same way again).
        progress: per-epoch progress bars in the workers' logs.
        init_options: extra keyword options for ``ray.init`` (e.g.
            ``{"num_cpus": 2}`` for a local instance).

    Example:
        >>> RayExecutor(num_cpus_per_run=2).num_cpus_per_run
        2
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus_per_run: float = 1,
        num_gpus_per_run: float = 0,
        *,
        max_retries: int = 0,
        progress: bool | None = False,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        _import_ray()
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a str or None, got {address!r}")
        self.address = address
        self.num_cpus_per_run = _count(num_cpus_per_run, "num_cpus_per_run", minimum=0)
        self.num_gpus_per_run = _count(num_gpus_per_run, "num_gpus_per_run", minimum=0)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.progress = progress
        self.init_options = dict(init_options or {})

    def run(
        self, specs: Sequence[RunSpec], out_dir: str | Path, on_done: OnDone | None = None
    ) -> list[RunOutcome]:
        """Run every spec; call ``on_done(index_done, total, outcome)`` as each finishes.

        Returns the outcomes in the order of ``specs``.
        """
        outcomes: list[RunOutcome | None] = [None] * len(specs)
        finished = 0

        def report(i: int, outcome: RunOutcome) -> None:
            nonlocal finished
            outcomes[i] = outcome
            finished += 1
            if on_done is not None:
                on_done(finished, len(specs), outcome)

        todo = []
        for i, spec in enumerate(specs):
            # finished runs never leave this machine (the worker would skip them too)
            done = load_result(result_path(spec, out_dir))
            if done is not None and done.get("spec") == spec.to_dict():
                report(i, RunOutcome(spec, result_path(spec, out_dir), "kept"))
            else:
                todo.append(i)
        if todo:
            self._run_remote(specs, todo, str(out_dir), report)
        return [o for o in outcomes if o is not None]

    def _run_remote(self, specs: Sequence[RunSpec], todo: list[int], out_dir: str, report) -> None:
        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, **self.init_options)
        try:
            remote = ray.remote(
                num_cpus=self.num_cpus_per_run,
                num_gpus=self.num_gpus_per_run,
                max_retries=self.max_retries,
            )(_run_on_worker)
            threads = max(1, int(self.num_cpus_per_run))
            by_ref = {remote.remote(specs[i], out_dir, threads, self.progress): i for i in todo}
            pending = list(by_ref)
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    for ref in ready:
                        i = by_ref[ref]
                        try:
                            outcome = ray.get(ref)
                        except Exception as exc:  # the worker died, or Ray could not run it
                            outcome = RunOutcome(specs[i], None, "failed", error=_ray_error(exc))
                            # where run_one_safe would have put the traceback, had it lived
                            error_file = run_paths(specs[i], out_dir).error
                            atomic_write_text(error_file, f"{type(exc).__name__}: {exc}\n")
                        report(i, outcome)
            except BaseException:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
        finally:
            if started_here:
                ray.shutdown()


def _ray_error(exc: BaseException) -> str:
    """One line for a Ray failure (its message holds the remote traceback; keep the last line)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1].strip() if lines else ''}"
