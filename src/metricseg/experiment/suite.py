"""Studies: what ``metricseg bench`` runs — tasks × loss variants × seeds (× folds).

A study is a TOML (or YAML) file. The built-in ones ship with the package in
``metricseg/experiment/studies/`` (``metricseg bench --study list``); a user's file
has the same keys::

    name = "my-study"
    losses = ["soft_dice", "lovasz_softmax", "ce",
              { name = "wce_fg10", loss = "weighted_ce", options = { foreground_weight = 10 } }]
    seeds = [0, 1, 2]
    folds = 5                    # optional: outer cross-validation by subject

    [train]                      # metricseg.train.TrainConfig options for every run
    epochs = 60
    channels = [16, 32, 64, 128]

    [[tasks]]
    name = "tiny-lesions"
    options = { num_train = 200 }   # metricseg.data.get_task options
    train = { epochs = 80 }         # per-task TrainConfig overrides
    # optional = true               # leave the task out (with a note) when not installed

    [loss_options.focal]            # options for every variant of a loss
    gamma = 2.0

A loss is a registry name, or a table with ``name`` (its label in paths and the
report), ``loss`` (the registry name) and ``options``. The whole study is checked
when it is read — keys, types, names, training options — so a mistake fails before
run 1, not when its run starts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from metricseg.experiment.spec import RunSpec, check_label, expand_grid

__all__ = [
    "LossEntry",
    "Suite",
    "TaskEntry",
    "available_tasks",
    "default_suite",
    "list_studies",
    "load_study",
    "load_suite",
    "quick_suite",
]


@dataclass
class TaskEntry:
    """One task of a study: its name, data options and per-task training overrides."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    optional: bool = False


@dataclass
class LossEntry:
    """One loss variant of a study: its label, the registry name, its own options."""

    label: str
    loss: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    """Tasks × loss variants × seeds (× folds) with the training options: everything a bench runs."""

    tasks: list[TaskEntry]
    losses: list[LossEntry]
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: int | None = None
    train: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_seed: int = 0
    name: str = "custom"
    description: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def loss_labels(self) -> list[str]:
        return [entry.label for entry in self.losses]

    def specs(self) -> list[RunSpec]:
        return expand_grid(
            [(t.name, t.options, t.train) for t in self.tasks],
            [(e.label, e.loss, e.options) for e in self.losses],
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
        """A copy with command-line overrides (``epochs`` also replaces per-task epochs).

        ``losses`` names variants of the study or registry names.
        """
        new = copy.deepcopy(self)
        if tasks is not None:
            known = {t.name: t for t in new.tasks}
            new.tasks = [known.get(name, TaskEntry(name)) for name in tasks]
        if losses is not None:
            variants = {e.label: e for e in new.losses}
            new.losses = [variants.get(name, LossEntry(name, name)) for name in losses]
        if seeds is not None:
            new.seeds = [int(s) for s in seeds]
        if epochs is not None:
            new.train["epochs"] = int(epochs)
            for t in new.tasks:
                t.train.pop("epochs", None)
        if device is not None:
            new.train["device"] = device
        return new


_KEYS = {
    "tasks",
    "losses",
    "seeds",
    "folds",
    "train",
    "loss_options",
    "data_seed",
    "name",
    "description",
    "notes",
}


def _fail(source: str, message: str) -> ValueError:
    return ValueError(f"{source}: {message}")


def _table(source: str, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, f"{what} must be a table of options, got {value!r}")
    return dict(value)


def _list(source: str, value: Any, what: str) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        hint = f" (write [{json.dumps(value)}] for one)" if isinstance(value, str) else ""
        raise _fail(source, f"{what} must be a list, got {value!r}{hint}")
    if not value:
        raise _fail(source, f"{what} must not be empty")
    return list(value)


def _int(source: str, value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(source, f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def _task_entry(source: str, entry: Any) -> TaskEntry:
    if isinstance(entry, str) and entry:
        return TaskEntry(entry)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise _fail(source, f"each task must be a name or a table with 'name', got {entry!r}")
    extra = set(entry) - {"name", "options", "train", "optional"}
    if extra:
        raise _fail(source, f"task {entry['name']!r} has unknown key(s) {sorted(extra)}")
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise _fail(source, f"task {entry['name']!r}: optional must be true or false")
    return TaskEntry(
        entry["name"],
        _table(source, entry.get("options", {}), f"task {entry['name']!r} options"),
        _table(source, entry.get("train", {}), f"task {entry['name']!r} train"),
        optional,
    )


def _loss_entry(source: str, entry: Any) -> LossEntry:
    try:
        if isinstance(entry, str):
            return LossEntry(check_label(entry, "loss"), entry)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise _fail(source, f"each loss must be a name or a table with 'name', got {entry!r}")
        extra = set(entry) - {"name", "loss", "options"}
        if extra:
            raise _fail(source, f"loss {entry['name']!r} has unknown key(s) {sorted(extra)}")
        loss = entry.get("loss", entry["name"])
        options = _table(source, entry.get("options", {}), f"loss {entry['name']!r} options")
        return LossEntry(
            check_label(entry["name"], "loss variant"), check_label(loss, "loss"), options
        )
    except ValueError as exc:
        if str(exc).startswith(source):
            raise
        raise _fail(source, str(exc)) from None


def parse_suite(data: Any, source: str) -> Suite:
    """A :class:`Suite` from a study's parsed table; every key and type checked."""
    from metricseg.train.config import TrainConfig

    if not isinstance(data, Mapping):
        raise _fail(
            source, f"expected a table of settings at the top level, got {type(data).__name__}"
        )
    unknown = set(data) - _KEYS
    if unknown:
        raise _fail(source, f"unknown key(s) {sorted(unknown)}; expected some of {sorted(_KEYS)}")
    if "tasks" not in data or "losses" not in data:
        raise _fail(source, "'tasks' and 'losses' are required")
    tasks = [_task_entry(source, t) for t in _list(source, data["tasks"], "tasks")]
    losses = [_loss_entry(source, e) for e in _list(source, data["losses"], "losses")]
    labels = [e.label for e in losses]
    if len(set(labels)) != len(labels):
        raise _fail(source, f"loss names must be unique, got {labels}")
    seeds = [
        _int(source, s, "each seed", 0) for s in _list(source, data.get("seeds", [0]), "seeds")
    ]
    folds = data.get("folds")
    if folds is not None:
        folds = _int(source, folds, "folds", 2)
    train = _table(source, data.get("train", {}), "train")
    loss_options = {
        str(k): _table(source, v, f"loss_options.{k}")
        for k, v in _table(source, data.get("loss_options", {}), "loss_options").items()
    }
    for overrides in [{}, *(t.train for t in tasks)]:
        try:
            TrainConfig.from_options({**train, **overrides})
        except (TypeError, ValueError) as exc:
            raise _fail(source, str(exc)) from None
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise _fail(source, f"notes must be a list of strings, got {notes!r}")
    return Suite(
        tasks=tasks,
        losses=losses,
        seeds=seeds,
        folds=folds,
        train=train,
        loss_options=loss_options,
        data_seed=_int(source, data.get("data_seed", 0), "data_seed", 0),
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")),
        notes=list(notes),
    )


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from None
    raise ValueError(f"a study file must be .toml, .yaml or .yml, got {path.name!r}")


def load_suite(path: str | Path) -> Suite:
    """Read a study file (``.toml``, ``.yaml`` or ``.yml``) into a :class:`Suite`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such study file")
    return parse_suite(_read(p), str(p))


def _studies() -> dict[str, Any]:
    folder = resources.files("metricseg.experiment") / "studies"
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".toml")}


def list_studies() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in study, by name."""
    return [(name, load_study(name).description) for name in sorted(_studies())]


def load_study(name_or_path: str) -> Suite:
    """A built-in study by name (``"default"``, ``"brats"``, ...) or a study file by path."""
    studies = _studies()
    if name_or_path in studies:
        p = studies[name_or_path]
        return parse_suite(_read_text(p), f"built-in study {name_or_path!r}")
    if Path(name_or_path).suffix.lower() in (".toml", ".yaml", ".yml"):
        return load_suite(name_or_path)
    raise ValueError(
        f"--study {name_or_path!r}: neither a built-in study ({', '.join(sorted(studies))}) "
        "nor a .toml / .yaml study file"
    )


def _read_text(resource: Any) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(resource.read_text())


def available_tasks(suite: Suite) -> tuple[Suite, list[str]]:
    """The suite without its optional tasks that are not installed here, and a note for each."""
    from metricseg.data import list_tasks

    infos = {t.name: t for t in list_tasks()}
    kept, notes = [], []
    for entry in suite.tasks:
        info = infos.get(entry.name)
        if entry.optional and info is not None and not info.available:
            notes.append(
                f"task {entry.name!r} is not installed, left out; to add it: {info.how_to_get}"
            )
        else:
            kept.append(entry)
    new = copy.deepcopy(suite)
    new.tasks = kept
    return new, notes


def default_suite() -> tuple[Suite, list[str]]:
    """The study ``metricseg bench`` runs without arguments, and notes on left-out tasks."""
    suite, notes = available_tasks(load_study("default"))
    return suite, [*notes, *suite.notes]


def quick_suite() -> tuple[Suite, list[str]]:
    """A smoke run (a 2D and a 3D task, four losses, few epochs)."""
    suite = load_study("quick")
    return suite, list(suite.notes)
