"""The bench report: ``summary.md``, ``summary.json``, ``runs.csv`` and PNG plots.

* :mod:`~metricseg.experiment.report.analysis` — the typed :class:`Analysis` of the results;
* :mod:`~metricseg.experiment.report.sections` — one builder per section of ``summary.md``;
* :mod:`~metricseg.experiment.report.plots` — the figures, through :mod:`metricseg.plotting`.

Everything is written atomically into the output folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metricseg.atomic import atomic_write_json, atomic_write_text
from metricseg.experiment.report.analysis import Analysis, analyse, collect_records, jsonable
from metricseg.experiment.report.plots import write_plots
from metricseg.experiment.report.sections import SUMMARY_HEADER, summary_markdown, summary_rows
from metricseg.experiment.scoring import SCORE_COLUMNS

__all__ = [
    "CSV_COLUMNS",
    "Analysis",
    "analyse",
    "build_report",
    "collect_records",
    "print_tables",
    "write_runs_csv",
]

CSV_COLUMNS = (
    "task",
    "loss",
    "loss_name",
    "seed",
    "fold",
    "case",
    "subject",
    "class_index",
    "class_name",
    "tp",
    "fp",
    "fn",
    "voxels",
    "target_voxels",
    "pred_voxels",
    "foreground_ratio",
    "objects",
    "mean_object_size",
    *SCORE_COLUMNS,
)


def write_runs_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """``runs.csv``: one row per run, test case and class."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return atomic_write_text(path, buf.getvalue())


def build_report(
    out_dir: str | Path,
    results: Sequence[Mapping[str, Any]],
    *,
    header: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    n_resamples: int = 2000,
    plots: bool = True,
) -> Analysis:
    """Analyse the finished ``results`` (loaded result files) and write the report into ``out_dir``."""
    out = Path(out_dir)
    analysis = analyse(results, header=header, notes=notes, n_resamples=n_resamples)
    write_runs_csv(collect_records(results), out / "runs.csv")
    figures = write_plots(analysis, out / "plots") if plots and analysis.records else []
    atomic_write_text(out / "summary.md", summary_markdown(analysis, [p.name for p in figures]))
    atomic_write_json(out / "summary.json", jsonable(analysis))
    return analysis


def print_tables(analysis: Analysis, console: Any = None) -> None:
    """Print the per-task tables, the claims and the verdict with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for task in analysis.task_names:
        table = Table(title=task, title_justify="left")
        for col in SUMMARY_HEADER:
            table.add_column(col, justify="left" if col == "loss" else "right")
        for row in summary_rows(analysis, task):
            table.add_row(*row)
        console.print(table)
    claims = Table(title="claims of the paper", title_justify="left")
    for col in ("claim", "verdict", "why"):
        claims.add_column(col)
    for c in analysis.claims:
        claims.add_row(c.id, c.verdict, c.reason)
    console.print(claims)
    console.print(analysis.verdict)
