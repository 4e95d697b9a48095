"""``metricseg evaluate PRED GT``: score predicted label images against ground truth."""

from __future__ import annotations

import argparse
import sys

HELP = "score predicted label images (NIfTI, NRRD, MHA, PNG, TIFF) against ground truth"
DESCRIPTION = """\
Score predicted label images against ground truth: Dice and Jaccard (and, on
request, tversky, hamming, sensitivity, precision) per case and label.

PRED and GT are two folders (cases matched by file name without the image
suffix: case_01.nii.gz pairs with case_01.nii) or two files. Shapes must agree;
for NIfTI/NRRD/MHA also spacing, origin and direction (--geometry-tolerance).

The summary gives per label the mean over cases (cases where both prediction
and ground truth lack the label are 'empty': NaN by default, left out of the
mean and counted), then macro (mean over labels), micro (counts pooled over
labels per case, mean over cases) and global (counts pooled over all cases per
label, mean over labels).

examples:
  metricseg evaluate preds/ labels/ --out scores.csv
  metricseg evaluate pred.nii.gz gt.nii.gz --labels 1,2 --metrics dice,hamming
"""


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,2,3, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one label, got {text!r}")
    return values


def _metric_list(text: str) -> list[str]:
    from metricseg.metrics import METRICS

    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown metric(s) {bad or text!r}; choose from {','.join(METRICS)}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predicted label image or folder")
    parser.add_argument("gt", metavar="GT", help="ground-truth label image or folder")
    parser.add_argument("--out", metavar="CSV", help="write per-case per-label scores here")
    parser.add_argument(
        "--metrics",
        type=_metric_list,
        default=["dice", "jaccard"],
        help="comma-separated: dice,jaccard,tversky,hamming,sensitivity,precision "
        "(default: dice,jaccard)",
    )
    parser.add_argument(
        "--labels", type=_int_list, help="labels to report, e.g. 1,2,3 (default: all but 0)"
    )
    parser.add_argument(
        "--num-classes", type=int, help="number of classes (default: largest label seen + 1)"
    )
    parser.add_argument(
        "--ignore-index", type=int, help="ground-truth label whose voxels are not counted"
    )
    parser.add_argument(
        "--empty",
        choices=("nan", "one", "zero"),
        default="nan",
        help="score when prediction and ground truth both lack a label (default: nan, "
        "left out of means and counted)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="Tversky weight of FP")
    parser.add_argument("--beta", type=float, default=0.5, help="Tversky weight of FN")
    parser.add_argument("--w-fp", type=float, default=1.0, help="Hamming weight of FP")
    parser.add_argument("--w-fn", type=float, default=1.0, help="Hamming weight of FN")
    parser.add_argument(
        "--geometry-tolerance",
        type=float,
        default=1e-3,
        help="absolute tolerance on spacing, origin and direction (default: 1e-3)",
    )
    parser.add_argument(
        "--ignore-geometry", action="store_true", help="do not compare spacing/origin/direction"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="evaluate the other cases when one fails; list failures at the end (exit 1)",
    )


def run(args: argparse.Namespace) -> int:
    from metricseg.file_scoring import (
        EvaluationError,
        evaluate_pairs,
        match_cases,
        write_case_csv,
    )
    from metricseg.io import ImageReadError

    if args.num_classes is not None and args.num_classes < 1:
        print(f"error: --num-classes must be >= 1, got {args.num_classes}", file=sys.stderr)
        return 2
    try:
        pairs, problems = match_cases(args.pred, args.gt)
        result = evaluate_pairs(
            pairs,
            metrics=args.metrics,
            labels=args.labels,
            num_classes=args.num_classes,
            ignore_index=args.ignore_index,
            empty=args.empty,
            geometry_tolerance=None if args.ignore_geometry else args.geometry_tolerance,
            keep_going=args.keep_going,
            failures=problems,
            alpha=args.alpha,
            beta=args.beta,
            w_fp=args.w_fp,
            w_fn=args.w_fn,
        )
    except (FileNotFoundError, EvaluationError, ImageReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.cases and args.out:
        path = write_case_csv(args.out, result)
        print(f"wrote {len(result.cases)} cases × {len(result.labels)} labels to {path}")
    _print_summary(result)
    if result.failures:
        print(f"{len(result.failures)} case(s) failed:", file=sys.stderr)
        for _case, message in result.failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


def _print_summary(result) -> None:  # result: EvaluationResult
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, 12 * len(result.metrics) + 40))
    if result.summary is None:
        console.print("no case could be evaluated")
        return
    s = result.summary
    table = Table(
        title=f"{s.num_images} case(s), {len(result.labels)} label(s); mean over cases",
        show_lines=False,
    )
    table.add_column("label", justify="right")
    for m in result.metrics:
        table.add_column(m, justify="right")
    table.add_column("empty cases", justify="right")

    def cell(x: float) -> str:
        return "nan" if x != x else f"{x:.4f}"

    for k, label in enumerate(s.classes):
        row = [cell(float(s.per_class[m][k])) for m in result.metrics]
        table.add_row(str(label), *row, str(int(s.empty_cases[k])))
    table.add_section()
    for name, values in (("macro", s.macro), ("micro", s.micro), ("global", s.global_)):
        table.add_row(name, *[cell(values[m]) for m in result.metrics], "")
    console.print(table)
