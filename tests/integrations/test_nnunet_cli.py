"""``metricseg nnunet``: the parts that need no nnU-Net, and its usage errors (exit code 2)."""

from __future__ import annotations

import json

from metricseg.cli import main
from metricseg.integrations.nnunet import TRAINER_LOSSES, ext_trainer_path


def test_path_is_the_folder_with_the_trainer_module(capsys):
    assert main(["nnunet", "path"]) == 0
    folder = capsys.readouterr().out.strip()
    assert folder == str(ext_trainer_path())
    # nnU-Net imports every module of the folder: exactly one, with a name of its own
    modules = sorted(p.name for p in ext_trainer_path().glob("*.py"))
    assert modules == ["__init__.py", "metricseg_nnunet_trainers.py"]


def test_trainers_lists_every_trainer_with_its_options(capsys):
    assert main(["nnunet", "trainers"]) == 0
    out = capsys.readouterr().out
    for loss in TRAINER_LOSSES:
        assert f"nnUNetTrainer_metricseg_{loss}\n" in out
    assert "per_image=<not batch_dice of the plans>" in out
    assert "activation=" not in out and "ignore_index=" not in out


def test_demo_dataset(tmp_path, capsys):
    assert (
        main(["nnunet", "demo-dataset", str(tmp_path), "--id", "7", "--cases", "5", "--size", "8"])
        == 0
    )
    folder = tmp_path / "Dataset007_MetricsegDemo"
    assert capsys.readouterr().out.strip() == str(folder)
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 5 and meta["labels"] == {"background": 0, "large": 1, "small": 2}
    assert len(list((folder / "imagesTr").glob("*_0000.nii.gz"))) == 5
    # an existing dataset is never overwritten
    assert main(["nnunet", "demo-dataset", str(tmp_path), "--id", "7"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_train_usage_errors(monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_preprocessed", "/nonexistent/pre")
    monkeypatch.setenv("nnUNet_results", "/nonexistent/res")
    monkeypatch.delenv("METRICSEG_NNUNET_LOSS_OPTIONS", raising=False)
    cases = [
        (["--loss", "bce"], "'bce' has no nnU-Net trainer"),
        (["--loss", "soft_dice", "--loss-option", "smoth=1"], "--loss-option: unknown option 'smoth' for loss 'soft_dice'"),
        (["--loss", "soft_dice", "--loss-option", "activation=sigmoid"], "set by the trainer"),
        (["--loss", "soft_dice", "--epochs", "0"], "epochs must be a positive integer"),
        (["--loss", "soft_dice", "--num-gpus", "2", "--no-final-validation"], "needs --num-gpus 1"),
    ]  # fmt: skip
    for extra, message in cases:
        assert main(["nnunet", "train", "901", "3d_fullres", "0", *extra]) == 2, extra
        assert message in capsys.readouterr().err
    assert main(["nnunet", "train", "901", "3d_fullres", "x", "--loss", "ce"]) == 2
    assert "FOLD must be 0-4 or 'all'" in capsys.readouterr().err
    monkeypatch.setenv("METRICSEG_NNUNET_LOSS_OPTIONS", '{"gama": 2}')
    assert main(["nnunet", "train", "901", "3d_fullres", "0", "--loss", "focal"]) == 2
    assert (
        "METRICSEG_NNUNET_LOSS_OPTIONS: unknown option 'gama' for loss 'focal'"
        in capsys.readouterr().err
    )
    monkeypatch.delenv("METRICSEG_NNUNET_LOSS_OPTIONS")
    monkeypatch.delenv("nnUNet_results")
    assert main(["nnunet", "train", "901", "3d_fullres", "0", "--loss", "ce"]) == 2
    assert "nnUNet_results is not set" in capsys.readouterr().err


def test_predict_needs_arguments(capsys):
    assert main(["nnunet", "predict"]) == 2
    assert "give nnUNetv2_predict's arguments" in capsys.readouterr().err
