"""``metricseg bench``: the loss-comparison study as one command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from metricseg.commands._common import UsageError, WorkError, csv_list, int_csv_list, usable_cores

HELP = "run a loss-comparison study (built-in or from a file) and write its report"
DESCRIPTION = """\
Train a U-Net per task × loss × seed (× fold), score every test case, and write a report
(summary.md, summary.json, runs.csv, plots/) with mean ± sd, 95 % CIs, paired tests with
Holm correction, the paper's claims with a verdict each, and training curves.

Studies are TOML files; the built-in ones ship with metricseg (`--study list` names them).
Without arguments the `default` study runs: the synthetic presets plus the real offline
tasks installed here, with soft Dice, soft Jaccard, Lovász-Softmax, CE, weighted CE, focal
and Dice+CE (under 15 minutes on 2 CPU cores). Finished runs are kept in OUT/runs/ and
skipped when the command is run again; a killed run resumes from its last epoch. Two
benches on one OUT train each run once (the second waits for the first).

examples:
  metricseg bench                         # the default study into ./metricseg-bench
  metricseg bench --study quick           # smoke run, about a minute
  metricseg bench --study brats -o path=/data/brats2018 --out brats
  metricseg bench --study list
  metricseg bench --study my-study.toml --device cuda --out study
  metricseg bench --tasks tiny-lesions,multiclass --losses soft_dice,ce --seeds 0,1,2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--study",
        metavar="NAME|FILE",
        help="a built-in study (default, quick, brats, brats-claims, brats3d; 'list' shows "
        "them) or a .toml/.yaml study file (default: default)",
    )
    which.add_argument("--quick", action="store_true", help="same as --study quick (default: off)")
    which.add_argument("--config", metavar="FILE", help="same as --study FILE (default: none)")
    parser.add_argument(
        "--tasks", type=csv_list, metavar="A,B", help="tasks to run (default: the study's)"
    )
    parser.add_argument(
        "--losses", type=csv_list, metavar="A,B", help="losses to compare (default: the study's)"
    )
    parser.add_argument(
        "--seeds", type=int_csv_list, metavar="0,1", help="training seeds (default: the study's)"
    )
    parser.add_argument(
        "--epochs", type=int, metavar="N", help="epochs for every run (default: the study's)"
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option for every task of the study, repeatable, e.g. -o path=/data/brats "
        "(default: none)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument(
        "--out",
        default="metricseg-bench",
        metavar="DIR",
        help="output folder (default: ./metricseg-bench)",
    )
    parser.add_argument("--executor", default="local", choices=["local", "ray"],
                        help="where runs execute (default: local)")  # fmt: skip
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="--executor ray: the Ray cluster (auto, HOST:6379, ray://HOST:10001) "
        "(default: a Ray instance on this machine)",
    )
    parser.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        metavar="G",
        help="--executor ray: GPUs per run (default: 1 with --device cuda, else 0); "
        "--threads sets the CPUs per run",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N",
        help="runs at once on this machine (default: one per usable core on CPU, 1 on CUDA)",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads per run (default: usable cores / jobs)",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots (default: plots)"
    )
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="per-epoch progress bars (default: when stderr is a terminal)")  # fmt: skip


def command_line(args: argparse.Namespace) -> str:
    """The ``metricseg bench`` command that reproduces this run (for the report header)."""
    parts = ["metricseg", "bench"]
    study = args.study or args.config or ("quick" if args.quick else None)
    if study:
        parts += ["--study", study]
    for flag in ("tasks", "losses", "seeds"):
        value = getattr(args, flag)
        if value:
            parts += [f"--{flag}", ",".join(str(v) for v in value)]
    for item in args.option:
        parts += ["-o", item]
    for flag in ("epochs", "device", "executor", "address", "gpus_per_run", "jobs", "threads"):
        value = getattr(args, flag, None)
        if value is not None and not (flag == "executor" and value == "local"):
            parts += [f"--{flag.replace('_', '-')}", str(value)]
    if args.out != "metricseg-bench":
        parts += ["--out", args.out]
    return " ".join(parts)


def _print_studies(console: Any) -> int:
    from rich.table import Table

    from metricseg.experiment.suite import list_studies

    table = Table(title="built-in studies (metricseg bench --study NAME)", title_justify="left")
    table.add_column("study")
    table.add_column("what")
    for name, description in list_studies():
        table.add_row(name, description)
    console.print(table)
    return 0


def _suite(args: argparse.Namespace) -> tuple[Any, list[str]]:
    from metricseg.commands._common import parse_options
    from metricseg.experiment.suite import available_tasks, load_study

    name = args.study or args.config or ("quick" if args.quick else "default")
    try:
        suite = load_study(name)
        suite = suite.with_overrides(
            tasks=args.tasks, losses=args.losses, seeds=args.seeds, epochs=args.epochs,
            device=args.device,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    options = parse_options(args.option)
    for entry in suite.tasks:
        entry.options.update(options)
    suite, notes = available_tasks(suite)
    return suite, [*notes, *suite.notes]


def _executor(args: argparse.Namespace, jobs: int, threads: int, cuda: bool) -> Any:
    from metricseg.experiment.executor import get_executor

    if args.executor == "ray":
        gpus = args.gpus_per_run if args.gpus_per_run is not None else (1 if cuda else 0)
        options = {"address": args.address, "num_cpus_per_run": args.threads or 1,
                   "num_gpus_per_run": gpus, "progress": bool(args.progress)}  # fmt: skip
    else:
        options = {"jobs": jobs, "threads_per_job": threads, "progress": args.progress}
    try:
        return get_executor(args.executor, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import sys
    import time
    from pathlib import Path

    import torch
    from rich.console import Console

    from metricseg.experiment.grid import finished_results
    from metricseg.experiment.report import build_report, print_tables
    from metricseg.experiment.study import outcome_line, prepare_study
    from metricseg.train.ddp import launched_by_torchrun

    # a wide table even when the output is a file or a pipe
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    if args.study == "list":
        return _print_studies(console)
    if launched_by_torchrun():
        raise UsageError(
            "metricseg bench does not run under torchrun: its runs are independent; spread "
            "them with --executor ray (one GPU per run), or use torchrun with `metricseg train` "
            "for one large run"
        )
    for flag in ("jobs", "threads", "epochs"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    cuda = bool(args.device and args.device.startswith("cuda"))
    if cuda and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: torch sees no CUDA device; use --device cpu")
    t_start = time.perf_counter()
    jobs = args.jobs or (1 if cuda else usable_cores())
    threads = args.threads or max(1, usable_cores() // jobs)
    torch.set_num_threads(threads)
    suite, notes = _suite(args)
    out = Path(args.out)
    try:
        specs = prepare_study(suite, out)  # the whole study is checked before run 1
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    executor = _executor(args, jobs, threads, cuda)
    console.print(
        f"metricseg bench ({suite.name}): {len(suite.tasks)} tasks × {len(suite.losses)} losses × "
        f"{len(suite.seeds)} seeds{f' × {suite.folds} folds' if suite.folds else ''} = "
        f"{len(specs)} runs → {out}/  ({jobs} at once, {threads} torch thread(s) each, "
        f"device: {suite.train.get('device', 'cpu')})"
    )
    outcomes = executor.run(
        specs, out, on_done=lambda i, n, o: console.print(outcome_line(i, n, o))
    )
    wall = time.perf_counter() - t_start
    results = finished_results(specs, out)
    if not results:
        raise WorkError(f"no run finished; see the .error.txt files under {out}/runs/")
    failed = [o for o in outcomes if not o.ok]
    notes += [f"run {o.spec.task_label}/{o.spec.loss_label}/{o.spec.run_name} failed: {o.error}"
              for o in failed]  # fmt: skip
    header = _header(args, suite, specs, outcomes, wall, jobs, threads)
    analysis = build_report(out, results, header=header, notes=notes, plots=not args.no_plots)
    print_tables(analysis, console)
    console.print(f"wall time {wall:.0f} s; report: {out / 'summary.md'}")
    if failed:
        raise WorkError(f"{len(failed)} run(s) failed; see the .error.txt files under {out}/runs/")
    return 0


def _header(
    args: argparse.Namespace,
    suite: Any,
    specs: Sequence[Any],
    outcomes: Sequence[Any],
    wall: float,
    jobs: int,
    threads: int,
) -> dict[str, str]:
    import datetime
    import platform

    import torch

    from metricseg.experiment.grid import task_builds
    from metricseg.experiment.study import runs_per_minute

    trained = sum(1 for o in outcomes if o.ok and o.status == "trained")
    kept = sum(1 for o in outcomes if o.ok and o.skipped)
    failed = sum(1 for o in outcomes if not o.ok)
    return {
        "command": command_line(args),
        "study": f"{suite.name}: {len(specs)} runs ({trained} trained now, {kept} kept from "
        f"before, {failed} failed)",
        "wall time": f"{wall:.0f} s ({wall / 60:.1f} min) for this invocation; "
        f"{runs_per_minute(outcomes, wall):.2f} runs per minute trained",
        "machine": f"{platform.machine()}, {usable_cores()} usable cores, torch {torch.__version__}, "
        f"{jobs} runs at once with {threads} thread(s) each, device {suite.train.get('device', 'cpu')}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "training": ", ".join(f"{k}={v}" for k, v in suite.train.items()),
        "tasks built in the main process": str(task_builds()),
    }
