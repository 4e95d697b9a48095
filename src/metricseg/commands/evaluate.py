"""``metricseg evaluate PRED GT``: score predicted label images against ground truth."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metricseg.file_scoring import EvaluationResult

HELP = "score predicted label images (NIfTI, NRRD, MHA, PNG, TIFF) against ground truth"
DESCRIPTION = """\
Score predicted label images against ground truth: Dice and Jaccard (and, on
request, tversky, hamming, sensitivity, precision) per case and label.

PRED and GT are two folders (cases matched by file name without the image
suffix: case_01.nii.gz pairs with case_01.nii) or two files. Shapes must agree;
for NIfTI/NRRD/MHA also spacing, origin and direction (--geometry-tolerance).
Labels are integers >= 0 (NaN, fractions and negative labels fail the case);
--ignore-index lies outside the classes (e.g. 255, or -1 for a ground truth
that marks left-out voxels with -1).

--out is checked before any case is scored: never one of the inputs or inside
an input folder, never a folder, and an existing file is replaced only if it
is a CSV written by metricseg evaluate (or with --force). The CSV is written
atomically.

Exit codes: 0 all cases scored; 1 a case failed (with --keep-going: after
scoring the others); 2 a usage error (bad option, missing input, --out refused,
an ignore index that is a class label).

The summary gives per label the mean over cases (cases where both prediction
and ground truth lack the label are 'empty': NaN by default, left out of the
mean and counted), then macro (mean over labels), micro (counts pooled over
labels per case, mean over cases) and global (counts pooled over all cases per
label, mean over labels).

examples:
  metricseg evaluate preds/ labels/ --out scores.csv
  metricseg evaluate pred.nii.gz gt.nii.gz --labels 1,2 --metrics dice,hamming
"""


def _metric_list(text: str) -> list[str]:
    from metricseg.commands._common import csv_list
    from metricseg.metrics import METRICS

    names = csv_list(text)
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown metric(s) {bad}; choose from {','.join(METRICS)}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from metricseg.commands._common import int_csv_list

    parser.add_argument("pred", metavar="PRED", help="predicted label image or folder")
    parser.add_argument("gt", metavar="GT", help="ground-truth label image or folder")
    parser.add_argument(
        "--out",
        metavar="CSV",
        help="write per-case per-label scores here; never an input or inside an input folder "
        "(default: none, print the summary only)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file that is not a CSV written by metricseg evaluate "
        "(default: off, refuse)",
    )
    parser.add_argument(
        "--metrics",
        type=_metric_list,
        default=["dice", "jaccard"],
        help="comma-separated: dice,jaccard,tversky,hamming,sensitivity,precision "
        "(default: dice,jaccard)",
    )
    parser.add_argument(
        "--labels",
        type=int_csv_list,
        help="labels to report, e.g. 1,2,3 (default: all but 0, i.e. 1 to C-1)",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        help="number of classes C; a label >= C fails its case (default: largest label seen + 1)",
    )
    parser.add_argument(
        "--ignore-index",
        type=int,
        help="ground-truth label whose voxels are not counted, outside the classes, e.g. 255 "
        "or -1 (default: none)",
    )
    parser.add_argument(
        "--empty",
        choices=("nan", "one", "zero"),
        default="nan",
        help="score when prediction and ground truth both lack a label (default: nan, "
        "left out of means and counted)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="Tversky weight of FP (default: 0.5)"
    )
    parser.add_argument(
        "--beta", type=float, default=0.5, help="Tversky weight of FN (default: 0.5)"
    )
    parser.add_argument(
        "--w-fp", type=float, default=1.0, help="Hamming weight of FP (default: 1.0)"
    )
    parser.add_argument(
        "--w-fn", type=float, default=1.0, help="Hamming weight of FN (default: 1.0)"
    )
    parser.add_argument(
        "--geometry-tolerance",
        type=float,
        default=1e-3,
        help="absolute tolerance on spacing, origin and direction (default: 1e-3)",
    )
    parser.add_argument(
        "--ignore-geometry",
        action="store_true",
        help="do not compare spacing/origin/direction (default: off, compare)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="evaluate the other cases when one fails; list failures at the end, exit 1 "
        "(default: off, stop at the first failure)",
    )


def run(args: argparse.Namespace) -> int:
    from metricseg.commands._common import UsageError, WorkError
    from metricseg.file_scoring import (
        EvaluationError,
        SettingsError,
        check_csv_path,
        check_settings,
        evaluate_pairs,
        match_cases,
        write_case_csv,
    )
    from metricseg.io import ImageReadError

    inputs = (args.pred, args.gt)
    try:  # everything that can be checked before a file is read
        check_settings(
            labels=args.labels, num_classes=args.num_classes, ignore_index=args.ignore_index
        )
        if args.out is not None:
            check_csv_path(args.out, inputs=inputs, force=args.force)
        pairs, problems = match_cases(args.pred, args.gt)
    except (SettingsError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    try:
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
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    except (FileNotFoundError, EvaluationError, ImageReadError) as exc:
        hint = (
            "" if args.keep_going else " (--keep-going scores the other cases and lists failures)"
        )
        raise WorkError(f"{exc}{hint}") from None
    if result.cases and args.out:
        try:
            path = write_case_csv(args.out, result, inputs=inputs, force=args.force)
        except SettingsError as exc:  # the path changed while the cases were scored
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise WorkError(f"{args.out}: cannot write the scores ({exc})") from None
        print(f"wrote {len(result.cases)} cases × {len(result.labels)} labels to {path}")
    _print_summary(result)
    if result.failures:
        lines = "\n".join(f"  {message}" for _case, message in result.failures)
        raise WorkError(f"{len(result.failures)} case(s) failed:\n{lines}")
    return 0


def _print_summary(result: EvaluationResult) -> None:
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

    for k, label in enumerate(result.labels):
        row = [cell(float(s.per_class[m][k])) for m in result.metrics]
        table.add_row(str(label), *row, str(int(s.empty_cases[k])))
    table.add_section()
    for name, values in (("macro", s.macro), ("micro", s.micro), ("global", s.global_)):
        table.add_row(name, *[cell(values[m]) for m in result.metrics], "")
    console.print(table)
