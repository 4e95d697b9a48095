"""``metricseg compare PRED_A PRED_B [...] GT``: which folder of predictions scores higher, tested."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from metricseg.commands._common import UsageError, WorkError, csv_list, int_csv_list

HELP = "compare folders of predicted label files on one ground truth (paired tests, a verdict)"
DESCRIPTION = """\
Score two or more folders of predicted label images against one ground-truth folder
(cases matched by file name, as in `metricseg evaluate`), then compare every pair of
folders per label: a paired Wilcoxon signed-rank test over the cases whose ground truth
holds the label, Holm over every test, the mean difference with a 95 % CI, and the
verdict rule of the bench's claims table on "A scores a higher Dice than B":
supported, contradicted or inconclusive. Writes OUT/summary.md, summary.json and
cases.csv (one row per folder, case and label, as the bench's runs.csv).

Use it for predictions made anywhere: nnU-Net's validation outputs of two trainers,
MONAI, your own code.

examples:
  metricseg compare nnunet_dice/ nnunet_lovasz/ labelsTr/ --out cmp
  metricseg compare a/ b/ c/ gt/ --names base,dice,lovasz --labels 1,2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folders",
        nargs="+",
        metavar="FOLDER",
        help="two or more prediction folders, then the ground-truth folder",
    )
    parser.add_argument(
        "--names",
        type=csv_list,
        metavar="A,B",
        help="a name per prediction folder (default: the folder names)",
    )
    parser.add_argument(
        "--out",
        default="metricseg-compare",
        metavar="DIR",
        help="report folder (default: ./metricseg-compare)",
    )
    parser.add_argument(
        "--labels",
        type=int_csv_list,
        metavar="1,2",
        help="labels to compare (default: every label but 0 that is present)",
    )
    parser.add_argument(
        "--ignore-index",
        type=int,
        metavar="L",
        help="ground-truth label whose voxels are not counted (default: none)",
    )
    parser.add_argument(
        "--ignore-geometry",
        action="store_true",
        help="do not compare spacing/origin/direction (default: compare)",
    )


def _default_names(preds: list[Path]) -> list[str]:
    """The folders' names, or the paths as given where two folders share a name."""
    names = [p.name or str(p) for p in preds]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in preds]


def _command_line(args: argparse.Namespace) -> str:
    """The ``metricseg compare`` command that reproduces this report (for its header)."""
    parts = ["metricseg", "compare", *(shlex.quote(f) for f in args.folders)]
    if args.names:
        parts += ["--names", shlex.quote(",".join(args.names))]
    if args.labels:
        parts += ["--labels", ",".join(map(str, args.labels))]
    if args.ignore_index is not None:
        parts += ["--ignore-index", str(args.ignore_index)]
    if args.ignore_geometry:
        parts.append("--ignore-geometry")
    return " ".join([*parts, "--out", shlex.quote(args.out)])


def _check(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], Path, Path]:
    if len(args.folders) < 3:
        raise UsageError(
            f"give at least two prediction folders and the ground truth, got {len(args.folders)} "
            "folder(s): metricseg compare PRED_A PRED_B GT"
        )
    *preds, gt = (Path(p) for p in args.folders)
    names = args.names or _default_names(preds)
    if len(names) != len(preds) or len(set(names)) != len(names):
        given = "--names gives" if args.names else "the prediction folders are"
        raise UsageError(
            f"{given} {names}: give {len(preds)} different names, one per prediction "
            "folder, e.g. --names " + ",".join(f"model{i + 1}" for i in range(len(preds)))
        )
    for p in (*preds, gt):
        if not p.is_dir():
            raise UsageError(f"{p}: not a folder of label images")
    out = Path(args.out)
    resolved = out.resolve()
    for p in (*preds, gt):
        if resolved == p.resolve() or p.resolve() in resolved.parents:
            raise UsageError(f"--out {out} lies inside the input folder {p}; choose another folder")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    return list(zip(names, preds)), gt, out


def run(args: argparse.Namespace) -> int:
    import datetime

    from rich.console import Console
    from rich.table import Table

    from metricseg.experiment.compare import (
        compare_tests,
        power_note,
        score_folders,
        write_compare_report,
    )
    from metricseg.file_scoring import EvaluationError, SettingsError
    from metricseg.io import ImageReadError

    folders, gt, out = _check(args)
    try:
        rows = score_folders(
            folders,
            gt,
            labels=args.labels,
            ignore_index=args.ignore_index,
            geometry_tolerance=None if args.ignore_geometry else 1e-3,
        )
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    except (EvaluationError, ImageReadError, FileNotFoundError) as exc:
        raise WorkError(str(exc)) from None
    names = [name for name, _ in folders]
    tests, verdicts = compare_tests(rows, names)
    header = {
        "command": _command_line(args),
        "folders": ", ".join(f"{n} = {p}" for n, p in folders) + f"; ground truth {gt}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    write_compare_report(out, rows, names, tests, verdicts, header)
    console = Console(highlight=False)
    table = Table(title="paired tests per label (Holm over all)", title_justify="left")
    for col in ("A", "B", "label", "cases", "mean A − B", "p (Holm)", "outcome"):
        table.add_column(col, justify="left" if col in ("A", "B", "outcome") else "right")
    for t in tests:
        c = t.comparison
        table.add_row(
            t.a, t.b, str(t.label), str(c.n), f"{c.mean_diff:+.4f}", f"{t.p_holm:.2g}", t.outcome
        )
    console.print(table)
    for v in verdicts:
        console.print(f"{v.a} scores a higher Dice than {v.b}: {v.verdict} ({v.reason})")
    if (note := power_note(tests)) is not None:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"report: {out / 'summary.md'}")
    return 0
