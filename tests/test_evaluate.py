"""`metricseg evaluate` on small NIfTI, NRRD, MHA and PNG files written here, errors included."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("SimpleITK")

from metricseg.cli import main
from metricseg.file_scoring import EvaluationError, evaluate_pairs, match_cases
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
    pred, gt = folders
    assert main(["evaluate", str(pred), str(tmp_path / "missing")]) == 1
    assert "missing: no such file or folder (ground truth)" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--labels", "5"]) == 1
    assert "--labels [5] outside" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(gt), "--num-classes", "2"]) == 1
    assert "holds label 2, outside [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(pred), str(gt), "--metrics", "dice,f1"])
    assert "unknown metric" in capsys.readouterr().err


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
    assert bad.returncode == 1 and "nothing.nii.gz: no such file or folder" in bad.stderr


def _cli(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "metricseg", "evaluate", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)
