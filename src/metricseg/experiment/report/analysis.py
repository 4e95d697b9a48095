"""The analysis of a study's results, as one typed value that every report section reads.

:func:`analyse` turns the finished result files into an :class:`Analysis`: the
records (one row per run, test case and class), what is known of every task and loss
variant, the claims C1–C6 with their verdicts, summaries, paired tests, strata, the
seed spread, the false-positive volume of empty targets, the Dice–Jaccard band and
the training curves. Losses that lack runs in a task (a run failed) are left out of
that task's statistics and named in the notes, so that every comparison stays paired
over one case set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metricseg.experiment import stats
from metricseg.experiment.claims import ClaimResult, evaluate_claims, overall_verdict
from metricseg.experiment.curves import Curve, training_curves
from metricseg.experiment.spec import RunSpec

__all__ = ["Analysis", "LossInfo", "analyse", "collect_records"]


@dataclass(frozen=True)
class LossInfo:
    """A loss variant of the study: its label, the registry loss and the options it ran with."""

    label: str
    loss: str
    options: dict[str, Any]
    group: str  #: "metric-sensitive", "CE-based" or "other" (as the claims group them)


@dataclass
class Analysis:
    """Everything ``summary.md``, ``summary.json`` and the plots show."""

    header: dict[str, str]
    notes: list[str]
    records: list[dict[str, Any]]
    tasks: dict[str, dict[str, Any]]  #: label -> task info (independent, num_classes, ...)
    losses: list[LossInfo]
    claims: list[ClaimResult]
    verdict: str
    summaries: list[stats.LossSummary]
    pairwise: list[stats.PairTest]
    ranks: list[tuple[str, float, int]]
    by_size: list[tuple[str, str, str, int, float]]
    by_foreground: list[tuple[str, str, str, int, float]]
    per_class: list[tuple[str, str, str, int, float, float]]
    band: dict[str, Any]
    seed_spread: list[stats.SeedSpread]
    false_positives: list[stats.FalsePositiveVolume]
    chance: dict[str, float]
    curves: list[Curve]
    excluded: dict[str, list[str]] = field(default_factory=dict)  #: task -> losses left out

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    @property
    def loss_labels(self) -> list[str]:
        return [loss.label for loss in self.losses]


def collect_records(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flatten result files into rows carrying the run: ``task`` and ``loss`` (their labels),
    ``loss_name`` and ``loss_options`` (the registry loss), ``seed`` and ``fold``."""
    out = []
    for res in results:
        spec = RunSpec.from_dict(res["spec"])
        for row in res["rows"]:
            out.append(
                {
                    "task": spec.task_label,
                    "loss": spec.loss_label,
                    "loss_name": spec.loss,
                    "loss_options": dict(spec.loss_options),
                    "seed": spec.seed,
                    "fold": spec.fold,
                    **row,
                }
            )
    return out


def _group(loss: str) -> str:
    if loss in stats.METRIC_SENSITIVE_CORE:
        return "metric-sensitive"
    if loss in stats.CE_BASED:
        return "CE-based"
    return "other"


def _complete(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Records of the losses that have every run of their task (the runs any loss has)."""
    runs: dict[str, dict[str, set[tuple[Any, Any]]]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        runs[r["task"]][r["loss"]].add((r["seed"], r["fold"]))
    excluded: dict[str, list[str]] = {}
    for task, by_loss in runs.items():
        every = set().union(*by_loss.values())
        missing = [loss for loss, have in by_loss.items() if have != every]
        if missing:
            excluded[task] = missing
    kept = [r for r in records if r["loss"] not in excluded.get(r["task"], ())]
    return kept, excluded


def analyse(
    results: Sequence[Mapping[str, Any]],
    *,
    header: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    n_resamples: int = 2000,
) -> Analysis:
    """The :class:`Analysis` of finished result files (``grid.load_result`` values)."""
    specs = [RunSpec.from_dict(r["spec"]) for r in results]
    tasks = {s.task_label: dict(r.get("task_info", {})) for s, r in zip(specs, results)}
    losses: dict[str, LossInfo] = {}
    for s in specs:
        losses.setdefault(
            s.loss_label, LossInfo(s.loss_label, s.loss, dict(s.loss_options), _group(s.loss))
        )
    records, excluded = _complete(collect_records(results))
    notes = list(notes) + [
        f"task {task!r}: {', '.join(names)} left out of the statistics (runs missing)"
        for task, names in excluded.items()
    ]
    claims = evaluate_claims(records, tasks) if records else []
    summaries = stats.summarize(records, tasks=tasks, n_resamples=n_resamples)
    return Analysis(
        header=dict(header or {}),
        notes=notes,
        records=records,
        tasks=tasks,
        losses=list(losses.values()),
        claims=claims,
        verdict=overall_verdict(claims) if claims else "No finished run: no verdict.",
        summaries=summaries,
        pairwise=[
            t for m in ("dice", "jaccard") for t in stats.pairwise_tests(records, m, tasks=tasks)
        ],
        ranks=stats.mean_ranks(summaries),
        by_size=stats.stratified(records, "mean_object_size"),
        by_foreground=stats.stratified(records, "foreground_ratio"),
        per_class=stats.per_class(records),
        band=stats.band_check(records) if records else {"n": 0, "inside": 0, "max_single_gap": 0.0},
        seed_spread=[
            s for task in tasks for s in stats.seed_spread(stats.case_matrix(records, task))
        ]
        if records
        else [],
        false_positives=stats.false_positive_volume(records),
        chance={task: stats.trivial_dice(records, task) for task in tasks},
        curves=training_curves(results),
        excluded=excluded,
    )


def jsonable(analysis: Analysis) -> dict[str, Any]:
    """``summary.json``: the analysis without the records, NaN as null."""

    def plain(x: Any) -> Any:
        if hasattr(x, "to_dict"):
            return plain(x.to_dict())
        if hasattr(x, "__dataclass_fields__"):
            return plain({k: getattr(x, k) for k in x.__dataclass_fields__})
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if hasattr(x, "tolist"):
            return plain(x.tolist())
        if isinstance(x, float) and x != x:
            return None
        if isinstance(x, float) and x in (float("inf"), float("-inf")):
            return str(x)
        return x

    a = analysis
    out = {
        "header": a.header,
        "verdict": a.verdict,
        "claims": a.claims,
        "tasks": a.tasks,
        "losses": a.losses,
        "summaries": a.summaries,
        "mean_ranks": a.ranks,
        "pairwise": a.pairwise,
        "by_object_size": a.by_size,
        "by_foreground_ratio": a.by_foreground,
        "per_class": a.per_class,
        "band": {k: v for k, v in a.band.items() if k not in ("dice", "jaccard")},
        "seed_spread": a.seed_spread,
        "false_positive_volume": a.false_positives,
        "chance_dice": a.chance,
        "curves": [
            {
                **plain(c),
                "still_improving": c.still_improving,
                "rise_in_last_fifth": c.rise_in_last_fifth,
            }
            for c in a.curves
        ],
        "excluded": a.excluded,
        "notes": a.notes,
    }
    return json.loads(json.dumps(plain(out)))
