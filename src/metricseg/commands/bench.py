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
and Dice+CE (about 6.5 minutes on 2 CPU cores). Finished runs are kept in OUT/runs/ and
skipped when the command is run again; a killed run resumes from its last epoch. Two
benches on one OUT train each run once (the second waits for the first).

examples:
  metricseg bench                         # the default study into ./metricseg-bench
  metricseg bench --study quick           # smoke run, about 30 s
  metricseg bench --study brats -o path=/data/brats2018 --out brats
  metricseg bench --study list
  metricseg bench --study my-study.toml --device cuda --out study
  metricseg bench --tasks tiny-lesions,multiclass --losses soft_dice,ce --seeds 0,1,2
  metricseg bench --engine nnunet --dataset 901 --configuration 3d_fullres --out nnunet-bench

--engine nnunet runs the study with nnU-Net as the network (pip install 'metricseg[nnunet]';
nnUNet_raw and nnUNet_preprocessed set): one nnU-Net training per loss x fold of nnU-Net's
cross-validation with the metricseg trainer of the loss, nnU-Net's validation predictions of
each fold scored by metricseg into the same report (docs/nnunet.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _study_arguments(parser)
    _execution_arguments(parser)
    _nnunet_arguments(
        parser.add_argument_group(
            "--engine nnunet (also --losses, --epochs, --device, --out, --no-plots)"
        )
    )


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    """What runs: the engine, the study and its overrides, where the report goes."""
    parser.add_argument(
        "--engine",
        default="metricseg",
        choices=["metricseg", "nnunet"],
        help="who trains: metricseg's U-Net on metricseg tasks, or nnU-Net on an nnU-Net "
        "dataset (--dataset ...) (default: metricseg)",
    )
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
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots (default: plots)"
    )


def _execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the runs execute."""
    parser.add_argument(
        "--executor",
        default="local",
        choices=["local", "ray"],
        help="where runs execute (default: local)",
    )
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
        "--jobs",
        type=int,
        metavar="N",
        help="runs at once on this machine (default: one per usable core on CPU, 1 on CUDA)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads per run (default: usable cores / jobs)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-epoch progress bars (default: when stderr is a terminal)",
    )


def _nnunet_arguments(nnunet: Any) -> None:
    """The options of ``--engine nnunet``."""
    nnunet.add_argument(
        "--dataset",
        metavar="ID|NAME",
        help="nnU-Net dataset, e.g. 901 (required with --engine nnunet)",
    )
    nnunet.add_argument(
        "--configuration", metavar="C", help="nnU-Net configuration (default: 3d_fullres)"
    )
    nnunet.add_argument("--plans", metavar="P", help="nnU-Net plans (default: nnUNetPlans)")
    nnunet.add_argument(
        "--folds",
        type=int_csv_list,
        metavar="0,1",
        help="folds of nnU-Net's splits_final.json (default: all of them)",
    )
    nnunet.add_argument(
        "--iterations",
        type=int,
        metavar="N",
        help="training iterations per epoch (default: nnU-Net's 250)",
    )
    nnunet.add_argument(
        "--val-iterations",
        type=int,
        metavar="N",
        help="validation iterations per epoch (default: nnU-Net's 50)",
    )
    nnunet.add_argument(
        "--loss-option",
        action="append",
        default=[],
        metavar="[LOSS:]KEY=VALUE",
        help="loss option, repeatable: KEY=VALUE for every loss that takes KEY, "
        "LOSS:KEY=VALUE for one loss (default: the losses' defaults)",
    )


def _n(count: int, noun: str) -> str:
    """``1 task``, ``2 tasks``, ``2 losses``."""
    return (
        f"{count} {noun}" if count == 1 else f"{count} {noun}{'es' if noun.endswith('s') else 's'}"
    )


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
            tasks=args.tasks,
            losses=args.losses,
            seeds=args.seeds,
            epochs=args.epochs,
            device=args.device,
        )
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
        options = {
            "address": args.address,
            "num_cpus_per_run": args.threads or 1,
            "num_gpus_per_run": gpus,
            "progress": bool(args.progress),
        }
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
    from metricseg.experiment.study import outcome_line, prepare_study
    from metricseg.train.ddp import launched_by_torchrun

    # a wide table even when the output is a file or a pipe
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    _check_engine_flags(args)
    if args.engine == "nnunet":
        return _run_nnunet(args, console)
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
        f"metricseg bench ({suite.name}): {_n(len(suite.tasks), 'task')} × "
        f"{_n(len(suite.losses), 'loss')} × {_n(len(suite.seeds), 'seed')}"
        f"{f' × {suite.folds} folds' if suite.folds else ''} = "
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
    notes += [
        f"run {o.spec.task_label}/{o.spec.loss_label}/{o.spec.run_name} failed: {o.error}"
        for o in failed
    ]
    header = _header(args, suite, specs, outcomes, wall, jobs, threads)
    return _report(out, results, header, notes, len(failed), wall, args, console)


def _report(
    out: Any,
    results: Sequence[Any],
    header: dict[str, str],
    notes: list[str],
    failed: int,
    wall: float,
    args: argparse.Namespace,
    console: Any,
) -> int:
    """Write and print the report of the finished runs; exit 1 when a run failed."""
    from metricseg.experiment.report import build_report, print_tables

    analysis = build_report(out, results, header=header, notes=notes, plots=not args.no_plots)
    print_tables(analysis, console)
    console.print(f"wall time {wall:.0f} s; report: {out / 'summary.md'}")
    if failed:
        raise WorkError(f"{failed} run(s) failed; see the .error.txt files under {out}/runs/")
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
        "tasks built in the main process (each worker builds a task once, then reuses it)": str(
            task_builds()
        ),
    }


#: flags of the metricseg engine only, with their "not given" value
_METRICSEG_ONLY = {
    "study": None, "quick": False, "config": None, "tasks": None, "seeds": None,
    "option": [], "executor": "local", "address": None, "gpus_per_run": None,
    "jobs": None, "threads": None,
}  # fmt: skip
#: flags of the nnunet engine only
_NNUNET_ONLY = {
    "dataset": None, "configuration": None, "plans": None, "folds": None,
    "iterations": None, "val_iterations": None, "loss_option": [],
}  # fmt: skip


def _flag(name: str) -> str:
    return "-o/--option" if name == "option" else "--" + name.replace("_", "-")


def _check_engine_flags(args: argparse.Namespace) -> None:
    if args.engine == "nnunet":
        given = [_flag(k) for k, v in _METRICSEG_ONLY.items() if getattr(args, k) != v]
        if given:
            raise UsageError(
                f"{', '.join(given)} belong to the metricseg engine; --engine nnunet takes "
                "--dataset, --configuration, --plans, --folds, --losses, --epochs, --iterations, "
                "--val-iterations, --loss-option, --device, --out"
            )
        if not args.dataset:
            raise UsageError("--engine nnunet needs --dataset ID|NAME (e.g. --dataset 901)")
        for flag in ("epochs", "iterations", "val_iterations"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise UsageError(f"{_flag(flag)} must be >= 1, got {value}")
    else:
        given = [_flag(k) for k, v in _NNUNET_ONLY.items() if getattr(args, k) != v]
        if given:
            raise UsageError(f"{', '.join(given)} need --engine nnunet")


def _nnunet_loss_options(items: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``--loss-option`` items split into options for every loss and per-loss options."""
    from metricseg.commands._common import parse_options
    from metricseg.integrations.nnunet.options import TRAINER_LOSSES

    general: list[str] = []
    per_loss: dict[str, list[str]] = {}
    for item in items:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head and head in TRAINER_LOSSES:
            per_loss.setdefault(head, []).append(rest)
        else:
            general.append(item)
    return parse_options(general, "--loss-option"), {
        loss: parse_options(values, f"--loss-option {loss}:") for loss, values in per_loss.items()
    }


def _nnunet_command_line(args: argparse.Namespace) -> str:
    parts = ["metricseg", "bench", "--engine", "nnunet", "--dataset", str(args.dataset)]
    for flag in ("configuration", "plans", "folds", "losses", "epochs", "iterations",
                 "val_iterations", "device"):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            parts += [_flag(flag), text]
    for item in args.loss_option:
        parts += ["--loss-option", item]
    if args.out != "metricseg-bench":
        parts += ["--out", args.out]
    return " ".join(parts)


def _run_nnunet(args: argparse.Namespace, console: Any) -> int:
    """``--engine nnunet``: the study's runs with nnU-Net as the network, then the report."""
    import time
    from pathlib import Path

    import torch

    from metricseg.experiment.grid import finished_results, run_one_safe
    from metricseg.experiment.nnunet_engine import execute_nnunet_run
    from metricseg.experiment.spec import RunSpec, run_paths
    from metricseg.experiment.study import outcome_line
    from metricseg.integrations.nnunet.bench import (
        DEFAULT_LOSSES,
        distribute_loss_options,
        prepare_bench,
        report_notes,
    )

    t_start = time.perf_counter()
    out = Path(args.out)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    losses = args.losses or list(DEFAULT_LOSSES)
    general, per_loss = _nnunet_loss_options(args.loss_option)
    try:
        bench = prepare_bench(
            args.dataset,
            out,
            configuration=args.configuration or "3d_fullres",
            plans=args.plans or "nnUNetPlans",
            losses=losses,
            folds=args.folds,
            loss_options=distribute_loss_options(losses, general, per_loss),
            epochs=args.epochs,
            iterations=args.iterations,
            val_iterations=args.val_iterations,
            device=device,
            log=lambda message: console.print(f"[yellow]note:[/yellow] {message}"),
        )
        specs = [RunSpec(**fields) for fields in bench.run_fields()]
        for spec in specs:
            run_paths(spec, out)  # every path checked to stay inside OUT before run 1
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except RuntimeError as exc:
        raise WorkError(str(exc)) from None
    console.print(
        f"metricseg bench --engine nnunet: {bench.dataset} {bench.configuration}, "
        f"{len(bench.losses)} losses × {len(bench.folds)} folds = {len(specs)} nnU-Net trainings "
        f"→ {out}/  (one at a time, device {device})"
    )
    outcomes = []
    for i, spec in enumerate(specs, 1):  # one at a time: an nnU-Net training takes the device
        outcomes.append(run_one_safe(spec, out, execute=execute_nnunet_run))
        console.print(outcome_line(i, len(specs), outcomes[-1]))
    wall = time.perf_counter() - t_start
    results = finished_results(specs, out)
    if not results:
        raise WorkError(f"no run finished; see the .error.txt files under {out}/runs/")
    failed = [o for o in outcomes if not o.ok]
    notes = report_notes(bench, out) + [
        f"run {o.spec.task_label}/{o.spec.loss_label}/{o.spec.run_name} failed: {o.error}"
        for o in failed
    ]
    header = _nnunet_header(args, bench, specs, outcomes, wall, device)
    return _report(out, results, header, notes, len(failed), wall, args, console)


def _nnunet_header(
    args: argparse.Namespace,
    bench: Any,
    specs: Sequence[Any],
    outcomes: Sequence[Any],
    wall: float,
    device: str,
) -> dict[str, str]:
    import datetime
    import platform

    import torch

    failed = [o for o in outcomes if not o.ok]
    trained = sum(1 for o in outcomes if o.ok and o.status == "trained")
    schedule = {"epochs": bench.epochs, "iterations": bench.iterations,
                "val_iterations": bench.val_iterations}  # fmt: skip
    return {
        "command": _nnunet_command_line(args),
        "study": f"nnU-Net {bench.dataset} {bench.configuration}: {len(specs)} runs ({trained} "
        f"trained or scored now, {len(outcomes) - trained - len(failed)} kept from before, "
        f"{len(failed)} failed)",
        "wall time": f"{wall:.0f} s ({wall / 60:.1f} min) for this invocation",
        "machine": f"{platform.machine()}, {usable_cores()} usable cores, torch "
        f"{torch.__version__}, nnU-Net trainings one at a time, device {device}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "training": f"engine=nnunet, plans={bench.plans}, "
        + ", ".join(
            f"{k}={v if v is not None else 'nnU-Net default'}" for k, v in schedule.items()
        ),
    }
