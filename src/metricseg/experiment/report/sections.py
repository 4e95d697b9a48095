"""``summary.md`` as sections: one builder per section, each a function of the analysis.

:data:`SECTIONS` lists them in the order they appear; a builder returns Markdown, or
an empty string when its section has nothing to show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from metricseg.experiment.claims import VERDICT_RULE
from metricseg.experiment.curves import STILL_IMPROVING_RISE
from metricseg.experiment.report.analysis import Analysis
from metricseg.experiment.stats import FOREGROUND_BINS, SIZE_BINS

__all__ = ["SECTIONS", "SUMMARY_HEADER", "fmt", "md_table", "summary_markdown", "summary_rows"]


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: NaN and None as an en dash.

    Example:
        >>> fmt(0.12345), fmt(float("nan"))
        ('0.123', '–')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.{digits}f}"


def fmt_p(x: float) -> str:
    """A p-value: two significant digits, scientific below 1e-3."""
    if x is None or math.isnan(x):
        return "–"
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (a ``|`` inside a cell is escaped, so it does not split the cell).

    Example:
        >>> print(md_table(("a", "b"), [[1, "|α − ½|"]]), end="")
        | a | b |
        | --- | --- |
        | 1 | \\|α − ½\\| |
    """

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


SUMMARY_HEADER = (
    "loss",
    "Dice mean ± sd",
    "Dice 95 % CI",
    "Jaccard mean ± sd",
    "Jaccard 95 % CI",
    "rank",
    "test cases / runs",
    "seed sd",
)


def summary_rows(a: Analysis, task: str) -> list[list[str]]:
    """One row per loss of ``task``, best first (the per-task table, also printed by the CLI)."""
    group = sorted((s for s in a.summaries if s.task == task), key=lambda s: (s.rank, s.loss))
    return [
        [
            s.loss,
            f"{fmt(s.dice_mean)} ± {fmt(s.dice_std)}",
            f"[{fmt(s.dice_ci[0])}, {fmt(s.dice_ci[1])}]",
            f"{fmt(s.jaccard_mean)} ± {fmt(s.jaccard_std)}",
            f"[{fmt(s.jaccard_ci[0])}, {fmt(s.jaccard_ci[1])}]",
            f"{s.rank:g}",
            f"{s.n_cases} / {s.n_runs}",
            fmt(s.seed_sd) if s.n_seeds > 1 else "1 seed",
        ]
        for s in group
    ]


def _header(a: Analysis) -> str:
    lines = ["# metricseg bench report\n"]
    lines += [f"- **{k}**: {v}" for k, v in a.header.items()]
    return "\n".join(lines) + "\n"


def _verdict(a: Analysis) -> str:
    return f"**{a.verdict}**\n\nThe verdict comes from the claims table below and nothing else.\n"


def _claims(a: Analysis) -> str:
    if not a.claims:
        return ""
    rows = []
    for c in a.claims:
        ci = f"[{fmt(c.ci[0])}, {fmt(c.ci[1])}]" if c.ci and not math.isnan(c.ci[0]) else "–"
        ps = "; ".join(f"{k}: {fmt_p(v)}" for k, v in list(c.p_values.items())[:4])
        more = len(c.p_values) - 4
        ps += f"; … {more} more in summary.json" if more > 0 else ""
        rows.append(
            [
                c.id,
                c.title,
                c.experiment,
                c.statistic,
                fmt(c.estimate),
                ci,
                ps or "–",
                f"**{c.verdict}**",
                c.reason,
            ]
        )
    text = "## Claims of the paper, tested\n\n"
    text += md_table(
        (
            "claim",
            "what",
            "experiment",
            "statistic",
            "estimate",
            "95 % CI",
            "p (corrected)",
            "verdict",
            "why",
        ),
        rows,
    )
    text += f"\nVerdict rule: {VERDICT_RULE.format(alpha=0.05)}\n"
    untested = {t: why for c in a.claims for t, why in c.not_tested.items()}
    if untested:
        text += "\nNot tested: " + "; ".join(f"{t} ({why})" for t, why in untested.items()) + ".\n"
    return text


def _claim_details(a: Analysis) -> str:
    parts = []
    for c in a.claims:
        if not c.details:
            continue
        keys = [k for k in c.details[0] if not isinstance(c.details[0][k], (list, dict))]
        rows = [
            [fmt(d.get(k)) if isinstance(d.get(k), float) else d.get(k, "") for k in keys]
            for d in c.details
        ]
        parts.append(f"### {c.id}: {c.title}\n\n{c.rule}\n\n" + md_table(keys, rows))
    return "## Claim details\n\n" + "\n".join(parts) if parts else ""


def _overview(a: Analysis) -> str:
    means = {(s.task, s.loss): s.dice_mean for s in a.summaries}
    rows = []
    for task, info in a.tasks.items():
        values = [means.get((task, loss), math.nan) for loss in a.loss_labels]
        best = max((v for v in values if not math.isnan(v)), default=math.nan)
        cells = [f"**{fmt(v)}**" if v == best else fmt(v) for v in values]
        kind = "yes" if info.get("independent") else "no"
        rows.append([task, kind, *cells, fmt(a.chance.get(task, math.nan))])
    return (
        "## Mean test Dice per task and loss\n\n"
        "Per test case: the mean over the foreground classes present in its target, averaged "
        "over seeds; cases with an empty target are left out (their false-positive volume is "
        "below). Best in bold; chance: every voxel labelled as the class. *Independent*: "
        "every test case is a subject of its own — only those tasks enter the claims.\n\n"
        + md_table(("task", "independent", *a.loss_labels, "chance"), rows)
    )


def _tasks(a: Analysis) -> str:
    out = []
    for task, ti in a.tasks.items():
        head = f"## {task}\n\n"
        if ti:
            indep = (
                "every test case is its own subject"
                if ti.get("independent")
                else "**not independent**: test cases share subjects (slices or tiles of one "
                "volume); reported, kept out of the claims, no confidence intervals"
            )
            head += (
                f"{ti.get('description', '')} — {ti.get('spatial_dims')}D, "
                f"{ti.get('num_classes')} classes, {ti.get('n_train')}/{ti.get('n_val')}/"
                f"{ti.get('n_test')} train/val/test cases per run; {indep}.\n\n"
            )
        out.append(head + md_table(SUMMARY_HEADER, summary_rows(a, task)))
    return "\n".join(out)


def _pairwise(a: Analysis) -> str:
    sig = [t for t in a.pairwise if t.p_holm < 0.05]
    text = "## Paired tests between losses (Wilcoxon, Holm within task and metric)\n\n"
    if not sig:
        return text + "No pair differs significantly after Holm correction.\n"
    rows = []
    for t in sig:
        better, worse = (t.loss_a, t.loss_b) if t.mean_diff > 0 else (t.loss_b, t.loss_a)
        rows.append(
            [
                t.task,
                t.metric,
                better,
                worse,
                fmt(abs(t.mean_diff)),
                f"[{fmt(min(abs(t.ci_low), abs(t.ci_high)))}, {fmt(max(abs(t.ci_low), abs(t.ci_high)))}]"
                if t.ci_low * t.ci_high > 0
                else "–",
                str(t.n),
                fmt_p(t.p_holm),
            ]
        )
    return (
        text
        + "Significant pairs; the full list is in `summary.json`.\n\n"
        + md_table(
            ("task", "metric", "better", "worse", "mean diff", "95 % CI", "cases", "p (Holm)"), rows
        )
    )


def _ranks(a: Analysis) -> str:
    rows = [[loss, f"{r:.2f}", str(n)] for loss, r, n in a.ranks]
    return "## Mean rank over tasks (Dice)\n\n" + md_table(("loss", "mean rank", "tasks"), rows)


def _seeds(a: Analysis) -> str:
    multi = [s for s in a.seed_spread if s.n_seeds > 1]
    if not multi:
        return (
            "## Seeds\n\nOne seed per run: the seed-to-seed spread is not measured "
            "(give `--seeds 0,1,2`).\n"
        )
    rows = [
        [s.task, s.loss, str(s.n_seeds), fmt(s.mean), fmt(s.sd), f"{fmt(s.low)}–{fmt(s.high)}"]
        for s in multi
    ]
    return (
        "## Seeds\n\nMean test Dice of each seed, per task and loss: its sd and range over "
        "seeds. Scores are averaged over seeds per case before any test.\n\n"
        + md_table(("task", "loss", "seeds", "mean", "sd over seeds", "range"), rows)
    )


def _strata(a: Analysis) -> str:
    out = []
    for title, strata in (
        ("Dice by mean object size", a.by_size),
        ("Dice by foreground ratio", a.by_foreground),
    ):
        if not strata:
            continue
        bins = list(dict.fromkeys(b for _, _, b, _, _ in strata))
        order = SIZE_BINS if title.endswith("size") else FOREGROUND_BINS
        bins = [name for _, name in order if name in bins]
        lookup = {(t, lo, b): (n, m) for t, lo, b, n, m in strata}
        keys = list(dict.fromkeys((t, lo) for t, lo, _, _, _ in strata))
        rows = [
            [
                t,
                lo,
                *(
                    f"{fmt(lookup[(t, lo, b)][1])} (n={lookup[(t, lo, b)][0]})"
                    if (t, lo, b) in lookup
                    else "–"
                    for b in bins
                ),
            ]
            for t, lo in keys
        ]
        out.append(
            f"## {title}\n\nPer (case, foreground class) with a non-empty target; the "
            "claims table tests each stratum (C6).\n\n" + md_table(("task", "loss", *bins), rows)
        )
    return "\n".join(out)


def _per_class(a: Analysis) -> str:
    multi = [c for c in a.per_class if a.tasks.get(c[0], {}).get("num_classes", 0) > 2]
    if not multi:
        return ""
    rows = [[t, lo, c, str(n), fmt(d), fmt(j)] for t, lo, c, n, d, j in multi]
    return "## Per-class results (multi-class tasks)\n\n" + md_table(
        ("task", "loss", "class", "cases", "Dice", "Jaccard"), rows
    )


def _false_positives(a: Analysis) -> str:
    rows = [
        [
            f.task,
            f.loss,
            str(f.empty_cases),
            fmt(f.empty_fp_voxels, 1),
            fmt(f.empty_cases_predicted, 1),
            str(f.absent_pairs),
            fmt(f.absent_fp_voxels, 1),
        ]
        for f in a.false_positives
        if f.empty_cases or f.absent_pairs
    ]
    if not rows:
        return ""
    return (
        "## Empty targets: false-positive volume\n\nCases whose target has no foreground "
        "are not scored (Dice is undefined there); what each loss predicted in them, and in "
        "classes absent from a scored case's target, is its false-positive volume (mean "
        "over seeds).\n\n"
        + md_table(
            (
                "task",
                "loss",
                "empty cases",
                "voxels predicted in them",
                "of them predicted",
                "absent (case, class)",
                "voxels predicted there",
            ),
            rows,
        )
    )


def _band(a: Analysis) -> str:
    b = a.band
    return (
        f"## Dice–Jaccard band\n\n{b['inside']} of {b['n']} per-case (Dice, Jaccard) pairs "
        "lie in the band (1−J)/2 ≤ 1−D ≤ 1−J; the largest deviation of a single (case, "
        f"class) from J = D/(2−D) is {b['max_single_gap']:.1e}.\n"
    )


def _curves(a: Analysis) -> str:
    if not a.curves:
        return ""
    rows = [
        [
            c.task,
            c.loss,
            str(c.runs),
            str(len(c.epochs)),
            fmt(c.mean[-1] if c.mean else math.nan),
            fmt(c.rise_in_last_fifth),
            "**still improving**" if c.still_improving else "flat",
        ]
        for c in a.curves
    ]
    flagged = sum(c.still_improving for c in a.curves)
    return (
        "## Training curves\n\nMean validation Dice per epoch over the runs of each task "
        f"and loss (`plots/curves_<task>.png`). A loss is **still improving** when that mean "
        f"rose by more than {STILL_IMPROVING_RISE} over the last 20 % of the epochs: its "
        f"score is limited by the budget ({flagged} of {len(a.curves)}).\n\n"
        + md_table(
            ("task", "loss", "runs", "epochs", "last val Dice", "rise in last 20 %", "flag"), rows
        )
    )


def _loss_options(a: Analysis) -> str:
    rows = [
        [
            loss.label,
            loss.loss,
            loss.group,
            ", ".join(f"{k}={v!r}" for k, v in loss.options.items()) or "defaults",
        ]
        for loss in a.losses
    ]
    return (
        "## Losses and their options\n\nEvery option not listed is the loss's default "
        "(`metricseg losses NAME`).\n\n"
        + md_table(("loss", "registry name", "group", "options"), rows)
    )


def _notes(a: Analysis) -> str:
    if not a.notes:
        return ""
    return "## Notes\n\n" + "\n".join(f"- {n}" for n in a.notes) + "\n"


#: The sections of ``summary.md`` in order.
SECTIONS: tuple[Callable[[Analysis], str], ...] = (
    _header,
    _verdict,
    _claims,
    _overview,
    _tasks,
    _seeds,
    _pairwise,
    _ranks,
    _strata,
    _per_class,
    _false_positives,
    _band,
    _curves,
    _loss_options,
    _claim_details,
    _notes,
)


def summary_markdown(a: Analysis, plots: Sequence[str] = ()) -> str:
    """The whole ``summary.md``: every section that has something to show, then the plots."""
    parts = [text for text in (section(a) for section in SECTIONS) if text]
    if plots:
        parts.append("## Plots\n\n" + "\n".join(f"![{p}](plots/{p})" for p in plots) + "\n")
    return "\n".join(parts)
