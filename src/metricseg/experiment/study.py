"""A study checked whole before its first run, and how its progress is told.

:func:`prepare_study` turns a :class:`~metricseg.experiment.suite.Suite` into its runs
and checks everything that could fail later — every name, every output path, every
loss with its options, every task with its options (each task is built once, which
also fills its caches) and every fold — so that a mistake in run 37 does not surface
after 36 runs have trained, nor leave folders behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from metricseg.experiment.grid import RunOutcome, check_loss, load_result, load_task
from metricseg.experiment.scoring import run_test_score
from metricseg.experiment.spec import RunSpec, run_paths
from metricseg.experiment.suite import Suite

__all__ = ["outcome_line", "prepare_study"]


def prepare_study(suite: Suite, out_dir: str | Path) -> list[RunSpec]:
    """The runs of ``suite``, every one of them checked; ValueError naming the first problem."""
    specs = suite.specs()
    if not specs:
        raise ValueError(f"study {suite.name!r} has no run: no task, loss or seed")
    checked: set[str] = set()
    for spec in specs:
        run_paths(spec, out_dir)
        try:
            check_loss(spec)  # names and constructor options, before any task is built
        except (TypeError, ValueError) as exc:
            raise ValueError(f"loss {spec.loss_label!r}: {exc}") from None
    for spec in specs:
        task_key = json.dumps(
            [spec.task, dict(spec.task_options), spec.fold, spec.num_folds], sort_keys=True
        )
        loss_key = json.dumps([task_key, spec.loss, dict(spec.loss_options)], sort_keys=True)
        if loss_key in checked:
            continue
        try:
            task = load_task(spec, Path(out_dir) / "cache")
        except (TypeError, ValueError, FileNotFoundError, RuntimeError) as exc:
            where = f" (fold {spec.fold} of {spec.num_folds})" if spec.fold is not None else ""
            raise ValueError(f"task {spec.task!r}{where}: {exc}") from None
        try:
            check_loss(spec, task)  # options a loss checks only when it is called
        except (TypeError, ValueError) as exc:
            raise ValueError(f"loss {spec.loss_label!r} on task {spec.task!r}: {exc}") from None
        checked.add(loss_key)
    return specs


def outcome_line(index: int, total: int, outcome: RunOutcome) -> str:
    """One progress line for a finished (or failed) run; its test Dice is the report's."""
    s = outcome.spec
    head = f"[{index:>{len(str(total))}}/{total}] {s.task_label} / {s.loss_label} / {s.run_name}"
    if not outcome.ok:
        return f"{head}: [red]failed[/red] ({outcome.error})"
    result = load_result(outcome.path) if outcome.path is not None else None
    dice = run_test_score(result) if result is not None else math.nan
    how = {
        "kept": "finished earlier, kept",
        "rescored": "finished earlier, rescored from its counts",
        "elsewhere": f"trained by another metricseg process, kept (waited {outcome.waited:.0f} s)",
    }.get(outcome.status, f"{outcome.seconds:.1f} s")
    return f"{head}: test Dice {dice:.3f} ({how})"


def runs_per_minute(outcomes: Sequence[RunOutcome], wall_seconds: float) -> float:
    """Runs trained in this invocation per minute of wall time."""
    trained = sum(1 for o in outcomes if o.ok and o.status == "trained")
    return 60.0 * trained / wall_seconds if wall_seconds > 0 else math.nan
