from __future__ import annotations

import csv
import json

import pytest

from metricseg.cli import main
from metricseg.experiment.executor import LocalExecutor
from metricseg.experiment.grid import load_result, result_path, run_one
from metricseg.experiment.report import CSV_COLUMNS, build_report
from metricseg.experiment.spec import RunSpec
from metricseg.experiment.suite import default_suite, load_suite, quick_suite

from .conftest import TINY_2D, TINY_TRAIN

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_files(tmp_path):
    specs = [
        RunSpec("multiclass", loss, seed=seed, task_options=TINY_2D, train=TINY_TRAIN)
        for loss in ("soft_dice", "ce")
        for seed in (0, 1)
    ]
    results = [load_result(run_one(s, tmp_path).path) for s in specs]
    analysis = build_report(
        tmp_path, results, header={"command": "test"}, notes=["a note"], n_resamples=200
    )
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 4 * TINY_2D["num_test"] * 4  # runs × cases × classes
    md = (tmp_path / "summary.md").read_text()
    for text in ("## multiclass", "Dice 95 % CI", "Per-class results", "Dice–Jaccard band", "a note",
                 "Claims of the paper, tested", "Verdict rule", "| chance |", "## Seeds",
                 "## Training curves", "Losses and their options"):  # fmt: skip
        assert text in md
    # strata columns in their natural order, whichever stratum the first row holds
    ratio_header = next(line for line in md.splitlines() if line.startswith("| task | loss | ")
                        and "%" in line)  # fmt: skip
    cols = [c.strip() for c in ratio_header.strip("|").split("|")][2:]
    assert cols == [b for b in ("< 1 %", "1–10 %", "≥ 10 %") if b in cols]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {s["loss"] for s in summary["summaries"]} == {"soft_dice", "ce"}
    assert all(s["n_runs"] == 2 and s["n_seeds"] == 2 for s in summary["summaries"])
    assert summary["band"]["inside"] == summary["band"]["n"] > 0
    assert [c["id"] for c in summary["claims"]] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert summary["verdict"] == analysis.verdict and md.count(analysis.verdict) == 1
    for name in ("box_multiclass.png", "dice_by_size.png", "dice_vs_jaccard.png",
                 "curves_multiclass.png"):  # fmt: skip
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG_MAGIC
    assert len(analysis.pairwise) == 2  # one pair, Dice and Jaccard
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


STUDY = """
losses = ["soft_dice", "ce"]
seeds = [0]
[train]
epochs = 1
steps_per_epoch = 2
batch_size = 2
channels = [4, 8]
[[tasks]]
name = "tiny-lesions"
options = { num_train = 4, num_val = 2, num_test = 3, image_size = 32 }
"""


def test_bench_cli_with_config_and_rerun(tmp_path, capsys):
    cfg = tmp_path / "study.toml"
    cfg.write_text(STUDY)
    out = tmp_path / "out"
    argv = ["bench", "--config", str(cfg), "--out", str(out), "--jobs", "1", "--no-plots"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "2 runs" in first and "test Dice" in first and "tiny-lesions" in first
    assert (out / "summary.md").is_file() and (out / "runs.csv").is_file()
    assert main(argv) == 0
    assert first.count("finished earlier, kept") == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 2


def test_bench_cli_rejects_unknown_loss_and_config(tmp_path, capsys):
    assert main(["bench", "--losses", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown loss" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [tiny-lesions]\nlosses: [ce]\nepochs: 3\n")
    assert main(["bench", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing written for a study that fails its check


def test_load_suite_yaml_and_overrides(tmp_path):
    p = tmp_path / "s.yml"
    p.write_text(
        "tasks:\n  - tiny-lesions\n  - {name: multiclass, options: {num_train: 8}, train: {epochs: 7}}\n"
        "losses: [ce, focal]\nseeds: [0, 2]\nfolds: 2\ntrain: {epochs: 3}\n"
        "loss_options: {focal: {gamma: 3.0}}\n"
    )
    suite = load_suite(p)
    specs = suite.specs()
    assert len(specs) == 2 * 2 * 2 * 2
    mc = next(s for s in specs if s.task == "multiclass" and s.loss == "focal")
    assert [s.fold for s in specs[:2]] == [0, 1] and specs[0].num_folds == 2
    assert (
        mc.train == {"epochs": 7}
        and mc.task_options == {"num_train": 8}
        and mc.loss_options == {"gamma": 3.0}
    )
    over = suite.with_overrides(epochs=1, losses=["ce"], tasks=["multiclass", "large-organ"])
    assert over.loss_labels == ["ce"]
    assert {s.train["epochs"] for s in over.specs()} == {1}
    assert [t.name for t in over.tasks] == ["multiclass", "large-organ"]
    assert over.tasks[0].options == {"num_train": 8}
    p.write_text("tasks: [a]\nlosses: [ce]\ntrain: {epoch: 3}\n")
    with pytest.raises(ValueError, match="unknown training option"):
        load_suite(p)


def test_default_and_quick_suites_cover_the_brief():
    suite, notes = default_suite()
    names = [t.name for t in suite.tasks]
    assert names[:5] == ["tiny-lesions", "large-organ", "mixed-sizes", "multiclass", "synthetic-3d"]
    assert set(suite.loss_labels) >= {
        "soft_dice",
        "soft_jaccard",
        "lovasz_softmax",
        "ce",
        "weighted_ce",
        "focal",
        "dice_ce",
    }
    assert "aal-small" not in names and any("aal-small" in n for n in notes)
    quick, _ = quick_suite()
    assert {t.name for t in quick.tasks} == {"large-organ", "synthetic-3d"}


@pytest.mark.slow
def test_process_pool_gives_the_same_results_as_sequential(tmp_path):
    specs = [
        RunSpec("tiny-lesions", loss, task_options=TINY_2D, train=TINY_TRAIN)
        for loss in ("ce", "soft_dice")
    ]
    seq = LocalExecutor(jobs=1).run(specs, tmp_path / "seq")
    par = LocalExecutor(jobs=2).run(specs, tmp_path / "par")
    assert all(o.ok for o in seq + par)
    for s in specs:
        a = load_result(result_path(s, tmp_path / "seq"))["rows"]
        b = load_result(result_path(s, tmp_path / "par"))["rows"]
        assert a == b


def test_train_cli(tmp_path, capsys):
    argv = ["train", "--task", "large-organ", "--loss", "ce", "--epochs", "1", "--channels", "4,8",
            "--out", str(tmp_path), "--batch-size", "4", "--option", "num_train=4",
            "--option", "num_val=2", "--option", "num_test=2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "best epoch 1 of 1" in out and "organ" in out
    res = json.loads((tmp_path / "runs" / "large-organ" / "ce" / "seed0.json").read_text())
    assert res["task_info"]["n_train"] == 4 and len(res["rows"]) == 2 * 2
    assert main(["train", "--task", "large-organ", "--loss", "nope", "--out", str(tmp_path)]) == 2
    assert main(["train", "--task", "large-organ", "--loss", "ce", "--option", "x"]) == 2
