"""Hostile or careless input to bench and train: nothing outside OUT touched, nothing run twice,
no half-written state, a whole study checked before its first run (issue 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metricseg.cli import main
from metricseg.experiment.grid import result_path, run_one
from metricseg.experiment.spec import RunSpec, run_paths
from metricseg.experiment.suite import load_suite

from .conftest import TINY_2D, TINY_TRAIN

TINY_OPTIONS = ["-o", "num_train=4", "-o", "num_val=2", "-o", "num_test=2", "-o", "image_size=32"]


def test_a_loss_name_cannot_reach_outside_out(tmp_path, capsys):
    victim = tmp_path / "victim"
    (victim / "seed0.work").mkdir(parents=True)
    (victim / "seed0.json").write_text("precious")
    (victim / "seed0.work" / "spec.json").write_text("precious")
    out = tmp_path / "a" / "b" / "out"
    argv = ["train", "--task", "tiny-lesions", "--loss", "../../../victim", "--out", str(out),
            "--epochs", "1", *TINY_OPTIONS]  # fmt: skip
    for _ in range(2):
        assert main(argv) == 2
        assert "not a valid name" in capsys.readouterr().err
    assert (victim / "seed0.json").read_text() == "precious"
    assert (victim / "seed0.work" / "spec.json").read_text() == "precious"
    assert not out.exists()


@pytest.mark.parametrize(
    "field, value", [("loss", "../x"), ("variant", "a/b"), ("label", ".."), ("loss", "")]
)
def test_run_specs_refuse_path_like_names(field, value):
    with pytest.raises(ValueError, match="not a valid name"):
        RunSpec(**{"task": "tiny-lesions", "loss": "ce", field: value})


def test_every_run_path_stays_inside_out(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "elsewhere").mkdir()
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "tiny-lesions").symlink_to(tmp_path / "elsewhere")  # a planted link
    with pytest.raises(ValueError, match="outside the output folder"):
        run_paths(RunSpec("tiny-lesions", "ce"), out)
    folder_task = run_paths(RunSpec("folder:/data/../../etc", "ce"), out)
    assert folder_task.result.parent.parent.parent == out / "runs"


def test_train_with_a_bad_list_argument_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--task", "tiny-lesions", "--loss", "ce", "--channels", "8,x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--channels" in err and "8,x" in err and "Traceback" not in err


STUDY_HEAD = """
[train]
epochs = 1
steps_per_epoch = 1
batch_size = 2
channels = [4, 8]
"""


@pytest.mark.parametrize(
    "body, message",
    [
        ('losses = "soft_dice"\ntasks = ["tiny-lesions"]', "losses must be a list"),
        ('losses = ["ce"]\ntasks = "tiny-lesions"', "tasks must be a list"),
        ('losses = ["ce"]\ntasks = ["tiny-lesions"]\ntrain = 5', "train must be a table"),
        ('losses = ["ce", "ce"]\ntasks = ["tiny-lesions"]', "unique"),
        ('losses = ["ce"]\ntasks = ["tiny-lesions"]\nseeds = [0.5]', "seed"),
        ('losses = ["ce"]\ntasks = ["tiny-lesions"]\nfolds = 1', "folds"),
        ('losses = [{name = "x/y", loss = "ce"}]\ntasks = ["tiny-lesions"]', "not a valid name"),
    ],
)
def test_study_files_are_checked_whole_when_read(tmp_path, body, message):
    p = tmp_path / "s.toml"
    p.write_text(body + "\n")
    with pytest.raises(ValueError, match=message):
        load_suite(p)


@pytest.mark.parametrize(
    "losses, tasks, message",
    [
        ('["ce"]', '["no-such-task"]', "no-such-task"),
        ('["nope"]', '["tiny-lesions"]', "unknown loss"),
        ('[{name = "f", loss = "focal", options = {gamma = -1}}]', '["tiny-lesions"]', "gamma"),
        ('["ce"]', '[{name = "tiny-lesions", options = {image_sise = 32}}]', "image_sise"),
        ('["ce"]', '[{name = "tiny-lesions", train = {epochs = 0}}]', "epochs"),
    ],
)
def test_a_bad_study_fails_before_run_one_and_leaves_nothing(
    tmp_path, capsys, losses, tasks, message
):
    p = tmp_path / "s.toml"
    p.write_text(f"losses = {losses}\ntasks = {tasks}\n{STUDY_HEAD}")
    out = tmp_path / "out"
    assert main(["bench", "--study", str(p), "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_a_failed_run_leaves_no_work_folder_and_a_rerun_resumes_cleanly(tmp_path, monkeypatch):
    import metricseg.train as train_module

    spec = RunSpec("large-organ", "soft_dice", task_options=TINY_2D, train=TINY_TRAIN)

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_module, "train", boom)
    with pytest.raises(RuntimeError):
        run_one(spec, tmp_path)
    assert not run_paths(spec, tmp_path).work.exists()
    monkeypatch.undo()
    assert run_one(spec, tmp_path).status == "trained"


def test_foreign_files_in_a_work_folder_are_never_deleted(tmp_path):
    spec = RunSpec("large-organ", "soft_dice", task_options=TINY_2D, train=TINY_TRAIN)
    work = run_paths(spec, tmp_path).work
    work.mkdir(parents=True)
    (work / "spec.json").write_text('{"an": "older spec"}')
    (work / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        run_one(spec, tmp_path)
    assert (work / "thesis.tex").read_text() == "mine"


def _bench(out: Path, study: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metricseg",
            "bench",
            "--study",
            str(study),
            "--out",
            str(out),
            "--no-plots",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


TWO_RUNS = """
losses = ["soft_dice", "ce"]
tasks = [{name = "large-organ", options = {num_train = 4, num_val = 2, num_test = 2, image_size = 32}}]
[train]
epochs = 3
steps_per_epoch = 2
batch_size = 2
channels = [4, 8]
"""


@pytest.mark.slow
def test_two_benches_on_one_folder_train_each_run_once(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(TWO_RUNS)
    out = tmp_path / "out"
    first, second = _bench(out, study, "--jobs", "1"), _bench(out, study, "--jobs", "1")
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    lines = [line for o, _ in outputs for line in o.splitlines() if line.startswith("[")]
    trained = [line for line in lines if line.rstrip().endswith(" s)") and "waited" not in line]
    assert len(lines) == 4 and len(trained) == 2, lines  # each run trained by one bench only
    assert not any("Error" in e for _, e in outputs)


def _children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(proc.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_bench(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(TWO_RUNS.replace("epochs = 3", "epochs = 200"))
    bench = _bench(tmp_path / "out", study, "--jobs", "2")
    deadline = time.time() + 120
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = [
            p for p in _children(bench.pid) if "spawn" in Path(f"/proc/{p}/cmdline").read_text()
        ]
    assert len(workers) == 2, "the pool workers did not start"
    os.kill(bench.pid, signal.SIGKILL)
    bench.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.5)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "pool workers outlived the killed bench"


def test_result_path_of_a_variant_and_of_a_folder_task(tmp_path):
    spec = RunSpec("folder:/data/Task04_Hippocampus", "weighted_ce", variant="wce_fg5")
    path = result_path(spec, tmp_path)
    assert path.parent.name == "wce_fg5" and path.parent.parent.name.startswith("folder-Task04")
