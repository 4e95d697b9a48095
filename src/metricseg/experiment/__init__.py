"""The loss-comparison study: the grid of runs, executors, statistics, the report, suites.

Needs the ``train`` extra (``pip install metricseg[train]``).
"""

from metricseg.experiment.executor import Executor, LocalExecutor, get_executor
from metricseg.experiment.grid import RunOutcome, result_path, run_one
from metricseg.experiment.report import build_report
from metricseg.experiment.spec import RunSpec, expand_grid
from metricseg.experiment.suite import Suite, TaskEntry, default_suite, load_suite, quick_suite

__all__ = [
    "Executor",
    "LocalExecutor",
    "RunOutcome",
    "RunSpec",
    "Suite",
    "TaskEntry",
    "build_report",
    "default_suite",
    "expand_grid",
    "get_executor",
    "load_suite",
    "quick_suite",
    "result_path",
    "run_one",
]
