"""PNG plots of the theory: Dice against Jaccard, Tversky against Dice, Hamming against Dice.

Needs matplotlib (``pip install 'metricseg[report]'``). Figures come from
:mod:`metricseg.plotting` (an Agg canvas per figure, no global backend switch) and
are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from metricseg.plotting import new_figure, save_png
from metricseg.theory import bounds
from metricseg.theory.hamming import hamming_counterexample_family
from metricseg.theory.verify import DEFAULT_HAMMING_WEIGHTS, VerificationReport

__all__ = ["plot_all", "plot_dice_jaccard", "plot_hamming_dice", "plot_tversky_dice"]


def _figure(width: float, height: float) -> Any:
    return new_figure(width, height)


def _finish(ax: Any, legend_loc: str, labels: tuple[str, str, str], **limits: Any) -> None:
    """Set the (x label, y label, title), the limits, and a small legend."""
    ax.set(xlabel=labels[0], ylabel=labels[1], title=labels[2], **limits)
    ax.legend(fontsize=7, loc=legend_loc)


def _save(fig: Any, path: Path) -> Path:
    return save_png(fig, path)


def plot_dice_jaccard(
    path: str | os.PathLike[str], report: VerificationReport | None = None
) -> Path:
    """Dice against Jaccard: the exact curve, the band of the relative bound, the
    absolute bound, and (with a report) the worst gap the verifier found."""
    j = np.linspace(0.0, 1.0, 401)
    fig = _figure(9.0, 4.0)
    ax, ax_gap = fig.subplots(1, 2)
    ax.fill_between(j, j, (1 + j) / 2, color="tab:blue", alpha=0.15, label="(1−J)/2 ≤ 1−D ≤ 1−J")
    ax.plot(
        j,
        np.minimum(j + bounds.MAX_DICE_JACCARD_GAP, 1.0),
        "--",
        color="tab:red",
        lw=1,
        label="D ≤ J + (3 − 2√2)",
    )
    ax.plot(j, bounds.dice_from_jaccard(j), color="black", lw=1.5, label="D = 2J/(1+J)")
    ax.plot(
        [bounds.JACCARD_AT_MAX_GAP],
        [bounds.DICE_AT_MAX_GAP],
        "o",
        color="tab:red",
        label="largest gap: J = √2−1, D = 2−√2",
    )
    _finish(
        ax,
        "lower right",
        ("Jaccard J", "Dice D", "Dice against Jaccard (per image)"),
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
    )
    ax_gap.plot(j, bounds.dice_jaccard_gap(j), color="black", label="D − J = J(1−J)/(1+J)")
    ax_gap.axhline(
        bounds.MAX_DICE_JACCARD_GAP,
        ls="--",
        color="tab:red",
        lw=1,
        label=f"3 − 2√2 = {bounds.MAX_DICE_JACCARD_GAP:.6f}",
    )
    if report is not None:
        r = report.find("D − J")
        tp, fp, fn, _ = r.max_counts
        ax_gap.plot(
            [tp / (tp + fp + fn)],
            [r.found_max],
            "x",
            color="tab:blue",
            ms=9,
            label=f"worst found: {r.found_max:.6f}",
        )
    _finish(
        ax_gap, "lower center", ("Jaccard J", "D − J", "absolute gap"), xlim=(0, 1), ylim=(0, 0.2)
    )
    return _save(fig, Path(path))


def plot_tversky_dice(
    path: str | os.PathLike[str], report: VerificationReport | None = None
) -> Path:
    """Worst |T_α − D| and the range of T_α/D against α, closed form and found."""
    alphas = np.linspace(0.02, 0.98, 193)
    fig = _figure(9.0, 4.0)
    ax_gap, ax_ratio = fig.subplots(1, 2)
    ax_gap.plot(
        alphas,
        [bounds.tversky_dice_max_gap(a) for a in alphas],
        color="black",
        label="closed form (1−√(2m))/(1+√(2m))",
    )
    ranges = np.array([bounds.tversky_dice_ratio_range(a) for a in alphas])
    ax_ratio.fill_between(
        alphas,
        ranges[:, 0],
        ranges[:, 1],
        color="tab:blue",
        alpha=0.15,
        label="range of T_α/D (closed form)",
    )
    if report is not None:
        gaps = [
            (r.claim.params["alpha"], r.found_max)
            for r in report.results
            if r.claim.label == "|T_α − D|"
        ]
        ratios = [
            (r.claim.params["alpha"], r.found_min, r.found_max)
            for r in report.results
            if r.claim.label == "T_α/D"
        ]
        if gaps:
            a, g = zip(*gaps)
            ax_gap.plot(a, g, "x", color="tab:red", ms=8, label="worst found (verifier)")
        if ratios:
            a, lo, hi = zip(*ratios)
            ax_ratio.plot(a, lo, "x", color="tab:red", ms=8, label="extremes found")
            ax_ratio.plot(a, hi, "x", color="tab:red", ms=8)
    _finish(
        ax_gap,
        "upper center",
        ("α (weight of FP; β = 1 − α on FN)", "max |T_α − D|", "worst absolute gap"),
        xlim=(0, 1),
        ylim=(0, 1),
    )
    _finish(
        ax_ratio,
        "upper center",
        ("α", "T_α / D", "relative: 1/(2 max(α,β)) ≤ T_α/D ≤ 1/(2 min(α,β))"),
        xlim=(0, 1),
        ylim=(0, 6),
    )
    return _save(fig, Path(path))


def plot_hamming_dice(
    path: str | os.PathLike[str],
    weights: tuple[tuple[float, float], ...] = DEFAULT_HAMMING_WEIGHTS,
    seed: int = 0,
) -> Path:
    """The counterexample family (H → 1 while D = 0) and H against D on random images."""
    sizes = np.unique(np.geomspace(2, 1e6, 60).astype(np.int64))
    fig = _figure(9.0, 4.0)
    ax_fam, ax_scatter = fig.subplots(1, 2)
    for w_fp, w_fn in weights:
        fam = hamming_counterexample_family(sizes, w_fp=w_fp, w_fn=w_fn)
        ax_fam.plot(
            fam["num_voxels"], fam["hamming"], label=f"H, (w_fp, w_fn) = ({w_fp:g}, {w_fn:g})"
        )
    ax_fam.plot(sizes, np.zeros(len(sizes)), color="black", lw=2, label="D = J = 0")
    _finish(
        ax_fam,
        "center right",
        ("voxels N (1 FP, 1 FN, no TP)", "score", "counterexample family"),
        xscale="log",
        ylim=(-0.05, 1.05),
    )
    # random images of 200 voxels: every Dice value comes with Hamming near 1
    rng = np.random.default_rng(seed)
    parts = rng.dirichlet(np.full(4, 0.3), size=4000) * 200
    tp, fp, fn, tn = np.floor(parts).T
    keep = tp + fp + fn > 0
    tp, fp, fn, tn = tp[keep], fp[keep], fn[keep], tn[keep]
    total = tp + fp + fn + tn
    dice = 2 * tp / (2 * tp + fp + fn)
    hamming = 1 - (fp + fn) / total
    ax_scatter.scatter(
        dice, hamming, s=3, alpha=0.4, color="tab:blue", label="random images, w = (1, 1)"
    )
    fam = hamming_counterexample_family(sizes)
    ax_scatter.plot(
        fam["dice"], fam["hamming"], "o", ms=4, color="tab:red", label="family: D = 0, H → 1"
    )
    d = np.linspace(0, 1, 201)
    # with w = (1, 1) the bound 1 − H ≤ 1·(1 − J) reads H ≥ J
    ax_scatter.plot(
        d,
        bounds.jaccard_from_dice(d),
        "--",
        color="black",
        label="1 − H ≤ max(w)(1 − J): the only bound",
    )
    _finish(
        ax_scatter,
        "lower right",
        ("Dice D", "Hamming similarity H", "Hamming against Dice"),
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
    )
    return _save(fig, Path(path))


def plot_all(
    out_dir: str | os.PathLike[str], report: VerificationReport | None = None
) -> list[Path]:
    """Write the three plots into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return [
        plot_dice_jaccard(out / "theory_dice_jaccard.png", report),
        plot_tversky_dice(out / "theory_tversky_dice.png", report),
        plot_hamming_dice(out / "theory_hamming_dice.png"),
    ]
