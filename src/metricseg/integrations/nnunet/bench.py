"""nnU-Net's side of ``metricseg bench --engine nnunet``: the study with nnU-Net as the network.

One run per loss × fold of nnU-Net's cross-validation (``splits_final.json``): nnU-Net
trains the fold with the metricseg trainer of the loss (``metricseg nnunet train`` in a
child process, so each training starts from a clean interpreter) and predicts the
fold's validation cases with its final checkpoint (nnU-Net's own final validation).
This module does everything that is nnU-Net's — the folders, planning and
preprocessing, the split, the fold folders, the training, where the predictions and
the ground truth are, the training curve — in plain data, without importing
``metricseg.experiment`` (integrations sit below the study, docs/architecture.md).
The command (``metricseg.commands.bench``) wires it to the study: a
:class:`~metricseg.experiment.spec.RunSpec` per :meth:`NnUNetBench.run_fields`, the
grid's ``run_one`` (lock, skip-if-done, spec check), ``scoring.case_rows`` on every
pair of :func:`validation_cases`, ``grid.write_result`` and the report.

Where nnU-Net's files go: each loss's nnU-Net results folder is
``OUT/nnunet/<loss>/`` (``nnUNet_results`` for its trainings), so a bench never
touches the user's ``nnUNet_results``: nnU-Net names a model folder by trainer, plans
and configuration only, so a run with other loss options or another schedule would
otherwise continue or overwrite the user's own model of the same trainer; and a run
whose spec changed must delete its fold, which the bench only does in a folder it made.
nnU-Net's preprocessed data stays where ``nnUNet_preprocessed`` points (the bench
plans and preprocesses the dataset there when it is not yet, as nnU-Net would).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metricseg.atomic import atomic_write_json
from metricseg.integrations.nnunet.layout import (
    DatasetLabels,
    configuration_plans,
    dataset_id,
    dataset_labels,
    nnunet_folders,
    preprocess_command,
    preprocessing_needed,
    read_splits,
    resolve_dataset,
)
from metricseg.integrations.nnunet.options import (
    ENV_EPOCHS,
    ENV_ITERATIONS,
    ENV_VAL_ITERATIONS,
    SET_BY_TRAINER,
    TRAINER_LOSSES,
    TRAINER_PREFIX,
    check_loss_options,
    read_schedule,
    trainer_name,
)

__all__ = [
    "CONSOLE",
    "DEFAULT_LOSSES",
    "DEVICES",
    "MARKER",
    "NnUNetBench",
    "check_run",
    "claim_fold_folder",
    "distribute_loss_options",
    "fold_finished",
    "fold_folder",
    "nnunet_version",
    "prepare_bench",
    "report_notes",
    "require_nnunet",
    "run_config",
    "run_task_info",
    "train_fold",
    "validation_cases",
]

#: the losses of metricseg's default study, each with an nnU-Net trainer
DEFAULT_LOSSES = (
    "soft_dice",
    "soft_jaccard",
    "lovasz_softmax",
    "ce",
    "weighted_ce",
    "focal",
    "dice_ce",
)
#: devices ``metricseg nnunet train`` (nnU-Net) takes
DEVICES = ("cpu", "cuda", "mps")
#: the file in an nnU-Net fold folder that names the run that made it
MARKER = "metricseg_run.json"
#: the console output of the nnU-Net training of a fold, in its folder
CONSOLE = "metricseg_nnunet_train.log"
#: the engine named in every run's task options and training options
ENGINE = "nnunet"
_ENTRY = (
    "import sys\n"
    "from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import {function} as entry\n"
    "sys.argv[0] = {name!r}\n"
    "sys.exit(entry())\n"
)


@dataclass(frozen=True)
class NnUNetBench:
    """A checked nnU-Net study: the dataset, its configuration and the runs' settings."""

    dataset: str  #: nnU-Net's folder name, ``DatasetXXX_Name``
    configuration: str
    plans: str
    losses: tuple[str, ...]
    folds: tuple[int, ...]
    num_folds: int
    labels: DatasetLabels
    loss_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None
    device: str = "cpu"
    preprocessed: Path = Path()  #: the dataset's folder in nnUNet_preprocessed
    notes: tuple[str, ...] = ()  #: what preparing did (planning, a new split file)

    def run_fields(self) -> list[dict[str, Any]]:
        """The keyword arguments of one ``RunSpec`` per loss × fold, loss-major (like the grid).

        Task label: the dataset's name; loss label: the loss; seed 0 (a label: nnU-Net
        does not seed its training); the fold and nnU-Net's number of folds. The task
        options name the dataset, configuration and plans with digests of the plans and
        of the fold's split, so that a run set up on other plans or another split is
        another run.
        """
        plans = json.loads((self.preprocessed / f"{self.plans}.json").read_text(encoding="utf-8"))
        splits = read_splits(self.preprocessed) or []
        task_options = {
            "engine": ENGINE,
            "dataset": self.dataset,
            "configuration": self.configuration,
            "plans": self.plans,
            "plans_sha256": _plans_digest(plans, self.configuration),
        }
        train = {
            "engine": ENGINE,
            "epochs": self.epochs,
            "iterations": self.iterations,
            "val_iterations": self.val_iterations,
            "device": self.device,
        }
        return [
            {
                "task": f"{ENGINE}:{self.dataset}",
                "loss": loss,
                "seed": 0,
                "fold": fold,
                "num_folds": self.num_folds,
                "task_options": {**task_options, "split_sha256": _digest(splits[fold])},
                "train": dict(train),
                "loss_options": dict(self.loss_options.get(loss, {})),
                "label": self.dataset,
            }
            for loss in self.losses
            for fold in self.folds
        ]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _plans_digest(plans: Mapping[str, Any], configuration: str) -> str:
    """What of the plans shapes a training of ``configuration``: its settings and the global ones."""
    rest = {k: v for k, v in plans.items() if k != "configurations"}
    return _digest([rest, configuration_plans(plans, configuration)])


def _accepted(loss: str) -> set[str]:
    from metricseg.losses import describe

    return set(describe(loss).options) - set(SET_BY_TRAINER)


def distribute_loss_options(
    losses: Sequence[str],
    general: Mapping[str, Any] | None = None,
    per_loss: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Loss options per loss: each ``general`` option goes to every loss that takes it;
    ``per_loss[loss]`` to that loss only (and wins).

    An option no loss of the study takes, or one a loss does not take, is a ValueError.

    Example:
        >>> distribute_loss_options(["soft_dice", "ce"], {"classes": "foreground"}, {"ce": {"class_weights": [1.0, 2.0]}})
        {'soft_dice': {'classes': 'foreground'}, 'ce': {'class_weights': [1.0, 2.0]}}
    """
    out: dict[str, dict[str, Any]] = {loss: {} for loss in losses}
    for key, value in (general or {}).items():
        takers = [loss for loss in losses if key in _accepted(loss)]
        if not takers:
            raise ValueError(
                f"--loss-option {key}={value!r}: no loss of the study takes {key!r} "
                f"({', '.join(losses)}); see metricseg losses NAME"
            )
        for loss in takers:
            out[loss][key] = value
    for loss, options in (per_loss or {}).items():
        if loss not in out:
            raise ValueError(
                f"--loss-option {loss}:...: {loss!r} is not a loss of the study ({', '.join(losses)})"
            )
        check_loss_options(loss, options, "--loss-option")
        out[loss].update(options)
    return out


def _check_losses(
    losses: Sequence[str], options: Mapping[str, Mapping[str, Any]], labels: DatasetLabels
) -> None:
    from metricseg import losses as registry

    if not losses:
        raise ValueError("--losses names no loss")
    for loss in losses:
        if loss not in TRAINER_LOSSES:
            raise ValueError(
                f"--losses: {loss!r} has no nnU-Net trainer; choose from {', '.join(TRAINER_LOSSES)}"
            )
        if labels.regions and loss == "lovasz_softmax":
            raise ValueError(
                "--losses: lovasz_softmax needs a label-map dataset; this one is region-based "
                "(use lovasz_hinge)"
            )
        if not labels.regions and loss == "lovasz_hinge":
            raise ValueError(
                "--losses: lovasz_hinge is for region-based datasets; this one has label maps "
                "(use lovasz_softmax)"
            )
        check_loss_options(loss, options.get(loss, {}), "--loss-option")
        try:  # values a loss checks at construction (e.g. classes='fg')
            registry.get(loss, **dict(options.get(loss, {})))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--loss-option for {loss!r}: {exc}") from None
    if len(set(losses)) != len(losses):
        raise ValueError(f"--losses names a loss twice: {', '.join(losses)}")


def _processes(environ: Mapping[str, str]) -> int:
    # nnU-Net's own default (nnunetv2.configuration), bounded by the cores here
    text = environ.get("nnUNet_def_n_proc", "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _run_nnunet_step(step: str, argv: list[str], environ: Mapping[str, str], log: Path) -> None:
    """nnU-Net's planning / preprocessing entry point in a child process, output to ``log``."""
    function = "plan_and_preprocess_entry" if step == "plan" else "preprocess_entry"
    code = _ENTRY.format(function=function, name=argv[0])
    env = dict(environ)
    # nnU-Net's planner sets torch's threads to nnUNet_n_proc_DA, which must be >= 1 there
    if env.get("nnUNet_n_proc_DA", "").strip() in ("0", ""):
        env["nnUNet_n_proc_DA"] = "1"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv[1:]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed (exit {proc.returncode}); the end of {log}:\n"
            + log.read_text(encoding="utf-8", errors="replace")[-3000:]
        )


def _ensure_splits(folder: Path, labels_ending: str) -> tuple[list[dict[str, list[str]]], bool]:
    """nnU-Net's splits of the dataset; made as nnU-Net's first training would make them if missing."""
    splits = read_splits(folder)
    if splits is not None:
        return splits, False
    require_nnunet(f"the cross-validation split of {folder.name} (no splits_final.json yet)")
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    gt = folder / "gt_segmentations"
    cases = sorted(
        p.name[: -len(labels_ending)] for p in gt.iterdir() if p.name.endswith(labels_ending)
    )
    if len(cases) < 5:
        raise ValueError(
            f"{folder.name} has {len(cases)} case(s); nnU-Net's 5-fold split needs at least 5 "
            "(or write your own splits_final.json)"
        )
    # what nnUNetTrainer.do_split does when the file is missing (seed 12345, 5 folds)
    splits = generate_crossval_split(cases, seed=12345, n_splits=5)
    atomic_write_json(folder / "splits_final.json", splits)
    return read_splits(folder) or [], True


def _check_schedule(epochs: int | None, iterations: int | None, val_iterations: int | None) -> None:
    for what, value in (
        ("epochs", epochs),
        ("iterations", iterations),
        ("val-iterations", val_iterations),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"--{what} must be a positive integer, got {value!r}")


def _check_folds(folds: Sequence[int] | None, num_folds: int, folder: Path) -> tuple[int, ...]:
    wanted = tuple(range(num_folds)) if folds is None else tuple(folds)
    bad = [
        f for f in wanted if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < num_folds
    ]
    if bad or not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(
            f"--folds {','.join(map(str, wanted))}: {folder / 'splits_final.json'} has folds "
            f"0..{num_folds - 1}; give each at most once"
        )
    return wanted


def _preprocess_if_needed(
    folders: Any,
    name: str,
    configuration: str,
    plans: str,
    env: dict[str, str],
    out_dir: Path,
    log: Callable[[str], None],
) -> list[str]:
    """Run nnU-Net's planning / preprocessing of ``name`` when it lacks them; the notes."""
    notes: list[str] = []
    step = preprocessing_needed(folders, name, configuration, plans)
    if step is None:
        return notes
    if folders.raw is None or not (folders.raw / name).is_dir():
        raise ValueError(
            f"{name} is not {'planned' if step == 'plan' else 'preprocessed'} for "
            f"{configuration} in {folders.preprocessed}, and its raw data is not in "
            f"nnUNet_raw ({folders.raw or 'not set'}); set nnUNet_raw to the folder that holds "
            f"{name}/, or run: " + " ".join(preprocess_command(step, name, configuration, plans))
        )
    require_nnunet(f"nnU-Net's {'planning' if step == 'plan' else 'preprocessing'} of {name}")
    argv = preprocess_command(step, name, configuration, plans, _processes(env))
    log_file = out_dir / "nnunet" / f"{step}_{name}_{configuration}.log"
    log(f"{name} needs nnU-Net's {'planning and ' if step == 'plan' else ''}preprocessing "
        f"for {configuration}: {' '.join(argv)} (log: {log_file})")  # fmt: skip
    t0 = time.perf_counter()
    _run_nnunet_step(step, argv, env, log_file)
    notes.append(f"ran {' '.join(argv)} ({time.perf_counter() - t0:.0f} s)")
    if preprocessing_needed(folders, name, configuration, plans) is not None:
        raise RuntimeError(
            f"{' '.join(argv)} ran but {name} is still not preprocessed; see {log_file}"
        )
    return notes


def prepare_bench(
    dataset: str | int,
    out_dir: str | Path,
    *,
    configuration: str = "3d_fullres",
    plans: str = "nnUNetPlans",
    losses: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    loss_options: Mapping[str, Mapping[str, Any]] | None = None,
    epochs: int | None = None,
    iterations: int | None = None,
    val_iterations: int | None = None,
    device: str = "cpu",
    environ: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> NnUNetBench:
    """Check everything, plan and preprocess the dataset if needed, and return the study.

    Raises ValueError naming the problem and its fix (an nnU-Net folder variable not
    set, an unknown dataset, a loss without trainer, an option no loss takes, a fold
    the split lacks, ...) before any training starts. ``epochs``, ``iterations`` and
    ``val_iterations`` left None take ``METRICSEG_NNUNET_*`` from the environment, else
    nnU-Net's. ``log`` is told what preparing does (nnU-Net's planning takes minutes).
    """
    env = dict(os.environ if environ is None else environ)
    folders = nnunet_folders(env)
    name = resolve_dataset(dataset, folders)
    if device not in DEVICES:
        raise ValueError(f"--device {device!r}: nnU-Net trains on {', '.join(DEVICES)}")
    _check_schedule(epochs, iterations, val_iterations)
    schedule = read_schedule(env)
    notes = _preprocess_if_needed(folders, name, configuration, plans, env, Path(out_dir), log)
    folder = folders.preprocessed / name
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    labels = dataset_labels(meta)
    chosen = tuple(losses or DEFAULT_LOSSES)
    options = {loss: dict((loss_options or {}).get(loss, {})) for loss in chosen}
    _check_losses(chosen, options, labels)
    splits, made = _ensure_splits(folder, str(meta.get("file_ending", ".nii.gz")))
    if made:
        notes.append(f"wrote nnU-Net's 5-fold split (seed 12345) to {folder / 'splits_final.json'}")
    wanted = _check_folds(folds, len(splits), folder)
    bench = NnUNetBench(
        dataset=name,
        configuration=configuration,
        plans=plans,
        losses=chosen,
        folds=wanted,
        num_folds=len(splits),
        labels=labels,
        loss_options=options,
        epochs=epochs if epochs is not None else schedule.epochs,
        iterations=iterations if iterations is not None else schedule.iterations,
        val_iterations=val_iterations if val_iterations is not None else schedule.val_iterations,
        device=device,
        preprocessed=folder,
        notes=tuple(notes),
    )
    return bench


def require_nnunet(what: str) -> None:
    """ValueError when nnU-Net v2 cannot be imported (``what`` needs it)."""
    import importlib.util

    if importlib.util.find_spec("nnunetv2") is None:
        raise ValueError(
            f"{what} needs nnU-Net v2; install it with pip install 'metricseg[nnunet]'"
        )


def fold_folder(out_dir: str | Path, loss: str, task_options: Mapping[str, Any], fold: int) -> Path:
    """The nnU-Net fold folder of a run: ``OUT/nnunet/<loss>/<Dataset>/<trainer>__<plans>__<configuration>/fold_<k>``.

    ``OUT/nnunet/<loss>`` is the ``nnUNet_results`` of the loss's trainings; point
    ``nnUNet_results`` there to predict with the models (``nnUNetv2_predict -f 0 1 ...``).
    Every part of the path is a checked name (a loss with a trainer, an nnU-Net
    dataset name, plans and configuration of the dataset's plans file).
    """
    dataset_id(str(task_options["dataset"]))  # DatasetXXX_Name: no separator, no '..'
    results = Path(out_dir) / "nnunet" / trainer_name(loss).removeprefix(TRAINER_PREFIX)
    trainer = f"{trainer_name(loss)}__{task_options['plans']}__{task_options['configuration']}"
    return results / str(task_options["dataset"]) / trainer / f"fold_{int(fold)}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def claim_fold_folder(folder: Path, identity: Mapping[str, Any]) -> None:
    """Make ``folder`` the fold folder of the run ``identity`` (its spec, as a dict).

    Kept when it is that run's already (to resume or to score it); deleted and made
    again when another spec of the bench made it (other loss options, schedule, plans
    or split); refused when the bench did not make it (no :data:`MARKER` file).
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ValueError(f"{folder} must be a folder made by metricseg bench; move it away")
    if folder.is_dir():
        marker = _read_json(folder / MARKER)
        if marker == dict(identity):
            return
        if marker is None:
            raise ValueError(
                f"{folder} holds an nnU-Net fold that metricseg bench did not start ({MARKER} "
                "missing); move it away and run again"
            )
        shutil.rmtree(folder)  # another spec's training (other options or schedule)
    folder.mkdir(parents=True)
    atomic_write_json(folder / MARKER, dict(identity))


def fold_finished(folder: Path) -> bool:
    """True when nnU-Net finished the fold: final checkpoint and validation summary written
    (nnU-Net writes ``validation/summary.json`` last)."""
    return (folder / "checkpoint_final.pth").is_file() and (
        folder / "validation" / "summary.json"
    ).is_file()


def check_run(
    task_options: Mapping[str, Any], fold: int, environ: Mapping[str, str] | None = None
) -> Path:
    """The dataset's preprocessed folder, once its plans and the fold's split are still the
    ones the run was set up with (ValueError otherwise)."""
    if task_options.get("engine") != ENGINE:
        raise ValueError(f"not an nnU-Net run: task options {dict(task_options)!r}")
    dataset = nnunet_folders(environ).preprocessed / str(task_options["dataset"])
    plans = _read_json(dataset / f"{task_options['plans']}.json")
    configuration = str(task_options["configuration"])
    if plans is None or _plans_digest(plans, configuration) != task_options["plans_sha256"]:
        raise ValueError(
            f"the plans of {dataset.name} changed since this run was set up; run the bench again"
        )
    splits = read_splits(dataset) or []
    if fold >= len(splits) or _digest(splits[fold]) != task_options["split_sha256"]:
        raise ValueError(
            f"{dataset / 'splits_final.json'} changed since this run was set up; run the bench again"
        )
    return dataset


def train_fold(
    folder: Path,
    *,
    loss: str,
    fold: int,
    task_options: Mapping[str, Any],
    train: Mapping[str, Any],
    loss_options: Mapping[str, Any],
) -> None:
    """``metricseg nnunet train`` for one fold, in a child process (resuming with ``--c``
    when the fold has a checkpoint), followed by nnU-Net's final validation.

    ``nnUNet_results`` is the fold's loss folder under OUT; the loss options and the
    schedule (``train``'s ``epochs``, ``iterations``, ``val_iterations``; None keeps
    nnU-Net's) go to the child's environment and nowhere else. Its console output is
    appended to ``folder/`` :data:`CONSOLE`.
    """
    import metricseg
    from metricseg.integrations.nnunet.run import set_environment

    require_nnunet(f"training {trainer_name(loss)}")
    env = dict(os.environ)
    env["nnUNet_results"] = str(folder.parents[2].resolve())
    for var in (ENV_EPOCHS, ENV_ITERATIONS, ENV_VAL_ITERATIONS):
        env.pop(var, None)  # the run's schedule only
    set_environment(
        loss,
        dict(loss_options),
        epochs=train.get("epochs"),
        iterations=train.get("iterations"),
        val_iterations=train.get("val_iterations"),
        environ=env,
    )
    # the child imports this metricseg, wherever it was imported from
    package_root = str(Path(metricseg.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    resume = any(folder.glob("checkpoint_*.pth"))
    cmd = [
        sys.executable, "-m", "metricseg", "nnunet", "train", str(task_options["dataset"]),
        str(task_options["configuration"]), str(fold), "--loss", loss,
        "--device", str(train.get("device", "cpu")), "--plans", str(task_options["plans"]),
    ] + (["--c"] if resume else [])  # fmt: skip
    log = folder / CONSOLE
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(
            f"nnU-Net training of {trainer_name(loss)} fold {fold} failed (exit "
            f"{proc.returncode}); the end of {log}:\n"
            + log.read_text(encoding="utf-8", errors="replace")[-3000:]
        )


def validation_cases(
    folder: Path, dataset: Path, fold: int
) -> tuple[DatasetLabels, list[tuple[str, Path, Path]]]:
    """The dataset's classes and ``(case, prediction, ground truth)`` for every validation
    case of the fold: nnU-Net's ``validation/<case>`` and ``gt_segmentations/<case>``."""
    meta = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    ending = str(meta.get("file_ending", ".nii.gz"))
    splits = read_splits(dataset) or []
    cases = []
    for case in sorted(splits[fold]["val"]):
        prediction = folder / "validation" / f"{case}{ending}"
        if not prediction.is_file():
            raise RuntimeError(
                f"nnU-Net's validation wrote no {prediction}; see {folder / CONSOLE}"
            )
        cases.append((case, prediction, dataset / "gt_segmentations" / f"{case}{ending}"))
    return dataset_labels(meta), cases


def run_task_info(
    dataset: Path,
    task_options: Mapping[str, Any],
    fold: int,
    labels: DatasetLabels,
    spatial_dims: int,
) -> dict[str, Any]:
    """A run's ``task_info``: the keys of the metricseg engine's; every case is a subject."""
    meta = _read_json(dataset / "dataset.json") or {}
    split = (read_splits(dataset) or [])[fold]
    return {
        "name": dataset.name,
        "spatial_dims": spatial_dims,
        "num_classes": labels.num_classes,
        "class_names": list(labels.class_names),
        "n_train": len(split["train"]),
        "n_val": 0,  # nnU-Net scores its final checkpoint: its validation cases select nothing
        "n_test": len(split["val"]),
        "independent": True,  # nnU-Net's cases are subjects
        "source": f"nnU-Net {task_options['configuration']} ({task_options['plans']}), {dataset}",
        "description": str(meta.get("description") or meta.get("name") or dataset.name),
    }


def run_config(
    loss: str, task_options: Mapping[str, Any], train: Mapping[str, Any], folder: Path
) -> dict[str, Any]:
    """A run's ``config``: the trainer, nnU-Net's settings and where its fold is."""
    return {
        "engine": ENGINE,
        "trainer": trainer_name(loss),
        "configuration": task_options["configuration"],
        "plans": task_options["plans"],
        "fold_folder": str(folder.resolve()),
        "history": "nnU-Net's pseudo Dice on the validation patches of each epoch (training log)",
        "scored_checkpoint": "checkpoint_final.pth",
        **{k: v for k, v in train.items() if k != "engine"},
    }


def nnunet_version() -> str:
    """The installed nnunetv2's version ("not installed": scoring a finished fold needs none)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnunetv2")
    except PackageNotFoundError:
        return "not installed"


def report_notes(bench: NnUNetBench, out_dir: str | Path) -> list[str]:
    """What a reader of the report must know about runs trained by nnU-Net."""
    notes = [
        f"engine nnunet: nnU-Net {bench.configuration} ({bench.plans}) on {bench.dataset}; each "
        f"run is one fold of nnU-Net's splits_final.json (folds {', '.join(map(str, bench.folds))} "
        f"of {bench.num_folds}); its test cases are the fold's validation cases, predicted by "
        "nnU-Net's final validation with checkpoint_final.pth (no model selection on them) and "
        "scored by metricseg against nnUNet_preprocessed/<Dataset>/gt_segmentations",
        "training curves: nnU-Net's pseudo Dice (mean over the foreground classes of the Dice "
        "of the validation patches of each epoch, from nnU-Net's training log), not the score "
        "of whole validation cases",
        "seed 0 is a label: nnU-Net does not seed its training, so a run trained again gives "
        "another model; the seed spread is not measured",
        f"nnU-Net's models: {Path(out_dir) / 'nnunet' / '<loss>'} is the nnUNet_results of each "
        "loss's trainings",
    ]
    if bench.labels.regions:
        notes.append(
            "region-based dataset: nnU-Net's predictions (label maps from regions_class_order) "
            "are scored per label value, not per region"
        )
    if bench.labels.ignore_index is not None:
        notes.append(
            f"voxels of the ignore label {bench.labels.ignore_index} are left out of every score"
        )
    return [*bench.notes, *notes]
