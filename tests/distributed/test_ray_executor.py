"""The grid on a local Ray instance: results on disk, a failure reported, finished runs skipped."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from metricseg.experiment.executor import get_executor
from metricseg.experiment.grid import RunSpec, load_result, result_path, run_one

ray = pytest.importorskip("ray")

TINY_2D = {"num_train": 4, "num_val": 2, "num_test": 3, "image_size": 32}
TINY_TRAIN = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "channels": [4, 8]}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _specs() -> list[RunSpec]:
    good = RunSpec("large-organ", "soft_dice", seed=0, task_options=TINY_2D, train=TINY_TRAIN)
    return [
        good,
        dataclasses.replace(good, loss="no_such_loss"),
        dataclasses.replace(good, loss="lovasz_softmax", seed=1),
    ]


@pytest.mark.ray
@pytest.mark.slow  # about 15 s: starts Ray, trains three tiny runs
def test_grid_on_ray_reports_failure_keeps_others_and_skips_finished(local_ray, tmp_path):
    specs = _specs()
    seen = []
    executor = get_executor("ray", num_cpus_per_run=1)
    outcomes = executor.run(specs, tmp_path, on_done=lambda i, n, o: seen.append((i, n, o)))

    assert [o.spec for o in outcomes] == specs  # in the order of the specs
    assert sorted(i for i, _, _ in seen) == [1, 2, 3] and {n for _, n, _ in seen} == {3}
    ok, failed, ok2 = outcomes
    assert ok.ok and ok2.ok and not ok.skipped and not ok2.skipped
    assert not failed.ok and "no_such_loss" in failed.error and failed.path is None
    assert result_path(specs[1], tmp_path).with_suffix(".error.txt").is_file()
    for outcome in (ok, ok2):
        res = load_result(outcome.path)
        assert res["spec"] == outcome.spec.to_dict()
        assert len(res["rows"]) == TINY_2D["num_test"] * 2

    # a run on a Ray worker gives the result of the same run in this process
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = load_result(run_one(specs[0], tmp_path / "here").path)
    finally:
        torch.set_num_threads(threads)
    there = load_result(ok.path)
    assert there["history"] == here["history"]
    assert [r["dice"] for r in there["rows"]] == [r["dice"] for r in here["rows"]]

    # rerun: finished runs are kept (not sent to Ray), the failed one is tried again
    mtime = ok.path.stat().st_mtime_ns
    again = executor.run(specs, tmp_path)
    assert [o.skipped for o in again] == [True, False, True]
    assert not again[1].ok and again[0].path == ok.path
    assert ok.path.stat().st_mtime_ns == mtime


def test_missing_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"metricseg\[ray\]"):
        get_executor("ray")


def test_bad_requests_are_rejected():
    with pytest.raises(ValueError, match="num_gpus_per_run"):
        get_executor("ray", num_gpus_per_run=-1)
    with pytest.raises(TypeError, match="address"):
        get_executor("ray", address=6379)


STUDY = """
losses = ["soft_dice", "ce"]
seeds = [0]

[train]
epochs = 2
steps_per_epoch = 2
batch_size = 2
channels = [4, 8]

[[tasks]]
name = "large-organ"
options = { num_train = 4, num_val = 2, num_test = 3, image_size = 32 }
"""


@pytest.mark.ray
@pytest.mark.slow  # about 10 s: two tiny runs on the Ray instance, then the report
def test_bench_cli_on_ray_and_rerun_keeps_finished_runs(local_ray, tmp_path, capsys):
    from metricseg.cli import main

    config = tmp_path / "study.toml"
    config.write_text(STUDY)
    out = tmp_path / "out"
    argv = ["bench", "--executor", "ray", "--config", str(config), "--out", str(out), "--no-plots"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.count("test Dice") >= 2 and "failed" not in first
    for loss in ("soft_dice", "ce"):
        assert load_result(out / "runs" / "large-organ" / loss / "seed0.json")["epochs_run"] == 2
    summary = (out / "summary.md").read_text()
    assert "--executor ray" in summary

    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 2


@pytest.mark.ray
@pytest.mark.slow  # a few seconds: one tiny run and one worker that dies
def test_a_worker_that_dies_is_reported_and_the_others_finish(local_ray, tmp_path, monkeypatch):
    import os

    from metricseg.experiment import ray_executor

    real = ray_executor._run_on_worker

    def die_on_seed_one(spec, out_dir, threads, progress):
        if spec.seed == 1:
            os._exit(3)  # as a node that runs out of memory would
        return real(spec, out_dir, threads, progress)

    monkeypatch.setattr(ray_executor, "_run_on_worker", die_on_seed_one)
    good = _specs()[0]
    dead = dataclasses.replace(good, seed=1)
    outcomes = get_executor("ray").run([dead, good], tmp_path)
    assert not outcomes[0].ok and outcomes[0].path is None
    assert outcomes[0].error.startswith("WorkerCrashedError")
    error_file = result_path(dead, tmp_path).with_suffix(".error.txt")
    assert "WorkerCrashedError" in error_file.read_text()
    assert outcomes[1].ok and load_result(outcomes[1].path)["spec"] == good.to_dict()
