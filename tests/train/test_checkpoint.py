"""The checkpoint: typed state, loaded without unpickling, identity checked first, orphans cleaned."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from metricseg.train import CHECKPOINT_NAME, CheckpointError, TrainConfig, train
from metricseg.train.checkpoint import load_checkpoint, remove_orphans

from .conftest import make_task

CFG = TrainConfig(epochs=1, batch_size=2, channels=(4, 8))


class _Planted:
    """A pickle that creates a file when it is unpickled: code execution, if it ever loads."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _identity(task, seed=0):
    return {"task": task.name, "loss": "CrossEntropyLoss", "seed": seed, "config": CFG.to_dict()}


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path):
    task = make_task(2, n=(4, 1, 1))
    marker = tmp_path / "code-ran"
    folder = tmp_path / "run"
    folder.mkdir()
    # the attacker writes both files: a matching identity and a pickle that runs code
    (folder / "checkpoint.json").write_text(json.dumps({"format": 2, "identity": _identity(task)}))
    with open(folder / CHECKPOINT_NAME, "wb") as f:
        pickle.dump({"format": 2, "model": _Planted(str(marker))}, f, protocol=2)
    with pytest.raises(CheckpointError, match="refused to load"):
        train(task, torch.nn.CrossEntropyLoss(), CFG, out_dir=folder, resume=True)
    assert not marker.exists()
    # the same file as torch.save writes it is refused too
    torch.save({"format": 2, "model": _Planted(str(marker))}, folder / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="not a metricseg checkpoint"):
        load_checkpoint(folder, _identity(task))
    assert not marker.exists()


def test_identity_is_checked_before_the_tensors_are_read(tmp_path, monkeypatch):
    task = make_task(2, n=(4, 1, 1))
    train(task, torch.nn.CrossEntropyLoss(), CFG, seed=0, out_dir=tmp_path)
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or {})
    with pytest.raises(CheckpointError, match="another run"):
        load_checkpoint(tmp_path, _identity(task, seed=1))
    assert loads == []


def test_a_saved_checkpoint_loads_with_weights_only(tmp_path):
    task = make_task(2, n=(4, 1, 1))
    train(task, torch.nn.CrossEntropyLoss(), CFG, seed=0, out_dir=tmp_path)
    torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)  # plain containers only
    state = load_checkpoint(tmp_path, _identity(task))
    assert state is not None and state.epoch == 1 and len(state.history) == 1
    assert isinstance(state.sampler, str) and state.torch_rng.dtype == torch.uint8


def test_orphan_temporary_files_are_removed_on_the_next_start(tmp_path):
    task = make_task(2, n=(4, 1, 1))
    tmp_path.joinpath(".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    tmp_path.joinpath(".checkpoint.json.x.tmp").write_text("{")
    tmp_path.joinpath("notes.txt").write_text("mine")  # not ours: kept
    train(task, torch.nn.CrossEntropyLoss(), CFG, out_dir=tmp_path, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        CHECKPOINT_NAME,
        "notes.txt",
    ]
    assert remove_orphans(tmp_path / "missing") == []
