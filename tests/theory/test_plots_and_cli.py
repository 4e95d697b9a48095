"""The plots and the ``metricseg theory`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from metricseg.cli import main
from metricseg.theory import bounds
from metricseg.theory.verify import verify

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_are_written_atomically(tmp_path):
    from metricseg.theory.plots import plot_all

    report = verify(max_voxels=12, hamming_max_voxels=6, restarts=2, steps=5)
    paths = plot_all(tmp_path / "plots", report)
    assert sorted(p.name for p in paths) == [
        "theory_dice_jaccard.png",
        "theory_hamming_dice.png",
        "theory_tversky_dice.png",
    ]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 20_000
    # no temporary files left behind
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(p.name for p in paths)


def test_cli_json_agrees_with_closed_forms(capsys):
    code = main(["theory", "--json", "--max-voxels", "40", "--seed", "3"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["holds"] and data["max_voxels"] == 40 and data["seed"] == 3
    assert data["worst_dice_jaccard_gap"]["found"] == pytest.approx(
        bounds.MAX_DICE_JACCARD_GAP, abs=1e-4
    )
    assert data["worst_dice_jaccard_gap"]["enumeration"] <= bounds.MAX_DICE_JACCARD_GAP
    for alpha in ("0.5", "0.6", "0.7", "0.8", "0.9"):
        entry = data["worst_tversky_dice_gap"][alpha]
        assert entry["found"] == pytest.approx(bounds.tversky_dice_max_gap(float(alpha)), abs=1e-4)
        assert entry["found"] <= entry["closed_form"] + 1e-12
    for claim in data["claims"]:
        assert claim["holds"] and all(claim["agrees_with_closed_form"].values()), claim
    pooled = data["per_image_vs_pooled"]
    assert pooled["pooled_dice"] > pooled["mean_dice"]
    assert data["plots"] == []


def test_cli_table_and_plots(capsys, tmp_path):
    assert main(["theory", "--max-voxels", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 ≤ D − J ≤ 3 − 2√2" in out and "0.171573" in out and "BROKEN" not in out
    assert sorted(os.listdir(tmp_path)) == [
        "theory_dice_jaccard.png",
        "theory_hamming_dice.png",
        "theory_tversky_dice.png",
    ]


def test_cli_rejects_bad_max_voxels(capsys):
    assert main(["theory", "--max-voxels", "0"]) == 2
    assert "--max-voxels must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_defaults_run_in_under_a_minute():
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "metricseg", "theory", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    elapsed = time.perf_counter() - start
    data = json.loads(proc.stdout)
    assert data["holds"] and elapsed < 60
    for claim in data["claims"]:
        assert all(claim["agrees_with_closed_form"].values()), claim


def test_plot_files_get_the_mode_of_a_plain_write(tmp_path):
    from metricseg.theory.plots import plot_hamming_dice

    umask = os.umask(0o022)
    try:
        path = plot_hamming_dice(tmp_path / "h.png")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
