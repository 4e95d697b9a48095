"""nnU-Net's folders, datasets, plans, splits and training logs, read without nnU-Net.

What ``metricseg bench --engine nnunet`` needs to know before and after a training,
in plain Python (no ``nnunetv2`` import), so that it can be checked fast and tested
without nnU-Net:

* :func:`nnunet_folders` — ``nnUNet_raw`` / ``nnUNet_preprocessed`` from the
  environment, with the fix when one is missing;
* :func:`resolve_dataset` — ``901`` or ``Dataset901_Name`` to the dataset's folder name;
* :func:`preprocessing_needed` / :func:`preprocess_command` — whether the dataset still
  needs nnU-Net's planning or preprocessing for a configuration, and the command;
* :func:`configuration_plans`, :func:`read_splits`, :func:`dataset_labels`;
* :func:`parse_training_log` / :func:`training_history` — nnU-Net's per-epoch log lines
  (train loss, validation loss, pseudo Dice) as history records.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DatasetLabels",
    "NnUNetFolders",
    "configuration_plans",
    "dataset_id",
    "dataset_labels",
    "nnunet_folders",
    "parse_training_log",
    "preprocess_command",
    "preprocessing_needed",
    "read_splits",
    "resolve_dataset",
    "training_history",
]

_DATASET = re.compile(r"Dataset(\d{3})_[A-Za-z0-9_.+-]+")
_SETUP_HINT = (
    "nnU-Net's folders come from environment variables, e.g.\n"
    "  export nnUNet_raw=/data/nnUNet_raw nnUNet_preprocessed=/data/nnUNet_preprocessed\n"
    "(nnU-Net's documentation/setting_up_paths.md; nnUNet_results is not needed: the bench "
    "keeps nnU-Net's models under OUT/nnunet/)"
)


@dataclass(frozen=True)
class NnUNetFolders:
    """nnU-Net's raw and preprocessed folders (``raw`` is None when ``nnUNet_raw`` is unset)."""

    raw: Path | None
    preprocessed: Path


def nnunet_folders(environ: Mapping[str, str] | None = None) -> NnUNetFolders:
    """``nnUNet_raw`` and ``nnUNet_preprocessed`` from the environment, checked.

    ``nnUNet_preprocessed`` is needed (nnU-Net trains from it and the bench reads the
    ground truth there); ``nnUNet_raw`` only to plan and preprocess a dataset that is
    not preprocessed yet. A variable that is set must name an existing folder.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> nnunet_folders({"nnUNet_preprocessed": root}).raw is None
        True
    """
    env = os.environ if environ is None else environ
    pre = env.get("nnUNet_preprocessed", "").strip()
    raw = env.get("nnUNet_raw", "").strip()
    if not pre:
        missing = "nnUNet_preprocessed" + ("" if raw else " and nnUNet_raw")
        raise ValueError(f"{missing} not set. {_SETUP_HINT}")
    for name, value in (("nnUNet_preprocessed", pre), ("nnUNet_raw", raw)):
        if value and not Path(value).is_dir():
            raise ValueError(
                f"{name}={value!r} is not a folder; create it (mkdir -p {value}) or point "
                f"{name} at nnU-Net's folder"
            )
    return NnUNetFolders(Path(raw) if raw else None, Path(pre))


def dataset_id(name: str) -> int:
    """The id of an nnU-Net dataset folder name.

    Example:
        >>> dataset_id("Dataset901_MetricsegDemo")
        901
    """
    match = _DATASET.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not an nnU-Net dataset name like Dataset901_Name")
    return int(match.group(1))


def resolve_dataset(dataset: str | int, folders: NnUNetFolders) -> str:
    """The folder name ``DatasetXXX_Name`` of ``dataset`` (an id like ``901`` or a name).

    The dataset is looked up in ``nnUNet_preprocessed`` and ``nnUNet_raw``, as nnU-Net
    does; an id that matches no folder, or two, is an error naming what is there.
    """
    roots = [r for r in (folders.preprocessed, folders.raw) if r is not None]
    present = sorted(
        {p.name for r in roots for p in r.iterdir() if p.is_dir() and _DATASET.fullmatch(p.name)}
    )
    text = str(dataset).strip()
    if _DATASET.fullmatch(text):
        candidates = [text] if text in present else []
    elif text.isdigit() and 1 <= int(text) <= 999:
        candidates = [n for n in present if dataset_id(n) == int(text)]
    else:
        raise ValueError(
            f"--dataset {dataset!r} must be an nnU-Net dataset id (1-999) or a name like "
            "Dataset901_Name"
        )
    where = " and ".join(str(r) for r in roots)
    if not candidates:
        raise ValueError(
            f"dataset {text!r} is in neither {where} (found: {', '.join(present) or 'none'}); "
            "check the id, or nnUNet_raw / nnUNet_preprocessed"
        )
    if len(candidates) > 1:
        raise ValueError(
            f"dataset id {text} matches {', '.join(candidates)} in {where}; give the full name"
        )
    return candidates[0]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def configuration_plans(plans: Mapping[str, Any], configuration: str) -> dict[str, Any]:
    """The settings of ``configuration`` in nnU-Net plans, its ``inherits_from`` chain resolved.

    Example:
        >>> plans = {"configurations": {"3d_fullres": {"data_identifier": "d", "batch_size": 2},
        ...          "3d_cascade_fullres": {"inherits_from": "3d_fullres", "batch_size": 4}}}
        >>> configuration_plans(plans, "3d_cascade_fullres")
        {'data_identifier': 'd', 'batch_size': 4}
    """
    configurations = plans.get("configurations", {})
    if configuration not in configurations:
        raise ValueError(
            f"configuration {configuration!r} is not in the plans; they have "
            f"{', '.join(configurations) or 'none'}"
        )
    own = dict(configurations[configuration])
    parent = own.pop("inherits_from", None)
    if parent is None:
        return own
    if parent == configuration:
        raise ValueError(f"configuration {configuration!r} inherits from itself")
    return {**configuration_plans(plans, parent), **own}


def _case_ids(folder: Path, file_ending: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.name[: -len(file_ending)] for p in folder.iterdir() if p.name.endswith(file_ending)}


def preprocessing_needed(
    folders: NnUNetFolders, dataset: str, configuration: str, plans: str = "nnUNetPlans"
) -> str | None:
    """``None`` when ``dataset`` is ready to train ``configuration``; else what is missing.

    ``"plan"``: no plans file (``nnUNetv2_plan_and_preprocess`` makes it);
    ``"preprocess"``: the plans have the configuration but its preprocessed data (one
    ``<case>.pkl`` per case of ``gt_segmentations``) or the ground truth is missing
    (``nnUNetv2_preprocess``). A configuration the plans lack is a ValueError.
    """
    folder = folders.preprocessed / dataset
    plans_dict = _read_json(folder / f"{plans}.json")
    if plans_dict is None:
        return "plan"
    settings = configuration_plans(plans_dict, configuration)
    meta = _read_json(folder / "dataset.json") or {}
    ending = str(meta.get("file_ending", ".nii.gz"))
    cases = _case_ids(folder / "gt_segmentations", ending)
    data = folder / str(settings.get("data_identifier", ""))
    if not cases or not data.is_dir() or not cases <= _case_ids(data, ".pkl"):
        return "preprocess"
    return None


def preprocess_command(
    step: str, dataset: str, configuration: str, plans: str = "nnUNetPlans", processes: int = 8
) -> list[str]:
    """The nnU-Net command (argv) that does ``step`` (:func:`preprocessing_needed`).

    Example:
        >>> " ".join(preprocess_command("plan", "Dataset901_Demo", "3d_fullres", processes=2))
        'nnUNetv2_plan_and_preprocess -d 901 -c 3d_fullres -np 2 -npfp 2'
    """
    ident = str(dataset_id(dataset))
    if step == "plan":
        if plans != "nnUNetPlans":
            raise ValueError(
                f"no plans {plans!r} for {dataset}: nnU-Net's planner makes 'nnUNetPlans'; "
                f"make {plans!r} first (nnUNetv2_plan_experiment -d {ident} -overwrite_plans_name "
                f"{plans} ...) or use the default plans"
            )
        return [
            "nnUNetv2_plan_and_preprocess", "-d", ident, "-c", configuration,
            "-np", str(processes), "-npfp", str(processes),
        ]  # fmt: skip
    if step == "preprocess":
        return [
            "nnUNetv2_preprocess", "-d", ident, "-plans_name", plans, "-c", configuration,
            "-np", str(processes),
        ]  # fmt: skip
    raise ValueError(f"step must be 'plan' or 'preprocess', got {step!r}")


def read_splits(folder: Path) -> list[dict[str, list[str]]] | None:
    """nnU-Net's cross-validation folds (``splits_final.json`` in the dataset's preprocessed
    folder): one ``{"train": [...], "val": [...]}`` per fold; None when there is none yet."""
    data = _read_json(folder / "splits_final.json")
    if data is None:
        return None
    if not isinstance(data, list) or not all(
        isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("val"), list)
        for s in data
    ):
        raise ValueError(
            f"{folder / 'splits_final.json'} is not a list of {{'train': [...], 'val': [...]}}"
        )
    return [
        {"train": [str(c) for c in s["train"]], "val": [str(c) for c in s["val"]]} for s in data
    ]


@dataclass(frozen=True)
class DatasetLabels:
    """The classes a prediction of an nnU-Net dataset is scored on.

    Label-map datasets: the ``labels`` of ``dataset.json`` (values ``0..C-1``).
    Region-based datasets (a label whose value is a list): nnU-Net writes its
    predictions as label maps (``regions_class_order``), so they are scored per label
    value of those maps, ``0..max``, not per region.
    """

    num_classes: int
    class_names: tuple[str, ...]
    ignore_index: int | None
    regions: bool


def dataset_labels(meta: Mapping[str, Any]) -> DatasetLabels:
    """The :class:`DatasetLabels` of an nnU-Net ``dataset.json``.

    Example:
        >>> dataset_labels({"labels": {"background": 0, "tumour": 1, "ignore": 2}})
        DatasetLabels(num_classes=2, class_names=('background', 'tumour'), ignore_index=2, regions=False)
        >>> dataset_labels({"labels": {"background": 0, "whole": [1, 2], "core": 2}}).class_names
        ('background', 'label1', 'core')
    """
    labels = meta.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise ValueError(f"dataset.json has no 'labels' table (got {labels!r})")
    ignore = labels.get("ignore")
    if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, int)):
        raise ValueError(f"dataset.json: the 'ignore' label must be an int, got {ignore!r}")
    rest = {k: v for k, v in labels.items() if k != "ignore"}
    regions = any(isinstance(v, (list, tuple)) for v in rest.values())
    values: dict[int, str] = {}
    for name, value in rest.items():
        members = list(value) if isinstance(value, (list, tuple)) else [value]
        if not members or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in members
        ):
            raise ValueError(f"dataset.json: label {name!r} has value {value!r}, not ints >= 0")
        for v in members:
            values.setdefault(v, "")
        if len(members) == 1:  # a name for exactly this label value
            if values[members[0]] and not regions:
                raise ValueError(
                    f"dataset.json: labels {values[members[0]]!r} and {name!r} share value {members[0]}"
                )
            values[members[0]] = values[members[0]] or name
    num_classes = max(values) + 1
    if not regions and sorted(values) != list(range(num_classes)):
        raise ValueError(
            f"dataset.json: label values {sorted(values)} are not consecutive from 0 (nnU-Net "
            "needs 0, 1, ..., C-1)"
        )
    names = tuple(values.get(v) or f"label{v}" for v in range(num_classes))
    if ignore is not None and ignore < num_classes:
        raise ValueError(
            f"dataset.json: the ignore label {ignore} must be above every class (nnU-Net's rule)"
        )
    return DatasetLabels(num_classes, names, ignore, regions)


# nnU-Net's log lines: "<datetime>: <message> " (print_to_log_file, a trailing space)
_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?: (.*?)\s*$")
_NUMPY_SCALAR = re.compile(r"np\.\w+\(([^()]*)\)")  # numpy >= 2 repr: np.float32(0.12)


def _number(text: str) -> float:
    return float(_NUMPY_SCALAR.sub(r"\1", text.strip()))


def parse_training_log(text: str) -> dict[int, dict[str, Any]]:
    """The complete epochs of one nnU-Net training log, by nnU-Net's 0-based epoch.

    nnU-Net (2.x) logs each epoch as ``Epoch N``, ``train_loss X``, ``val_loss X``,
    ``Pseudo dice [d1, d2, ...]`` (one per foreground class or region, on the validation
    *patches* of that epoch, counts pooled over them) and ``Epoch time: S s``. An epoch
    counts once its pseudo Dice is logged; ``val_dice`` is the mean over the classes
    (NaN ones left out, as nnU-Net's ``mean_fg_dice``) of the 4-decimal values logged.

    Example:
        >>> log = '''2025-01-01 10:00:00.1: Epoch 0
        ... 2025-01-01 10:00:01.2: train_loss -0.25
        ... 2025-01-01 10:00:01.2: val_loss -0.3
        ... 2025-01-01 10:00:01.2: Pseudo dice [np.float32(0.5), np.float32(0.3)]
        ... 2025-01-01 10:00:01.2: Epoch time: 1.1 s'''
        >>> parse_training_log(log)[0]["val_dice"]
        0.4
    """
    epochs: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        message = match.group(1)
        try:
            if (m := re.fullmatch(r"Epoch (\d+)", message)) is not None:
                current = {"epoch": int(m.group(1)) + 1}
            elif current is None:
                continue
            elif message.startswith("train_loss "):
                current["train_loss"] = _number(message[len("train_loss ") :])
            elif message.startswith("val_loss "):
                current["val_loss"] = _number(message[len("val_loss ") :])
            elif (m := re.fullmatch(r"Pseudo dice \[(.*)\]", message)) is not None:
                values = [_number(v) for v in m.group(1).split(",") if v.strip()]
                finite = [v for v in values if not math.isnan(v)]
                current["pseudo_dice"] = values
                current["val_dice"] = sum(finite) / len(finite) if finite else math.nan
                epochs[current["epoch"] - 1] = current
            elif (m := re.fullmatch(r"Epoch time: (\S+) s", message)) is not None:
                current["seconds"] = _number(m.group(1))
        except ValueError:
            continue  # a line of another format: the epoch stays incomplete or keeps its values
    return epochs


def _log_order(path: Path) -> tuple[int, ...]:
    # training_log_2026_12_2_02_22_45.txt: month and day are not zero-padded, so the
    # names sort by their numbers, not as text
    return tuple(int(n) for n in re.findall(r"\d+", path.name))


def training_history(fold_folder: Path) -> tuple[list[dict[str, Any]], int | None]:
    """``(history, resumed_from_epoch)`` of an nnU-Net fold from its ``training_log_*.txt``.

    Each start of nnU-Net (a resumed training too) writes a new log; they are read in
    the order they were started and a later log's epochs replace an earlier one's (a
    resume repeats the epochs after its checkpoint). The history ends at the last
    epoch of the latest log that trained any. ``resumed_from_epoch`` is the number of
    epochs done before that latest start (None when it started from scratch).
    ``history`` is empty when no log holds a complete epoch.
    """
    logs = sorted(fold_folder.glob("training_log_*.txt"), key=_log_order)
    merged: dict[int, dict[str, Any]] = {}
    last_start: int | None = None
    last_end = -1
    for log in logs:
        epochs = parse_training_log(log.read_text(encoding="utf-8", errors="replace"))
        if epochs:
            merged.update(epochs)
            last_start, last_end = min(epochs), max(epochs)
    history = [merged[e] for e in range(last_end + 1) if e in merged]
    if len(history) != last_end + 1:  # a gap: the logs do not tell a whole training
        return [], None
    return history, (last_start or None)
