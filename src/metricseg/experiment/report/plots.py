"""The report's figures, all drawn through :mod:`metricseg.plotting`: per-case Dice per loss,
Dice by object size, the Dice–Jaccard band and the training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metricseg.experiment import stats
from metricseg.experiment.report.analysis import Analysis
from metricseg.plotting import new_figure, save_png

__all__ = ["write_plots"]


def _colour(a: Analysis, loss: str) -> str:
    return f"C{a.loss_labels.index(loss) % 10}"  # one colour per loss in every figure


def _box(a: Analysis, folder: Path) -> list[Path]:
    scores = stats.case_scores(a.records, "dice")
    paths = []
    for task in a.task_names:
        present = [loss for loss in a.loss_labels if (task, loss) in scores]
        if not present:
            continue
        fig = new_figure(1.1 * len(present) + 2, 3.6)
        ax = fig.subplots()
        ax.boxplot([list(scores[(task, loss)].values()) for loss in present], showmeans=True)
        ax.set_xticks(range(1, len(present) + 1), present, rotation=30, ha="right")
        ax.set(ylabel="per-case Dice (mean over seeds)", title=task, ylim=(-0.02, 1.02))
        ax.grid(axis="y", alpha=0.3)
        paths.append(save_png(fig, folder / f"box_{task}.png"))
    return paths


def _by_size(a: Analysis, folder: Path) -> list[Path]:
    if not a.by_size:
        return []
    bins = [name for _, name in stats.SIZE_BINS]
    tasks = a.task_names
    ncols = min(5, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig = new_figure(3.4 * ncols + 1, 3.2 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks):
        for loss in a.loss_labels:
            vals = {b: m for t, lo, b, _, m in a.by_size if t == task and lo == loss}
            if vals:
                ax.plot(
                    [bins.index(b) for b in vals],
                    list(vals.values()),
                    marker="o",
                    label=loss,
                    color=_colour(a, loss),
                )
        ax.set_xticks(range(len(bins)), bins, fontsize=8)
        ax.set_title(task, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("Dice (per case and class)")
    axes.flat[len(tasks) - 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Dice by mean object size")
    return [save_png(fig, folder / "dice_by_size.png")]


def _band(a: Analysis, folder: Path) -> list[Path]:
    if not a.band.get("n"):
        return []
    fig = new_figure(4.6, 4.4)
    ax = fig.subplots()
    d = np.linspace(0, 1, 201)
    ax.fill_between(
        d,
        np.clip(2 * d - 1, 0, 1),
        d,
        color="tab:blue",
        alpha=0.12,
        label="band (1−J)/2 ≤ 1−D ≤ 1−J",
    )
    ax.plot(d, d / (2 - d), color="k", lw=1, label="J = D/(2−D)")
    ax.scatter(
        a.band["dice"], a.band["jaccard"], s=6, alpha=0.5, color="tab:red", label="per-case means"
    )
    ax.set(xlabel="Dice", ylabel="Jaccard", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{a.band['inside']} of {a.band['n']} per-case pairs inside the band", fontsize=9)
    return [save_png(fig, folder / "dice_vs_jaccard.png")]


def _curves(a: Analysis, folder: Path) -> list[Path]:
    paths = []
    for task in a.task_names:
        curves = [c for c in a.curves if c.task == task and c.epochs]
        if not curves:
            continue
        fig = new_figure(6.0, 3.8)
        ax = fig.subplots()
        for c in curves:
            colour = _colour(a, c.loss) if c.loss in a.loss_labels else None
            label = c.loss + (" (still improving)" if c.still_improving else "")
            ax.plot(c.epochs, c.mean, color=colour, label=label, lw=1.4)
            if c.runs > 1:
                ax.fill_between(c.epochs, c.low, c.high, color=colour, alpha=0.12)
        last = max(len(c.epochs) for c in curves)
        ax.axvspan(last - 0.2 * last, last, color="grey", alpha=0.08, lw=0)
        ax.set(
            xlabel="epoch",
            ylabel="validation Dice",
            ylim=(-0.02, 1.02),
            title=f"{task}: mean over runs (band: min–max; shaded: last 20 % of epochs)",
        )
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        paths.append(save_png(fig, folder / f"curves_{task}.png"))
    return paths


def write_plots(a: Analysis, folder: str | Path) -> list[Path]:
    """Every figure of the report into ``folder``; returns their paths."""
    folder = Path(folder)
    return [*_box(a, folder), *_by_size(a, folder), *_band(a, folder), *_curves(a, folder)]
