"""Train an nnU-Net model with a metricseg trainer from Python (what ``metricseg nnunet train`` runs).

:func:`train` does what ``nnUNetv2_train DATASET CONFIG FOLD -tr nnUNetTrainer_metricseg_<loss>``
does on one device — load the plans, create the trainer, optionally resume, train, run
nnU-Net's final validation — but hands nnU-Net the trainer **class** instead of its
name, so nnU-Net's lookup by name is not needed. That lookup imports every trainer
module shipped with nnU-Net, among them the Primus trainers, which import ``timm`` and
with it ``torchvision``; where torchvision cannot be imported (a CPU-only torch beside
PyPI's CUDA build of torchvision) ``nnUNetv2_train -tr <any non-default trainer>``
fails, and :func:`train` still works (as does :func:`predict` for ``nnUNetv2_predict``).
With more than one GPU it calls nnU-Net's own
``run_training`` (DDP), which looks the trainer up through ``nnUNet_extTrainer``.

The loss options and the schedule travel as the environment variables of
:mod:`.options`, set here for this process (and the DDP workers it starts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metricseg.integrations.nnunet.options import (
    ENV_EPOCHS,
    ENV_ITERATIONS,
    ENV_LOSS_OPTIONS,
    ENV_LOSS_OPTIONS_FILE,
    ENV_VAL_ITERATIONS,
    check_loss_options,
    trainer_name,
)

__all__ = ["predict", "set_environment", "train"]


def set_environment(
    loss: str,
    options: Mapping[str, Any] | None = None,
    *,
    epochs: int | None = None,
    iterations: int | None = None,
    val_iterations: int | None = None,
    environ: dict[str, str] | None = None,
) -> dict[str, str]:
    """Put loss options and schedule into ``environ`` (default ``os.environ``); returns what was set.

    ``options`` replace any options already in the environment (the options file
    variable is cleared), so a run never mixes two sources.

    Example:
        >>> env = {}
        >>> set_environment("soft_dice", {"smooth": 1.0}, epochs=1, environ=env)
        {'METRICSEG_NNUNET_LOSS_OPTIONS': '{"smooth": 1.0}', 'METRICSEG_NNUNET_EPOCHS': '1'}
    """
    env = os.environ if environ is None else environ
    changed: dict[str, str] = {}
    if options is not None:
        check_loss_options(loss, options)
        changed[ENV_LOSS_OPTIONS] = json.dumps(dict(options))
        env.pop(ENV_LOSS_OPTIONS_FILE, None)
    for name, value in (
        (ENV_EPOCHS, epochs),
        (ENV_ITERATIONS, iterations),
        (ENV_VAL_ITERATIONS, val_iterations),
    ):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name.split('_')[-1].lower()} must be a positive integer, got {value!r}"
                )
            changed[name] = str(value)
    env.update(changed)
    return changed


def train(
    dataset: str,
    configuration: str,
    fold: int | str,
    loss: str,
    *,
    plans: str = "nnUNetPlans",
    device: str = "cuda",
    num_gpus: int = 1,
    continue_training: bool = False,
    export_probabilities: bool = False,
    final_validation: bool = True,
) -> Path:
    """Train nnU-Net with the metricseg trainer of ``loss``; returns the fold's output folder.

    ``dataset`` is nnU-Net's dataset id or name; ``fold`` 0..4 or ``"all"``. Loss options
    and the schedule are read from the environment (:func:`set_environment`). nnU-Net's
    folders come from ``nnUNet_preprocessed`` and ``nnUNet_results``.
    ``final_validation=False`` skips nnU-Net's prediction of the fold's validation cases
    after training (``validation/``, ``summary.json``) — for smoke runs on the CPU, where
    it takes longer than a few training iterations; it needs ``num_gpus=1``.
    """
    import torch

    name = trainer_name(loss)
    if num_gpus > 1 and not final_validation:
        raise ValueError(
            "final_validation=False needs num_gpus=1 (nnU-Net's DDP run always validates)"
        )
    fold_value: int | str = fold if fold == "all" else int(fold)
    if num_gpus > 1:
        from nnunetv2.run.run_training import run_training

        from metricseg.integrations.nnunet import ext_trainer_path

        paths = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([str(ext_trainer_path()), *paths])
        run_training(
            dataset, configuration, fold_value, name, plans, None, num_gpus,
            export_probabilities, continue_training, device=torch.device(device),
        )  # fmt: skip
        trainer_folder = _output_folder(dataset, configuration, name, plans)
        return trainer_folder / f"fold_{fold_value}"

    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.run.run_training import maybe_load_checkpoint
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from metricseg.integrations.nnunet.trainers import TRAINERS

    preprocessed = Path(_env_folder("nnUNet_preprocessed"))
    _env_folder("nnUNet_results")
    dataset_name = maybe_convert_to_dataset_name(
        dataset if dataset.startswith("Dataset") else int(dataset)
    )
    folder = preprocessed / dataset_name
    if not (folder / f"{plans}.json").is_file():
        raise ValueError(
            f"no plans {folder / (plans + '.json')}; run nnUNetv2_plan_and_preprocess -d {dataset} first"
        )
    plans_dict = load_json(str(folder / f"{plans}.json"))
    plans_dict["continue_training"] = continue_training
    trainer = TRAINERS[name](
        plans=plans_dict,
        configuration=configuration,
        fold=fold_value,
        dataset_json=load_json(str(folder / "dataset.json")),
        device=torch.device(device),
    )
    maybe_load_checkpoint(trainer, continue_training, False, None)
    trainer.run_training()
    if final_validation:
        trainer.perform_actual_validation(export_probabilities)
    return Path(trainer.output_folder)


def _output_folder(dataset: str, configuration: str, name: str, plans: str) -> Path:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    dataset_name = maybe_convert_to_dataset_name(
        dataset if dataset.startswith("Dataset") else int(dataset)
    )
    return Path(_env_folder("nnUNet_results")) / dataset_name / f"{name}__{plans}__{configuration}"


def _env_folder(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ValueError(f"{name} is not set; point it at nnU-Net's {name.split('_')[1]} folder")
    return value


def predict(argv: list[str]) -> None:
    """``nnUNetv2_predict`` with ``argv``, finding the metricseg trainers without nnU-Net's lookup.

    nnU-Net's predictor looks the checkpoint's trainer up by name
    (``recursive_find_trainer_class_by_name``, which needs torchvision, see the module
    docs). For this one call, in this process, that name resolves to the metricseg
    trainer class directly; every other name goes to nnU-Net's lookup as before. No file
    of nnU-Net changes. ``argv`` are ``nnUNetv2_predict``'s arguments (``-i -o -d -c -f
    -tr ...``).
    """
    import sys

    from nnunetv2.inference import predict_from_raw_data as nnunet_predict

    from metricseg.integrations.nnunet.trainers import TRAINERS

    nnunet_lookup = nnunet_predict.recursive_find_trainer_class_by_name

    def lookup(name: str) -> type:
        return TRAINERS[name] if name in TRAINERS else nnunet_lookup(name)

    saved_argv = sys.argv
    nnunet_predict.recursive_find_trainer_class_by_name = lookup
    sys.argv = ["nnUNetv2_predict", *argv]
    try:
        nnunet_predict.predict_entry_point()
    finally:
        sys.argv = saved_argv
        nnunet_predict.recursive_find_trainer_class_by_name = nnunet_lookup
