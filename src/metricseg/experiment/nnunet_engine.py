"""The nnU-Net engine of ``metricseg bench --engine nnunet``: one run of the study trained by
nnU-Net with a metricseg trainer, then scored on the one scoring path.

:func:`execute_nnunet_run` is the ``execute`` hook of :func:`metricseg.experiment.grid.run_one`,
so an nnU-Net run gets the grid's validated paths, lock, skipping and error files; nnU-Net's
side (folders, plans, splits, logs) is :mod:`metricseg.integrations.nnunet.bench`.
"""

from __future__ import annotations

import time
from typing import Any

from metricseg.experiment.grid import write_result
from metricseg.experiment.scoring import case_rows
from metricseg.experiment.spec import RunPaths, RunSpec
from metricseg.integrations.nnunet import bench as nnunet
from metricseg.integrations.nnunet.layout import training_history
from metricseg.io import read_image

__all__ = ["execute_nnunet_run"]


def execute_nnunet_run(spec: RunSpec, paths: RunPaths, progress: bool | None = None) -> None:
    """One run of ``--engine nnunet`` (the ``execute`` hook of ``grid.run_one``, under the
    run's lock): nnU-Net trains the fold unless it finished, then every validation case of
    the fold is scored with ``scoring.case_rows`` and the result file written."""
    del progress  # nnU-Net's console output goes to the fold's log file
    options, fold = spec.task_options, int(spec.fold)
    dataset = nnunet.check_run(options, fold)
    folder = nnunet.fold_folder(paths.root, spec.loss, options, fold)
    nnunet.claim_fold_folder(folder, spec.to_dict())
    t0 = time.perf_counter()
    trained = not nnunet.fold_finished(folder)
    if trained:
        nnunet.train_fold(
            folder,
            loss=spec.loss,
            fold=fold,
            task_options=options,
            train=spec.train,
            loss_options=spec.loss_options,
        )
    t1 = time.perf_counter()
    labels, cases = nnunet.validation_cases(folder, dataset, fold)
    rows: list[dict[str, Any]] = []
    dims = 0
    for case, prediction, truth in cases:
        pred, _ = read_image(prediction)
        gt, _ = read_image(truth)
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
        task_info=nnunet.run_task_info(dataset, options, fold, labels, dims),
        config=nnunet.run_config(spec.loss, options, spec.train, folder),
        history=history,
        # nnU-Net's final validation predicts with the final checkpoint: no epoch is selected
        best_epoch=last["epoch"] if last else None,
        best_val_dice=last["val_dice"] if last else float("nan"),
        epochs_run=len(history),
        resumed_from_epoch=resumed_from,
        seconds={"train": t1 - t0 if trained else 0.0, "evaluate": time.perf_counter() - t1},
        rows=rows,
        versions={"nnunetv2": nnunet.nnunet_version()},
    )
