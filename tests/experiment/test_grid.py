from __future__ import annotations

import dataclasses
import json

import pytest

import metricseg.train as train_module
from metricseg.experiment.executor import LocalExecutor, get_executor
from metricseg.experiment.grid import (
    load_result,
    load_task,
    outer_fold,
    result_path,
    run_one,
    run_one_safe,
)
from metricseg.experiment.spec import RunSpec, expand_grid

from .conftest import TINY_2D, TINY_3D, TINY_TRAIN


def test_expand_grid_and_paths(tmp_path):
    specs = expand_grid(
        ["a", ("b", {"num_train": 3}, {"epochs": 9})],
        ["ce", "soft_dice"],
        [0, 1],
        folds=3,
        train={"epochs": 2, "lr": 0.1},
        loss_options={"ce": {"label_smoothing": 0.1}},
    )
    assert len(specs) == 2 * 2 * 2 * 3
    b = next(s for s in specs if s.task == "b")
    assert b.train == {"epochs": 9, "lr": 0.1} and b.task_options == {"num_train": 3}
    assert [s.loss_options for s in specs[:6]] == [{"label_smoothing": 0.1}] * 6
    assert result_path(specs[1], tmp_path) == tmp_path / "runs" / "a" / "ce" / "seed0-fold1.json"
    with pytest.raises(ValueError, match="fold"):
        RunSpec("a", "ce", fold=5, num_folds=5)
    variant = expand_grid(["a"], [("wce5", "weighted_ce", {"foreground_weight": 5})])[0]
    assert result_path(variant, tmp_path) == tmp_path / "runs" / "a" / "wce5" / "seed0.json"


def test_run_one_2d_writes_rows_and_skips_when_finished(tmp_path, tiny_spec, monkeypatch):
    outcome = run_one(tiny_spec, tmp_path)
    path = outcome.path
    assert outcome.status == "trained" and path == result_path(tiny_spec, tmp_path)
    res = load_result(path)
    assert res["spec"] == tiny_spec.to_dict()
    assert len(res["rows"]) == TINY_2D["num_test"] * 2  # cases × classes
    assert res["epochs_run"] == 2 and len(res["history"]) == 2
    row = res["rows"][1]
    assert row["dice"] == pytest.approx(2 * row["tp"] / (2 * row["tp"] + row["fp"] + row["fn"]))
    assert (path.with_suffix(".work") / "checkpoint.pt").is_file()

    # finished: a rerun must not train again
    def boom(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_module, "train", boom)
    mtime = path.stat().st_mtime_ns
    assert run_one(tiny_spec, tmp_path).path == path
    assert path.stat().st_mtime_ns == mtime
    outcome = run_one_safe(tiny_spec, tmp_path)
    assert outcome.ok and outcome.skipped
    # another spec at the same path (more epochs) is not "finished"
    changed = dataclasses.replace(tiny_spec, train={**TINY_TRAIN, "epochs": 3})
    failed = run_one_safe(changed, tmp_path)
    assert not failed.ok and "trained again" in failed.error


def test_run_one_3d_end_to_end(tmp_path):
    spec = RunSpec(
        "synthetic-3d", "ce", task_options=TINY_3D, train={**TINY_TRAIN, "channels": [4, 8]}
    )
    res = load_result(run_one(spec, tmp_path).path)
    assert res["task_info"]["spatial_dims"] == 3
    assert len(res["rows"]) == TINY_3D["num_test"] * 3
    assert all(0 <= r["hamming"] <= 1 for r in res["rows"] if r["hamming"] == r["hamming"])


def test_failed_run_loses_nothing_else(tmp_path, tiny_spec):
    bad = dataclasses.replace(tiny_spec, loss="no_such_loss")
    seen = []
    outcomes = LocalExecutor().run(
        [bad, tiny_spec], tmp_path, on_done=lambda i, n, o: seen.append((i, n, o.ok))
    )
    assert seen == [(1, 2, False), (2, 2, True)]
    assert "no_such_loss" in outcomes[0].error
    assert result_path(bad, tmp_path).with_suffix(".error.txt").is_file()
    assert not result_path(bad, tmp_path).exists()
    assert not result_path(bad, tmp_path).with_suffix(".work").exists()  # failed before training
    assert load_result(result_path(tiny_spec, tmp_path)) is not None


def test_stale_checkpoint_of_other_spec_is_discarded(tmp_path, tiny_spec):
    other = dataclasses.replace(tiny_spec, train={**TINY_TRAIN, "epochs": 1})
    run_one(other, tmp_path)
    result_path(other, tmp_path).unlink()  # as if killed after the last checkpoint
    res = load_result(run_one(tiny_spec, tmp_path).path)
    assert res["resumed_from_epoch"] == 0 and res["epochs_run"] == 2
    work_spec = json.loads(
        (result_path(tiny_spec, tmp_path).with_suffix(".work") / "spec.json").read_text()
    )
    assert work_spec == tiny_spec.to_dict()


def test_killed_run_resumes_from_checkpoint(tmp_path, tiny_spec):
    first = load_result(run_one(tiny_spec, tmp_path / "a").path)
    # keep the work folder of a finished run but drop its result: the rerun resumes at epoch 2
    result_path(tiny_spec, tmp_path / "a").unlink()
    again = load_result(run_one(tiny_spec, tmp_path / "a").path)
    assert again["resumed_from_epoch"] == 2
    assert again["rows"] == first["rows"]


def test_outer_folds_split_by_subject_and_test_each_subject_once():
    task = load_task(RunSpec("large-organ", "ce", task_options=TINY_2D))
    # make subjects of two cases each, so that a fold must keep a subject's cases together
    cases = [dataclasses.replace(c, subject=f"s{i // 2}") for i, c in enumerate(task.cases)]
    task = dataclasses.replace(task, train=cases[:4], val=cases[4:6], test=cases[6:])
    subjects = {c.subject_id for c in cases}
    tested = []
    for k in range(2):
        f = outer_fold(task, k, 2, seed=7)
        roles = [{c.subject_id for c in split} for split in (f.train, f.val, f.test)]
        assert not (roles[0] & roles[1]) and not (roles[0] & roles[2]) and not (roles[1] & roles[2])
        assert set().union(*roles) == subjects and roles[1]  # every subject, a validation one
        assert len(f.train) + len(f.val) + len(f.test) == len(cases)
        tested += [c.case_id for c in f.test]
    assert sorted(tested) == sorted(c.case_id for c in cases)  # each case tested exactly once
    with pytest.raises(ValueError, match="5 subject"):
        outer_fold(task, 0, 4)  # too few subjects for 4 folds plus training and validation


def test_get_executor():
    assert isinstance(get_executor("local", jobs=2), LocalExecutor)
    with pytest.raises(ValueError, match="executor must be one of"):
        get_executor("slurm")
    with pytest.raises(ValueError, match="jobs"):
        LocalExecutor(jobs=0)


def test_a_result_of_the_first_format_is_rescored_from_its_counts_not_retrained(
    tmp_path, tiny_spec, monkeypatch
):
    import math

    from metricseg.experiment.scoring import TVERSKY_COLUMN

    current = load_result(run_one(tiny_spec, tmp_path).path)
    path = result_path(tiny_spec, tmp_path)
    old = json.loads(path.read_text())
    old["format"] = 1  # as the first format stored it: a bare tversky, Hamming 1 when empty
    for row in old["rows"]:
        row.pop("subject"), row.pop("sensitivity"), row.pop("precision")
        row["tversky"] = row.pop(TVERSKY_COLUMN)
        if row["tp"] + row["fp"] + row["fn"] == 0:
            row["hamming"] = 1.0
    del old["spec"]["variant"], old["spec"]["label"]
    path.write_text(json.dumps(old))

    def boom(*args, **kwargs):
        raise AssertionError("an old result was trained again")

    monkeypatch.setattr(train_module, "train", boom)
    assert run_one(tiny_spec, tmp_path).status == "rescored"
    new = load_result(path)
    assert new["rescored_from_format"] == 1 and new["spec"] == tiny_spec.to_dict()
    for a, b in zip(current["rows"], new["rows"]):
        assert set(a) == set(b) and "tversky" not in b
        for k in a:
            assert a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
    assert run_one(tiny_spec, tmp_path).status == "kept"
