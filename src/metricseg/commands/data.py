"""``metricseg data``: list the tasks, picture one, download an MSD task."""

from __future__ import annotations

import argparse
from pathlib import Path

from metricseg.commands._common import UsageError, WorkError, parse_options

HELP = "list, show and download segmentation tasks (synthetic, real offline, MSD, your folders)"
DESCRIPTION = """\
Tasks for training and for `metricseg bench`.

  metricseg data list                             every task, available here or how to get it
  metricseg data show TASK --out FILE.png         montage of image/label pairs + class statistics
  metricseg data download msd:Task04_Hippocampus  fetch an MSD task into $METRICSEG_DATA

TASK is a name from `data list`, folder:PATH for your own data, or msd:TaskXX_Name.

Exit codes: 0 done; 1 the work failed (a download, writing the picture, a
task whose data is not on this machine); 2 a usage error (unknown task or
option, a missing folder, a task without cases in --split).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="every task: kind, available here or how to get it, size, classes")

    show = sub.add_parser(
        "show", help="montage PNG of image/label pairs, class frequencies, object sizes"
    )
    show.add_argument("task", help="task name, folder:PATH or msd:TaskXX_Name")
    show.add_argument(
        "--out", required=True, type=Path, help="PNG file to write (required, no default)"
    )
    show.add_argument(
        "--split",
        default="train",
        choices=["train", "val", "test"],
        help="which cases to picture (default: train)",
    )
    show.add_argument("--cases", type=int, default=6, help="cases in the montage (default: 6)")
    show.add_argument(
        "--seed", type=int, default=0, help="seed of synthetic tasks and splits (default: 0)"
    )
    show.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, e.g. -o image_size=96 -o num_train=8 (repeatable; default: none)",
    )

    download = sub.add_parser(
        "download", help="download and extract an MSD task (checksummed, resumable)"
    )
    download.add_argument("task", help="msd:TaskXX_Name, e.g. msd:Task04_Hippocampus")
    download.add_argument(
        "--base-url",
        default=None,
        help="mirror to download from (default: $METRICSEG_MSD_URL, else the AWS bucket)",
    )


def _table(
    header: list[str], rows: list[list[str]], *, right: tuple[str, ...], wrap: tuple[str, ...]
) -> None:
    """Print ``rows`` as a rich table; ``right`` columns right-aligned, only ``wrap`` columns wrap.

    Piped output is not wrapped, so that a line is a row (``grep`` works).
    """
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in header:
        table.add_column(
            name, justify="right" if name in right else "left", no_wrap=name not in wrap
        )
    for row in rows:
        table.add_row(*row)
    Console(highlight=False, width=None if sys.stdout.isatty() else 1000).print(table)


def _list() -> int:
    from metricseg.data import list_tasks

    rows = []
    for t in list_tasks():
        dims = f"{t.spatial_dims}D" if t.spatial_dims else "2D/3D"
        classes = str(t.num_classes) if t.num_classes else "-"
        where = "yes" if t.available else f"no: {t.how_to_get}"
        rows.append([t.name, t.kind, dims, classes, t.size, where, t.description])
    header = ["task", "kind", "dims", "classes", "size", "available", "description"]
    _table(header, rows, right=("classes",), wrap=("available", "description"))
    return 0


def _check_png_path(out: Path) -> None:
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name, e.g. {out / 'task.png'}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out}: {parent} is a file, not a folder")


def _show(args: argparse.Namespace) -> int:
    from metricseg.data import get_task
    from metricseg.data.montage import save_montage
    from metricseg.data.real import SourceUnavailableError
    from metricseg.data.stats import summarise, task_statistics

    if args.cases < 1:
        raise UsageError(f"--cases must be >= 1, got {args.cases}")
    _check_png_path(args.out)
    options = parse_options(args.option)
    try:
        task = get_task(args.task, seed=args.seed, **options)
    except SourceUnavailableError as exc:  # a known task whose files are not here
        raise WorkError(str(exc)) from None
    except (ValueError, TypeError, FileNotFoundError) as exc:
        # an unknown name or option, a missing folder, a file that cannot be an input
        raise UsageError(str(exc)) from None
    if not getattr(task, args.split):
        raise UsageError(f"task {task.name!r} has no {args.split} cases to show; try --split train")
    try:
        out = save_montage(task, args.split, args.cases, args.out)
    except OSError as exc:
        raise WorkError(f"{args.out}: cannot write the picture ({exc})") from None
    print(f"{task.name}: {task.description}")
    print(
        f"{task.spatial_dims}D, {task.num_classes} classes, {task.in_channels} channel(s); "
        f"train {len(task.train)}, val {len(task.val)}, test {len(task.test)} cases; "
        f"image {tuple(task.train[0].label.shape)}; source: {task.source}"
    )
    rows = []
    for r in summarise(task_statistics(task), task.class_names):
        rows.append(
            [
                r["class"],
                f"{100 * r['mean_ratio']:.2f}",
                f"{100 * r['min_ratio']:.2f}-{100 * r['max_ratio']:.2f}",
                f"{r['present_in']}/{r['cases']}",
                f"{r['objects_per_case']:.1f}",
                f"{r['size_p05']:.0f} / {r['size_p50']:.0f} / {r['size_p95']:.0f}",
            ]
        )
    header = ["class", "fg %", "range %", "present", "objects/case", "object size p5/p50/p95 (vox)"]
    _table(header, rows, right=tuple(header[1:]), wrap=("class",))
    print(f"wrote {out}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from metricseg.data.download import DownloadError, fetch_msd

    if not args.task.startswith("msd:"):
        raise UsageError(f"only msd:TaskXX_Name tasks are downloaded, got {args.task!r}")
    try:
        folder = fetch_msd(args.task[4:], base_url=args.base_url, progress=True)
    except ValueError as exc:  # an unknown task name
        raise UsageError(str(exc)) from None
    except (DownloadError, OSError) as exc:
        raise WorkError(str(exc)) from None
    print(f"{args.task} is in {folder}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "list":
        return _list()
    if args.data_command == "show":
        return _show(args)
    return _download(args)
