"""`metricseg evaluate` on small NIfTI, NRRD, MHA and PNG files written here, errors included."""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("SimpleITK")

from metricseg import file_scoring
from metricseg.cli import main
from metricseg.file_scoring import (
    EvaluationError,
    SettingsError,
    count_case,
    evaluate_pairs,
    match_cases,
)
from metricseg.io import Geometry, write_image

GT3D = np.zeros((3, 4, 5), dtype=np.uint8)
GT3D[0, :2, :2] = 1  # 4 voxels of label 1
GT3D[2, 1:3, 1:4] = 2  # 6 voxels of label 2
PRED3D = GT3D.copy()
PRED3D[0, 0, 0] = 0  # label 1: TP 3, FN 1
PRED3D[1, 0, 0] = 2  # label 2: TP 6, FP 1


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    write_image(gt / "a.nii.gz", GT3D)
    write_image(pred / "a.nii.gz", PRED3D)
    write_image(gt / "b.nrrd", GT3D)
    write_image(pred / "b.nrrd", GT3D)  # perfect
    g2 = np.zeros((4, 6), dtype=np.uint8)
    g2[1:3, 1:3] = 1  # label 2 absent from both: an empty case
    p2 = g2.copy()
    p2[0, 0] = 1
    write_image(gt / "c.png", g2)
    write_image(pred / "c.png", p2)
    return pred, gt


def test_folders_csv_and_summary(folders, tmp_path, capsys):
    pred, gt = folders
    out = tmp_path / "scores.csv"
    rc = main(
        ["evaluate", str(pred), str(gt), "--out", str(out), "--metrics", "dice,jaccard,hamming"]
    )
    assert rc == 0
    rows = _rows(out)
    assert [(r["case"], r["label"]) for r in rows] == [
        ("a", "1"),
        ("a", "2"),
        ("b", "1"),
        ("b", "2"),
        ("c", "1"),
        ("c", "2"),
    ]
    a1, a2, c1, c2 = rows[0], rows[1], rows[4], rows[5]
    assert (a1["tp"], a1["fp"], a1["fn"], a1["voxels"]) == ("3", "0", "1", "60")
    assert float(a1["dice"]) == pytest.approx(6 / 7)
    assert float(a2["jaccard"]) == pytest.approx(6 / 7)
    assert float(a2["hamming"]) == pytest.approx(1 - 1 / 60)
    assert float(c1["dice"]) == pytest.approx(8 / 9)
    assert math.isnan(float(c2["dice"]))  # both empty -> nan, left out of the mean
    text = capsys.readouterr().out
    assert "macro" in text and "micro" in text and "global" in text
    label2 = next(line for line in text.splitlines() if line.strip("│ ").startswith("2 "))
    # label 2 mean over a and b (c is empty): (12/13 + 1)/2 = 0.9615, one empty case
    assert "0.9615" in label2 and label2.rstrip(" │").endswith("1")


def test_two_files_labels_and_empty_policy(tmp_path):
    write_image(tmp_path / "p.mha", PRED3D)
    write_image(tmp_path / "g.mha", GT3D)
    out = tmp_path / "o.csv"
    rc = main(
        [
            "evaluate",
            str(tmp_path / "p.mha"),
            str(tmp_path / "g.mha"),
            "--labels",
            "0,2,3",
            "--num-classes",
            "4",
            "--empty",
            "one",
            "--metrics",
            "precision",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rows = _rows(out)
    assert [r["label"] for r in rows] == ["0", "2", "3"]
    assert float(rows[1]["precision"]) == pytest.approx(6 / 7)
    assert float(rows[2]["precision"]) == 1.0  # label 3 absent from both, empty="one"


def test_ignore_index(tmp_path):
    gt = GT3D.copy()
    gt[1] = 255  # the slice holding the false positive is ignored
    write_image(tmp_path / "p.nii", PRED3D)
    write_image(tmp_path / "g.nii", gt)
    out = tmp_path / "o.csv"
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "p.nii"),
                str(tmp_path / "g.nii"),
                "--ignore-index",
                "255",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = _rows(out)
    assert (rows[1]["tp"], rows[1]["fp"], rows[1]["voxels"]) == ("6", "0", "40")
    assert float(rows[1]["dice"]) == 1.0


def test_failures_keep_going_and_stop(folders, tmp_path, capsys):
    pred, gt = folders
    (pred / "d.nii.gz").write_bytes(b"this is not a nifti file")  # corrupt
    write_image(gt / "d.nii.gz", GT3D)
    write_image(gt / "e.nii.gz", GT3D)
    write_image(pred / "e.nii.gz", GT3D[:2])  # shape mismatch
    write_image(
        gt / "f.nrrd", GT3D, Geometry((1.0, 1.0, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    )
    write_image(pred / "f.nrrd", GT3D)  # spacing 1,1,1: geometry mismatch
    write_image(gt / "g.png", GT3D[0])  # no prediction
    out = tmp_path / "o.csv"
    rc = main(["evaluate", str(pred), str(gt), "--keep-going", "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "4 case(s) failed" in err
    assert f"{pred / 'd.nii.gz'}: cannot read as an image" in err
    assert f"{pred / 'e.nii.gz'}: shape (2, 4, 5) differs" in err
    assert f"{pred / 'f.nrrd'}: spacing differs" in err
    assert f"{gt / 'g.png'}: no prediction for case 'g'" in err
    assert sorted({r["case"] for r in _rows(out)}) == ["a", "b", "c"]  # the others still scored
    # without --keep-going: stop at the first problem, name the file, write nothing
    out.unlink()
    assert main(["evaluate", str(pred), str(gt), "--out", str(out)]) == 1
    assert "error:" in capsys.readouterr().err and not out.exists()
    # a looser tolerance or --ignore-geometry lets the geometry case through
    pairs, _ = match_cases(pred, gt)
    f_pair = [p for p in pairs if p[0] == "f"]
    assert evaluate_pairs(f_pair, geometry_tolerance=2.0).cases[0].name == "f"
    with pytest.raises(EvaluationError, match="spacing differs"):
        evaluate_pairs(f_pair)


def test_bad_labels_and_paths(folders, tmp_path, capsys):
    """Usage errors exit 2, a case that fails exits 1; stderr, no traceback (issue 11 item 18)."""
    pred, gt = folders
    assert main(["evaluate", str(pred), str(tmp_path / "missing")]) == 2
    assert "missing: no such file or folder (ground truth)" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--labels", "5"]) == 2
    assert "--labels [5] outside" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--labels", "5", "--num-classes", "3"]) == 2
    assert "--labels [5] outside the classes [0, 2]" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--labels", "-1"]) == 2
    assert "--labels must be >= 0, got [-1]" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--num-classes", "0"]) == 2
    assert "--num-classes must be >= 1, got 0" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--num-classes", "2"]) == 1
    assert "holds label 2, outside [0, 1]" in capsys.readouterr().err
    assert main(["evaluate", str(pred / "a.nii.gz"), str(gt)]) == 2
    assert "PRED and GT must be two folders or two files" in capsys.readouterr().err
    for bad in (["--metrics", "dice,f1"], ["--labels", "1,x"], ["--labels", ","]):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(pred), str(gt), *bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "usage: metricseg evaluate" in err and "Traceback" not in err
        assert (
            "unknown metric" in err
            or "expected a comma-separated" in err
            or "expected comma-separated" in err
        )


def test_float_label_images(tmp_path, capsys):
    write_image(tmp_path / "p.nii.gz", PRED3D.astype(np.float32))
    write_image(tmp_path / "g.nii.gz", GT3D)
    assert main(["evaluate", str(tmp_path / "p.nii.gz"), str(tmp_path / "g.nii.gz")]) == 0
    assert "0.8571" in capsys.readouterr().out  # label 1 Dice 6/7
    write_image(tmp_path / "q.nii.gz", PRED3D.astype(np.float32) + 0.5)
    assert main(["evaluate", str(tmp_path / "q.nii.gz"), str(tmp_path / "g.nii.gz")]) == 1
    assert "q.nii.gz: not a label image (holds non-integer values)" in capsys.readouterr().err


@pytest.mark.slow
def test_subprocess_exit_codes(tmp_path):
    write_image(tmp_path / "p.nii.gz", PRED3D)
    write_image(tmp_path / "g.nii.gz", GT3D)
    res = _cli(tmp_path / "p.nii.gz", tmp_path / "g.nii.gz")
    assert res.returncode == 0, res.stderr
    assert "0.8571" in res.stdout  # label 1 Dice 6/7
    bad = _cli(tmp_path / "p.nii.gz", tmp_path / "nothing.nii.gz")
    assert bad.returncode == 2 and "nothing.nii.gz: no such file or folder" in bad.stderr
    assert "Traceback" not in bad.stderr
    write_image(tmp_path / "n.nii.gz", PRED3D.astype(np.float32) - 1)  # holds -1
    neg = _cli(tmp_path / "n.nii.gz", tmp_path / "g.nii.gz")
    assert neg.returncode == 1 and "n.nii.gz: holds negative label -1" in neg.stderr
    assert "Traceback" not in neg.stderr


def _cli(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "metricseg", "evaluate", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_negative_float_label_names_the_file_and_keep_going_goes_on(folders, tmp_path, capsys):
    """Issue 11 item 11: a float -1 crashed with a traceback, unnamed, and stopped --keep-going."""
    pred, gt = folders
    negative = PRED3D.astype(np.float32)
    negative[0, 0, 0] = -1.0
    write_image(pred / "d.nii.gz", negative)
    write_image(gt / "d.nii.gz", GT3D)
    out = tmp_path / "o.csv"
    assert main(["evaluate", str(pred), str(gt), "--keep-going", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"{pred / 'd.nii.gz'}: holds negative label -1 (1 voxels)" in captured.err
    assert "1 case(s) failed" in captured.err and "Traceback" not in captured.err
    assert sorted({r["case"] for r in _rows(out)}) == ["a", "b", "c"]
    # without --keep-going: exit 1 at that case, the file named
    assert main(["evaluate", str(pred / "d.nii.gz"), str(gt / "d.nii.gz")]) == 1
    assert "d.nii.gz: holds negative label -1" in capsys.readouterr().err
    # a negative ground-truth label points to --ignore-index
    with pytest.raises(EvaluationError, match=r"pass --ignore-index -1"):
        count_case("d", gt / "a.nii.gz", pred / "d.nii.gz")


def test_ignore_index_that_is_a_class_is_a_usage_error(tmp_path, capsys):
    """Issue 11 item 12: --ignore-index 2 on labels 0..2 halved the macro Dice and exited 0."""
    write_image(tmp_path / "p.nii.gz", PRED3D)
    write_image(tmp_path / "g.nii.gz", GT3D)
    p, g = str(tmp_path / "p.nii.gz"), str(tmp_path / "g.nii.gz")
    assert main(["evaluate", p, g, "--ignore-index", "2"]) == 2
    err = capsys.readouterr().err
    assert "--ignore-index 2 is a class label" in err and "holds label 2" in err
    # refused before any file is read when the settings alone show it
    missing = str(tmp_path / "nothing")
    assert main(["evaluate", missing, missing, "--labels", "1,2", "--ignore-index", "2"]) == 2
    assert "--ignore-index 2 is one of the labels reported" in capsys.readouterr().err
    assert main(["evaluate", missing, missing, "--num-classes", "3", "--ignore-index", "0"]) == 2
    assert "--ignore-index 0 is a class of --num-classes 3" in capsys.readouterr().err
    # also with --keep-going: the settings are wrong for every case
    with pytest.raises(SettingsError, match="is a class label"):
        evaluate_pairs([("c", Path(p), Path(g))], ignore_index=1, keep_going=True)


def test_ignore_index_minus_one(tmp_path):
    """Issue 11 item 12: a ground truth marking left-out voxels with -1 is usable."""
    gt = GT3D.astype(np.int16)
    gt[1] = -1  # the slice holding the false positive is left out
    write_image(tmp_path / "p.nii.gz", PRED3D)
    write_image(tmp_path / "g.nii.gz", gt)
    out = tmp_path / "o.csv"
    p, g = str(tmp_path / "p.nii.gz"), str(tmp_path / "g.nii.gz")
    assert main(["evaluate", p, g, "--ignore-index", "-1", "--out", str(out)]) == 0
    rows = _rows(out)
    assert (rows[0]["tp"], rows[0]["fp"], rows[0]["fn"]) == ("3", "0", "1")
    assert (rows[1]["tp"], rows[1]["fp"], rows[1]["voxels"]) == ("6", "0", "40")
    assert float(rows[1]["dice"]) == 1.0
    assert main(["evaluate", p, g]) == 1  # without it, -1 is a negative label


def test_a_prediction_holding_the_ignore_index_makes_it_a_class(tmp_path):
    """A perfect prediction of class 2 with --ignore-index 2: refused, not silently dropped.

    A prediction holds classes only, so its values count everywhere, also where the
    ground truth is ignored; the ground truth's ignored voxels do not.
    """
    gt = GT3D.copy()
    write_image(tmp_path / "p.nii.gz", gt)  # predicts label 2 exactly where it is
    write_image(tmp_path / "g.nii.gz", gt)
    pairs = [("c", tmp_path / "p.nii.gz", tmp_path / "g.nii.gz")]
    with pytest.raises(SettingsError, match=r"p\.nii\.gz holds label 2"):
        evaluate_pairs(pairs, ignore_index=2)
    gt[1] = 255  # an ignore value outside the classes, in the ground truth only
    write_image(tmp_path / "g.nii.gz", gt)
    result = evaluate_pairs(pairs, ignore_index=255, metrics=["dice"])
    assert result.labels == [1, 2] and result.num_classes == 3
    assert result.scores["dice"][0].tolist() == [1.0, 1.0]


def _independent_counts(pred: np.ndarray, gt: np.ndarray, label: int) -> tuple[int, int, int]:
    p, t = pred == label, gt == label
    return int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())


def test_huge_labels_count_only_the_labels_present(tmp_path, monkeypatch):
    """Issue 11 item 14: label 70000 asked for a 70001² table (39 GB); now tables stay small."""
    tables: list[int] = []
    real_confusion = file_scoring.confusion

    def recording_confusion(pred, target, num_classes, **kwargs):
        tables.append(num_classes)
        # a guard, so that the code of today's main fails here instead of allocating 39 GB
        assert num_classes <= 256, f"confusion table of {num_classes}² bins"
        return real_confusion(pred, target, num_classes, **kwargs)

    monkeypatch.setattr(file_scoring, "confusion", recording_confusion)
    gt = GT3D.astype(np.int32)
    pred = PRED3D.astype(np.int32)
    gt[2, 3, 4] = 70000
    pred[0, 3, 4] = 12000  # a stray voxel in the prediction
    write_image(tmp_path / "p.nii.gz", pred)
    write_image(tmp_path / "g.nii.gz", gt)
    out = tmp_path / "o.csv"
    args = ["evaluate", str(tmp_path / "p.nii.gz"), str(tmp_path / "g.nii.gz"), "--out", str(out)]
    assert main([*args, "--labels", "1,2,12000,70000,5"]) == 0
    assert tables and max(tables) <= 256
    rows = {int(r["label"]): r for r in _rows(out)}
    for label in (1, 2, 12000, 70000, 5):
        expected = _independent_counts(pred, gt, label)
        got = tuple(int(rows[label][k]) for k in ("tp", "fp", "fn"))
        assert got == expected, label
    assert float(rows[1]["dice"]) == pytest.approx(6 / 7)  # as without the stray labels
    assert float(rows[12000]["dice"]) == 0.0 and float(rows[70000]["dice"]) == 0.0
    assert math.isnan(float(rows[5]["dice"]))  # absent from both: empty


def test_many_distinct_labels_counted_in_blocks(tmp_path, monkeypatch):
    """More than 256 distinct labels, none small: counted block by block, exactly."""
    tables: list[int] = []
    real_confusion = file_scoring.confusion

    def recording_confusion(pred, target, num_classes, **kwargs):
        tables.append(num_classes)
        return real_confusion(pred, target, num_classes, **kwargs)

    monkeypatch.setattr(file_scoring, "confusion", recording_confusion)
    rng = np.random.default_rng(0)
    values = rng.choice(np.arange(1000, 5000), size=600, replace=False)
    gt = rng.choice(values, size=(20, 30, 40)).astype(np.int32)
    pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.choice(values, size=gt.shape))
    gt[0, 0, :5] = 255_000  # an ignored region, outside every class
    write_image(tmp_path / "p.nrrd", pred.astype(np.int32))
    write_image(tmp_path / "g.nrrd", gt)
    case = count_case("x", tmp_path / "p.nrrd", tmp_path / "g.nrrd", ignore_index=255_000)
    assert len(tables) == 3 and max(tables) <= 256  # 600 labels in blocks of 255
    keep = gt != 255_000
    for label in (*values[:20], values[-1]):
        expected = _independent_counts(pred[keep], gt[keep], int(label))
        assert tuple(case.counts_of([int(label)])[0]) == expected
    assert case.num_voxels == gt.size - 5
    assert case.max_label == int(values.max())


def test_out_is_never_an_input(folders, tmp_path, capsys, monkeypatch):
    """Issue 11 item 2: --out GT/case.nii.gz replaced the ground truth with the CSV (exit 0)."""
    pred, gt = folders
    reads: list[Path] = []
    real_read = file_scoring.read_image
    monkeypatch.setattr(file_scoring, "read_image", lambda p: reads.append(p) or real_read(p))
    before = {p: p.read_bytes() for p in [*gt.iterdir(), *pred.iterdir()]}
    link = tmp_path / "link"
    link.symlink_to(gt, target_is_directory=True)
    refused = {
        str(gt / "a.nii.gz"): "lies inside the input folder",
        str(gt / "scores.csv"): "lies inside the input folder",
        str(pred / "sub" / "scores.csv"): "lies inside the input folder",
        str(link / "a.nii.gz"): "lies inside the input folder",
        str(link / "new.csv"): "lies inside the input folder",
    }
    for out, message in refused.items():
        for force in ([], ["--force"]):  # --force does not make an input writable
            assert main(["evaluate", str(pred), str(gt), "--out", out, *force]) == 2, out
            assert message in capsys.readouterr().err, out
    single = ["evaluate", str(pred / "a.nii.gz"), str(gt / "a.nii.gz")]
    alias = tmp_path / "alias.nii.gz"
    alias.symlink_to(gt / "a.nii.gz")
    for out in (gt / "a.nii.gz", pred / "a.nii.gz", alias):
        assert main([*single, "--out", str(out), "--force"]) == 2
        assert "is the input" in capsys.readouterr().err
    assert reads == []  # refused before any case was read
    assert {p: p.read_bytes() for p in [*gt.iterdir(), *pred.iterdir()]} == before


def test_out_replaces_only_its_own_csv(folders, tmp_path, capsys):
    pred, gt = folders
    notes = tmp_path / "notes.csv"
    notes.write_text("patient,diagnosis\n1,x\n")
    args = ["evaluate", str(pred), str(gt), "--out", str(notes)]
    assert main(args) == 2
    assert "exists and is not a CSV written by metricseg evaluate" in capsys.readouterr().err
    assert notes.read_text() == "patient,diagnosis\n1,x\n"
    assert main([*args, "--force"]) == 0
    assert len(_rows(notes)) == 6
    assert main(args) == 0  # a CSV written by metricseg: replaced without --force (a rerun)
    assert file_scoring.is_scores_csv(notes)
    empty = tmp_path / "empty.csv"
    empty.touch()
    assert main(["evaluate", str(pred), str(gt), "--out", str(empty)]) == 2


def test_unwritable_out_is_refused_before_scoring(folders, tmp_path, capsys, monkeypatch):
    """Issue 11 item 15: an unwritable --out gave a traceback after every case was scored."""
    pred, gt = folders
    reads: list[Path] = []
    real_read = file_scoring.read_image
    monkeypatch.setattr(file_scoring, "read_image", lambda p: reads.append(p) or real_read(p))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    a_folder = tmp_path / "a_folder"
    a_folder.mkdir()
    refused = {
        str(a_folder): "is a folder",
        str(a_file / "scores.csv"): "is a file, not a folder",
        str(a_file / "deeper" / "scores.csv"): "is a file, not a folder",
    }
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        refused[str(locked / "scores.csv")] = "cannot write in"
    elif os.path.isdir("/sys") and not os.access("/sys", os.W_OK):  # root ignores modes
        refused["/sys/scores.csv"] = "cannot write in"
    elif os.path.isdir("/sys"):
        refused["/sys/scores.csv"] = "cannot write in"  # sysfs refuses new files, even to root
    for out, message in refused.items():
        assert main(["evaluate", str(pred), str(gt), "--out", out]) == 2, out
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, out
    assert reads == []
    # a missing parent is created (as before)
    out = tmp_path / "new" / "dir" / "scores.csv"
    assert main(["evaluate", str(pred), str(gt), "--out", str(out)]) == 0
    assert len(_rows(out)) == 6


def test_every_option_shows_its_default():
    from metricseg.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["evaluate"]
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in (action.help or ""), action.option_strings


def test_errors_name_the_fix_for_num_classes_and_keep_going(tmp_path, capsys):
    import numpy as np

    from metricseg.cli import main
    from metricseg.io import write_image

    gt = np.zeros((4, 6, 6), np.uint8)
    gt[1:3, 1:4, 1:4] = 2
    for d in ("p", "g"):
        write_image(tmp_path / d / "a.nii.gz", gt)
    bad = gt.astype(np.float32)
    bad[0, 0, 0] = np.nan
    write_image(tmp_path / "p" / "b.nii.gz", bad)
    write_image(tmp_path / "g" / "b.nii.gz", gt)
    p, g = str(tmp_path / "p"), str(tmp_path / "g")
    assert main(["evaluate", p, g, "--num-classes", "2"]) == 1
    assert "pass --num-classes 3 or more, or leave it out" in capsys.readouterr().err
    assert main(["evaluate", p, g]) == 1
    assert "b.nii.gz: holds 1 NaN" in (err := capsys.readouterr().err) and "--keep-going" in err
    assert main(["evaluate", p, g, "--keep-going"]) == 1
    assert "--keep-going scores" not in capsys.readouterr().err
