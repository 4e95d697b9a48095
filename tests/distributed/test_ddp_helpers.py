"""The single-process behaviour of metricseg.train.ddp, and bench refusing to run under torchrun."""

from __future__ import annotations

import math

import torch

from metricseg.train import ddp


def test_outside_torchrun_everything_is_the_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert not ddp.launched_by_torchrun() and ddp.local_processes() == 1
    assert ddp.init_from_env("cpu") is False
    model = torch.nn.Linear(2, 2)
    assert ddp.wrap_model(model) is model
    x, y = torch.arange(6).reshape(3, 2), torch.arange(3)
    sx, sy = ddp.shard_batch(x, y)
    assert sx is x and sy is y
    assert ddp.mean_over_processes(0.25) == 0.25
    # one process: the score of all items at once (which is their mean)
    assert ddp.mean_over_shards(lambda items: sum(items) / len(items), [1.0, 2.0, 6.0]) == 3.0
    assert math.isnan(ddp.mean_over_shards(lambda items: math.nan, [1.0]))


def test_torchrun_environment_is_recognised(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert ddp.launched_by_torchrun() and ddp.local_processes() == 2
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not ddp.launched_by_torchrun()


def test_bench_refuses_to_run_under_torchrun(monkeypatch, capsys):
    from metricseg.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["bench", "--quick", "--out", "unused"]) == 2
    assert "does not run under torchrun" in capsys.readouterr().err
