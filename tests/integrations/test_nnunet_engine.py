"""``metricseg bench --engine nnunet``: the study with nnU-Net as the network.

Fast tests (no nnU-Net needed): nnU-Net's folders from the environment, dataset lookup,
the preprocessing state, dataset labels, the training-log parser, the checkpoint reader,
loss options, the fold folder's ownership, and a whole bench over hand-made nnU-Net
outputs (a preprocessed dataset and finished folds), scored and reported.

Slow (needs nnunetv2; an error when ``CI=true`` and it is missing): the command end to
end on a generated dataset — planning, 2 losses × 2 folds of nnU-Net training, the
result files against nnU-Net's own validation files and counts, a rerun that trains
nothing, a fold scored again without training, a changed schedule trained again.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from metricseg.cli import main
from metricseg.experiment.grid import load_result, result_path
from metricseg.experiment.scoring import case_rows
from metricseg.experiment.spec import RunSpec
from metricseg.integrations.nnunet.bench import (
    MARKER,
    claim_fold_folder,
    distribute_loss_options,
    fold_folder,
    prepare_bench,
    report_notes,
)
from metricseg.integrations.nnunet.checkpoint import load_checkpoint_weights_only
from metricseg.integrations.nnunet.layout import (
    NnUNetFolders,
    configuration_plans,
    dataset_labels,
    nnunet_folders,
    parse_training_log,
    preprocess_command,
    preprocessing_needed,
    read_splits,
    resolve_dataset,
    training_history,
)
from metricseg.io import read_image, write_image

REPO = Path(__file__).resolve().parents[2]
NAME = "Dataset905_Handmade"


# ---------------------------------------------------------------- folders and datasets


def test_folders_from_the_environment_say_what_is_missing(tmp_path):
    with pytest.raises(
        ValueError, match=r"(?s)nnUNet_preprocessed and nnUNet_raw not set.*export nnUNet_raw="
    ):
        nnunet_folders({})
    with pytest.raises(ValueError, match=r"^nnUNet_preprocessed not set"):
        nnunet_folders({"nnUNet_raw": str(tmp_path)})
    with pytest.raises(ValueError, match="nnUNet_raw='/nonexistent/raw' is not a folder"):
        nnunet_folders({"nnUNet_preprocessed": str(tmp_path), "nnUNet_raw": "/nonexistent/raw"})
    folders = nnunet_folders({"nnUNet_preprocessed": str(tmp_path)})
    assert folders == NnUNetFolders(None, tmp_path)


def test_dataset_by_id_or_name(tmp_path):
    pre, raw = tmp_path / "pre", tmp_path / "raw"
    for folder in (
        pre / "Dataset004_Hippocampus",
        raw / "Dataset004_Hippocampus",
        raw / "Dataset027_ACDC",
        raw / "Dataset028_A",
        pre / "Dataset028_B",
    ):
        folder.mkdir(parents=True)
    folders = NnUNetFolders(raw, pre)
    assert resolve_dataset("4", folders) == "Dataset004_Hippocampus"
    assert resolve_dataset(27, folders) == "Dataset027_ACDC"
    assert resolve_dataset("Dataset027_ACDC", folders) == "Dataset027_ACDC"
    with pytest.raises(ValueError, match="matches Dataset028_A, Dataset028_B"):
        resolve_dataset("28", folders)
    with pytest.raises(ValueError, match=r"dataset '5' is in neither .* \(found: Dataset004"):
        resolve_dataset("5", folders)
    with pytest.raises(ValueError, match="must be an nnU-Net dataset id"):
        resolve_dataset("../etc", folders)


def _preprocessed(root: Path, cases: list[str], *, plans: bool = True, data: bool = True) -> Path:
    folder = root / NAME
    (folder / "gt_segmentations").mkdir(parents=True)
    meta = {
        "labels": {"background": 0, "a": 1, "b": 2, "ignore": 3},
        "file_ending": ".nii.gz",
        "description": "hand-made",
    }
    (folder / "dataset.json").write_text(json.dumps(meta))
    if plans:
        configurations = {
            "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2},
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "data_identifier": "casc"},
        }
        (folder / "nnUNetPlans.json").write_text(
            json.dumps({"dataset_name": NAME, "configurations": configurations})
        )
    if data:
        (folder / "nnUNetPlans_3d_fullres").mkdir()
    for case in cases:
        (folder / "gt_segmentations" / f"{case}.nii.gz").write_bytes(b"")
        if data:
            (folder / "nnUNetPlans_3d_fullres" / f"{case}.pkl").write_bytes(b"")
    return folder


def test_preprocessing_state_and_command(tmp_path):
    folders = NnUNetFolders(None, tmp_path)
    _preprocessed(tmp_path, ["c0", "c1"], plans=False)
    assert preprocessing_needed(folders, NAME, "3d_fullres") == "plan"
    (tmp_path / NAME).rename(tmp_path / "x")
    folder = _preprocessed(tmp_path, ["c0", "c1"], data=False)
    assert preprocessing_needed(folders, NAME, "3d_fullres") == "preprocess"
    (folder / "nnUNetPlans_3d_fullres").mkdir()
    (folder / "nnUNetPlans_3d_fullres" / "c0.pkl").write_bytes(b"")
    assert preprocessing_needed(folders, NAME, "3d_fullres") == "preprocess"  # c1 missing
    (folder / "nnUNetPlans_3d_fullres" / "c1.pkl").write_bytes(b"")
    assert preprocessing_needed(folders, NAME, "3d_fullres") is None
    assert preprocessing_needed(folders, NAME, "3d_cascade_fullres") == "preprocess"  # casc/
    with pytest.raises(ValueError, match="configuration '2d' is not in the plans; they have 3d_"):
        preprocessing_needed(folders, NAME, "2d")
    assert preprocess_command("preprocess", NAME, "2d", "P", 3) == [
        "nnUNetv2_preprocess",
        "-d",
        "905",
        "-plans_name",
        "P",
        "-c",
        "2d",
        "-np",
        "3",
    ]
    with pytest.raises(ValueError, match="nnU-Net's planner makes 'nnUNetPlans'"):
        preprocess_command("plan", NAME, "3d_fullres", "MyPlans")


def test_configuration_inherits_its_parents_settings():
    plans = {
        "configurations": {
            "a": {"x": 1, "y": 2},
            "b": {"inherits_from": "a", "y": 3},
            "c": {"inherits_from": "b", "z": 4},
        }
    }
    assert configuration_plans(plans, "c") == {"x": 1, "y": 3, "z": 4}


def test_splits_file_is_checked(tmp_path):
    assert read_splits(tmp_path) is None
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}]))
    assert read_splits(tmp_path) == [{"train": ["a"], "val": ["b"]}]
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": ["a"]}]))
    with pytest.raises(ValueError, match="is not a list of"):
        read_splits(tmp_path)


def test_dataset_labels():
    labels = dataset_labels({"labels": {"background": 0, "liver": 1, "tumour": 2}})
    assert (labels.num_classes, labels.class_names, labels.ignore_index, labels.regions) == (
        3,
        ("background", "liver", "tumour"),
        None,
        False,
    )
    regions = dataset_labels(
        {"labels": {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enh": 3, "ignore": 4}}
    )
    assert regions.regions and regions.num_classes == 4 and regions.ignore_index == 4
    assert regions.class_names == ("background", "label1", "label2", "enh")
    with pytest.raises(ValueError, match="not consecutive from 0"):
        dataset_labels({"labels": {"background": 0, "a": 2}})
    with pytest.raises(ValueError, match="ignore label 1 must be above every class"):
        dataset_labels({"labels": {"background": 0, "a": 1, "b": 2, "ignore": 1}})
    with pytest.raises(ValueError, match="share value 1"):
        dataset_labels({"labels": {"background": 0, "a": 1, "b": 1}})


# ---------------------------------------------------------------- nnU-Net's training log


def _log(epochs: list[tuple[int, float, list[str]]], numpy2: bool = True) -> str:
    """A log as nnU-Net 2.8 writes it (``print_to_log_file``: timestamp, message, a space)."""
    lines = ["2026-12-02 02:22:45.1: ", "2026-12-02 02:22:45.2: This split has 4 training cases. "]
    for epoch, loss, dice in epochs:
        values = ", ".join(f"np.float32({d})" if numpy2 else d for d in dice)
        lines += [
            f"2026-12-02 02:22:46.351118: Epoch {epoch} ",
            "2026-12-02 02:22:46.351250: Current learning rate: 0.01 ",
            f"2026-12-02 02:22:47: train_loss {loss} ",
            f"2026-12-02 02:22:47.900791: val_loss {loss + 0.1:.4f} ",
            f"2026-12-02 02:22:47.900851: Pseudo dice [{values}] ",
            "2026-12-02 02:22:47.900916: Epoch time: 1.55 s ",
            "2026-12-02 02:22:47.900960: Yayy! New best EMA pseudo Dice: 0.0172 ",
        ]
    return "\n".join(lines) + "\n"


def test_log_parser_reads_every_epoch():
    epochs = parse_training_log(_log([(0, -0.25, ["0.5", "0.3"]), (1, -0.5, ["0.7", "nan"])]))
    assert sorted(epochs) == [0, 1]
    first, second = epochs[0], epochs[1]
    assert first == {
        "epoch": 1,
        "train_loss": -0.25,
        "val_loss": -0.15,
        "pseudo_dice": [0.5, 0.3],
        "val_dice": 0.4,
        "seconds": 1.55,
    }
    assert math.isnan(second["pseudo_dice"][1]) and second["val_dice"] == 0.7  # NaN left out
    # NumPy 1 prints plain numbers in the list
    assert (
        parse_training_log(_log([(0, 0.1, ["0.25", "0.75"])], numpy2=False))[0]["val_dice"] == 0.5
    )
    # an epoch cut off before its pseudo Dice (a killed run) does not count
    cut = (
        _log([(0, 0.1, ["0.2"])])
        + "2026-12-02 02:30:00.1: Epoch 1 \n2026-12-02 02:30:01.1: train_loss 0.3 \n"
    )
    assert sorted(parse_training_log(cut)) == [0]
    assert parse_training_log("not a log\nPseudo dice [0.1]\n") == {}


def test_history_merges_resumed_logs_in_start_order(tmp_path):
    # names as nnU-Net writes them: month and day not zero-padded (2 Dec starts before 10 Dec)
    (tmp_path / "training_log_2026_12_2_09_00_00.txt").write_text(
        _log([(e, 1.0 - e / 10, ["0.1"]) for e in range(4)])
    )
    (tmp_path / "training_log_2026_12_10_08_00_00.txt").write_text(
        _log([(e, 2.0, ["0.9"]) for e in (2, 3, 4)])  # resumed from the checkpoint of epoch 2
    )
    (tmp_path / "training_log_2026_12_10_09_00_00.txt").write_text(_log([]))  # validation only
    history, resumed = training_history(tmp_path)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert [h["val_dice"] for h in history] == [0.1, 0.1, 0.9, 0.9, 0.9]
    assert resumed == 2
    (tmp_path / "training_log_2026_12_11_09_00_00.txt").write_text(_log([(7, 0.0, ["0.5"])]))
    assert training_history(tmp_path) == ([], None)  # a gap: not one training


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_reader_allows_numpy_scalars_and_nothing_else(tmp_path):
    good = {
        "network_weights": {"w": torch.ones(2)},
        "logging": {"train_losses": [np.float32(0.5), np.float64(0.25)], "n": [np.int64(3)]},
        "init_args": {"device": torch.device("cpu"), "fold": 0},
        "current_epoch": 3,
    }
    torch.save(good, tmp_path / "good.pth")
    loaded = load_checkpoint_weights_only(tmp_path / "good.pth")
    assert loaded["logging"]["train_losses"] == [0.5, 0.25] and loaded["current_epoch"] == 3
    assert torch.equal(loaded["network_weights"]["w"], torch.ones(2))
    torch.save({"payload": _Evil(tmp_path / "evil-ran")}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint_weights_only(tmp_path / "evil.pth")
    assert not (tmp_path / "evil-ran").exists()


class _Evil:
    """Unpickling it runs code (touches a file): what weights_only=False would allow."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# ---------------------------------------------------------------- loss options and folds


def test_loss_options_go_to_the_losses_that_take_them():
    options = distribute_loss_options(
        ["soft_dice", "lovasz_softmax", "ce"],
        {"classes": "foreground"},
        {"ce": {"class_weights": [1.0, 2.0]}, "soft_dice": {"smooth": 1.0}},
    )
    assert options == {
        "soft_dice": {"classes": "foreground", "smooth": 1.0},
        "lovasz_softmax": {"classes": "foreground"},
        "ce": {"class_weights": [1.0, 2.0]},
    }
    with pytest.raises(ValueError, match="no loss of the study takes 'smoth'"):
        distribute_loss_options(["soft_dice"], {"smoth": 1})
    with pytest.raises(ValueError, match="'focal' is not a loss of the study"):
        distribute_loss_options(["soft_dice"], {}, {"focal": {"gamma": 2}})
    with pytest.raises(ValueError, match="unknown option 'gama' for loss 'focal'"):
        distribute_loss_options(["focal"], {}, {"focal": {"gama": 2}})


def test_fold_folder_belongs_to_its_run(tmp_path):
    spec = RunSpec("nnunet:X", "ce", fold=0, task_options={"x": 1})
    other = RunSpec("nnunet:X", "ce", fold=0, task_options={"x": 2})
    folder = tmp_path / "fold_0"
    claim_fold_folder(folder, spec.to_dict())
    assert json.loads((folder / MARKER).read_text()) == spec.to_dict()
    (folder / "checkpoint_latest.pth").write_bytes(b"x")
    claim_fold_folder(folder, spec.to_dict())  # the same run: kept, to resume
    assert (folder / "checkpoint_latest.pth").exists()
    claim_fold_folder(folder, other.to_dict())  # another spec's training: started afresh
    assert not (folder / "checkpoint_latest.pth").exists()
    assert json.loads((folder / MARKER).read_text()) == other.to_dict()
    foreign = tmp_path / "fold_1"
    foreign.mkdir()
    (foreign / "checkpoint_final.pth").write_bytes(b"x")
    with pytest.raises(ValueError, match="metricseg bench did not start"):
        claim_fold_folder(foreign, spec.to_dict())
    assert (foreign / "checkpoint_final.pth").exists()


def test_case_rows_leave_ignored_voxels_out():
    label = np.array([[0, 1, 1, 3], [3, 3, 0, 1]])
    pred = np.array([[1, 1, 0, 1], [1, 0, 0, 1]])  # the last three predictions under 3 are ignored
    rows = case_rows(pred, label, 2, case_id="c", ignore_index=3)
    # kept voxels: (0,0) 0→1, (0,1) 1→1, (0,2) 1→0, (1,2) 0→0, (1,3) 1→1
    assert [(r["tp"], r["fp"], r["fn"]) for r in rows] == [(1, 1, 1), (2, 1, 1)]
    assert rows[0]["voxels"] == 5 and rows[1]["dice"] == 4 / 6


# ---------------------------------------------------------------- a bench over hand-made outputs


CASES = [f"case{i}" for i in range(10)]


def _handmade(root: Path) -> Path:
    """A preprocessed dataset (plans, ground truth, split) as nnU-Net leaves it, 3 classes + ignore."""
    folder = _preprocessed(root / "pre", CASES)
    rng = np.random.default_rng(3)
    for case in CASES:
        gt = rng.integers(0, 3, (6, 7, 8)).astype(np.uint8)
        gt[0] = 3  # ignored slice
        write_image(folder / "gt_segmentations" / f"{case}.nii.gz", gt)
    splits = [
        {"train": [c for c in CASES if c not in CASES[k::5]], "val": CASES[k::5]} for k in range(5)
    ]
    (folder / "splits_final.json").write_text(json.dumps(splits))
    return folder


def _fold(spec: RunSpec, out: Path) -> Path:
    return fold_folder(out, spec.loss, spec.task_options, spec.fold)


def _specs(*args, **kwargs) -> list[RunSpec]:
    return [RunSpec(**f) for f in prepare_bench(*args, **kwargs).run_fields()]


def _finish_fold(spec: RunSpec, out: Path, folder: Path, seed: int) -> None:
    """What nnU-Net leaves in a fold after training and validation (predictions, logs)."""
    fold = _fold(spec, out)
    claim_fold_folder(fold, spec.to_dict())
    (fold / "checkpoint_final.pth").write_bytes(b"never read")
    (fold / "validation").mkdir()
    (fold / "validation" / "summary.json").write_text("{}")
    (fold / "training_log_2026_1_1_00_00_00.txt").write_text(
        _log([(0, 0.5, ["0.1", "0.2"]), (1, 0.4, ["0.3", "0.4"])])
    )
    rng = np.random.default_rng(seed)
    for case in read_splits(folder)[spec.fold]["val"]:
        gt, _ = read_image(folder / "gt_segmentations" / f"{case}.nii.gz")
        pred = np.where(rng.random(gt.shape) < 0.7, gt % 3, rng.integers(0, 3, gt.shape))
        write_image(fold / "validation" / f"{case}.nii.gz", pred.astype(np.uint8))


def test_bench_over_finished_folds_scores_every_validation_case(tmp_path, monkeypatch, capsys):
    """The command over folds nnU-Net has finished: no training, every case scored, the report."""
    folder = _handmade(tmp_path)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.delenv("nnUNet_raw", raising=False)
    for var in (
        "METRICSEG_NNUNET_EPOCHS",
        "METRICSEG_NNUNET_ITERATIONS",
        "METRICSEG_NNUNET_VAL_ITERATIONS",
    ):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "out"
    losses = ["soft_dice", "ce"]
    options = distribute_loss_options(losses, {}, {"soft_dice": {"classes": "foreground"}})
    bench = prepare_bench(
        "905", out, losses=losses, folds=[0, 2], epochs=2, device="cpu", loss_options=options
    )
    specs = [RunSpec(**f) for f in bench.run_fields()]
    assert [(s.loss, s.fold) for s in specs] == [
        ("soft_dice", 0),
        ("soft_dice", 2),
        ("ce", 0),
        ("ce", 2),
    ]
    assert bench.num_folds == 5 and bench.labels.ignore_index == 3
    assert all(s.label == NAME and s.seed == 0 and s.train["epochs"] == 2 for s in specs)
    assert dict(specs[0].loss_options) == {"classes": "foreground"}
    for i, spec in enumerate(specs):
        _finish_fold(spec, out, folder, seed=i)
    argv = [
        "bench",
        "--engine",
        "nnunet",
        "--dataset",
        "905",
        "--losses",
        "soft_dice,ce",
        "--folds",
        "0,2",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--no-plots",
        "--loss-option",
        "soft_dice:classes=foreground",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("test Dice") == 4
    for spec in specs:
        result = load_result(result_path(spec, out))
        assert result["spec"] == spec.to_dict()
        assert result["task_info"]["independent"] is True
        assert result["task_info"]["class_names"] == ["background", "a", "b"]
        assert [h["val_dice"] for h in result["history"]] == pytest.approx([0.15, 0.35])
        assert result["best_epoch"] == result["epochs_run"] == 2
        assert result["seconds"]["train"] == 0.0  # finished folds: nothing trained
        val = read_splits(folder)[spec.fold]["val"]
        assert sorted({r["case"] for r in result["rows"]}) == sorted(val)
        for row in result["rows"]:
            assert row["subject"] == row["case"]
            pred, _ = read_image(_fold(spec, out) / "validation" / f"{row['case']}.nii.gz")
            gt, _ = read_image(folder / "gt_segmentations" / f"{row['case']}.nii.gz")
            keep, c = gt != 3, row["class_index"]
            tp = int(np.sum((pred == c) & (gt == c)))
            fp = int(np.sum((pred == c) & (gt != c) & keep))
            fn = int(np.sum((pred != c) & (gt == c)))
            assert (row["tp"], row["fp"], row["fn"], row["voxels"]) == (tp, fp, fn, int(keep.sum()))
            assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    summary = (out / "summary.md").read_text()
    assert "## Claims of the paper, tested" in summary and "| C1 |" in summary
    assert "nnU-Net's pseudo Dice" in summary and "ignore label 3" in summary
    # the same bench again keeps every result
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 4
    # a fold folder the bench did not make is refused, not overwritten
    (spec3,) = _specs("905", out, losses=["focal"], folds=[3], device="cpu")
    _fold(spec3, out).mkdir(parents=True)
    argv3 = [
        "bench",
        "--engine",
        "nnunet",
        "--dataset",
        "905",
        "--losses",
        "focal",
        "--folds",
        "3",
        "--device",
        "cpu",
        "--no-plots",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv3) == 1
    assert "did not start" in (result_path(spec3, out).with_suffix(".error.txt")).read_text()
    assert list(_fold(spec3, out).iterdir()) == []
    notes = report_notes(bench, out)
    assert any("pseudo Dice" in n for n in notes) and any("ignore label 3" in n for n in notes)


def test_prepare_refuses_what_cannot_run(tmp_path, monkeypatch):
    _handmade(tmp_path)
    env = {"nnUNet_preprocessed": str(tmp_path / "pre")}
    kwargs = {"environ": env, "device": "cpu"}
    with pytest.raises(ValueError, match=r"has folds 0\.\.4"):
        prepare_bench("905", tmp_path / "o", losses=["ce"], folds=[5], **kwargs)
    with pytest.raises(ValueError, match="lovasz_hinge is for region-based datasets"):
        prepare_bench("905", tmp_path / "o", losses=["lovasz_hinge"], **kwargs)
    with pytest.raises(ValueError, match="'bce' has no nnU-Net trainer"):
        prepare_bench("905", tmp_path / "o", losses=["bce"], **kwargs)
    with pytest.raises(ValueError, match="--loss-option for 'soft_dice'"):
        prepare_bench(
            "905",
            tmp_path / "o",
            losses=["soft_dice"],
            loss_options={"soft_dice": {"classes": "fg"}},
            **kwargs,
        )
    with pytest.raises(ValueError, match="nnU-Net trains on cpu, cuda, mps"):
        prepare_bench("905", tmp_path / "o", losses=["ce"], environ=env, device="cuda:1")
    with pytest.raises(
        ValueError,
        match=r"(?s)not preprocessed for 3d_cascade_fullres.*\(not set\).*nnUNetv2_preprocess -d 905",
    ):
        prepare_bench(
            "905", tmp_path / "o", configuration="3d_cascade_fullres", losses=["ce"], **kwargs
        )
    # the schedule variables of the environment are the default, recorded in the spec
    env2 = {**env, "METRICSEG_NNUNET_EPOCHS": "7"}
    specs = _specs("905", tmp_path / "o", losses=["ce"], folds=[0], environ=env2, device="cpu")
    assert specs[0].train["epochs"] == 7


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["bench", "--engine", "nnunet", "--out", str(tmp_path)]) == 2
    assert "needs --dataset" in capsys.readouterr().err
    assert main(["bench", "--engine", "nnunet", "--dataset", "1", "--study", "quick"]) == 2
    assert "--study belong to the metricseg engine" in capsys.readouterr().err
    assert main(["bench", "--dataset", "901", "--folds", "0"]) == 2
    assert "--dataset, --folds need --engine nnunet" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end with nnU-Net


def _needs_nnunet() -> None:
    if importlib.util.find_spec("nnunetv2") is None:
        message = "nnunetv2 is not installed (pip install 'metricseg[nnunet]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true)")
        pytest.skip(message)


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICSEG_NNUNET_")}
    env.update(
        nnUNet_raw=str(root / "raw"),
        nnUNet_preprocessed=str(root / "preprocessed"),
        nnUNet_n_proc_DA="0",  # augmentation in the training process: 2 cores here
        nnUNet_def_n_proc="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]),
    )
    env.pop("nnUNet_results", None)  # the bench does not need it
    return env


def _bench(root: Path, *args: str) -> tuple[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "metricseg",
        "bench",
        "--engine",
        "nnunet",
        "--dataset",
        "906",
        "--device",
        "cpu",
        "--iterations",
        "2",
        "--val-iterations",
        "1",
        "--no-plots",
        "--out",
        str(root / "out"),
        *args,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(root), capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        pytest.fail(
            f"metricseg bench failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout, seconds


@pytest.mark.slow
def test_bench_engine_nnunet_end_to_end(tmp_path):
    """Plan, train 2 losses × 2 folds (2 epochs of 2 iterations), score, report; rerun."""
    _needs_nnunet()
    from metricseg.counts import confusion
    from metricseg.integrations.nnunet.demo import demo_dataset_name, write_demo_dataset
    from metricseg.metrics import score_from_counts

    root = tmp_path
    write_demo_dataset(root / "raw", 906, num_cases=10, shape=(20, 20, 20))
    (root / "preprocessed").mkdir()
    name, out = demo_dataset_name(906), root / "out"
    args = ("--losses", "soft_dice,ce", "--folds", "0,1", "--epochs", "2")
    stdout, seconds = _bench(root, *args)
    assert "needs nnU-Net's planning and preprocessing" in stdout
    assert stdout.count("test Dice") == 4 and "finished earlier" not in stdout

    pre = root / "preprocessed" / name
    splits = json.loads((pre / "splits_final.json").read_text())
    specs = {}
    for loss in ("soft_dice", "ce"):
        for fold in (0, 1):
            path = out / "runs" / name / loss / f"seed0-fold{fold}.json"
            result = load_result(path)
            assert result is not None and result["format"] == 2
            spec = RunSpec.from_dict(result["spec"])
            specs[loss, fold] = spec
            assert (spec.loss, spec.seed, spec.fold, spec.num_folds, spec.task_label) == (
                loss,
                0,
                fold,
                5,
                name,
            )
            assert result["task_info"]["independent"] is True
            assert result["task_info"]["n_test"] == len(splits[fold]["val"]) == 2
            # every validation case of the fold, scored from nnU-Net's files
            fold_dir = _fold(spec, out)
            summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
            theirs = {
                Path(c["reference_file"]).name.removesuffix(".nii.gz"): c["metrics"]
                for c in summary["metric_per_case"]
            }
            assert (
                sorted({r["case"] for r in result["rows"]})
                == sorted(splits[fold]["val"])
                == sorted(theirs)
            )
            for case in splits[fold]["val"]:
                pred, _ = read_image(fold_dir / "validation" / f"{case}.nii.gz")
                gt, _ = read_image(pre / "gt_segmentations" / f"{case}.nii.gz")
                counts = confusion(pred[None], gt[None], 3)[0]
                dice = score_from_counts(counts, "dice")
                rows = [r for r in result["rows"] if r["case"] == case]
                assert [r["class_index"] for r in rows] == [0, 1, 2]
                for r in rows:
                    c = r["class_index"]
                    assert [r["tp"], r["fp"], r["fn"]] == counts[c].tolist()
                    assert r["dice"] == pytest.approx(float(dice[c]), nan_ok=True)
                    if c > 0:  # nnU-Net's own counts of its own validation output
                        m = theirs[case][str(c)]
                        assert [m["TP"], m["FP"], m["FN"]] == [r["tp"], r["fp"], r["fn"]]
            # the curve is nnU-Net's pseudo Dice, read back here from the checkpoint (weights only)
            logged = load_checkpoint_weights_only(fold_dir / "checkpoint_final.pth")["logging"]
            assert result["epochs_run"] == 2 and len(result["history"]) == 2
            for record, mean_fg in zip(result["history"], logged["mean_fg_dice"], strict=True):
                assert record["val_dice"] == pytest.approx(float(mean_fg), abs=1e-4, nan_ok=True)

    summary_md = (out / "summary.md").read_text()
    assert "## Claims of the paper, tested" in summary_md
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6"):
        assert f"| {claim} |" in summary_md
    assert "nnU-Net's pseudo Dice" in summary_md and "## Training curves" in summary_md
    claims = json.loads((out / "summary.json").read_text())["claims"]
    assert [c["id"] for c in claims] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert (
        len((out / "runs.csv").read_text().splitlines()) == 1 + 4 * 2 * 3
    )  # runs x cases x classes

    # a rerun trains nothing
    def logs() -> dict[Path, float]:
        return {p: p.stat().st_mtime for p in (out / "nnunet").rglob("training_log_*.txt")}

    before, results_before = logs(), {p: p.read_bytes() for p in (out / "runs").rglob("*.json")}
    stdout, rerun_seconds = _bench(root, *args)
    assert stdout.count("finished earlier, kept") == 4
    assert logs() == before
    assert {p: p.read_bytes() for p in (out / "runs").rglob("*.json")} == results_before

    # metricseg compare on nnU-Net's validation outputs of the two trainers (folds 0 and 1
    # together): the same counts as the bench's rows, and a verdict by the claims' rule
    import csv
    import shutil

    from metricseg.cli import main

    folders = {loss: root / "cmp" / loss for loss in ("soft_dice", "ce")}
    gt_dir = root / "cmp" / "gt"
    for fold in (0, 1):
        for case in splits[fold]["val"]:
            gt_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(pre / "gt_segmentations" / f"{case}.nii.gz", gt_dir)
            for loss, folder in folders.items():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(_fold(specs[loss, fold], out) / "validation" / f"{case}.nii.gz", folder)
    cmp_out = root / "cmp" / "report"
    args = [str(folders["soft_dice"]), str(folders["ce"]), str(gt_dir), "--out", str(cmp_out)]
    assert main(["compare", *args]) == 0
    verdicts = json.loads((cmp_out / "summary.json").read_text())["verdicts"]
    assert verdicts[0]["verdict"] in ("supported", "contradicted", "inconclusive")
    with open(cmp_out / "cases.csv") as f:
        compared = {
            (r["loss"], r["case"], int(r["class_index"])): (
                int(r["tp"]),
                int(r["fp"]),
                int(r["fn"]),
            )
            for r in csv.DictReader(f)
        }
    for loss in ("soft_dice", "ce"):
        for fold in (0, 1):
            rows = load_result(out / "runs" / name / loss / f"seed0-fold{fold}.json")["rows"]
            for r in rows:
                if r["class_index"] > 0:
                    key = (loss, r["case"], r["class_index"])
                    assert compared[key] == (r["tp"], r["fp"], r["fn"])

    # a run killed after nnU-Net's validation: scored again from the fold, not trained
    killed = out / "runs" / name / "soft_dice" / "seed0-fold1.json"
    killed.unlink()
    stdout, _ = _bench(root, "--losses", "soft_dice", "--folds", "1", "--epochs", "2")
    assert logs() == before
    assert json.loads(killed.read_bytes())["rows"] == json.loads(results_before[killed])["rows"]

    # another schedule is another run: its fold is trained again from scratch
    stdout, _ = _bench(root, "--losses", "ce", "--folds", "0", "--epochs", "3")
    again = load_result(out / "runs" / name / "ce" / "seed0-fold0.json")
    assert again["epochs_run"] == 3 and again["spec"]["train"]["epochs"] == 3
    fold_dir = _fold(specs["ce", 0], out)
    assert len(list(fold_dir.glob("training_log_*.txt"))) == 1
    assert json.loads((fold_dir / MARKER).read_text()) == again["spec"]
    print(
        f"\nmetricseg bench --engine nnunet, 2 losses x 2 folds (plan + 4 trainings): {seconds:.0f} s; "
        f"rerun {rerun_seconds:.0f} s"
    )
