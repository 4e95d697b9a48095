"""``metricseg theory``: check the bounds between Dice, Jaccard, Tversky and Hamming."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from metricseg.commands._common import UsageError, WorkError

HELP = "check the bounds between Dice, Jaccard, Tversky and weighted Hamming; plot them"
DESCRIPTION = """\
Verify every bound metricseg claims between the Dice score, the Jaccard index,
the Tversky index and the weighted Hamming similarity: exhaustive enumeration of
all count triples (TP, FP, FN) with TP + FP + FN <= --max-voxels, plus an
adversarial gradient search over soft predictions. Prints each bound next to the
worst case found, measures per-image against pooled Dice on synthetic discs, and
with --out writes PNG plots. Exit code 1 if a bound is broken.

Derivations: docs/theory.md.
"""

#: ends that the enumeration should reach (or approach) within this of the closed form
AGREEMENT = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="DIR", help="write the PNG plots into DIR (default: no plots)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable results (default: a table)"
    )
    parser.add_argument(
        "--max-voxels",
        type=int,
        default=300,
        metavar="N",
        help="enumerate every (TP, FP, FN) with TP + FP + FN <= N (default: 300)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the adversarial search (default: 0)",
    )


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if math.isinf(x):
        return "∞"
    return f"{x:.6g}"


def _short_params(params: Any) -> str:
    if "alpha" in params:
        return f"α={params['alpha']:g}"
    if "w_fp" in params:
        return f"w=({params['w_fp']:g}, {params['w_fn']:g})"
    return ", ".join(f"{k}={v:g}" for k, v in params.items())


def _agreement(result: Any) -> dict[str, Any]:
    """Whether the found extremes reach the closed-form ends the enumeration can reach."""
    c = result.claim
    out: dict[str, Any] = {}
    if c.lower is not None and c.lower_attained:
        out["lower"] = abs(result.found_min - c.lower) <= AGREEMENT
    if c.upper is not None and c.upper_attained:
        out["upper"] = abs(result.found_max - c.upper) <= AGREEMENT
    return out


def _print_table(report: Any, pooling: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print("[bold]claims[/] (t, f, n = TP, FP, FN; β = 1 − α; H = weighted Hamming):")
    for name in dict.fromkeys(r.claim.name for r in report.results):
        console.print(f"  • {name}")
    table = Table(title=f"each bound against the worst case found ({report.seconds:.1f} s)")
    for col, justify in (
        ("quantity", "left"),
        ("claimed", "right"),
        ("found", "right"),
        ("by", "left"),
        ("", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "quantity")  # type: ignore[arg-type]
    for r in report.results:
        c = r.claim
        params = _short_params(c.params)
        agree = _agreement(r)
        mark = "[green]ok[/]" if r.holds else "[red]BROKEN[/]"
        if agree and not all(agree.values()):
            mark += f" [yellow](end not reached to {AGREEMENT:g})[/]"
        table.add_row(
            f"{c.label} {params}".strip(),
            f"{_fmt(c.lower)} … {_fmt(c.upper)}",
            f"{_fmt(r.found_min)} … {_fmt(r.found_max)}",
            f"{r.min_source[0]}/{r.max_source[0]}",
            mark,
        )
    console.print(table)
    console.print(
        f"by (min/max): e = enumeration of all {report.triples:,} triples with TP+FP+FN ≤ {report.max_voxels} and "
        f"{report.quadruples:,} quadruples with TN (≤ {report.hamming_max_voxels} voxels); "
        "s = adversarial search over soft predictions"
    )
    console.print(
        f"per-image vs pooled on {pooling.images} synthetic discs: mean Dice "
        f"{pooling.mean_dice:.4f}, pooled Dice {pooling.pooled_dice:.4f}; mean Jaccard "
        f"{pooling.mean_jaccard:.4f}, pooled Jaccard {pooling.pooled_jaccard:.4f}"
    )


def run(args: argparse.Namespace) -> int:
    from metricseg.theory import bounds
    from metricseg.theory.pooling import compare_per_image_and_pooled, synthetic_disc_counts
    from metricseg.theory.verify import BoundViolation, verify

    if args.max_voxels < 1:
        raise UsageError(f"--max-voxels must be >= 1, got {args.max_voxels}")
    try:
        report = verify(max_voxels=args.max_voxels, seed=args.seed)
    except BoundViolation as exc:
        raise WorkError(str(exc)) from None
    pooling = compare_per_image_and_pooled(synthetic_disc_counts(seed=args.seed))
    plots = []
    if args.out:
        from metricseg.theory.plots import plot_all

        plots = [str(p) for p in plot_all(args.out, report)]
    if args.json:
        data = report.to_dict()
        for entry, r in zip(data["claims"], report.results):
            entry["agrees_with_closed_form"] = _agreement(r)
        data["closed_forms"] = {
            "max_dice_jaccard_gap": bounds.MAX_DICE_JACCARD_GAP,
            "jaccard_at_max_gap": bounds.JACCARD_AT_MAX_GAP,
            "dice_at_max_gap": bounds.DICE_AT_MAX_GAP,
        }
        data["per_image_vs_pooled"] = pooling._asdict()
        data["plots"] = plots
        json.dump(data, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_table(report, pooling)
        for p in plots:
            print(f"wrote {p}")
    return 0
