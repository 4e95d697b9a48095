"""Bench suites: the built-in default and quick suites, and study files (TOML or YAML).

A study file lists tasks, losses, seeds and training options::

    losses = ["soft_dice", "soft_jaccard", "lovasz_softmax", "ce", "weighted_ce"]
    seeds = [0, 1, 2]
    folds = 5                    # optional: cross-validation folds per seed

    [train]                      # metricseg.train.TrainConfig options for every run
    epochs = 60
    channels = [16, 32, 64, 128]

    [[tasks]]
    name = "tiny-lesions"
    options = { num_train = 200 }   # metricseg.data.get_task options
    train = { epochs = 80 }         # per-task TrainConfig overrides

    [loss_options.focal]
    gamma = 2.0

(YAML with the same keys works as well.) ``tasks`` may also be a plain list of names.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metricseg.experiment.grid import RunSpec, expand_grid

__all__ = ["DEFAULT_LOSSES", "Suite", "TaskEntry", "default_suite", "load_suite", "quick_suite"]

#: The losses of the default suite: metric-sensitive, per-pixel and one compound.
DEFAULT_LOSSES: tuple[str, ...] = (
    "soft_dice", "soft_jaccard", "lovasz_softmax", "ce", "weighted_ce", "focal", "dice_ce",
)  # fmt: skip

_SYNTHETIC_DEFAULT: tuple[str, ...] = (
    "tiny-lesions",
    "large-organ",
    "mixed-sizes",
    "multiclass",
    "synthetic-3d",
)
_REAL_DEFAULT: tuple[str, ...] = ("colin-brain", "mni-tissue", "dsb-nuclei", "inia19", "aal")
#: real tasks left out of the default suite, and why (printed as a note)
_LEFT_OUT: dict[str, str] = {
    "aal-small": (
        "task 'aal-small' is left out of the default suite: its structures cover a few pixels at "
        "64², and within the CPU budget no loss learned them (test Dice ≤ 0.07, chance 0.02; "
        "1200 steps of soft Dice: 0.004); run it with --tasks aal-small in a longer study"
    ),
}


@dataclass
class TaskEntry:
    """One task of a suite: its name, data options and per-task training overrides."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    """Tasks × losses × seeds (× folds) with the training options: everything a bench runs."""

    tasks: list[TaskEntry]
    losses: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: int | None = None
    train: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_seed: int = 0
    name: str = "custom"

    def specs(self) -> list[RunSpec]:
        return expand_grid(
            [(t.name, t.options, t.train) for t in self.tasks],
            self.losses,
            self.seeds,
            folds=self.folds,
            train=self.train,
            loss_options=self.loss_options,
            data_seed=self.data_seed,
        )

    def with_overrides(
        self,
        *,
        tasks: Sequence[str] | None = None,
        losses: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        epochs: int | None = None,
        device: str | None = None,
    ) -> Suite:
        """A copy with command-line overrides applied (``epochs`` also replaces per-task epochs)."""
        new = copy.deepcopy(self)
        if tasks is not None:
            known = {t.name: t for t in new.tasks}
            new.tasks = [known.get(name, TaskEntry(name)) for name in tasks]
        if losses is not None:
            new.losses = list(losses)
        if seeds is not None:
            new.seeds = [int(s) for s in seeds]
        if epochs is not None:
            new.train["epochs"] = int(epochs)
            for t in new.tasks:
                t.train.pop("epochs", None)
        if device is not None:
            new.train["device"] = device
        return new


# Sizes chosen so that the default suite (11 tasks × 7 losses) trains in under
# 15 minutes on 2 CPU cores while every network learns well above chance;
# docs/readme/bench.md has the measured times.
_DEFAULT_TRAIN: dict[str, Any] = {
    "epochs": 20,
    "steps_per_epoch": 20,
    "batch_size": 8,
    "lr": 3e-3,
    "channels": [8, 16, 32],
    "num_res_units": 1,
}
_DEFAULT_SPLIT = {"num_train": 32, "num_val": 8, "num_test": 24}
_DEFAULT_TASK_OPTIONS: dict[str, dict[str, Any]] = {
    **{name: dict(_DEFAULT_SPLIT) for name in _SYNTHETIC_DEFAULT},
    "synthetic-3d": {"num_train": 12, "num_val": 4, "num_test": 12},
    **{name: dict(_DEFAULT_SPLIT) for name in _REAL_DEFAULT},
    "inia19": {"num_train": 32, "num_val": 8, "num_test": 16},
}
_DEFAULT_TASK_TRAIN: dict[str, dict[str, Any]] = {
    "synthetic-3d": {"batch_size": 2, "steps_per_epoch": 12},
}


def _available(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``names`` into the tasks available here and notes on how to get the others."""
    from metricseg.data import list_tasks

    infos = {t.name: t for t in list_tasks()}
    ok, notes = [], []
    for name in names:
        info = infos.get(name)
        if info is None or info.available:
            ok.append(name)
        else:
            notes.append(f"task {name!r} is not installed, left out; to add it: {info.how_to_get}")
    return ok, notes


def default_suite() -> tuple[Suite, list[str]]:
    """The suite ``metricseg bench`` runs without arguments, and notes on left-out tasks."""
    real, notes = _available(_REAL_DEFAULT)
    notes += list(_LEFT_OUT.values())
    names = [*_SYNTHETIC_DEFAULT, *real]
    tasks = [
        TaskEntry(n, dict(_DEFAULT_TASK_OPTIONS.get(n, {})), dict(_DEFAULT_TASK_TRAIN.get(n, {})))
        for n in names
    ]
    return Suite(
        tasks, list(DEFAULT_LOSSES), [0], None, dict(_DEFAULT_TRAIN), name="default"
    ), notes


def quick_suite() -> tuple[Suite, list[str]]:
    """A smoke run (a 2D and a 3D task, four losses, few epochs): a couple of minutes on 2 cores."""
    tasks = [
        TaskEntry("large-organ", {"num_train": 16, "num_val": 4, "num_test": 12}),
        TaskEntry(
            "synthetic-3d",
            {"num_train": 6, "num_val": 2, "num_test": 6},
            {"batch_size": 2, "steps_per_epoch": 12},
        ),
    ]
    train = {**_DEFAULT_TRAIN, "epochs": 10}
    return Suite(
        tasks, ["soft_dice", "soft_jaccard", "ce", "weighted_ce"], [0], None, train, name="quick"
    ), []


_SUITE_KEYS = {"tasks", "losses", "seeds", "folds", "train", "loss_options", "data_seed", "name"}


def load_suite(path: str | Path) -> Suite:
    """Read a study file (``.toml``, ``.yaml`` or ``.yml``) into a :class:`Suite`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such config file")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        data = tomllib.loads(p.read_text())
    elif suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(p.read_text()) or {}
    else:
        raise ValueError(f"config must be a .toml, .yaml or .yml file, got {p.name!r}")
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{p}: expected a table of settings at the top level, got {type(data).__name__}"
        )
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise ValueError(
            f"{p}: unknown key(s) {sorted(unknown)}; expected some of {sorted(_SUITE_KEYS)}"
        )
    if "tasks" not in data or "losses" not in data:
        raise ValueError(f"{p}: 'tasks' and 'losses' are required")
    tasks = []
    for entry in data["tasks"]:
        if isinstance(entry, str):
            tasks.append(TaskEntry(entry))
        elif isinstance(entry, Mapping) and "name" in entry:
            extra = set(entry) - {"name", "options", "train"}
            if extra:
                raise ValueError(f"{p}: task {entry['name']!r} has unknown key(s) {sorted(extra)}")
            tasks.append(
                TaskEntry(
                    str(entry["name"]), dict(entry.get("options", {})), dict(entry.get("train", {}))
                )
            )
        else:
            raise ValueError(f"{p}: each task must be a name or a table with 'name', got {entry!r}")
    _check_train_keys(p, data.get("train", {}), *(t.train for t in tasks))
    return Suite(
        tasks=tasks,
        losses=[str(x) for x in data["losses"]],
        seeds=[int(s) for s in data.get("seeds", [0])],
        folds=int(data["folds"]) if data.get("folds") else None,
        train=dict(data.get("train", {})),
        loss_options={k: dict(v) for k, v in data.get("loss_options", {}).items()},
        data_seed=int(data.get("data_seed", 0)),
        name=str(data.get("name", p.stem)),
    )


def _check_train_keys(path: Path, *tables: Mapping[str, Any]) -> None:
    from metricseg.train.loop import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"loss_options"}
    for table in tables:
        unknown = set(table) - known
        if unknown:
            raise ValueError(
                f"{path}: unknown training option(s) {sorted(unknown)}; expected some of {sorted(known)}"
            )
