"""``torchrun`` with 2 gloo processes: training finishes, resumes, and matches one process.

The DDP run keeps every second image of each global batch on each rank; with
the soft Dice batch loss summed over processes and DDP's gradient average, its
steps equal the one-process steps on the whole batch up to float summation
order, so after 3 epochs the model agrees with a one-process run: its outputs to
1e-6 and every weight that reaches the output to 5e-8 (measured). The conv
biases in front of an instance norm are the exception: the norm subtracts them,
so their gradient is float noise that Adam's normalised steps turn into moves
of up to 1e-4; they are compared through the outputs. With
``sync_across_processes=False``, the per-process batch loss, the weights differ
by 2e-2 and the losses in the 4th digit, so the tolerances below catch it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HERE = Path(__file__).parent
SCRIPT = HERE / "torchrun_train_script.py"


def _script_module():
    spec = importlib.util.spec_from_file_location("torchrun_train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    done = subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _cancelled_by_the_output(model: torch.nn.Module, name: str, x: torch.Tensor) -> bool:
    """Whether shifting parameter ``name`` by 1 leaves the output unchanged (a bias a norm removes)."""
    param = dict(model.named_parameters())[name]
    with torch.no_grad():
        ref = model(x)
        param.add_(1.0)
        moved = model(x)
        param.sub_(1.0)
    return torch.allclose(moved, ref, rtol=0, atol=1e-5)


def test_two_process_training_cut_resumes_and_equals_one_process(tmp_path):
    from metricseg.data import get_task
    from metricseg.train import CHECKPOINT_NAME, TrainConfig, train

    script = _script_module()
    out = tmp_path / "run"
    _torchrun(str(SCRIPT), "cut", str(out), cwd=tmp_path)
    ckpt = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == 2 and not (out / "final.pt").exists()
    # rank 0 alone writes: no stray temporary files of a second writer
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json", CHECKPOINT_NAME]

    # the checkpoint does not depend on the number of processes: keep a copy to resume alone
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("checkpoint.json", CHECKPOINT_NAME):  # the weights and the run's identity
        shutil.copy(out / name, alone / name)
    _torchrun(str(SCRIPT), "resume", str(out), cwd=tmp_path)
    final = torch.load(out / "final.pt", weights_only=False)
    assert final["resumed_from_epoch"] == 2 and len(final["history"]) == 3

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = get_task("large-organ", **script.TASK_OPTIONS)
        one = train(task, script.LOSS, TrainConfig(**script.CONFIG), seed=0)
        resumed_alone = train(
            task, script.LOSS, TrainConfig(**script.CONFIG), seed=0, out_dir=alone, resume=True
        )
    finally:
        torch.set_num_threads(threads)
    assert resumed_alone.resumed_from_epoch == 2
    model = one.model.eval()
    x = torch.stack([torch.as_tensor(case.image) for case in task.val])
    cancelled = {name for name, _ in model.named_parameters() if _cancelled_by_the_output(model, name, x)}
    assert cancelled and len(cancelled) < len(dict(model.named_parameters())) // 2
    with torch.no_grad():
        want_out = model(x)
    for history, state in (
        (final["history"], final["state"]),
        (resumed_alone.history, resumed_alone.model.state_dict()),
    ):
        for got, want in zip(history, one.history):
            assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
            assert got["val_dice"] == pytest.approx(want["val_dice"], abs=1e-4)
        for name, want in model.state_dict().items():
            if name not in cancelled:
                torch.testing.assert_close(state[name], want, rtol=0, atol=1e-6, msg=name)
        other = copy.deepcopy(model)
        other.load_state_dict(state)
        with torch.no_grad():
            torch.testing.assert_close(other(x), want_out, rtol=0, atol=1e-5)


def test_metricseg_train_cli_under_torchrun(tmp_path):
    args = ["--task", "large-organ", "--loss", "dice_ce", "--epochs", "2", "--batch-size", "4",
            "--option", "num_train=8", "--option", "image_size=32",
            "--channels", "4,8", "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    done = _torchrun("-m", "metricseg", "train", *args, cwd=tmp_path)
    # rank 0 alone reports
    assert done.stdout.count("result:") == 1, done.stdout
    path = tmp_path / "out" / "runs" / "large-organ" / "dice_ce" / "seed0.json"
    res = json.loads(path.read_text())
    assert res["epochs_run"] == 2 and res["rows"]
    work = path.with_suffix(".work")
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint.json", "checkpoint.pt", "spec.json"]

    # as if killed after the last checkpoint, before the result: --resume finishes it
    path.unlink()
    done = _torchrun("-m", "metricseg", "train", *args, "--resume", cwd=tmp_path)
    again = json.loads(path.read_text())
    assert again["resumed_from_epoch"] == 2 and again["history"] == res["history"]
    assert again["rows"] == res["rows"]
