"""The grid of runs: one result file per run, trained once, resumable, safe to share.

A run is a :class:`~metricseg.experiment.spec.RunSpec` executed by :func:`run_one`,
a self-contained module-level function, so that any executor (this process, a
process pool, Ray) can ship it to a worker. Each run writes, under ``OUT/runs/<task>/<loss>/``:

* ``<run>.json`` — the spec, the task, the training history and one row per test
  case and class (:mod:`metricseg.experiment.scoring`), written atomically when the
  run has finished;
* ``<run>.work/`` — the per-epoch checkpoint, so that a killed run resumes;
* ``<run>.lock`` — held while the run trains, so that two benches on one folder
  train it once (the second waits and then keeps the first one's result);
* ``<run>.error.txt`` — the traceback of a failed run.

A rerun skips every run whose result exists for the same spec; a result of an
older file format is rescored from its stored counts instead of trained again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import platform
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metricseg.atomic import atomic_write_json, atomic_write_text
from metricseg.data.task import Task
from metricseg.experiment.scoring import SCORE_COLUMNS, case_rows, rescore_rows
from metricseg.experiment.spec import RunPaths, RunSpec, run_paths

__all__ = [
    "RESULT_FORMAT",
    "RunOutcome",
    "check_loss",
    "discard_run",
    "finished_results",
    "load_result",
    "load_task",
    "outer_fold",
    "result_path",
    "run_one",
    "run_one_safe",
    "task_builds",
    "write_result",
]

#: Version of the result-file layout. 2: score columns from ``metrics.score_from_counts``
#: (Hamming NaN for an empty class; Tversky named with its weights; sensitivity,
#: precision), a subject per row, the task's independence. Format 1 is rescored.
RESULT_FORMAT = 2
#: Losses whose defaults changed since format 1: their old results are trained again.
_CHANGED_SINCE_FORMAT_1 = frozenset({"dice_ce"})
_WORK_FILES = ("spec.json", "checkpoint.pt", "checkpoint.json")

_builds = {"count": 0}


def task_builds() -> int:
    """How many tasks this process has built (the rest came from its cache)."""
    return _builds["count"]


@functools.lru_cache(maxsize=4)
def _cached_task(name: str, data_seed: int, options_json: str) -> Task:
    from metricseg.data import get_task

    _builds["count"] += 1
    return get_task(name, seed=data_seed, **json.loads(options_json))


#: Tasks that keep their preprocessed arrays on disk: a study gives them ``OUT/cache``, so
#: that its runs (in any worker) read the arrays instead of preprocessing them again.
_DISK_CACHED = frozenset({"brats"})


def load_task(spec: RunSpec, cache_dir: str | Path | None = None) -> Task:
    """The spec's task, fold applied; built once per process and kept (4 tasks at most).

    ``cache_dir`` is the study's cache folder for tasks that keep preprocessed arrays on
    disk (a ``cache_dir`` task option of the spec wins).
    """
    options = dict(spec.task_options)
    if spec.task in _DISK_CACHED and cache_dir is not None:
        options.setdefault("cache_dir", str(cache_dir))
    task = _cached_task(spec.task, spec.data_seed, json.dumps(options, sort_keys=True))
    if spec.fold is not None:
        task = outer_fold(task, spec.fold, spec.num_folds, seed=spec.data_seed)
    return task


def outer_fold(task: Task, fold: int, num_folds: int, *, seed: int = 0) -> Task:
    """The ``fold``-th split of an outer ``num_folds``-fold cross-validation by subject.

    All cases of the task (train, validation and test) are grouped by subject; the
    subjects are shuffled with ``seed`` and dealt into ``num_folds`` folds. Fold
    ``fold`` is the test set; of the other subjects, a fifth (at least one) drawn
    with ``(seed, fold)`` validates and the rest trains. So every subject is tested
    exactly once per seed, and no subject's cases are in two roles within a fold.
    """
    by_subject: dict[str, list] = {}
    for case in task.cases:
        by_subject.setdefault(case.subject_id, []).append(case)
    subjects = sorted(by_subject)
    if len(subjects) < num_folds + 2:
        raise ValueError(
            f"task {task.name!r} has {len(subjects)} subject(s); outer {num_folds}-fold "
            f"cross-validation needs at least {num_folds + 2} (one per test fold, and "
            "training and validation subjects); use fewer folds or the task's own split"
        )
    order = np.random.default_rng(seed).permutation(len(subjects))
    test = {subjects[i] for k, i in enumerate(order) if k % num_folds == fold}
    rest = [s for s in subjects if s not in test]
    n_val = max(1, round(len(rest) / 5))
    val = {rest[i] for i in np.random.default_rng([seed, fold]).permutation(len(rest))[:n_val]}

    def pick(group: set[str]) -> list:
        return [c for s in subjects if s in group for c in by_subject[s]]

    train = set(rest) - val
    return dataclasses.replace(task, train=pick(train), val=pick(val), test=pick(test))


def result_path(spec: RunSpec, out_dir: str | Path) -> Path:
    """``out_dir/runs/<task label>/<loss variant>/<run>.json`` (checked to stay inside ``out_dir``)."""
    return run_paths(spec, out_dir).result


def load_result(path: str | Path) -> dict[str, Any] | None:
    """The current-format result stored at ``path``, or None (missing, unreadable, older format).

    Scores stored as JSON ``null`` (JSON has no NaN) come back as NaN.
    """
    data = _read_json(Path(path))
    if data is None or data.get("format") != RESULT_FORMAT:
        return None
    nan_columns = (*SCORE_COLUMNS, "mean_object_size")
    for row in data.get("rows", []):
        for column in nan_columns:
            if row.get(column, 0.0) is None:
                row[column] = math.nan
    for record in data.get("history", []):
        for key, value in record.items():
            if value is None:
                record[key] = math.nan
    if data.get("best_val_dice") is None:
        data["best_val_dice"] = math.nan
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _finished(paths: RunPaths, spec: RunSpec) -> tuple[dict[str, Any] | None, bool]:
    """``(result, needs_rescoring)`` of the run's result file if it is this spec's."""
    data = _read_json(paths.result)
    if data is None:
        return None, False
    if data.get("format") == RESULT_FORMAT:
        return (data, False) if data.get("spec") == spec.to_dict() else (None, False)
    if data.get("format") == 1 and spec.fold is None and spec.loss not in _CHANGED_SINCE_FORMAT_1:
        try:
            same = RunSpec.from_dict(data.get("spec", {})) == spec
        except (TypeError, ValueError):
            same = False
        if same and isinstance(data.get("rows"), list):
            return data, True
    return None, False


def _rescore(paths: RunPaths, spec: RunSpec, old: dict[str, Any]) -> dict[str, Any]:
    task = load_task(spec, paths.root / "cache")  # the subjects, the cases' independence
    subjects = {c.case_id: c.subject_id for c in task.cases}
    new = {
        **old,
        "format": RESULT_FORMAT,
        "spec": spec.to_dict(),
        "task_info": _task_info(task),
        "rows": rescore_rows(old["rows"], subjects),
        "rescored_from_format": old.get("format"),
    }
    atomic_write_json(paths.result, _jsonable(new))
    return new


@contextlib.contextmanager
def _run_lock(path: Path, on_wait: Callable[[], None] | None) -> Iterator[float]:
    """Hold an exclusive lock on ``path`` (created); yield the seconds spent waiting for it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; two benches on one folder may train a run twice
        yield 0.0
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        t0 = time.perf_counter()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_work(work: Path, wanted: dict[str, Any]) -> None:
    """Keep ``work`` if it holds this spec's checkpoint; else clear what metricseg wrote there."""
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise ValueError(f"{work} must be a folder written by metricseg; move it away")
    if work.is_dir():
        spec_file = work / "spec.json"
        if _read_json(spec_file) == wanted:
            return
        for name in _WORK_FILES:
            (work / name).unlink(missing_ok=True)
        for tmp in work.glob(".*.tmp"):
            tmp.unlink()
        leftover = sorted(p.name for p in work.iterdir())
        if leftover:
            raise ValueError(
                f"{work} holds files metricseg did not write ({', '.join(leftover[:5])}); "
                "move them away and run again"
            )
        work.rmdir()
    work.mkdir(parents=True)
    atomic_write_json(work / "spec.json", wanted)


def _drop_empty_work(work: Path) -> None:
    """Remove a work folder that holds only its spec (the run failed before its first epoch)."""
    if work.is_dir() and {p.name for p in work.iterdir()} <= {"spec.json"}:
        (work / "spec.json").unlink(missing_ok=True)
        work.rmdir()


def discard_run(spec: RunSpec, out_dir: str | Path) -> None:
    """Delete the run's result, error and checkpoint files (those metricseg writes), under its lock."""
    paths = run_paths(spec, out_dir)
    with _run_lock(paths.lock, None):
        paths.result.unlink(missing_ok=True)
        paths.error.unlink(missing_ok=True)
        if paths.work.is_dir() and not paths.work.is_symlink():
            _prepare_work(paths.work, {})  # clears metricseg's files, refuses foreign ones
            (paths.work / "spec.json").unlink()
            paths.work.rmdir()


def check_loss(spec: RunSpec, task: Task | None = None) -> None:
    """Build the spec's loss (unknown names and options fail here, before any file is written).

    With its ``task``, the loss is also called once on a tiny input of the task's
    classes and dims, so that options a loss checks only when called fail here too.
    """
    import torch

    from metricseg import losses
    from metricseg.train import make_loss

    if task is None:
        losses.get(spec.loss, **dict(spec.loss_options))
        return
    loss = make_loss(spec.loss, task, **dict(spec.loss_options))
    shape = (1, task.num_classes, *([4] * task.spatial_dims))
    logits = torch.zeros(shape, requires_grad=True)
    labels = torch.zeros((1, *shape[2:]), dtype=torch.int64)
    labels.view(-1)[: task.num_classes] = torch.arange(task.num_classes)
    loss(logits, labels).backward()


@dataclass
class RunOutcome:
    """What happened to one run: its result path, or the error that stopped it.

    ``status`` is ``"trained"``, ``"kept"`` (finished earlier), ``"rescored"`` (an
    older result file rescored from its counts), ``"elsewhere"`` (another process
    held the run's lock and finished it while this one waited) or ``"failed"``.
    """

    spec: RunSpec
    path: Path | None
    status: str = "trained"
    error: str | None = None
    seconds: float = 0.0
    waited: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def skipped(self) -> bool:
        """True when no training happened in this call."""
        return self.status in ("kept", "rescored", "elsewhere")


def run_one(
    spec: RunSpec,
    out_dir: str | Path,
    *,
    progress: bool | None = None,
    on_wait: Callable[[], None] | None = None,
    execute: Callable[[RunSpec, RunPaths, bool | None], None] | None = None,
) -> RunOutcome:
    """Train and evaluate one run (or keep its finished result); return what happened.

    Names are validated and every path checked to lie inside ``out_dir`` before
    anything is written. While the run trains it holds ``<run>.lock``: a second
    process asking for the same run waits (``on_wait`` is called once) and then
    keeps the first one's result. A killed run resumes from its last checkpoint.
    Self-contained and picklable, so that executors can send it to other processes
    or machines that share ``out_dir``. Raises on failure (see :func:`run_one_safe`).

    ``execute(spec, paths, progress)`` trains and scores the run and writes
    ``paths.result`` (with :func:`write_result`); the default trains metricseg's own
    network. Another engine (``metricseg bench --engine nnunet``) passes its own and
    keeps the lock, the skip-if-done and the spec check of this function.
    """
    from metricseg.distributed import barrier, is_main_process

    t0 = time.perf_counter()
    paths = run_paths(spec, out_dir)
    check_loss(spec)
    done, stale = _finished(paths, spec)
    if done is not None and not stale:
        return RunOutcome(spec, paths.result, "kept", seconds=time.perf_counter() - t0)
    main = is_main_process()  # under torchrun rank 0 alone touches the files
    lock = _run_lock(paths.lock, on_wait) if main else contextlib.nullcontext(0.0)
    with lock as waited:
        done, stale = _finished(paths, spec)
        if done is not None:
            if stale:
                _rescore(paths, spec, done)
            status = "rescored" if stale else ("elsewhere" if waited > 0 else "kept")
            return RunOutcome(
                spec, paths.result, status, seconds=time.perf_counter() - t0, waited=waited
            )
        if main:
            _prepare_work(paths.work, spec.to_dict())
        barrier()
        try:
            (execute or _train_and_score)(spec, paths, progress)
        except BaseException:
            if main:
                _drop_empty_work(paths.work)
            raise
    return RunOutcome(
        spec, paths.result, "trained", seconds=time.perf_counter() - t0, waited=waited
    )


def _train_and_score(spec: RunSpec, paths: RunPaths, progress: bool | None) -> None:
    from metricseg.distributed import is_main_process
    from metricseg.train import TrainConfig, train

    t0 = time.perf_counter()
    task = load_task(spec, paths.root / "cache")
    load_seconds = time.perf_counter() - t0
    config = TrainConfig.from_options({**spec.train, "loss_options": dict(spec.loss_options)})
    result = train(
        task, spec.loss, config, seed=spec.seed, out_dir=paths.work, resume=True, progress=progress
    )
    if not is_main_process():
        return  # under torchrun rank 0 alone scores the test cases and writes the result
    t1 = time.perf_counter()
    rows = []
    for case in task.test:
        rows += case_rows(
            result.predictor(case.image),
            case.label,
            task.num_classes,
            case_id=case.case_id,
            subject=case.subject_id,
            class_names=task.class_names,
        )
    write_result(
        paths.result,
        spec,
        task_info=_task_info(task),
        config=config.to_dict(),
        history=result.history,
        best_epoch=result.best_epoch,
        best_val_dice=result.best_val_dice,
        epochs_run=result.epochs_run,
        resumed_from_epoch=result.resumed_from_epoch,
        seconds={
            "load": load_seconds,
            "train": result.seconds,
            "evaluate": time.perf_counter() - t1,
        },
        rows=rows,
    )


def write_result(
    path: Path,
    spec: RunSpec,
    *,
    task_info: Mapping[str, Any],
    config: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    best_epoch: int | None,
    best_val_dice: float,
    epochs_run: int,
    resumed_from_epoch: int | None,
    seconds: Mapping[str, float],
    rows: Sequence[Mapping[str, Any]],
    versions: Mapping[str, str] | None = None,
) -> None:
    """Write a finished run's result file (format :data:`RESULT_FORMAT`) atomically.

    ``task_info`` holds the keys the report reads (``name``, ``num_classes``,
    ``class_names``, ``independent``, ...); ``rows`` come from
    :func:`metricseg.experiment.scoring.case_rows`; ``versions`` are added to
    metricseg's, torch's, numpy's and Python's. NaN is stored as JSON ``null``.
    """
    record = {
        "format": RESULT_FORMAT,
        "spec": spec.to_dict(),
        "task_info": dict(task_info),
        "config": dict(config),
        "history": list(history),
        "best_epoch": best_epoch,
        "best_val_dice": best_val_dice,
        "epochs_run": epochs_run,
        "resumed_from_epoch": resumed_from_epoch,
        "seconds": dict(seconds),
        "versions": {**_versions(), **dict(versions or {})},
        "rows": list(rows),
    }
    atomic_write_json(path, _jsonable(record))


def _task_info(task: Task) -> dict[str, Any]:
    return {
        "name": task.name,
        "spatial_dims": task.spatial_dims,
        "num_classes": task.num_classes,
        "class_names": list(task.class_names),
        "n_train": len(task.train),
        "n_val": len(task.val),
        "n_test": len(task.test),
        "independent": task.independent,
        "source": task.source,
        "description": task.description,
    }


def _versions() -> dict[str, str]:
    import torch

    from metricseg import __version__

    return {
        "metricseg": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _jsonable(x: Any) -> Any:
    """Plain JSON: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(x, Mapping):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def run_one_safe(
    spec: RunSpec,
    out_dir: str | Path,
    *,
    progress: bool | None = None,
    on_wait: Callable[[], None] | None = None,
    execute: Callable[[RunSpec, RunPaths, bool | None], None] | None = None,
) -> RunOutcome:
    """:func:`run_one` that returns failures instead of raising (``KeyboardInterrupt`` still stops).

    The traceback of a failed run is also written next to where its result would
    be (``<run>.error.txt``) — unless the spec itself is invalid, in which case no
    path is built from it.
    """
    t0 = time.perf_counter()
    try:
        paths = run_paths(spec, out_dir)
    except ValueError as exc:
        return RunOutcome(spec, None, "failed", error=f"ValueError: {exc}")
    try:
        outcome = run_one(spec, out_dir, progress=progress, on_wait=on_wait, execute=execute)
    except Exception as exc:
        atomic_write_text(paths.error, traceback.format_exc())
        return RunOutcome(
            spec,
            None,
            "failed",
            error=f"{type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - t0,
        )
    paths.error.unlink(missing_ok=True)
    return outcome


def finished_results(specs: Sequence[RunSpec], out_dir: str | Path) -> list[dict[str, Any]]:
    """The result of every spec that has finished (in spec order)."""
    out = []
    for spec in specs:
        data = load_result(result_path(spec, out_dir))
        if data is not None and data.get("spec") == spec.to_dict():
            out.append(data)
    return out
