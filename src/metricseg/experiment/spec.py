"""A run of the study as plain data, its validated names, and every path it writes.

A :class:`RunSpec` names a task, a loss (with a *variant* label, so one loss can
appear with several options, e.g. a sweep of weights), a seed and an optional
cross-validation fold. Everything it writes lives under
``OUT/runs/<task label>/<variant>/``; the labels are checked before any path is
built (letters, digits and ``_ . + = -`` only), and every path is checked to
resolve inside ``OUT``, so no name can reach outside the output folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RunPaths",
    "RunSpec",
    "check_label",
    "expand_grid",
    "run_paths",
    "task_label",
]

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,99}")


def check_label(value: Any, what: str) -> str:
    """``value`` if it is a safe file name (letters, digits, ``_ . + = -``), else ValueError.

    Example:
        >>> check_label("wce_fg5", "loss variant")
        'wce_fg5'
        >>> check_label("../victim", "loss variant")
        Traceback (most recent call last):
        ...
        ValueError: loss variant '../victim' is not a valid name: use letters, digits and _ . + = - (at most 100 characters, starting with a letter or digit)
    """
    if not isinstance(value, str) or not _LABEL.fullmatch(value) or value.strip(".") == "":
        raise ValueError(
            f"{what} {value!r} is not a valid name: use letters, digits and _ . + = - "
            "(at most 100 characters, starting with a letter or digit)"
        )
    return value


def task_label(task: str) -> str:
    """The name a task's folder gets: the task name itself, or for a ``folder:PATH`` /
    ``msd:NAME`` source a readable name plus a short hash of the full name.

    Example:
        >>> task_label("tiny-lesions")
        'tiny-lesions'
        >>> task_label("folder:/data/Task04_Hippocampus")
        'folder-Task04_Hippocampus-6f002b'
    """
    if _LABEL.fullmatch(task):
        return task
    kind, _, rest = task.partition(":")
    tail = re.sub(r"[^A-Za-z0-9_.+=-]+", "_", Path(rest.rstrip("/\\")).name or rest)[:40]
    digest = hashlib.sha256(task.encode()).hexdigest()[:6]
    label = f"{re.sub(r'[^A-Za-z0-9]+', '', kind) or 'task'}-{tail.strip('._') or 'x'}-{digest}"
    return check_label(label, "task label")


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid.

    Attributes:
        task: task name for :func:`metricseg.data.get_task` (a registered name,
            ``folder:PATH`` or ``msd:TaskNN_Name``).
        loss: loss name for :func:`metricseg.losses.get`.
        seed: training seed (weights, batches, patches, flips).
        fold: outer cross-validation fold (see :func:`metricseg.experiment.grid.outer_fold`)
            or None for the task's own split.
        num_folds: number of folds when ``fold`` is set.
        data_seed: seed of the task generator and of the fold split (the same for
            every run, so that all losses see the same cases).
        task_options: keyword options for :func:`metricseg.data.get_task`.
        train: keyword options for :class:`metricseg.train.TrainConfig`.
        loss_options: keyword options for the loss.
        variant: the loss's label in paths and reports (default: ``loss``); a study
            that runs one loss with several options gives each its own variant.
        label: the task's label in paths and reports (default: :func:`task_label`).
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
    variant: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task must be a task name, got {self.task!r}")
        check_label(self.loss, "loss")
        if self.variant is not None:
            check_label(self.variant, "loss variant")
        if self.label is not None:
            check_label(self.label, "task label")
        for name in ("seed", "num_folds", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.num_folds < 2:
            raise ValueError(f"num_folds must be >= 2, got {self.num_folds}")
        if self.fold is not None and not (
            isinstance(self.fold, int) and 0 <= self.fold < self.num_folds
        ):
            raise ValueError(f"fold must be in [0, {self.num_folds}), got {self.fold!r}")
        for name in ("task_options", "train", "loss_options"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a table of options, got {getattr(self, name)!r}")

    @property
    def loss_label(self) -> str:
        """The loss's name in paths and reports."""
        return self.variant or self.loss

    @property
    def task_label(self) -> str:
        """The task's name in paths and reports."""
        return self.label or task_label(self.task)

    @property
    def run_name(self) -> str:
        return f"seed{self.seed}" + (f"-fold{self.fold}" if self.fold is not None else "")

    def to_dict(self) -> dict[str, Any]:
        # a JSON round trip turns tuples into lists, so that specs compare equal to the
        # ones read back from result files
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """The spec stored in a result file (fields added since default to None)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"a run spec has unknown field(s) {unknown}")
        return cls(**dict(data))


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes, all inside ``root`` (the output folder)."""

    root: Path
    result: Path  #: ``<run>.json``, the finished result
    work: Path  #: ``<run>.work/``, checkpoint and spec of an unfinished run
    error: Path  #: ``<run>.error.txt``, the traceback of a failed run
    lock: Path  #: ``<run>.lock``, held while the run is trained or scored


def run_paths(spec: RunSpec, out_dir: str | Path) -> RunPaths:
    """Every path of ``spec`` under ``out_dir``; ValueError if one would leave it.

    Example:
        >>> p = run_paths(RunSpec("tiny-lesions", "ce", seed=1), "out")
        >>> p.result.as_posix(), p.work.name, p.lock.name
        ('out/runs/tiny-lesions/ce/seed1.json', 'seed1.work', 'seed1.lock')
    """
    root = Path(out_dir)
    folder = root / "runs" / check_label(spec.task_label, "task label")
    folder = folder / check_label(spec.loss_label, "loss variant")
    name = spec.run_name
    paths = RunPaths(
        root=root,
        result=folder / f"{name}.json",
        work=folder / f"{name}.work",
        error=folder / f"{name}.error.txt",
        lock=folder / f"{name}.lock",
    )
    base = root.resolve()
    for p in (paths.result, paths.work, paths.error, paths.lock):
        resolved = p.resolve()
        if resolved != base and base not in resolved.parents:
            raise ValueError(f"{p} resolves to {resolved}, outside the output folder {base}")
    return paths


def expand_grid(
    tasks: Sequence[str | tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    losses: Sequence[str | tuple[str, str, Mapping[str, Any]]],
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
        losses: loss names, or ``(variant, loss name, options)`` triples.
        seeds: training seeds.
        folds: ``None`` for the tasks' own splits, else the number of outer folds
            (each fold is a run).
        train: :class:`~metricseg.train.TrainConfig` options for all runs;
            per-task overrides win.
        loss_options: per loss name, options for its constructor (a variant's own
            options win).

    Example:
        >>> specs = expand_grid(["a", "b"], ["ce", ("wce5", "weighted_ce", {"foreground_weight": 5})])
        >>> len(specs), specs[1].loss, specs[1].loss_label, dict(specs[1].loss_options)
        (4, 'weighted_ce', 'wce5', {'foreground_weight': 5})
    """
    out = []
    for entry in tasks:
        name, task_options, overrides = (entry, {}, {}) if isinstance(entry, str) else entry
        config = {**(train or {}), **overrides}
        for loss_entry, seed, fold in itertools.product(
            losses, seeds, range(folds) if folds else [None]
        ):
            variant, loss, own = (
                (None, loss_entry, {}) if isinstance(loss_entry, str) else loss_entry
            )
            options = {**(loss_options or {}).get(loss, {}), **own}
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
                    loss_options=options,
                    variant=variant if variant != loss else None,
                )
            )
    return out
