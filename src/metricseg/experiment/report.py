"""The bench report: ``runs.csv``, ``summary.md``, ``summary.json``, PNG plots, rich tables.

Everything is written atomically into the output folder:

* ``runs.csv`` — one row per run, test case and class (counts and all scores);
* ``summary.md`` — per task and loss mean ± std and 95 % bootstrap CI of Dice
  and Jaccard with the rank, the verdict metric-sensitive vs. per-pixel losses,
  the paired Wilcoxon tests with Holm correction, the mean ranks, Dice by object
  size and by foreground ratio, per-class tables, the Dice–Jaccard band check;
* ``summary.json`` — the same numbers for programs;
* ``plots/box_<task>.png`` (per-case Dice per loss), ``plots/dice_by_size.png``,
  ``plots/dice_vs_jaccard.png`` (per-case pairs with the bound band).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metricseg.atomic import atomic_write, atomic_write_json, atomic_write_text
from metricseg.experiment import stats
from metricseg.experiment.scoring import SCORE_COLUMNS
from metricseg.experiment.spec import RunSpec

__all__ = ["CSV_COLUMNS", "build_report", "collect_records", "print_tables", "write_runs_csv"]

CSV_COLUMNS = (
    "task", "loss", "loss_name", "seed", "fold", "case", "subject", "class_index", "class_name",
    "tp", "fp", "fn", "voxels", "target_voxels", "pred_voxels", "foreground_ratio",
    "objects", "mean_object_size", *SCORE_COLUMNS,
)  # fmt: skip


def collect_records(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flatten result files into rows carrying the run: ``task`` and ``loss`` (their labels),
    ``loss_name`` and ``loss_options`` (the registry loss), ``seed`` and ``fold``."""
    out = []
    for res in results:
        spec = RunSpec.from_dict(res["spec"])
        for row in res["rows"]:
            out.append(
                {
                    "task": spec.task_label,
                    "loss": spec.loss_label,
                    "loss_name": spec.loss,
                    "loss_options": dict(spec.loss_options),
                    "seed": spec.seed,
                    "fold": spec.fold,
                    **row,
                }
            )
    return out


def write_runs_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return atomic_write_text(path, buf.getvalue())


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    if math.isnan(x):
        return "–"
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _summary_rows(summaries: Sequence[stats.LossSummary], task: str) -> list[list[str]]:
    group = sorted((s for s in summaries if s.task == task), key=lambda s: (s.rank, s.loss))
    return [
        [
            s.loss,
            f"{_f(s.dice_mean)} ± {_f(s.dice_std)}",
            f"[{_f(s.dice_ci[0])}, {_f(s.dice_ci[1])}]",
            f"{_f(s.jaccard_mean)} ± {_f(s.jaccard_std)}",
            f"[{_f(s.jaccard_ci[0])}, {_f(s.jaccard_ci[1])}]",
            f"{s.rank:g}",
            f"{s.n_cases} × {s.n_runs}",
        ]
        for s in group
    ]


SUMMARY_HEADER = (
    "loss",
    "Dice mean ± sd",
    "Dice 95 % CI",
    "Jaccard mean ± sd",
    "Jaccard 95 % CI",
    "rank",
    "cases × runs",
)


def verdict_sentence(verdicts: Sequence[stats.GroupVerdict]) -> str:
    """One sentence on whether metric-sensitive losses beat the per-pixel ones, per metric."""
    parts = []
    for metric in ("dice", "jaccard"):
        vs = [v for v in verdicts if v.metric == metric]
        if not vs:
            continue
        better = sum(v.metric_sensitive_better for v in vs)
        significant = sum(v.metric_sensitive_better and v.p_holm < 0.05 for v in vs)
        worse_sig = sum((not v.metric_sensitive_better) and v.p_holm < 0.05 for v in vs)
        parts.append(
            f"{metric.capitalize()}: metric-sensitive losses score higher on {better} of {len(vs)} "
            f"tasks ({significant} significant, and {worse_sig} significantly lower, at 0.05 after Holm)"
        )
    if not parts:
        return "Not enough losses of both groups to compare metric-sensitive and per-pixel losses."
    dice = [v for v in verdicts if v.metric == "dice"]
    reproduced = bool(dice) and sum(v.metric_sensitive_better for v in dice) > len(dice) / 2
    head = (
        "**Reproduces the published finding**"
        if reproduced
        else "**Does not reproduce the published finding**"
    )
    return (
        head
        + " (metric-sensitive losses beat per-pixel losses on Dice/Jaccard): "
        + "; ".join(parts)
        + "."
    )


def overview_table(
    summaries: Sequence[stats.LossSummary],
    tasks: Sequence[str],
    losses: Sequence[str],
    chance: Mapping[str, float],
) -> str:
    """Markdown table: one row per task, one column per loss (mean Dice), best in bold."""
    means = {(s.task, s.loss): s.dice_mean for s in summaries}
    rows = []
    for task in tasks:
        values = [means.get((task, loss), math.nan) for loss in losses]
        best = max((v for v in values if not math.isnan(v)), default=math.nan)
        cells = [f"**{_f(v)}**" if v == best else _f(v) for v in values]
        rows.append([task, *cells, _f(chance.get(task, math.nan))])
    return _md_table(("task", *losses, "chance"), rows)


def _plot_box(records, tasks, losses, plots: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = stats.case_scores(records, "dice")
    paths = []
    for task in tasks:
        present = [loss for loss in losses if (task, loss) in scores]
        if not present:
            continue
        fig, ax = plt.subplots(figsize=(1.1 * len(present) + 2, 3.6))
        ax.boxplot([list(scores[(task, loss)].values()) for loss in present], showmeans=True)
        ax.set_xticks(range(1, len(present) + 1), present, rotation=30, ha="right")
        ax.set_ylabel("per-case foreground Dice")
        ax.set_title(task)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        paths.append(_save_fig(fig, plots / f"box_{task}.png"))
        plt.close(fig)
    return paths


def _save_fig(fig, path: Path) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def _plot_by_size(strata, tasks, losses, plots: Path) -> Path | None:
    import matplotlib.pyplot as plt

    if not strata:
        return None
    bins = [name for _, name in stats.SIZE_BINS]
    ncols = min(5, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.4 * ncols + 1, 3.2 * nrows + 0.4), squeeze=False
    )
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks):
        for loss in losses:
            vals = {b: m for t, lo, b, _, m in strata if t == task and lo == loss}
            if vals:
                ax.plot(
                    [bins.index(b) for b in vals],
                    list(vals.values()),
                    marker="o",
                    label=loss,
                    color=f"C{list(losses).index(loss) % 10}",  # one colour per loss in every panel
                )
        ax.set_xticks(range(len(bins)), bins, fontsize=8)
        ax.set_title(task, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("Dice (per case and class)")
    axes.flat[len(tasks) - 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Dice by mean object size")
    fig.tight_layout()
    path = _save_fig(fig, plots / "dice_by_size.png")
    plt.close(fig)
    return path


def _plot_band(band: Mapping[str, Any], plots: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    d = np.linspace(0, 1, 201)
    ax.fill_between(d, np.clip(2 * d - 1, 0, 1), d, color="tab:blue", alpha=0.12,
                    label="band (1−J)/2 ≤ 1−D ≤ 1−J")  # fmt: skip
    ax.plot(d, d / (2 - d), color="k", lw=1, label="J = D/(2−D)")
    ax.scatter(
        band["dice"], band["jaccard"], s=6, alpha=0.5, color="tab:red", label="per-case means"
    )
    ax.set_xlabel("Dice")
    ax.set_ylabel("Jaccard")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{band['inside']} of {band['n']} per-case pairs inside the band", fontsize=9)
    fig.tight_layout()
    path = _save_fig(fig, plots / "dice_vs_jaccard.png")
    plt.close(fig)
    return path


def build_report(
    out_dir: str | Path,
    results: Sequence[Mapping[str, Any]],
    *,
    header: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    n_resamples: int = 2000,
    plots: bool = True,
) -> dict[str, Any]:
    """Write the report for the finished ``results`` (loaded result files) into ``out_dir``.

    Args:
        header: key → value lines shown first in ``summary.md`` (command, wall
            time, machine, ...).
        notes: extra lines (failed runs, tasks that are not installed, ...).

    Returns:
        The analysis (summaries, tests, verdicts, strata, band) for printing.
    """
    out = Path(out_dir)
    records = collect_records(results)
    write_runs_csv(records, out / "runs.csv")
    specs = [RunSpec.from_dict(r["spec"]) for r in results]
    tasks = list(dict.fromkeys(s.task_label for s in specs))
    losses = list(dict.fromkeys(s.loss_label for s in specs))
    summaries = stats.summarize(records, n_resamples=n_resamples)
    tests = stats.pairwise_tests(records, "dice") + stats.pairwise_tests(records, "jaccard")
    verdicts = stats.group_verdicts(records, "dice") + stats.group_verdicts(records, "jaccard")
    ranks = stats.mean_ranks(summaries)
    by_size = stats.stratified(records, "mean_object_size")
    by_fg = stats.stratified(records, "foreground_ratio")
    classes = stats.per_class(records)
    band = (
        stats.band_check(records)
        if records
        else {
            "dice": np.array([]),
            "jaccard": np.array([]),
            "n": 0,
            "inside": 0,
            "max_single_gap": 0.0,
        }
    )
    info = {s.task_label: r.get("task_info", {}) for s, r in zip(specs, results)}

    md = ["# metricseg bench report\n"]
    for k, v in (header or {}).items():
        md.append(f"- **{k}**: {v}")
    md.append("")
    md.append(verdict_sentence(verdicts) + "\n")
    md.append(
        "Mean test Dice per task and loss (best in bold; chance: every voxel labelled as the class):\n"
    )
    md.append(
        overview_table(summaries, tasks, losses, {t: stats.trivial_dice(records, t) for t in tasks})
    )
    md.append(
        "Scores are per test case: the mean over foreground classes present in target or "
        "prediction, averaged over seeds/folds. CI: 95 % percentile bootstrap of the mean "
        f"({n_resamples} resamples). Rank 1 = best mean Dice in the task. Metric-sensitive: "
        f"{', '.join(x for x in stats.METRIC_SENSITIVE if x in losses) or '–'}; per-pixel: "
        f"{', '.join(x for x in stats.PIXEL_WISE if x in losses) or '–'}"
        + ("; dice_ce is a compound and in neither group." if "dice_ce" in losses else ".")
        + "\n"
    )
    for task in tasks:
        ti = info.get(task, {})
        md.append(f"## {task}\n")
        if ti:
            md.append(
                f"{ti.get('description', '')} — {ti.get('spatial_dims')}D, {ti.get('num_classes')} classes, "
                f"{ti.get('n_train')}/{ti.get('n_val')}/{ti.get('n_test')} train/val/test cases. "
                f"Chance level (every voxel labelled as the class): Dice {_f(stats.trivial_dice(records, task))}.\n"
            )
        md.append(_md_table(SUMMARY_HEADER, _summary_rows(summaries, task)))
    md.append("## Metric-sensitive vs. per-pixel losses\n")
    md.append(
        _md_table(
            (
                "task",
                "metric",
                "metric-sensitive",
                "per-pixel",
                "cases",
                "p (Wilcoxon)",
                "p (Holm)",
            ),
            [
                [
                    v.task,
                    v.metric,
                    _f(v.metric_sensitive),
                    _f(v.pixel_wise),
                    str(v.n),
                    _p(v.p),
                    _p(v.p_holm),
                ]
                for v in verdicts
            ],
        )
    )
    md.append("## Mean rank over tasks (Dice)\n")
    md.append(
        _md_table(
            ("loss", "mean rank", "tasks"), [[loss, f"{r:.2f}", str(n)] for loss, r, n in ranks]
        )
    )
    md.append("## Paired Wilcoxon signed-rank tests (Holm within task and metric)\n")
    md.append("Significant pairs (adjusted p < 0.05); the full list is in `summary.json`.\n")
    sig = [t for t in tests if t.p_holm < 0.05]
    md.append(
        _md_table(
            ("task", "metric", "better", "worse", "mean diff", "cases", "p (Holm)"),
            [
                [
                    t.task,
                    t.metric,
                    *((t.loss_a, t.loss_b) if t.mean_diff > 0 else (t.loss_b, t.loss_a)),
                    _f(abs(t.mean_diff)),
                    str(t.n),
                    _p(t.p_holm),
                ]
                for t in sig
            ],
        )
        if sig
        else "No pair differs significantly after Holm correction.\n"
    )
    for title, strata in (
        ("Dice by mean object size", by_size),
        ("Dice by foreground ratio", by_fg),
    ):
        md.append(f"## {title}\n")
        md.append("Per (case, foreground class) with a non-empty target.\n")
        md.append(_strata_table(strata))
    multi = [c for c in classes if info.get(c[0], {}).get("num_classes", 0) > 2]
    if multi:
        md.append("## Per-class results (multi-class tasks)\n")
        md.append(
            _md_table(
                ("task", "loss", "class", "cases", "Dice", "Jaccard"),
                [[t, loss, c, str(n), _f(d), _f(j)] for t, loss, c, n, d, j in multi],
            )
        )
    md.append("## Dice–Jaccard band\n")
    md.append(
        f"{band['inside']} of {band['n']} per-case (Dice, Jaccard) pairs lie in the band "
        "(1−J)/2 ≤ 1−D ≤ 1−J; the largest deviation of a single (case, class) from "
        f"J = D/(2−D) is {band['max_single_gap']:.1e}.\n"
    )
    plot_paths: list[Path] = []
    if plots and records:
        pdir = out / "plots"
        plot_paths += _plot_box(records, tasks, losses, pdir)
        p = _plot_by_size(by_size, tasks, losses, pdir)
        if p:
            plot_paths.append(p)
        plot_paths.append(_plot_band(band, pdir))
        md.append("## Plots\n")
        md += [f"![{p.stem}](plots/{p.name})" for p in plot_paths]
        md.append("")
    if notes:
        md.append("## Notes\n")
        md += [f"- {n}" for n in notes]
        md.append("")
    atomic_write_text(out / "summary.md", "\n".join(md))
    analysis = {
        "header": dict(header or {}),
        "summaries": [s.__dict__ for s in summaries],
        "verdicts": [v.__dict__ for v in verdicts],
        "mean_ranks": ranks,
        "pairwise": [t.__dict__ for t in tests],
        "by_object_size": by_size,
        "by_foreground_ratio": by_fg,
        "per_class": classes,
        "band": {k: v for k, v in band.items() if k not in ("dice", "jaccard")},
        "notes": list(notes),
    }
    atomic_write_json(out / "summary.json", _jsonable(analysis))
    analysis["verdict"] = verdict_sentence(verdicts)
    analysis["plots"] = plot_paths
    analysis["tasks"] = tasks
    return analysis


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def _strata_table(strata: Sequence[tuple[str, str, str, int, float]]) -> str:
    if not strata:
        return "No rows.\n"
    bins = list(dict.fromkeys(b for _, _, b, _, _ in strata))
    keys = list(dict.fromkeys((t, loss) for t, loss, _, _, _ in strata))
    lookup = {(t, loss, b): (n, m) for t, loss, b, n, m in strata}
    rows = []
    for t, loss in keys:
        cells = []
        for b in bins:
            if (t, loss, b) in lookup:
                n, m = lookup[(t, loss, b)]
                cells.append(f"{_f(m)} (n={n})")
            else:
                cells.append("–")
        rows.append([t, loss, *cells])
    return _md_table(("task", "loss", *bins), rows)


def print_tables(analysis: Mapping[str, Any], console=None) -> None:
    """Print the per-task tables and the verdict with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    summaries = [stats.LossSummary(**s) for s in analysis["summaries"]]
    for task in analysis["tasks"]:
        table = Table(title=task, title_justify="left")
        for col in SUMMARY_HEADER:
            table.add_column(col, justify="left" if col == "loss" else "right")
        for row in _summary_rows(summaries, task):
            table.add_row(*row)
        console.print(table)
    ranks = Table(title="mean rank over tasks (Dice)", title_justify="left")
    ranks.add_column("loss")
    ranks.add_column("mean rank", justify="right")
    ranks.add_column("tasks", justify="right")
    for loss, r, n in analysis["mean_ranks"]:
        ranks.add_row(loss, f"{r:.2f}", str(n))
    console.print(ranks)
    console.print(analysis["verdict"].replace("**", ""))
