"""``metricseg bench``: the loss-comparison study as one command."""

from __future__ import annotations

import argparse

HELP = "run the loss-comparison benchmark (default suite, --quick, or --config FILE) and write a report"
DESCRIPTION = """\
Train a U-Net per task × loss × seed, evaluate every test case, and write a report
(summary.md, summary.json, runs.csv, plots/) with mean ± sd, 95 % bootstrap CIs,
paired Wilcoxon tests with Holm correction, rankings, size strata and per-class results.

Without arguments it runs the default suite: the synthetic presets plus the real
offline tasks installed here, with soft Dice, soft Jaccard, Lovász-Softmax, CE,
weighted CE, focal and Dice+CE (under 15 minutes on 2 CPU cores). Finished runs are
kept in OUT/runs/ and skipped when the command is run again; a killed run resumes.

examples:
  metricseg bench                         # the default suite into ./metricseg-bench
  metricseg bench --quick                 # smoke run, a couple of minutes
  metricseg bench --config study.toml --device cuda --out study
  metricseg bench --tasks tiny-lesions,multiclass --losses soft_dice,ce --seeds 0,1,2
"""


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _int_csv(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--quick", action="store_true", help="smoke run: 2 tasks, 4 losses, 10 short epochs"
    )
    which.add_argument(
        "--config",
        metavar="FILE",
        help="study file (.toml, .yaml) with tasks, losses, seeds, training",
    )
    parser.add_argument(
        "--tasks", type=_csv, metavar="A,B", help="tasks to run (replaces the suite's)"
    )
    parser.add_argument(
        "--losses", type=_csv, metavar="A,B", help="losses to compare (replaces the suite's)"
    )
    parser.add_argument("--seeds", type=_int_csv, metavar="0,1", help="training seeds")
    parser.add_argument("--epochs", type=int, metavar="N", help="epochs for every run")
    parser.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument(
        "--out",
        default="metricseg-bench",
        metavar="DIR",
        help="output folder (default ./metricseg-bench)",
    )
    parser.add_argument(
        "--executor", default="local", help="local (default) or ray where installed"
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="--executor ray: the Ray cluster (auto, HOST:6379, ray://HOST:10001); "
        "default: a Ray instance on this machine",
    )
    parser.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        metavar="G",
        help="--executor ray: GPUs per run (default 1 with --device cuda, else 0); "
        "--threads sets the CPUs per run (default 1)",
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
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="per-epoch progress bars (default: when stderr is a terminal)")  # fmt: skip


def usable_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_losses(names: list[str]) -> None:
    """Raise ValueError naming the first loss the registry does not know."""
    from metricseg import losses

    known = set(losses.available())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown loss(es) {unknown}; expected some of {sorted(known)}")


def command_line(args: argparse.Namespace) -> str:
    """The ``metricseg bench`` command that reproduces this run (for the report header)."""
    parts = ["metricseg", "bench"]
    if args.quick:
        parts.append("--quick")
    if args.config:
        parts += ["--config", args.config]
    for flag in ("tasks", "losses", "seeds"):
        value = getattr(args, flag)
        if value:
            parts += [f"--{flag}", ",".join(str(v) for v in value)]
    for flag in ("epochs", "device", "executor", "address", "gpus_per_run", "jobs", "threads"):
        value = getattr(args, flag, None)
        if value is not None and not (flag == "executor" and value == "local"):
            parts += [f"--{flag.replace('_', '-')}", str(value)]
    if args.out != "metricseg-bench":
        parts += ["--out", args.out]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    import datetime
    import platform
    import sys
    import time
    from pathlib import Path

    import torch
    from rich.console import Console

    from metricseg.experiment.executor import get_executor
    from metricseg.experiment.grid import load_result, result_path
    from metricseg.experiment.report import build_report, print_tables
    from metricseg.experiment.suite import _available, default_suite, load_suite, quick_suite

    # a wide table even when the output is a file or a pipe
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    t_start = time.perf_counter()
    from metricseg.train.ddp import launched_by_torchrun

    if launched_by_torchrun():
        console.print(
            "[red]error:[/red] metricseg bench does not run under torchrun: its runs are "
            "independent; spread them with --executor ray (one GPU per run), or use torchrun "
            "with `metricseg train` for one large run"
        )
        return 2
    cuda = bool(args.device and args.device.startswith("cuda"))
    if cuda and not torch.cuda.is_available():
        console.print(f"[red]--device {args.device}: torch sees no CUDA device[/red]")
        return 2
    jobs = args.jobs or (1 if cuda else usable_cores())
    threads = args.threads or max(1, usable_cores() // jobs)
    torch.set_num_threads(threads)
    try:
        if args.config:
            suite, notes = load_suite(args.config), []
        elif args.quick:
            suite, notes = quick_suite()
        else:
            suite, notes = default_suite()
        suite = suite.with_overrides(
            tasks=args.tasks,
            losses=args.losses,
            seeds=args.seeds,
            epochs=args.epochs,
            device=args.device,
        )
        available, missing = _available([t.name for t in suite.tasks])
        notes += missing
        suite.tasks = [t for t in suite.tasks if t.name in available]
        check_losses(suite.losses)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    specs = suite.specs()
    if not specs:
        console.print("[red]nothing to run[/red]: no available task")
        return 2
    out = Path(args.out)
    console.print(
        f"metricseg bench ({suite.name} suite): {len(suite.tasks)} tasks × {len(suite.losses)} losses × "
        f"{len(suite.seeds)} seeds{f' × {suite.folds} folds' if suite.folds else ''} = {len(specs)} runs "
        f"→ {out}/  ({jobs} at once, {threads} torch thread(s) each, device: {suite.train.get('device', 'cpu')})"
    )

    def on_done(i: int, total: int, outcome) -> None:
        s = outcome.spec
        head = f"[{i:>{len(str(total))}}/{total}] {s.task} / {s.loss} / {s.run_name}"
        if not outcome.ok:
            console.print(f"{head}: [red]failed[/red] ({outcome.error})")
            return
        res = load_result(outcome.path) or {}
        dice = res.get("test_mean_foreground_dice", float("nan"))
        how = "finished earlier, kept" if outcome.skipped else f"{outcome.seconds:.1f} s"
        console.print(f"{head}: test Dice {dice:.3f} ({how})")

    try:
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
        executor = get_executor(args.executor, **options)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    outcomes = executor.run(specs, out, on_done=on_done)
    failed = [o for o in outcomes if not o.ok]
    results = [r for r in (load_result(result_path(s, out)) for s in specs) if r is not None]
    wall = time.perf_counter() - t_start
    trained = sum(1 for o in outcomes if o.ok and not o.skipped)
    notes += [
        f"run {o.spec.task}/{o.spec.loss}/{o.spec.run_name} failed: {o.error}" for o in failed
    ]
    header = {
        "command": command_line(args),
        "suite": f"{suite.name}: {len(specs)} runs ({trained} trained now, "
        f"{sum(o.skipped for o in outcomes)} kept from before, {len(failed)} failed)",
        "wall time": f"{wall:.0f} s ({wall / 60:.1f} min) for this invocation",
        "machine": f"{platform.machine()}, {usable_cores()} usable cores, torch {torch.__version__} "
        f"{jobs} runs at once with {threads} thread(s) each, device {suite.train.get('device', 'cpu')}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "training": ", ".join(f"{k}={v}" for k, v in suite.train.items()),
    }
    if not results:
        console.print(f"[red]no run finished[/red]; see the .error.txt files under {out}/runs/")
        return 1
    analysis = build_report(out, results, header=header, notes=notes, plots=not args.no_plots)
    print_tables(analysis, console)
    console.print(f"wall time {wall:.0f} s; report: {out / 'summary.md'}")
    return 1 if failed else 0
