"""The grid of runs: tasks × losses × seeds (× folds), one result file per run.

A run is described by a :class:`RunSpec` (plain data, picklable) and executed by
:func:`run_one`, a self-contained module-level function, so that any executor
(sequential, a process pool, Ray) can ship it to a worker. Each run writes

* ``OUT/runs/<task>/<loss>/seed<k>[-fold<f>].json`` — the spec, the training
  history and one row per test case and class (counts, Dice, Jaccard, Tversky,
  Hamming, object statistics), written atomically when the run has finished;
* ``OUT/runs/<task>/<loss>/seed<k>[-fold<f>].work/`` — the per-epoch
  checkpoint, so that a killed run resumes where it stopped.

A crashed run therefore loses nothing of the others, and a rerun of the grid
skips every run whose result file exists for the same spec.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import platform
import shutil
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_FORMAT",
    "RunOutcome",
    "RunSpec",
    "apply_fold",
    "expand_grid",
    "load_result",
    "load_task",
    "result_path",
    "run_one",
    "run_one_safe",
]

#: Version of the result-file layout; a file of another version is recomputed.
RESULT_FORMAT = 1


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid.

    Attributes:
        task: task name for :func:`metricseg.data.get_task`.
        loss: loss name for :func:`metricseg.losses.get`.
        seed: training seed (weights, batches, patches, flips).
        fold: cross-validation fold (train and validation cases pooled and
            re-split into ``num_folds`` parts, part ``fold`` validates), or None
            for the task's own split. The test split never changes.
        num_folds: number of folds when ``fold`` is set.
        data_seed: seed of the task generator / splitter (the same for every
            run, so that all losses see the same cases).
        task_options: keyword options for :func:`metricseg.data.get_task`.
        train: keyword options for :class:`metricseg.train.TrainConfig`.
        loss_options: keyword options for the loss.
    """

    task: str
    loss: str
    seed: int = 0
    fold: int | None = None
    num_folds: int = 5
    data_seed: int = 0
    task_options: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    loss_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fold is not None and not 0 <= self.fold < self.num_folds:
            raise ValueError(f"fold must be in [0, {self.num_folds}), got {self.fold}")

    @property
    def run_name(self) -> str:
        return f"seed{self.seed}" + (f"-fold{self.fold}" if self.fold is not None else "")

    def to_dict(self) -> dict[str, Any]:
        # JSON round trip normalises tuples to lists, so that specs compare equal
        # to the ones read back from result files
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def expand_grid(
    tasks: Sequence[str | tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    losses: Sequence[str],
    seeds: Sequence[int] = (0,),
    *,
    folds: int | None = None,
    train: Mapping[str, Any] | None = None,
    loss_options: Mapping[str, Mapping[str, Any]] | None = None,
    data_seed: int = 0,
) -> list[RunSpec]:
    """Every combination, ordered task-major so that one task's runs finish together.

    Args:
        tasks: task names, or ``(name, task_options, train_overrides)`` triples.
        losses: loss names.
        seeds: training seeds.
        folds: ``None`` for the tasks' own splits, else the number of folds
            (each fold is a run).
        train: :class:`~metricseg.train.TrainConfig` options for all runs;
            per-task overrides win.
        loss_options: per loss name, options for its constructor.

    Example:
        >>> specs = expand_grid(["a", "b"], ["ce", "soft_dice"], seeds=[0, 1])
        >>> len(specs), specs[0].task, specs[0].loss, specs[1].seed
        (8, 'a', 'ce', 1)
    """
    out = []
    for entry in tasks:
        name, task_options, overrides = (entry, {}, {}) if isinstance(entry, str) else entry
        config = {**(train or {}), **overrides}
        for loss, seed, fold in itertools.product(losses, seeds, range(folds) if folds else [None]):
            out.append(
                RunSpec(
                    task=name,
                    loss=loss,
                    seed=int(seed),
                    fold=fold,
                    num_folds=folds or 5,
                    data_seed=data_seed,
                    task_options=dict(task_options),
                    train=dict(config),
                    loss_options=dict((loss_options or {}).get(loss, {})),
                )
            )
    return out


def result_path(spec: RunSpec, out_dir: str | Path) -> Path:
    """``out_dir/runs/<task>/<loss>/<run_name>.json``."""
    return Path(out_dir) / "runs" / spec.task / spec.loss / f"{spec.run_name}.json"


@functools.lru_cache(maxsize=4)
def _cached_task(name: str, data_seed: int, options_json: str):
    from metricseg.data import get_task

    return get_task(name, seed=data_seed, **json.loads(options_json))


def load_task(spec: RunSpec):
    """The spec's task (cached per process: all losses of a task reuse one copy), fold applied."""
    task = _cached_task(
        spec.task, spec.data_seed, json.dumps(dict(spec.task_options), sort_keys=True)
    )
    if spec.fold is not None:
        task = apply_fold(task, spec.fold, spec.num_folds)
    return task


def apply_fold(task, fold: int, num_folds: int):
    """Pool ``task.train`` and ``task.val``, and validate on the ``fold``-th of ``num_folds`` parts.

    Cases keep their order, and part ``k`` is every case whose index ``i``
    satisfies ``i % num_folds == k``; the test split is unchanged.
    """
    pool = list(task.train) + list(task.val)
    if len(pool) < num_folds:
        raise ValueError(
            f"task {task.name!r} has {len(pool)} train+val cases, fewer than num_folds={num_folds}"
        )
    val = [c for i, c in enumerate(pool) if i % num_folds == fold]
    train = [c for i, c in enumerate(pool) if i % num_folds != fold]
    return dataclasses.replace(task, train=train, val=val)


def load_result(path: str | Path) -> dict[str, Any] | None:
    """The result stored at ``path``, or None when it is missing, unreadable or of another format."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
        return None
    return data


def _versions() -> dict[str, str]:
    import numpy
    import torch

    from metricseg import __version__

    return {
        "metricseg": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def run_one(spec: RunSpec, out_dir: str | Path, *, progress: bool | None = None) -> Path:
    """Train and evaluate one run; return the path of its result file.

    Skips the work when a finished result for the same spec exists. A run that
    was killed resumes from its last checkpoint. Self-contained and picklable
    (module-level, plain-data arguments) so that executors can send it to
    other processes or machines that share ``out_dir``.
    """
    import numpy as np

    from metricseg.atomic import atomic_write_json
    from metricseg.distributed import barrier, is_main_process
    from metricseg.train import TrainConfig, case_rows, predict_labels, train
    from metricseg.train.loop import _autocast_dtype, inference_roi
    from metricseg.train.models import size_divisor

    path = result_path(spec, out_dir)
    wanted = spec.to_dict()
    done = load_result(path)
    if done is not None and done.get("spec") == wanted:
        return path
    work = path.with_suffix(".work")
    spec_file = work / "spec.json"
    if is_main_process():  # under torchrun rank 0 alone touches the files
        if work.exists():
            try:
                same = json.loads(spec_file.read_text()) == wanted
            except (OSError, ValueError):
                same = False
            if not same:  # a checkpoint of an older spec: start afresh
                shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_json(spec_file, wanted)
    barrier()

    t0 = time.perf_counter()
    task = load_task(spec)
    load_seconds = time.perf_counter() - t0
    config = TrainConfig(**{**spec.train, "loss_options": dict(spec.loss_options)})
    result = train(
        task, spec.loss, config, seed=spec.seed, out_dir=work, resume=True, progress=progress
    )
    if not is_main_process():
        return path  # under torchrun rank 0 alone scores the test cases and writes the result

    t1 = time.perf_counter()
    import torch

    device = torch.device(config.device)
    rows = []
    for case in task.test:
        pred = predict_labels(
            result.model,
            case.image,
            device=device,
            divisor=size_divisor(config.channels),
            roi_size=inference_roi(task, config),
            autocast_dtype=_autocast_dtype(config.amp, device),
        )
        rows.extend(
            case_rows(
                pred,
                case.label,
                task.num_classes,
                case_id=case.case_id,
                class_names=task.class_names,
            )
        )
    eval_seconds = time.perf_counter() - t1
    fg = [r["dice"] for r in rows if r["class_index"] > 0 and not math.isnan(r["dice"])]
    atomic_write_json(
        path,
        {
            "format": RESULT_FORMAT,
            "spec": wanted,
            "task_info": {
                "name": task.name,
                "spatial_dims": task.spatial_dims,
                "num_classes": task.num_classes,
                "class_names": list(task.class_names),
                "n_train": len(task.train),
                "n_val": len(task.val),
                "n_test": len(task.test),
                "source": task.source,
                "description": task.description,
            },
            "config": config.to_dict(),
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_val_dice": result.best_val_dice,
            "epochs_run": result.epochs_run,
            "resumed_from_epoch": result.resumed_from_epoch,
            "seconds": {
                "load": load_seconds,
                "train": result.seconds,
                "evaluate": eval_seconds,
            },
            "test_mean_foreground_dice": float(np.mean(fg)) if fg else math.nan,
            "versions": _versions(),
            "rows": rows,
        },
    )
    return path


@dataclass
class RunOutcome:
    """What happened to one run: its result path, or the error that stopped it."""

    spec: RunSpec
    path: Path | None
    skipped: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def run_one_safe(spec: RunSpec, out_dir: str | Path, *, progress: bool | None = None) -> RunOutcome:
    """:func:`run_one` that returns failures instead of raising (``KeyboardInterrupt`` still stops).

    The traceback of a failed run is also written next to where its result
    would be (``<run_name>.error.txt``).
    """
    from metricseg.atomic import atomic_write_text

    path = result_path(spec, out_dir)
    t0 = time.perf_counter()
    existing = load_result(path)
    skipped = existing is not None and existing.get("spec") == spec.to_dict()
    try:
        out = run_one(spec, out_dir, progress=progress)
    except Exception as exc:
        atomic_write_text(path.with_suffix(".error.txt"), traceback.format_exc())
        return RunOutcome(
            spec, None, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0
        )
    path.with_suffix(".error.txt").unlink(missing_ok=True)
    return RunOutcome(spec, out, skipped=skipped, seconds=time.perf_counter() - t0)


def iter_results(paths: Iterable[Path]) -> Iterable[dict[str, Any]]:
    """Load each finished result file (missing or broken ones are left out)."""
    for p in paths:
        data = load_result(p)
        if data is not None:
            yield data
