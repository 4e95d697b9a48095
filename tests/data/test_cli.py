"""`metricseg data list / show` through metricseg.cli.main and a subprocess."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from metricseg.cli import main
from metricseg.data import get_task, list_tasks


def test_list_names_every_task_and_how_to_get_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("METRICSEG_DATA", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for info in list_tasks():
        assert info.name in out
    assert "metricseg data download msd:Task09_Spleen" in out
    monkeypatch.setenv("METRICSEG_MRICRON_DIR", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "no: sudo apt-get install mricron-data" in out


def test_list_infos_agree_with_built_tasks():
    infos = {i.name: i for i in list_tasks()}
    for name in ("tiny-lesions", "synthetic-3d"):
        task = get_task(name, num_train=1, num_val=1, num_test=1)
        assert infos[name].num_classes == task.num_classes
        assert infos[name].spatial_dims == task.spatial_dims
        assert list(infos[name].class_names) == task.class_names


@pytest.mark.parametrize("task", ["multiclass", "synthetic-3d"])
def test_show_writes_a_png_and_prints_statistics(task, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "pics" / f"{task}.png"
    assert (
        main(
            [
                "data",
                "show",
                task,
                "--out",
                str(out),
                "--cases",
                "3",
                "-o",
                "num_train=4",
                "-o",
                "num_val=1",
                "-o",
                "num_test=1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 300
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 10  # not a blank picture
    stats_task = get_task(task, num_train=4, num_val=1, num_test=1)
    for name in stats_task.class_names[1:]:
        assert name in printed
    assert "object size" in printed and f"wrote {out}" in printed
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_show_errors_are_usage_errors(tmp_path, capsys):
    """Issue 11 item 18: a usage error exits 2 with a message on stderr, no traceback."""
    png = str(tmp_path / "x.png")
    usage = {
        ("data", "show", "no-such-task", "--out", png): "must be one of",
        ("data", "show", "tiny-lesions", "--out", png, "-o", "bogus=1"): "bogus",
        ("data", "show", "tiny-lesions", "--out", png, "-o", "num_train"): "KEY=VALUE",
        ("data", "show", "tiny-lesions", "--out", png, "-o", "seed=1", "-o", "seed=2"): "twice",
        ("data", "show", "tiny-lesions", "--out", str(tmp_path)): "is a folder",
        ("data", "show", "tiny-lesions", "--out", png, "--cases", "0"): "--cases must be >= 1",
        (
            "data",
            "show",
            "tiny-lesions",
            "--out",
            png,
            "--split",
            "test",
            "-o",
            "num_test=0",
        ): "has no test cases",
        ("data", "download", "tiny-lesions"): "only msd:TaskXX_Name",
        ("data", "download", "msd:Task99_Nothing"): "task must be one of",
    }
    for argv, message in usage.items():
        assert main(list(argv)) == 2, argv
        captured = capsys.readouterr()
        assert captured.err.startswith("metricseg data: error: "), argv
        assert message in captured.err and "Traceback" not in captured.err, argv
    assert not (tmp_path / "x.png").exists()


def test_failed_download_is_work_error(monkeypatch, capsys):
    from metricseg.data import download

    def failing_fetch(task, **kwargs):
        raise download.DownloadError(f"https://example.invalid/{task}.tar: connection refused")

    monkeypatch.setattr(download, "fetch_msd", failing_fetch)
    assert main(["data", "download", "msd:Task04_Hippocampus"]) == 1
    err = capsys.readouterr().err
    assert "metricseg data: error: https://example.invalid/Task04_Hippocampus.tar" in err


def test_list_is_a_rich_table(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "task" in line and "available" in line)
    assert header.startswith("┃") and "┃ kind" in header
    row = next(line for line in lines if "tiny-lesions" in line)
    assert row.startswith("│") and "│ synthetic │" in row


def test_every_option_shows_its_default():
    import argparse

    from metricseg.cli import build_parser

    def subparsers(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    data = subparsers(build_parser()).choices["data"]
    for name, parser in subparsers(data).choices.items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert "default" in (action.help or ""), (name, action.option_strings)


def test_subprocess_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "metricseg", "data", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "large-organ" in result.stdout


def test_show_a_user_folder(tmp_path, capsys):
    from metricseg.io import write_image

    rng = np.random.default_rng(0)
    for i in range(5):
        label = np.zeros((24, 24), dtype=np.uint8)
        label[4 : 8 + 2 * i, 6:14] = 1
        write_image(
            tmp_path / "data" / "images" / f"c{i}.png", (rng.random((24, 24)) * 99).astype(np.uint8)
        )
        write_image(tmp_path / "data" / "labels" / f"c{i}.png", label)
    out = tmp_path / "folder.png"
    assert main(["data", "show", f"folder:{tmp_path / 'data'}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "class-1" in printed and "5 cases" in printed


def test_task_without_its_data_here_is_work_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METRICSEG_MRICRON_DIR", str(tmp_path))  # no atlas files there
    assert main(["data", "show", "aal", "--out", str(tmp_path / "aal.png")]) == 1
    err = capsys.readouterr().err
    assert "apt-get install mricron-data" in err and "Traceback" not in err
