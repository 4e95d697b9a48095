"""The study with nnU-Net as the network: ``metricseg bench --engine nnunet``.

One run per loss × fold of nnU-Net's cross-validation (``splits_final.json``): nnU-Net
trains the fold with the metricseg trainer of the loss (``metricseg nnunet train`` in a
child process, so each training starts from a clean interpreter), predicts the fold's
validation cases with its final checkpoint (nnU-Net's own final validation), and
metricseg scores every one of those predictions against nnU-Net's ground truth
(``nnUNet_preprocessed/<Dataset>/gt_segmentations``) with
:func:`metricseg.experiment.scoring.case_rows` — the one scoring path of the study.

Each run writes the result file of metricseg's own grid (format
:data:`~metricseg.experiment.grid.RESULT_FORMAT`, ``OUT/runs/<Dataset>/<loss>/seed0-fold<k>.json``)
through :func:`metricseg.experiment.grid.run_one` with this module's
:func:`execute_run`, so it gets the grid's per-run lock, skip-if-done and spec check.
The report is :func:`metricseg.experiment.report.build_report`, claims table included.

Where nnU-Net's files go: each loss's nnU-Net results folder is
``OUT/nnunet/<loss>/`` (``nnUNet_results`` for its trainings), so a bench never
touches the user's ``nnUNet_results``: nnU-Net names a model folder by trainer, plans
and configuration only, so a run with other loss options or another schedule would
otherwise continue or overwrite the user's own model of the same trainer; and a run
whose spec changed must delete its fold, which the bench only does in a folder it made.
nnU-Net's preprocessed data stays where ``nnUNet_preprocessed`` points (the bench
plans and preprocesses the dataset there when it is not yet, as nnU-Net would).

Which layer: this module drives the study (``experiment``) with nnU-Net; it is the
only one of ``integrations.nnunet`` that imports ``metricseg.experiment``.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from metricseg.experiment.grid import RunOutcome, run_one_safe, write_result
from metricseg.experiment.scoring import case_rows
from metricseg.experiment.spec import RunPaths, RunSpec, check_label, run_paths
from metricseg.integrations.nnunet.layout import (
    DatasetLabels,
    configuration_plans,
    dataset_labels,
    nnunet_folders,
    preprocess_command,
    preprocessing_needed,
    read_splits,
    resolve_dataset,
    training_history,
)
from metricseg.integrations.nnunet.options import (
    ENV_EPOCHS,
    ENV_ITERATIONS,
    ENV_VAL_ITERATIONS,
    SET_BY_TRAINER,
    TRAINER_LOSSES,
    check_loss_options,
    read_schedule,
    trainer_name,
)

__all__ = [
    "DEFAULT_LOSSES",
    "DEVICES",
    "NnUNetBench",
    "distribute_loss_options",
    "execute_run",
    "fold_folder",
    "prepare_bench",
    "report_notes",
    "run_bench",
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
_ENGINE = "nnunet"
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

    def specs(self) -> list[RunSpec]:
        """One :class:`RunSpec` per loss × fold, loss-major (like the grid)."""
        plans = json.loads((self.preprocessed / f"{self.plans}.json").read_text(encoding="utf-8"))
        splits = read_splits(self.preprocessed) or []
        task_options = {
            "engine": _ENGINE,
            "dataset": self.dataset,
            "configuration": self.configuration,
            "plans": self.plans,
            "plans_sha256": _plans_digest(plans, self.configuration),
        }
        train = {
            "engine": _ENGINE,
            "epochs": self.epochs,
            "iterations": self.iterations,
            "val_iterations": self.val_iterations,
            "device": self.device,
        }
        return [
            RunSpec(
                task=f"{_ENGINE}:{self.dataset}",
                loss=loss,
                seed=0,
                fold=fold,
                num_folds=self.num_folds,
                task_options={**task_options, "split_sha256": _digest(splits[fold])},
                train=dict(train),
                loss_options=dict(self.loss_options.get(loss, {})),
                label=self.dataset,
            )
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
) -> tuple[NnUNetBench, list[RunSpec]]:
    """Check everything, plan and preprocess the dataset if needed, and return the runs.

    Raises ValueError naming the problem and its fix (an nnU-Net folder variable not
    set, an unknown dataset, a loss without trainer, an option no loss takes, a fold
    the split lacks, ...) before any training starts. ``epochs``, ``iterations`` and
    ``val_iterations`` left None take ``METRICSEG_NNUNET_*`` from the environment, else
    nnU-Net's. ``log`` is told what preparing does (nnU-Net's planning takes minutes).
    """
    env = dict(os.environ if environ is None else environ)
    folders = nnunet_folders(env)
    name = resolve_dataset(dataset, folders)
    check_label(name, "dataset name")
    if device not in DEVICES:
        raise ValueError(f"--device {device!r}: nnU-Net trains on {', '.join(DEVICES)}")
    for what, value in (
        ("epochs", epochs),
        ("iterations", iterations),
        ("val-iterations", val_iterations),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"--{what} must be a positive integer, got {value!r}")
    schedule = read_schedule(env)
    notes: list[str] = []
    step = preprocessing_needed(folders, name, configuration, plans)
    if step is not None:
        if folders.raw is None or not (folders.raw / name).is_dir():
            raise ValueError(
                f"{name} is not {'planned' if step == 'plan' else 'preprocessed'} for "
                f"{configuration} in {folders.preprocessed}, and its raw data is not in "
                f"nnUNet_raw ({folders.raw or 'not set'}); set nnUNet_raw to the folder that holds "
                f"{name}/, or run: "
                + " ".join(preprocess_command(step, name, configuration, plans))
            )
        argv = preprocess_command(step, name, configuration, plans, _processes(env))
        log_file = Path(out_dir) / "nnunet" / f"{step}_{name}_{configuration}.log"
        log(f"{name} needs nnU-Net's {'planning and ' if step == 'plan' else ''}preprocessing "
            f"for {configuration}: {' '.join(argv)} (log: {log_file})")  # fmt: skip
        t0 = time.perf_counter()
        _run_nnunet_step(step, argv, env, log_file)
        notes.append(f"ran {' '.join(argv)} ({time.perf_counter() - t0:.0f} s)")
        if preprocessing_needed(folders, name, configuration, plans) is not None:
            raise RuntimeError(
                f"{' '.join(argv)} ran but {name} is still not preprocessed; see {log_file}"
            )
    folder = folders.preprocessed / name
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    labels = dataset_labels(meta)
    chosen = tuple(losses or DEFAULT_LOSSES)
    options = {loss: dict((loss_options or {}).get(loss, {})) for loss in chosen}
    _check_losses(chosen, options, labels)
    splits, made = _ensure_splits(folder, str(meta.get("file_ending", ".nii.gz")))
    if made:
        notes.append(f"wrote nnU-Net's 5-fold split (seed 12345) to {folder / 'splits_final.json'}")
    wanted = tuple(range(len(splits))) if folds is None else tuple(folds)
    bad = [
        f
        for f in wanted
        if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < len(splits)
    ]
    if bad or not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(
            f"--folds {','.join(map(str, wanted))}: {folder / 'splits_final.json'} has folds "
            f"0..{len(splits) - 1}; give each at most once"
        )
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
    specs = bench.specs()
    for spec in specs:
        run_paths(spec, out_dir)  # every path checked to stay inside OUT before run 1
    return bench, specs


def run_bench(
    specs: Sequence[RunSpec],
    out_dir: str | Path,
    *,
    on_done: Callable[[int, int, RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Every run, one after the other (each nnU-Net training uses the whole device)."""
    outcomes = []
    for i, spec in enumerate(specs, 1):
        outcome = run_one_safe(spec, out_dir, execute=execute_run)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(i, len(specs), outcome)
    return outcomes


def fold_folder(spec: RunSpec, out_dir: str | Path) -> Path:
    """The nnU-Net fold folder of a run: ``OUT/nnunet/<loss>/<Dataset>/<trainer>__<plans>__<configuration>/fold_<k>``.

    ``OUT/nnunet/<loss>`` is the ``nnUNet_results`` of the loss's trainings; point
    ``nnUNet_results`` there to predict with the models (``nnUNetv2_predict -f 0 1 ...``).
    """
    options = spec.task_options
    results = run_paths(spec, out_dir).root / "nnunet" / check_label(spec.loss_label, "loss")
    trainer = f"{trainer_name(spec.loss)}__{options['plans']}__{options['configuration']}"
    return results / str(options["dataset"]) / trainer / f"fold_{spec.fold}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _claim_fold_folder(folder: Path, spec: RunSpec) -> None:
    """Keep ``folder`` if it is this spec's (resume); delete it if another spec of the bench
    made it; refuse a folder the bench did not make."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ValueError(f"{folder} must be a folder made by metricseg bench; move it away")
    if folder.is_dir():
        marker = _read_json(folder / MARKER)
        if marker == spec.to_dict():
            return
        if marker is None:
            raise ValueError(
                f"{folder} holds an nnU-Net fold that metricseg bench did not start ({MARKER} "
                "missing); move it away and run again"
            )
        shutil.rmtree(folder)  # another spec's training (other options or schedule)
    folder.mkdir(parents=True)
    atomic_write_json(folder / MARKER, spec.to_dict())


def _train_fold(spec: RunSpec, folder: Path) -> None:
    """``metricseg nnunet train`` for the run's fold, in a child process (resuming with ``--c``)."""
    import metricseg
    from metricseg.integrations.nnunet.run import set_environment

    options, train = spec.task_options, spec.train
    env = dict(os.environ)
    env["nnUNet_results"] = str(folder.parents[2].resolve())
    for var in (ENV_EPOCHS, ENV_ITERATIONS, ENV_VAL_ITERATIONS):
        env.pop(var, None)  # the spec's schedule only
    set_environment(
        spec.loss,
        dict(spec.loss_options),
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
        sys.executable, "-m", "metricseg", "nnunet", "train", str(options["dataset"]),
        str(options["configuration"]), str(spec.fold), "--loss", spec.loss,
        "--device", str(train.get("device", "cpu")), "--plans", str(options["plans"]),
    ] + (["--c"] if resume else [])  # fmt: skip
    log = folder / CONSOLE
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(
            f"nnU-Net training of {trainer_name(spec.loss)} fold {spec.fold} failed (exit "
            f"{proc.returncode}); the end of {log}:\n"
            + log.read_text(encoding="utf-8", errors="replace")[-3000:]
        )


def execute_run(spec: RunSpec, paths: RunPaths, progress: bool | None = None) -> None:
    """Train one loss × fold with nnU-Net (unless its fold is finished), score the fold's
    validation predictions and write the run's result file.

    The hook :func:`metricseg.experiment.grid.run_one` calls under the run's lock.
    """
    del progress  # nnU-Net's output goes to the fold's log file
    from metricseg.io import read_image

    options = spec.task_options
    if options.get("engine") != _ENGINE:
        raise ValueError(f"run {spec.run_name} of {spec.task_label} is not an nnU-Net run")
    folders = nnunet_folders()
    dataset = folders.preprocessed / str(options["dataset"])
    plans = _read_json(dataset / f"{options['plans']}.json")
    splits = read_splits(dataset) or []
    if (
        plans is None
        or _plans_digest(plans, str(options["configuration"])) != options["plans_sha256"]
    ):
        raise ValueError(
            f"the plans of {dataset.name} changed since this run was set up; run the bench again"
        )
    if (
        spec.fold is None
        or spec.fold >= len(splits)
        or _digest(splits[spec.fold]) != options["split_sha256"]
    ):
        raise ValueError(
            f"{dataset / 'splits_final.json'} changed since this run was set up; run the bench again"
        )
    folder = fold_folder(spec, paths.root)
    _claim_fold_folder(folder, spec)
    t0 = time.perf_counter()
    finished = (folder / "checkpoint_final.pth").is_file() and (
        folder / "validation" / "summary.json"
    ).is_file()
    if not finished:
        _train_fold(spec, folder)
    t1 = time.perf_counter()
    meta = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    labels = dataset_labels(meta)
    ending = str(meta.get("file_ending", ".nii.gz"))
    rows: list[dict[str, Any]] = []
    dims = 0
    for case in sorted(splits[spec.fold]["val"]):
        prediction = folder / "validation" / f"{case}{ending}"
        if not prediction.is_file():
            raise RuntimeError(
                f"nnU-Net's validation wrote no {prediction}; see {folder / CONSOLE}"
            )
        pred, _ = read_image(prediction)
        gt, _ = read_image(dataset / "gt_segmentations" / f"{case}{ending}")
        dims = gt.ndim
        rows += case_rows(
            pred,
            gt,
            labels.num_classes,
            case_id=case,
            subject=case,
            class_names=labels.class_names,
            ignore_index=labels.ignore_index,
        )
    history, resumed_from = training_history(folder)
    last = history[-1] if history else None
    write_result(
        paths.result,
        spec,
        task_info={
            "name": spec.task_label,
            "spatial_dims": dims,
            "num_classes": labels.num_classes,
            "class_names": list(labels.class_names),
            "n_train": len(splits[spec.fold]["train"]),
            "n_val": 0,
            "n_test": len(splits[spec.fold]["val"]),
            "independent": True,  # nnU-Net's cases are subjects
            "source": f"nnU-Net {options['configuration']} ({options['plans']}), {dataset}",
            "description": str(meta.get("description") or meta.get("name") or dataset.name),
        },
        config={
            "engine": _ENGINE,
            "trainer": trainer_name(spec.loss),
            "configuration": options["configuration"],
            "plans": options["plans"],
            "fold_folder": str(folder.resolve()),
            "history": "nnU-Net's pseudo Dice on the validation patches of each epoch (training log)",
            "scored_checkpoint": "checkpoint_final.pth",
            **{k: v for k, v in spec.train.items() if k != "engine"},
        },
        history=history,
        # nnU-Net's final validation predicts with the final checkpoint: no epoch is selected
        best_epoch=last["epoch"] if last else None,
        best_val_dice=last["val_dice"] if last else math.nan,
        epochs_run=len(history),
        resumed_from_epoch=resumed_from,
        seconds={"train": t1 - t0 if not finished else 0.0, "evaluate": time.perf_counter() - t1},
        rows=rows,
        versions={"nnunetv2": _nnunet_version()},
    )


def _nnunet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnunetv2")
    except PackageNotFoundError:  # scoring a finished fold needs no nnU-Net
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
