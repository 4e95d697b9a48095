"""nnU-Net end to end with the metricseg trainers, on the CPU (slow).

A generated nnU-Net raw dataset of small 3D cases → ``nnUNetv2_plan_and_preprocess`` →
``nnUNetv2_train -tr nnUNetTrainer_metricseg_<loss>`` (found through ``nnUNet_extTrainer``)
for one epoch of two iterations → ``nnUNetv2_predict`` → scores from metricseg, checked
against nnU-Net's own validation outputs and counts. Then every trainer for one short
epoch on nnU-Net's real data pipeline (label maps with an ignore label; regions with an
ignore label), ``metricseg nnunet train``, and the 2D configuration of the 10 BraTS
subjects in ``../shared/data/brats2018`` (an error when ``CI=true`` and they are missing).

nnU-Net's folders live in a temporary folder; everything runs on at most 2 cores
(``nnUNet_n_proc_DA=0``: augmentation in the training process; one process for
planning, preprocessing, export and prediction).

Where torchvision cannot be imported (PyPI's CUDA build beside a CPU torch) nnU-Net's
trainer lookup fails on its own Primus trainers (they import timm → torchvision) for
*every* trainer that is not nnU-Net's default; ``nnUNetv2_train`` and ``nnUNetv2_predict``
are then run as their entry functions with that one nnU-Net module marked absent
(``sys.modules[name] = None``), which nnU-Net's lookup skips. Where torchvision works,
the console scripts themselves run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("nnunetv2") is None and os.environ.get("CI") != "true":
    pytest.skip(
        "nnunetv2 is not installed (pip install 'metricseg[nnunet]'); CI=true makes this an error",
        allow_module_level=True,
    )

from metricseg.counts import confusion
from metricseg.integrations.nnunet import TRAINER_LOSSES, ext_trainer_path, trainer_name
from metricseg.integrations.nnunet.demo import demo_dataset_name, write_demo_dataset
from metricseg.io import read_image
from metricseg.metrics import score_from_counts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BRATS = REPO.parent / "shared" / "data" / "brats2018"
PRIMUS = "nnunetv2.training.nnUNetTrainer.primus.primus_trainers"
ENTRY = {
    "nnUNetv2_plan_and_preprocess": (
        "nnunetv2.experiment_planning.plan_and_preprocess_entrypoints",
        "plan_and_preprocess_entry",
    ),
    "nnUNetv2_train": ("nnunetv2.run.run_training", "run_training_entry"),
    "nnUNetv2_predict": ("nnunetv2.inference.predict_from_raw_data", "predict_entry_point"),
}
LABELS = 901  # label maps, 3 classes, an ignore label
REGIONS = 902  # regions (1 or 2) and (2), an ignore label
SHORT = {
    "METRICSEG_NNUNET_EPOCHS": "1",
    "METRICSEG_NNUNET_ITERATIONS": "2",
    "METRICSEG_NNUNET_VAL_ITERATIONS": "1",
}


def _torchvision_works() -> bool:
    probe = "import dynamic_network_architectures.architectures.primus"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def _command(name: str, args: list[str]) -> list[str]:
    """nnU-Net's console script ``name``, or its entry function where Primus cannot load."""
    script = Path(sys.executable).parent / name
    if script.is_file() and TORCHVISION_WORKS:
        return [str(script), *args]
    module, function = ENTRY[name]
    code = (
        "import sys\n"
        f"sys.modules[{PRIMUS!r}] = None  # needs torchvision, which cannot be imported here\n"
        f"from {module} import {function}\n"
        f"sys.argv[0] = {name!r}\n"
        f"sys.exit({function}())\n"
    )
    return [sys.executable, "-c", code, *args]


TORCHVISION_WORKS = _torchvision_works()


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICSEG_NNUNET_")}
    env.update(
        nnUNet_raw=str(root / "raw"),
        nnUNet_preprocessed=str(root / "preprocessed"),
        nnUNet_results=str(root / "results"),
        nnUNet_extTrainer=str(ext_trainer_path()),
        nnUNet_n_proc_DA="0",
        nnUNet_def_n_proc="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        pytest.fail(
            f"{cmd[0]} ... failed ({proc.returncode}); the end of {log}:\n{log.read_text()[-4000:]}"
        )
    return seconds


def _plan(root: Path, dataset_id: int, configuration: str) -> None:
    # planning sets torch's threads from nnUNet_n_proc_DA, which must be >= 1 there
    env = _env(root, nnUNet_n_proc_DA="1")
    args = ["-d", str(dataset_id), "-c", configuration, "-np", "1", "-npfp", "1"]
    _run(_command("nnUNetv2_plan_and_preprocess", args), env, root / f"plan_{dataset_id}.log")


@pytest.fixture(scope="module")
def nnunet_root(tmp_path_factory) -> Path:
    """Two generated datasets, planned and preprocessed for 3d_fullres."""
    root = tmp_path_factory.mktemp("nnunet")
    write_demo_dataset(root / "raw", LABELS, num_cases=5, shape=(24, 24, 24), ignore_width=3)
    write_demo_dataset(
        root / "raw",
        REGIONS,
        num_cases=5,
        shape=(24, 24, 24),
        ignore_width=3,
        labels={"background": 0, "whole": [1, 2], "small": 2},
        extra_json={"regions_class_order": [1, 2]},
    )
    for dataset_id in (LABELS, REGIONS):
        _plan(root, dataset_id, "3d_fullres")
    return root


def _scores(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int | None) -> np.ndarray:
    counts = confusion(pred[None], gt[None], num_classes, ignore_index=ignore)[0]
    return score_from_counts(counts, "dice")


def test_train_predict_and_score_with_nnunets_commands(nnunet_root):
    """nnUNetv2_train with the metricseg trainer, nnUNetv2_predict, metricseg's scores."""
    root, loss = nnunet_root, "lovasz_softmax"
    env = _env(root, **SHORT)
    name = trainer_name(loss)
    seconds = _run(
        _command("nnUNetv2_train", [str(LABELS), "3d_fullres", "0", "-tr", name, "-device", "cpu"]),
        env,
        root / "train.log",
    )
    fold = (
        root / "results" / demo_dataset_name(LABELS) / f"{name}__nnUNetPlans__3d_fullres" / "fold_0"
    )
    assert (fold / "checkpoint_final.pth").is_file()
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert f"metricseg loss {loss!r}: LovaszSoftmaxLoss(activation='softmax'" in log
    assert "ignore_index=3" in log and "deep-supervision weights" in log
    assert log.count("train_loss") == 1  # one epoch

    # nnU-Net's validation of fold 0: its counts against metricseg's on the same files
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    cases = summary["metric_per_case"]
    assert cases
    gt_folder = root / "raw" / demo_dataset_name(LABELS) / "labelsTr"
    for case in cases:
        pred, _ = read_image(case["prediction_file"])
        gt, _ = read_image(case["reference_file"])
        counts = confusion(pred[None], gt[None], 3, ignore_index=3)[0]
        for label in (1, 2):
            theirs = case["metrics"][str(label)]
            assert [theirs["TP"], theirs["FP"], theirs["FN"]] == counts[label].tolist()

    # nnUNetv2_predict on the validation cases: the same model, so nnU-Net's validation output
    images = root / "predict_in"
    images.mkdir()
    names = [Path(c["reference_file"]).name.removesuffix(".nii.gz") for c in cases]
    for n in names:
        (images / f"{n}_0000.nii.gz").symlink_to(
            root / "raw" / demo_dataset_name(LABELS) / "imagesTr" / f"{n}_0000.nii.gz"
        )
    out = root / "predict_out"
    args = ["-i", str(images), "-o", str(out), "-d", str(LABELS), "-c", "3d_fullres", "-f", "0",
            "-tr", name, "-device", "cpu", "-npp", "1", "-nps", "1"]  # fmt: skip
    _run(_command("nnUNetv2_predict", args), _env(root), root / "predict.log")
    for n in names:
        predicted, geometry = read_image(out / f"{n}.nii.gz")
        validation, _ = read_image(fold / "validation" / f"{n}.nii.gz")
        gt, gt_geometry = read_image(gt_folder / f"{n}.nii.gz")
        assert predicted.shape == gt.shape and geometry.spacing == gt_geometry.spacing
        assert set(np.unique(predicted).tolist()) <= {0, 1, 2}
        np.testing.assert_array_equal(predicted, validation)
        dice = _scores(predicted, gt, 3, 3)
        assert dice.shape == (3,) and bool(np.all((dice[1:] >= 0) & (dice[1:] <= 1)))
    print(
        f"\nnnUNetv2_train, 1 epoch x 2 iterations + validation, 3d_fullres 24^3: {seconds:.0f} s"
    )


@pytest.mark.parametrize(
    ("loss", "dataset_id"),
    [(loss, LABELS) for loss in TRAINER_LOSSES if loss != "lovasz_hinge"]
    + [(loss, REGIONS) for loss in TRAINER_LOSSES if loss != "lovasz_softmax"],
    ids=lambda v: str(v) if isinstance(v, str) else ("labels" if v == LABELS else "regions"),
)
def test_every_trainer_trains_on_nnunets_data_pipeline(nnunet_root, loss, dataset_id, monkeypatch):
    """One epoch of two iterations on nnU-Net's own loader and augmentation: finite losses.

    In this process (through :func:`metricseg.integrations.nnunet.run.train`, what
    ``metricseg nnunet train`` runs), to spare each run nnU-Net's import time.
    """
    import torch

    from metricseg.integrations.nnunet.run import set_environment, train

    root = nnunet_root
    for name, value in _env(root).items():
        monkeypatch.setenv(name, value)
    for name in list(os.environ):
        if name.startswith("METRICSEG_NNUNET_"):
            monkeypatch.delenv(name)
    set_environment(loss, None, epochs=1, iterations=2, val_iterations=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fold = train(str(dataset_id), "3d_fullres", 1, loss, device="cpu", final_validation=False)
    finally:
        torch.set_num_threads(threads)
    assert (
        fold
        == root
        / "results"
        / demo_dataset_name(dataset_id)
        / f"{trainer_name(loss)}__nnUNetPlans__3d_fullres"
        / "fold_1"
    )
    log = next(fold.glob("training_log_*.txt")).read_text()
    activation = "sigmoid" if dataset_id == REGIONS else "softmax"
    assert f"metricseg loss {loss!r}" in log
    if loss != "lovasz_hinge":
        assert f"activation={activation!r}" in log
    losses = [
        float(line.split("train_loss")[1]) for line in log.splitlines() if "train_loss" in line
    ]
    val = [float(line.split("val_loss")[1]) for line in log.splitlines() if "val_loss" in line]
    assert len(losses) == len(val) == 1 and np.isfinite(losses + val).all()
    assert (fold / "checkpoint_final.pth").is_file() and not (fold / "validation").exists()


def test_metricseg_nnunet_train_and_predict(nnunet_root):
    """The wrappers: loss options from --loss-option, and prediction without nnU-Net's lookup."""
    root = nnunet_root
    cmd = [sys.executable, "-m", "metricseg", "nnunet", "train", str(LABELS), "3d_fullres", "2",
           "--loss", "soft_tversky", "--loss-option", "alpha=0.3", "--loss-option", "beta=0.7",
           "--epochs", "1", "--iterations", "1", "--val-iterations", "1", "--device", "cpu",
           "--no-final-validation"]  # fmt: skip
    _run(cmd, _env(root), root / "train_cli.log")
    name = trainer_name("soft_tversky")
    fold = (
        root / "results" / demo_dataset_name(LABELS) / f"{name}__nnUNetPlans__3d_fullres" / "fold_2"
    )
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "alpha=0.3, beta=0.7" in log
    bad = subprocess.run(
        [*cmd[:10], "--loss-option", "gama=2"], env=_env(root), capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown option 'gama' for loss 'soft_tversky'" in bad.stderr

    images, out = root / "cli_in", root / "cli_out"
    images.mkdir()
    raw = root / "raw" / demo_dataset_name(LABELS)
    (images / "demo_000_0000.nii.gz").symlink_to(raw / "imagesTr" / "demo_000_0000.nii.gz")
    cmd = [sys.executable, "-m", "metricseg", "nnunet", "predict", "--", "-i", str(images), "-o", str(out),
           "-d", str(LABELS), "-c", "3d_fullres", "-f", "2", "-tr", name, "-chk", "checkpoint_final.pth",
           "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"]  # fmt: skip
    _run(cmd, _env(root, nnUNet_extTrainer=""), root / "predict_cli.log")
    predicted, _ = read_image(out / "demo_000.nii.gz")
    gt, _ = read_image(raw / "labelsTr" / "demo_000.nii.gz")
    assert predicted.shape == gt.shape and set(np.unique(predicted).tolist()) <= {0, 1, 2}


def test_brats_2d_one_loss(tmp_path):
    """The 2D configuration of the 10 BraTS subjects: plan, train a few iterations, predict one subject."""
    if not (BRATS / "dataset.json").is_file():
        message = f"the BraTS subjects are not at {BRATS}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true)")
        pytest.skip(message)
    dataset = "Dataset903_BraTS2018"
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / dataset).symlink_to(BRATS)  # read in place, never copied
    _plan(tmp_path, 903, "2d")
    loss = "soft_dice"
    cmd = [sys.executable, "-m", "metricseg", "nnunet", "train", "903", "2d", "0", "--loss", loss,
           "--epochs", "1", "--iterations", "2", "--val-iterations", "1", "--device", "cpu",
           "--no-final-validation"]  # fmt: skip
    seconds = _run(cmd, _env(tmp_path), tmp_path / "train.log")
    fold = tmp_path / "results" / dataset / f"{trainer_name(loss)}__nnUNetPlans__2d" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    splits = json.loads((tmp_path / "preprocessed" / dataset / "splits_final.json").read_text())
    subject = splits[0]["val"][0]
    images = tmp_path / "predict_in"
    images.mkdir()
    for channel in ("0000", "0001"):
        (images / f"{subject}_{channel}.nii.gz").symlink_to(
            BRATS / "imagesTr" / f"{subject}_{channel}.nii.gz"
        )
    out = tmp_path / "predict_out"
    args = ["-i", str(images), "-o", str(out), "-d", "903", "-c", "2d", "-f", "0", "-tr", trainer_name(loss),
            "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta", "-step_size", "1"]  # fmt: skip
    _run(_command("nnUNetv2_predict", args), _env(tmp_path), tmp_path / "predict.log")
    predicted, _ = read_image(out / f"{subject}.nii.gz")
    gt, _ = read_image(BRATS / "labelsTr" / f"{subject}.nii.gz")
    assert predicted.shape == gt.shape == (155, 240, 240)
    dice = _scores(predicted, gt, 2, None)
    assert 0.0 <= float(dice[1]) <= 1.0
    print(
        f"\nBraTS 2d, metricseg nnunet train 1 epoch x 2 iterations: {seconds:.0f} s; Dice {float(dice[1]):.3f}"
    )
