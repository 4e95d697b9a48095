"""metricseg compare: folders of predictions on one ground truth, with the study's statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metricseg.cli import main
from metricseg.io import write_image


def _folders(tmp_path, n=12):
    rng = np.random.default_rng(0)
    gt_dir, good, bad, same = (tmp_path / d for d in ("gt", "good", "bad", "same"))
    for i in range(n):
        gt = np.zeros((12, 16, 16), np.uint8)
        c = rng.integers(5, 11, 3)
        gt[c[0] - 3 : c[0] + 3, c[1] - 4 : c[1] + 4, c[2] - 4 : c[2] + 4] = 1
        gt[c[0] - 1 : c[0] + 1, c[1] - 2 : c[1] + 2, c[2] - 2 : c[2] + 2] = 2
        write_image(gt_dir / f"case{i:02d}.nii.gz", gt)
        slight = np.roll(gt, 1, axis=2)  # one voxel off: a good model
        worse = np.roll(gt, 2 + i % 2, axis=1)  # two or three voxels off: a worse one
        write_image(good / f"case{i:02d}.nii.gz", slight)
        write_image(same / f"case{i:02d}.nii.gz", slight)
        write_image(bad / f"case{i:02d}.nii.gz", worse)
    return gt_dir, good, bad, same


def test_a_clearly_better_folder_is_supported_and_equal_ones_are_inconclusive(tmp_path, capsys):
    gt, good, bad, same = _folders(tmp_path)
    out = tmp_path / "cmp"
    assert main(["compare", str(good), str(bad), str(same), str(gt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {(v["a"], v["b"]): v["verdict"] for v in summary["verdicts"]}
    assert verdicts[("good", "bad")] == "supported"
    assert verdicts[("bad", "same")] == "contradicted"  # "bad is better than same" is refuted
    assert verdicts[("good", "same")] == "inconclusive"
    assert "good scores a higher Dice than bad: supported" in printed
    tests = [t for t in summary["tests"] if (t["a"], t["b"]) == ("good", "same")]
    assert {t["label"] for t in tests} == {1, 2} and all(t["mean_diff"] == 0 for t in tests)
    md = (out / "summary.md").read_text()
    assert "## Verdicts" in md and "## Paired tests" in md
    header = (out / "cases.csv").read_text().splitlines()[0]
    assert header.startswith("task,loss,loss_name,seed,fold,case,subject,class_index")
    rows = (out / "cases.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 * 12 * 2  # folders × cases × labels


def test_compare_refuses_bad_input(tmp_path, capsys):
    gt, good, bad, _ = _folders(tmp_path, n=3)
    assert main(["compare", str(good), str(gt)]) == 2
    assert "at least two prediction folders" in capsys.readouterr().err
    assert main(["compare", str(good), str(bad), str(gt), "--out", str(gt / "x")]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    (bad / "case01.nii.gz").unlink()
    assert main(["compare", str(good), str(bad), str(gt), "--out", str(tmp_path / "o")]) == 1
    assert "no prediction for case 'case01'" in capsys.readouterr().err
    assert main(["compare", str(good), str(good), str(gt), "--names", "a,a"]) == 2
    assert "different names" in capsys.readouterr().err


@pytest.mark.parametrize("names", [["x", "y"]])
def test_names_label_the_report(tmp_path, names):
    gt, good, bad, _ = _folders(tmp_path, n=4)
    out = tmp_path / "o"
    assert (
        main(
            ["compare", str(good), str(bad), str(gt), "--out", str(out), "--names", ",".join(names)]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdicts"][0]["a"] == "x" and summary["verdicts"][0]["b"] == "y"


def test_folders_of_one_name_are_told_apart_and_the_header_gives_the_whole_command(tmp_path):
    gt, good, _, _ = _folders(tmp_path, n=4)
    other = tmp_path / "run2" / "good"  # the same folder name as `good`
    other.parent.mkdir()
    good.rename(tmp_path / "tmp")
    (tmp_path / "tmp").rename(other)
    good.mkdir()
    for f in other.iterdir():
        (good / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "o"
    assert (
        main(["compare", str(good), str(other), str(gt), "--out", str(out), "--labels", "1"]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert {summary["verdicts"][0]["a"], summary["verdicts"][0]["b"]} == {str(good), str(other)}
    command = summary["header"]["command"]
    assert command.endswith(f"--labels 1 --out {out}") and str(other) in command


def test_a_label_no_file_holds_is_refused_and_one_a_folder_never_predicts_is_scored(
    tmp_path, capsys
):
    gt, good, bad, _ = _folders(tmp_path, n=4)
    assert main(["compare", str(good), str(bad), str(gt), "--labels", "7"]) == 2
    err = capsys.readouterr().err
    assert "--labels [7]: no prediction or ground-truth file holds this label" in err
    assert "labels found: 0, 1, 2" in err and "--num-classes" not in err
    # a folder that never predicts label 2 is scored on it (Dice 0), not refused
    none2 = tmp_path / "none2"
    for f in sorted(good.iterdir()):
        from metricseg.io import read_image

        labels = read_image(f)[0]
        write_image(none2 / f.name, np.where(labels == 2, 1, labels).astype(np.uint8))
    out = tmp_path / "o2"
    assert (
        main(["compare", str(good), str(none2), str(gt), "--labels", "2", "--out", str(out)]) == 0
    )
    rows = (out / "cases.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 4


def test_too_few_cases_for_any_significant_test_are_said(tmp_path, capsys):
    gt, good, bad, _ = _folders(tmp_path, n=3)
    out = tmp_path / "o"
    assert main(["compare", str(good), str(bad), str(gt), "--out", str(out)]) == 0
    assert "too few cases: with 3 case(s) per label" in capsys.readouterr().out
    assert "smallest p-value is 0.25" in (out / "summary.md").read_text()
    gt, good, bad, _ = _folders(tmp_path / "more", n=12)
    assert main(["compare", str(good), str(bad), str(gt), "--out", str(tmp_path / "o2")]) == 0
    assert "too few cases" not in capsys.readouterr().out
