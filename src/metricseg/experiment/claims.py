r"""The paper's claims C1–C6, each one test and one verdict rule over the records of a study.

Every claim is a pure function ``claim_cN(records, tasks, ...) -> ClaimResult`` of

* ``records`` — the rows of ``runs.csv`` (one per run, test case and class; see
  :mod:`metricseg.experiment.stats` for the case set and the case score), with
  ``loss`` the variant label and ``loss_name`` / ``loss_options`` the registry
  loss behind it;
* ``tasks`` — task name → info (``independent``, ``num_classes``, ...).

Only **independent** tasks are tested (every test case its own subject, and the
subjects of the scored cases all distinct); the others are listed in
``not_tested`` with the reason. A claim whose experiment is absent from the
records (no Tversky sweep, say) is ``"not run"``; one whose experiment ran only
on tasks that cannot be tested is ``"inconclusive"`` and says so.

**The verdict rule** (:func:`verdict_rule`, :data:`VERDICT_RULE`). Each claim
cuts its evidence into units (an independent task; for C6 a task × stratum),
and each unit gets an outcome after Holm's correction over all the tests of the
claim:

* ``"for"`` — significant (adjusted p < α) in the claimed direction, by the mean
  difference and by the signed ranks alike, and the losses the claim favours
  score significantly above the chance level (:func:`~metricseg.experiment.stats.trivial_score`,
  "every voxel is the class"), so that a network that learned nothing never
  counts as support;
* ``"against"`` — significant in the reverse direction;
* ``"neither"`` — anything else.

Then *supported* = "for" on more than half of the units and "against" on none;
*contradicted* = "against" on more than half, or on some with "for" on none;
otherwise *inconclusive*. C2 (an equivalence claim) and C5 (a ranking claim)
define "for" and "against" their own way, stated in their ``rule``.

Example:
    >>> verdict_rule(["for", "for", "neither"])[0]
    'supported'
    >>> verdict_rule(["for", "against", "for"])[0]
    'inconclusive'
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from metricseg.experiment.stats import (
    CE_BASED,
    METRIC_SENSITIVE_CORE,
    STRATA,
    CaseMatrix,
    TaskRecords,
    band_violation,
    compare_paired,
    group_scores,
    holm,
    index_records,
    kendall_tau,
    minimal_detectable_difference,
    page_trend,
    paired_effect,
)

__all__ = [
    "ALPHA",
    "EQUIVALENCE_MARGIN",
    "MIN_STRATUM_CASES",
    "VERDICT_RULE",
    "ClaimResult",
    "claim_c1",
    "claim_c2",
    "claim_c3",
    "claim_c4",
    "claim_c5",
    "claim_c6",
    "evaluate_claims",
    "overall_verdict",
    "verdict_rule",
]

Verdict = Literal["supported", "contradicted", "inconclusive", "not run"]
Outcome = Literal["for", "against", "neither"]

#: Significance level of every claim test (after Holm).
ALPHA = 0.05
#: C2: largest mean difference (Dice / Jaccard points, absolute) taken as "no difference".
EQUIVALENCE_MARGIN = 0.02
#: C6: fewest cases a stratum needs to be a unit of the test; with 5 cases the exact
#: signed-rank test cannot go below p = 0.0625.
MIN_STRATUM_CASES = 6

VERDICT_RULE = (
    "Each unit (an independent task; for C6 a task × stratum) is 'for' when its test is "
    "significant after Holm over all tests of the claim (p < {alpha}) in the claimed direction, "
    "by the mean difference and the signed ranks alike, with the favoured losses significantly "
    "above chance; 'against' when significant in the reverse direction. Supported: 'for' on more "
    "than half of the units and 'against' on none. Contradicted: 'against' on more than half, "
    "or on some with 'for' on none. Otherwise inconclusive."
)


@dataclass
class ClaimResult:
    """One claim's test and verdict (one row of the Claims table).

    Attributes:
        id: ``"C1"`` … ``"C6"``.
        title: the claim in words.
        experiment: what went in (tasks with cases × seeds, losses).
        tasks: the tasks tested.
        not_tested: task → why it was not tested (not independent, lacks the losses, ...).
        statistic: what ``estimate`` and ``ci`` are, and the test behind the p-values.
        estimate: the headline effect (with one tested unit, that unit's; with several,
            the mean of the units' effects — then ``ci`` is NaN and the units' CIs are in
            ``details``).
        ci: 95 % confidence interval of ``estimate``.
        p_values: unit label → p-value after correction.
        verdict: ``"supported"``, ``"contradicted"``, ``"inconclusive"`` or ``"not run"``.
        reason: one line saying why.
        rule: the verdict rule applied.
        details: one dict per unit (task, metric, n, estimate, CI, p, p_holm, outcome, ...).
    """

    id: str
    title: str
    experiment: str
    tasks: list[str]
    not_tested: dict[str, str]
    statistic: str
    estimate: float
    ci: tuple[float, float]
    p_values: dict[str, float]
    verdict: Verdict
    reason: str
    rule: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: NaN becomes None, ±inf the strings ``"inf"`` / ``"-inf"``,
        tuples become lists, numpy scalars Python numbers."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    return x


def verdict_rule(outcomes: Sequence[str], unit: str = "units") -> tuple[Verdict, str]:
    """The verdict from the units' outcomes, and a clause counting them (``unit`` names them).

    Example:
        >>> verdict_rule(["for", "for", "for"], "tasks")
        ('supported', '3 of 3 tasks for, 0 against')
        >>> verdict_rule(["neither", "neither"])[0], verdict_rule(["against", "neither"])[0]
        ('inconclusive', 'contradicted')
    """
    bad = [o for o in outcomes if o not in ("for", "against", "neither")]
    if bad:
        raise ValueError(f"outcomes must be 'for', 'against' or 'neither', got {bad}")
    n = len(outcomes)
    n_for = sum(o == "for" for o in outcomes)
    n_against = sum(o == "against" for o in outcomes)
    count = f"{n_for} of {n} {unit} for, {n_against} against"
    if n == 0:
        return "inconclusive", f"no {unit} could be tested"
    if n_for > n / 2 and n_against == 0:
        return "supported", count
    if n_against > n / 2 or (n_against > 0 and n_for == 0):
        return "contradicted", count
    return "inconclusive", count


# ---------------------------------------------------------------------------
# shared machinery
# ---------------------------------------------------------------------------


@dataclass
class _Scope:
    tested: dict[str, TaskRecords]
    not_tested: dict[str, str]
    with_experiment: list[str]  # tasks (tested or not) that have the claim's experiment


Records = Sequence[Mapping[str, Any]] | Mapping[str, TaskRecords]


def _indexed(records: Records) -> Mapping[str, TaskRecords]:
    """Rows grouped per task, or an :func:`~metricseg.experiment.stats.index_records` as is."""
    if isinstance(records, Mapping):
        bad = [k for k, v in records.items() if not isinstance(v, TaskRecords)]
        if bad:
            raise TypeError(
                f"records must be rows (a sequence of dicts) or index_records(rows), got a "
                f"mapping whose entries {bad[:3]} are not TaskRecords"
            )
        return records
    return index_records(records)


def _scope(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    lacks: Callable[[TaskRecords], str | None],
) -> _Scope:
    """Split the tasks of ``records`` into tested ones and the others (with the reason)."""
    tested: dict[str, TaskRecords] = {}
    not_tested: dict[str, str] = {}
    with_experiment = []
    for task, tr in _indexed(records).items():
        if task not in tasks:
            raise ValueError(
                f"tasks has no entry for task {task!r} of the records; it has {sorted(tasks)}: "
                "pass every task's info (independent, num_classes)"
            )
        why = lacks(tr)
        if why:
            not_tested[task] = why
            continue
        with_experiment.append(task)
        if not tasks[task].get("independent", False):
            not_tested[task] = "not independent (test cases share subjects), not tested"
            continue
        subjects = [tr.subjects[c] for c in tr.scored_cases()]
        if len(set(subjects)) != len(subjects):
            not_tested[task] = "test cases share subjects in the records, not tested"
            continue
        tested[task] = tr
    return _Scope(tested, not_tested, with_experiment)


@dataclass(frozen=True)
class _Claim:
    """The parts of a claim's result that do not depend on the data: its id and title,
    the experiment it needs, the statistic it reports and its rule."""

    id: str
    title: str
    needs: str  # the experiment, in words: "... on one task"
    statistic: str
    rule: str

    def untested(self, scope: _Scope) -> ClaimResult | None:
        """The result when no task is tested: ``"not run"`` when no task of the records has
        the experiment, ``"inconclusive"`` when it ran only on tasks that cannot be tested;
        None when some task is tested."""
        if not scope.with_experiment:
            reason = f"not run: no task of the records has {self.needs}"
            return self.no_estimate(scope, "not run", reason, statistic="–")
        if not scope.tested:
            why = "; ".join(f"{t}: {scope.not_tested[t]}" for t in scope.with_experiment)
            reason = f"the experiment ran only on tasks that cannot be tested ({why})"
            return self.no_estimate(scope, "inconclusive", reason)
        return None

    def no_estimate(
        self,
        scope: _Scope,
        verdict: Verdict,
        reason: str,
        *,
        experiment: str | None = None,
        statistic: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> ClaimResult:
        """A result without a test to report: estimate and CI NaN, no p-values; the
        experiment the claim needs unless ``experiment`` is given."""
        return self.result(
            scope,
            experiment=self.needs if experiment is None else experiment,
            estimate=math.nan,
            ci=(math.nan, math.nan),
            p_values={},
            verdict=verdict,
            reason=reason,
            details=details,
            statistic=statistic,
        )

    def result(
        self,
        scope: _Scope,
        *,
        experiment: str,
        estimate: float,
        ci: tuple[float, float],
        p_values: dict[str, float],
        verdict: Verdict,
        reason: str,
        details: list[dict[str, Any]] | None = None,
        statistic: str | None = None,
    ) -> ClaimResult:
        """The claim's row over the tested tasks of ``scope`` (``statistic``, when given,
        instead of the claim's own)."""
        return ClaimResult(
            id=self.id,
            title=self.title,
            experiment=experiment,
            tasks=list(scope.tested),
            not_tested=scope.not_tested,
            statistic=self.statistic if statistic is None else statistic,
            estimate=estimate,
            ci=ci,
            p_values=p_values,
            verdict=verdict,
            reason=reason,
            rule=self.rule,
            details=[] if details is None else details,
        )


def _describe_tasks(scope: _Scope, n_cases: Mapping[str, int]) -> str:
    parts = []
    for task, tr in scope.tested.items():
        n, k = n_cases.get(task, 0), len(tr.seeds())
        parts.append(f"{task} ({n} case{'s' * (n != 1)} × {k} seed{'s' * (k != 1)})")
    return ", ".join(parts)


def _above_chance(scores: np.ndarray, chance: np.ndarray, alpha: float) -> bool:
    """Whether ``scores`` beat the per-case chance level significantly (a gate, not a claim)."""
    if scores.size < 2:
        return False
    c = compare_paired(scores, chance)
    return c.direction == 1 and c.p < alpha


def _comparison_row(a: np.ndarray, b: np.ndarray, confidence: float) -> dict[str, Any]:
    c = compare_paired(a, b, confidence=confidence)
    return {
        "n": c.n,
        "mean_a": c.mean_a,
        "mean_b": c.mean_b,
        "estimate": c.mean_diff,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "sd_diff": c.sd_diff,
        "p": c.p,
        "direction": c.direction,
    }


def _directional_outcomes(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm over ``rows`` (keys p, direction, above_chance); adds p_holm and outcome."""
    for row, ph in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(ph)
        significant = not math.isnan(ph) and ph < alpha
        if significant and row["direction"] == 1 and row["above_chance"]:
            row["outcome"] = "for"
        elif significant and row["direction"] == -1:
            row["outcome"] = "against"
        else:
            row["outcome"] = "neither"
            row["note"] = (
                "not significant"
                if not significant
                else "at chance level"
                if row["direction"] == 1
                else "mean and signed ranks disagree"
            )


def _combine(outcomes: Iterable[str]) -> Outcome:
    """A unit tested on several metrics: for only if for on all, against if against on any."""
    outs = list(outcomes)
    if any(o == "against" for o in outs):
        return "against"
    if outs and all(o == "for" for o in outs):
        return "for"
    return "neither"


def _headline(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[float, tuple[float, float]]:
    chosen = [r for r in rows if r.get("metric") == metric]
    if not chosen:
        return math.nan, (math.nan, math.nan)
    if len(chosen) == 1:
        return chosen[0]["estimate"], (chosen[0]["ci_low"], chosen[0]["ci_high"])
    return float(np.mean([r["estimate"] for r in chosen])), (math.nan, math.nan)


def _unit_outcomes(rows: Sequence[Mapping[str, Any]], key: str = "task") -> dict[str, Outcome]:
    by_unit: dict[str, list[str]] = {}
    for r in rows:
        by_unit.setdefault(str(r[key]), []).append(r["outcome"])
    return {u: _combine(o) for u, o in by_unit.items()}


def _directional_verdict(
    rows: list[dict[str, Any]], alpha: float, key: str = "task", unit: str = "tasks"
) -> tuple[Verdict, str, dict[str, Outcome]]:
    """The verdict of a directional claim: Holm and each row's outcome
    (:func:`_directional_outcomes`), one outcome per unit ``row[key]`` (:func:`_combine`
    over its metrics), then :func:`verdict_rule` over the units. Returns the verdict, the
    clause counting the units, and the units' outcomes."""
    _directional_outcomes(rows, alpha)
    units = _unit_outcomes(rows, key)
    verdict, count = verdict_rule(list(units.values()), unit)
    return verdict, count, units


def _p_values(rows: Sequence[Mapping[str, Any]], *keys: str) -> dict[str, float]:
    """Holm-adjusted p per test, labelled by the row's ``keys`` joined by ``/``."""
    return {"/".join(f"{r[k]}" for k in keys): r["p_holm"] for r in rows}


def _per_task_result(
    claim: _Claim,
    scope: _Scope,
    rows: list[dict[str, Any]],
    *,
    alpha: float,
    metric: str,
    experiment: str,
    evidence: Callable[[float, tuple[float, float]], str],
) -> ClaimResult:
    """The result of a directional claim with one unit per task (C1, C3, C4): the verdict
    of :func:`_directional_verdict`, the headline effect on ``metric`` (:func:`_headline`),
    p-values per task and metric, and a reason that counts the tasks, then gives
    ``evidence(estimate, ci)``."""
    verdict, count, _ = _directional_verdict(rows, alpha)
    estimate, ci = _headline(rows, metric)
    return claim.result(
        scope,
        experiment=experiment,
        estimate=estimate,
        ci=ci,
        p_values=_p_values(rows, "task", "metric"),
        verdict=verdict,
        reason=f"{count}; {evidence(estimate, ci)}",
        details=rows,
    )


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "∞"
    return f"{x:+.{digits}f}" if digits else f"{x:g}"


def _ci_text(lo: float, hi: float) -> str:
    return "" if math.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]"


# ---------------------------------------------------------------------------
# C1 metric-sensitive vs CE-based
# ---------------------------------------------------------------------------

_C1_TITLE = "Metric-sensitive losses beat CE-based losses on Dice and on Jaccard"


def _lacks_groups(tr: TaskRecords) -> str | None:
    if not tr.variants(METRIC_SENSITIVE_CORE):
        return f"lacks the metric-sensitive losses {list(METRIC_SENSITIVE_CORE)}"
    if not tr.variants(CE_BASED):
        return f"lacks the CE-based losses {list(CE_BASED)}"
    return None


def _group_test(
    tr: TaskRecords,
    metric: str,
    confidence: float,
    alpha: float,
    stratum: tuple[str, str] | None = None,
) -> dict[str, Any] | None:
    """C1's comparison on one task (optionally one stratum); None without cases."""
    losses = tr.variants(METRIC_SENSITIVE_CORE) + tr.variants(CE_BASED)
    m = tr.matrix(metric, losses=losses, stratum=stratum)
    if m.n_cases == 0:
        return None
    x = group_scores(m, tr.loss_names, METRIC_SENSITIVE_CORE)
    y = group_scores(m, tr.loss_names, CE_BASED)
    chance = tr.chance_scores(metric, stratum=stratum)
    row = {"task": tr.task, "metric": metric, **_comparison_row(x, y, confidence)}
    row["chance"] = float(chance.mean())
    row["above_chance"] = _above_chance(x, chance, alpha)
    return row


def _losses_text(tr: TaskRecords, names: Sequence[str]) -> str:
    out = []
    for name in names:
        variants = tr.variants([name])
        if len(variants) > 1:
            out.append(f"{name} ({len(variants)} variants, averaged)")
        elif variants:
            v = variants[0]
            out.append(v if v == name else f"{v} ({name})")
    return ", ".join(out)


#: the experiment C1 and C6 need
_GROUPS_NEEDED = "metric-sensitive and CE-based losses on one task"


def claim_c1(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    metrics: Sequence[str] = ("dice", "jaccard"),
    confidence: float = 0.95,
) -> ClaimResult:
    """C1: the metric-sensitive group beats the CE-based group, per task, on every metric.

    Per case, each group's score is the mean over its registry names (soft Dice, soft
    Jaccard, Lovász-Softmax vs CE, weighted CE, focal — those present) of the mean over
    their variants: the mean of the group, not its best member, so that nothing is
    selected on the test data. Effect: mean per-case difference (metric-sensitive −
    CE-based) with its 95 % paired *t*-interval; test: Wilcoxon signed-rank; Holm over
    tasks × metrics. A task is "for" when every metric is, "against" when any metric is.
    """
    scope = _scope(records, tasks, _lacks_groups)
    claim = _Claim(
        "C1",
        _C1_TITLE,
        needs=_GROUPS_NEEDED,
        statistic="mean per-case difference metric-sensitive − CE-based (each group the mean of "
        "its losses), 95 % paired t-interval; Wilcoxon signed-rank, Holm over tasks × metrics",
        rule=VERDICT_RULE.format(alpha=alpha),
    )
    if (untested := claim.untested(scope)) is not None:
        return untested
    rows: list[dict[str, Any]] = []
    n_cases: dict[str, int] = {}
    for task, tr in scope.tested.items():
        for metric in metrics:
            row = _group_test(tr, metric, confidence, alpha)
            if row is not None:
                rows.append(row)
                n_cases[task] = row["n"]
    first = next(iter(scope.tested.values()))
    experiment = (
        f"tasks {_describe_tasks(scope, n_cases)}; metric-sensitive: "
        f"{_losses_text(first, METRIC_SENSITIVE_CORE)}; CE-based: {_losses_text(first, CE_BASED)}"
        + (" (losses as in the first task)" if len(scope.tested) > 1 else "")
    )
    return _per_task_result(
        claim,
        scope,
        rows,
        alpha=alpha,
        metric=metrics[0],
        experiment=experiment,
        evidence=lambda est, ci: f"{metrics[0]} difference {_fmt(est)}{_ci_text(*ci)}",
    )


# ---------------------------------------------------------------------------
# C2 no difference among soft Dice, soft Jaccard, Lovász
# ---------------------------------------------------------------------------

_C2_TITLE = (
    "Among soft Dice, soft Jaccard and Lovász-Softmax the choice makes no significant difference"
)


def _lacks_c2(tr: TaskRecords) -> str | None:
    present = {tr.loss_names[v] for v in tr.variants(METRIC_SENSITIVE_CORE)}
    if len(present) < 2:
        return f"has fewer than two of {list(METRIC_SENSITIVE_CORE)}"
    return None


def _c2_rule(alpha: float, margin: float, power: float) -> str:
    """C2's own rule: when a task is 'for' or 'against' an equivalence, then the verdict."""
    return (
        f"Per task: 'against' when any pair differs after Holm (p < {alpha}); 'for' when no pair "
        f"does, every pair's 95 % CI lies inside ±{margin}, every pair's minimal detectable "
        f"difference ({power:.0%} power) is below {margin}, and the best loss beats chance; else "
        "'neither'. Then the verdict rule: supported = 'for' on more than half of the tasks and "
        "'against' on none; contradicted = 'against' on more than half, or on some with 'for' on "
        "none; otherwise inconclusive."
    )


def _c2_pairs(
    task: str, tr: TaskRecords, metric: str, alpha: float, confidence: float
) -> tuple[list[dict[str, Any]], int, bool]:
    """C2's paired comparisons on one task and metric: a row per pair of the three losses
    present (each loss the mean of its variants), the number of cases, and whether the
    best of the losses beats chance."""
    names = [n for n in METRIC_SENSITIVE_CORE if tr.variants([n])]
    m = tr.matrix(metric, losses=tr.variants(names))
    cols = {n: group_scores(m, tr.loss_names, [n]) for n in names}
    best = max(names, key=lambda n: float(cols[n].mean()) if cols[n].size else -1.0)
    above = _above_chance(cols[best], tr.chance_scores(metric), alpha)
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(names, 2):
        row: dict[str, Any] = {"task": task, "metric": metric, "pair": f"{a} − {b}"}
        row.update(_comparison_row(cols[a], cols[b], confidence))
        rows.append(row)
    return rows, m.n_cases, above


def _c2_judge_pairs(rows: list[dict[str, Any]], alpha: float, margin: float, power: float) -> None:
    """Holm over all pairs; adds ``p_holm``, ``significant``, the minimal detectable
    difference ``mdd`` at ``power`` (∞ below two cases) and ``inside_margin`` (the CI
    within ±``margin``) to each row."""
    for row, ph in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(ph)
        row["significant"] = not math.isnan(ph) and ph < alpha
        sd = row["sd_diff"]
        row["mdd"] = (
            minimal_detectable_difference(
                0.0 if math.isnan(sd) else sd,
                row["n"],
                alpha=alpha,
                power=power,
                comparisons=len(rows),
            )
            if row["n"] >= 2
            else math.inf
        )
        row["inside_margin"] = (
            not math.isnan(row["ci_low"]) and -margin < row["ci_low"] and row["ci_high"] < margin
        )


def _c2_task_outcome(
    pairs: Sequence[Mapping[str, Any]], best_above: bool, margin: float
) -> Outcome:
    """One task's outcome from its judged pairs (see :func:`claim_c2`)."""
    if any(r["significant"] for r in pairs):
        return "against"
    if pairs and all(r["inside_margin"] and r["mdd"] < margin for r in pairs) and best_above:
        return "for"
    return "neither"


def _c2_evidence(
    rows: Sequence[Mapping[str, Any]], largest: Mapping[str, Any], power: float, margin: float
) -> str:
    """The numbers behind C2's verdict: the significant pairs, the ``largest`` difference
    and the smallest difference the tests could detect."""
    mdd = max(r["mdd"] for r in rows)
    n_sig = sum(r["significant"] for r in rows)
    return (
        f"{n_sig} of {len(rows)} pairs differ significantly; largest difference "
        f"{largest['pair']} {_fmt(largest['estimate'])}"
        f"{_ci_text(largest['ci_low'], largest['ci_high'])} ({largest['task']}, "
        f"{largest['metric']}); smallest difference detectable at {power:.0%} power: "
        f"{_fmt(mdd).lstrip('+')} (margin {margin})"
        + (
            " — too few cases: the signed-rank test cannot reach the significance level"
            if math.isinf(mdd)
            else ""
        )
    )


def claim_c2(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    margin: float = EQUIVALENCE_MARGIN,
    power: float = 0.8,
    metrics: Sequence[str] = ("dice",),
    confidence: float = 0.95,
) -> ClaimResult:
    """C2: every pair of soft Dice, soft Jaccard and Lovász-Softmax, per task, paired.

    Per pair: mean difference with its 95 % paired *t*-interval, Wilcoxon, Holm over
    all pairs × tasks × metrics, and the minimal detectable difference
    (:func:`~metricseg.experiment.stats.minimal_detectable_difference`, 80 % power at
    α / number of tests — the level the smallest p must pass). A task is "against" (the
    choice matters) when any pair differs significantly; "for" when none does, every
    pair's CI lies inside ±``margin``, every pair's minimal detectable difference is
    below ``margin`` (a difference of that size would have been found: "no significant
    difference" is not vacuous), and the best of the three beats chance; otherwise
    "neither" — not significant but not shown equal either (too few cases).
    """
    scope = _scope(records, tasks, _lacks_c2)
    claim = _Claim(
        "C2",
        _C2_TITLE,
        needs="at least two of soft Dice, soft Jaccard, Lovász-Softmax on one task",
        statistic="largest |mean per-case difference| between two of the three, 95 % paired "
        "t-interval; Wilcoxon signed-rank, Holm over pairs × tasks × metrics; minimal "
        "detectable difference",
        rule=_c2_rule(alpha, margin, power),
    )
    if (untested := claim.untested(scope)) is not None:
        return untested
    rows: list[dict[str, Any]] = []
    n_cases: dict[str, int] = {}
    best_above: dict[str, bool] = {}
    for task, tr in scope.tested.items():
        for metric in metrics:
            pairs, n_cases[task], above = _c2_pairs(task, tr, metric, alpha, confidence)
            best_above[task] = best_above.get(task, True) and above
            rows += pairs
    _c2_judge_pairs(rows, alpha, margin, power)
    units: dict[str, Outcome] = {}
    for task in scope.tested:
        mine = [r for r in rows if r["task"] == task]
        units[task] = _c2_task_outcome(mine, best_above.get(task, False), margin)
        for r in mine:
            r["outcome"] = units[task]
    verdict, count = verdict_rule(list(units.values()), "tasks")
    largest = max(rows, key=lambda r: abs(r["estimate"]))
    losses = [
        n for n in METRIC_SENSITIVE_CORE if any(tr.variants([n]) for tr in scope.tested.values())
    ]
    return claim.result(
        scope,
        experiment=f"tasks {_describe_tasks(scope, n_cases)}; pairs of {', '.join(losses)}",
        estimate=largest["estimate"],
        ci=(largest["ci_low"], largest["ci_high"]),
        p_values=_p_values(rows, "task", "metric", "pair"),
        verdict=verdict,
        reason=f"{count}; {_c2_evidence(rows, largest, power, margin)}",
        details=rows,
    )


# ---------------------------------------------------------------------------
# C3 no weighting of CE closes the gap
# ---------------------------------------------------------------------------

_C3_TITLE = "No weighting of cross-entropy closes the gap to the metric-sensitive losses"


def _lacks_c3(tr: TaskRecords) -> str | None:
    if len(tr.variants(["weighted_ce"])) < 2:
        return "has no weighted_ce sweep (fewer than two weighted_ce variants)"
    if not tr.variants(METRIC_SENSITIVE_CORE):
        return f"lacks the metric-sensitive losses {list(METRIC_SENSITIVE_CORE)}"
    return None


def _weight_label(options: Mapping[str, Any]) -> str:
    if "foreground_weight" in options:
        return f"foreground weight {options['foreground_weight']:g}"
    if "scheme" in options:
        return f"scheme {options['scheme']}"
    return "registry default"


def _c3_rows(
    task: str, tr: TaskRecords, metrics: Sequence[str], alpha: float, confidence: float
) -> tuple[list[dict[str, Any]], int]:
    """C3's test on one task: the best weighted-CE variant against the best metric-sensitive
    loss (both by mean test Dice), a row per metric with the sweep; and the number of cases."""
    wce = tr.variants(["weighted_ce"])
    ms = tr.variants(METRIC_SENSITIVE_CORE)
    dice = tr.matrix("dice", losses=wce + ms).means()
    best_wce = max(wce, key=lambda v: dice[v])
    best_ms = max(ms, key=lambda v: dice[v])
    sweep = [
        {"variant": v, "weight": _weight_label(tr.loss_options[v]), "dice": dice[v]} for v in wce
    ]
    rows: list[dict[str, Any]] = []
    n_cases = 0
    for metric in metrics:
        m = tr.matrix(metric, losses=[best_ms, best_wce])
        n_cases = m.n_cases
        x, y = m.column(best_ms), m.column(best_wce)
        row: dict[str, Any] = {
            "task": task,
            "metric": metric,
            "best_metric_sensitive": best_ms,
            "best_weighted_ce": best_wce,
            "best_weight": _weight_label(tr.loss_options[best_wce]),
            "sweep": sweep,
        }
        row.update(_comparison_row(x, y, confidence))
        row["chance"] = float(tr.chance_scores(metric).mean())
        row["above_chance"] = _above_chance(x, tr.chance_scores(metric), alpha)
        rows.append(row)
    return rows, n_cases


def claim_c3(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    metrics: Sequence[str] = ("dice",),
    confidence: float = 0.95,
) -> ClaimResult:
    """C3: the best weighted-CE variant per task against the best metric-sensitive loss.

    Both "best" are chosen by mean test Dice over the same cases. The choice favours
    weighted CE (the best of a sweep of many variants against the best of three), so
    the test leans against the claim. Effect: mean per-case difference best
    metric-sensitive − best weighted CE with its 95 % paired *t*-interval; Wilcoxon;
    Holm over tasks × metrics; the verdict rule of the module.
    """
    scope = _scope(records, tasks, _lacks_c3)
    claim = _Claim(
        "C3",
        _C3_TITLE,
        needs="a weighted_ce sweep (at least two variants) and a metric-sensitive loss on one task",
        statistic="mean per-case difference best metric-sensitive − best weighted CE (both by "
        "mean test Dice), 95 % paired t-interval; Wilcoxon signed-rank, Holm over tasks × metrics",
        rule=VERDICT_RULE.format(alpha=alpha),
    )
    if (untested := claim.untested(scope)) is not None:
        return untested
    rows: list[dict[str, Any]] = []
    n_cases: dict[str, int] = {}
    for task, tr in scope.tested.items():
        task_rows, n_cases[task] = _c3_rows(task, tr, metrics, alpha, confidence)
        rows += task_rows
    bests = "; ".join(
        f"{r['task']}: {r['best_weighted_ce']} ({r['best_weight']}) vs {r['best_metric_sensitive']}"
        for r in rows
        if r["metric"] == metrics[0]
    )
    return _per_task_result(
        claim,
        scope,
        rows,
        alpha=alpha,
        metric=metrics[0],
        experiment=f"tasks {_describe_tasks(scope, n_cases)}; best weighted CE vs best "
        f"metric-sensitive: {bests}",
        evidence=lambda est, ci: f"{metrics[0]} gap {_fmt(est)}{_ci_text(*ci)}",
    )


# ---------------------------------------------------------------------------
# C4 Tversky drifts from Dice monotonically in |α − ½|
# ---------------------------------------------------------------------------

_C4_TITLE = "Soft Tversky drifts from Dice monotonically in |α − ½| (test Dice falls)"


def _tversky_defaults() -> dict[str, float]:
    from metricseg.losses import describe

    opts = describe("soft_tversky").options
    return {"alpha": float(opts["alpha"]), "beta": float(opts["beta"])}


def _tversky_levels(tr: TaskRecords) -> tuple[dict[float, list[str]], list[str]]:
    """|α − ½| → variants (β = 1 − α only), and the variants left out with why."""
    defaults = _tversky_defaults()
    levels: dict[float, list[str]] = {}
    left_out = []
    for v in tr.variants(["soft_tversky"]):
        opts = tr.loss_options[v]
        a = float(opts.get("alpha", defaults["alpha"]))
        b = float(opts.get("beta", defaults["beta"]))
        if abs(a + b - 1) > 1e-9:
            left_out.append(f"{v} (α={a:g}, β={b:g}: β ≠ 1 − α)")
            continue
        levels.setdefault(round(abs(a - 0.5), 9), []).append(v)
    if 0.0 not in levels:
        plain = [v for v in tr.variants(["soft_dice"]) if not tr.loss_options[v]]
        if plain:
            levels[0.0] = plain[:1]  # soft Tversky with α = β = ½ is soft Dice
    return dict(sorted(levels.items())), left_out


def _lacks_c4(tr: TaskRecords) -> str | None:
    levels, _ = _tversky_levels(tr)
    if len(levels) < 3:
        return (
            f"has {len(levels)} Tversky level{'s' * (len(levels) != 1)} |α − ½| (soft Dice "
            "counting as 0), a trend needs 3"
        )
    return None


def _c4_row(
    task: str, tr: TaskRecords, metric: str, alpha: float, confidence: float
) -> dict[str, Any]:
    """C4's test on one task: each case's mean score per |α − ½| level, Page's L over the
    levels, the effect highest level − level 0, and whether level 0 beats chance."""
    levels, left_out = _tversky_levels(tr)
    variants = [v for vs in levels.values() for v in vs]
    m: CaseMatrix = tr.matrix(metric, losses=variants)
    cols = np.stack(
        [m.values[:, [m.losses.index(v) for v in vs]].mean(axis=1) for vs in levels.values()],
        axis=1,
    )
    means = cols.mean(axis=0)
    trend = page_trend(cols) if m.n_cases >= 2 else None
    eff = paired_effect(cols[:, -1], cols[:, 0], confidence=confidence)
    chance = tr.chance_scores(metric)
    return {
        "task": task,
        "metric": metric,
        "levels": list(levels),
        "variants": {f"{lv:g}": vs for lv, vs in levels.items()},
        "left_out": left_out,
        "level_means": means.tolist(),
        "monotone": bool(np.all(np.diff(means) <= 0)),
        "n": m.n_cases,
        "L": trend.statistic if trend else math.nan,
        "p_decreasing": trend.p_decreasing if trend else math.nan,
        "p_increasing": trend.p_increasing if trend else math.nan,
        "p": trend.p if trend else math.nan,
        "direction": -trend.direction if trend else 0,  # +1 = falling, as claimed
        "estimate": eff.estimate,
        "ci_low": eff.ci_low,
        "ci_high": eff.ci_high,
        "chance": float(chance.mean()),
        "above_chance": _above_chance(cols[:, 0], chance, alpha),
    }


def claim_c4(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    metric: str = "dice",
    confidence: float = 0.95,
) -> ClaimResult:
    """C4: Page's L test of a falling test Dice along |α − ½| for soft Tversky with β = 1 − α.

    Levels are |α − ½| (α = 0.5 … 0.9; variants at the same level — α and 1 − α —
    are averaged per case); the α = ½ level is the soft Tversky run with α = β = ½, or
    else the soft Dice run with default options (the same loss). Per task: Page's L
    two-sided p-value (direction from the one-sided ones), Holm over tasks; effect:
    mean per-case difference highest level − level 0 with its 95 % paired *t*-interval.
    "For" also needs level 0 to beat chance. The level means and whether they fall
    monotonically are in ``details``.
    """
    scope = _scope(records, tasks, _lacks_c4)
    claim = _Claim(
        "C4",
        _C4_TITLE,
        needs="soft Tversky variants at three or more |α − ½| levels (β = 1 − α) on one task",
        statistic=f"Page's L trend test of test {metric} over |α − ½| (two-sided, Holm over "
        "tasks); effect: mean per-case difference largest |α − ½| − α = ½, 95 % paired t-interval",
        rule=VERDICT_RULE.format(alpha=alpha).replace(
            "by the mean difference and the signed ranks alike", "by Page's L"
        ),
    )
    if (untested := claim.untested(scope)) is not None:
        return untested
    rows = [_c4_row(task, tr, metric, alpha, confidence) for task, tr in scope.tested.items()]
    n_cases = {r["task"]: r["n"] for r in rows}
    shape = "; ".join(
        f"{r['task']}: " + " → ".join(f"{v:.3f}" for v in r["level_means"]) for r in rows
    )
    return _per_task_result(
        claim,
        scope,
        rows,
        alpha=alpha,
        metric=metric,
        experiment=f"tasks {_describe_tasks(scope, n_cases)}; |α − ½| levels "
        + ", ".join(f"{lv:g}" for lv in rows[0]["levels"]),
        evidence=lambda *_: f"mean {metric} by level {shape}",
    )


# ---------------------------------------------------------------------------
# C5 Dice and Jaccard rank the losses the same; the band
# ---------------------------------------------------------------------------

_C5_TITLE = "Dice and Jaccard rank the losses the same, and every (D, J) pair lies in the band"
_C5_RULE = (
    "Per task: 'against' when a pair of losses is significantly ordered (Holm, p < {alpha}) "
    "one way by Dice and the other way by Jaccard, or a (D, J) pair leaves the band; 'for' "
    "when the rankings of the loss means agree (τ = 1); else 'neither'. Contradicted when any "
    "pair leaves the band; otherwise the verdict rule: supported = 'for' on more than half "
    "of the tasks and 'against' on none; contradicted = 'against' on more than half, or on "
    "some with 'for' on none; otherwise inconclusive. No chance-level gate (a property of "
    "the metrics, not of training)."
)


def _lacks_c5(tr: TaskRecords) -> str | None:
    return None if len(tr.losses) >= 2 else "has fewer than two losses"


def _same_order(x: np.ndarray, y: np.ndarray) -> bool:
    for i, j in itertools.combinations(range(len(x)), 2):
        if np.sign(x[i] - x[j]) != np.sign(y[i] - y[j]):
            return False
    return True


def _c5_flips(d: CaseMatrix, j: CaseMatrix, alpha: float) -> list[str]:
    """Pairs of losses ordered significantly one way by Dice (``d``) and the other way by
    Jaccard (``j``): Wilcoxon, Holm over the pairs × 2 metrics."""
    tests = []
    for a, b in itertools.combinations(range(len(d.losses)), 2):
        cd = compare_paired(d.values[:, a], d.values[:, b])
        cj = compare_paired(j.values[:, a], j.values[:, b])
        tests.append((a, b, cd, cj))
    adj = holm([p for _, _, cd, cj in tests for p in (cd.p, cj.p)])
    flips = []
    for k, (a, b, cd, cj) in enumerate(tests):
        pd_, pj = adj[2 * k], adj[2 * k + 1]
        if pd_ < alpha and pj < alpha and cd.direction * cj.direction == -1:
            flips.append(f"{d.losses[a]} vs {d.losses[b]}")
    return flips


def _c5_row(task: str, tr: TaskRecords, alpha: float, tolerance: float) -> dict[str, Any]:
    """C5 on one task: the two rankings of the losses' means, Kendall τ between them, the
    significant flips, the band check on every (run, case) pair, and the task's outcome."""
    d, j = tr.matrix("dice"), tr.matrix("jaccard")
    dm, jm = d.values.mean(axis=0), j.values.mean(axis=0)
    tau, p_tau = kendall_tau(dm, jm)
    flips = _c5_flips(d, j, alpha)
    viol = band_violation(d.per_seed, j.per_seed).ravel()
    out = int((viol > tolerance).sum())
    same = _same_order(dm, jm)
    outcome: Outcome = "against" if flips or out else "for" if same else "neither"
    return {
        "task": task,
        "n": d.n_cases,
        "losses": list(d.losses),
        "dice_means": dm.tolist(),
        "jaccard_means": jm.tolist(),
        "tau": tau,
        "p_tau": p_tau,
        "same_ranking": same,
        "significant_flips": flips,
        "band_pairs": int(viol.size),
        "band_outside": out,
        "band_max_violation": float(viol.max()) if viol.size else 0.0,
        "outcome": outcome,
    }


def _c5_evidence(rows: Sequence[Mapping[str, Any]]) -> str:
    """The numbers behind C5's verdict: τ per task and the pairs inside the band."""
    pairs = sum(r["band_pairs"] for r in rows)
    outside = sum(r["band_outside"] for r in rows)
    worst = max([0.0] + [r["band_max_violation"] for r in rows])
    return (
        "τ "
        + ", ".join(f"{r['task']} {_fmt(r['tau'], 2)}" for r in rows)
        + f"; {pairs - outside} of {pairs} (D, J) pairs in the band"
        + (f", largest violation {worst:.1e}" if outside else "")
    )


def claim_c5(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    tolerance: float = 1e-9,
) -> ClaimResult:
    r"""C5: per task, Kendall τ between the losses' mean Dice and mean Jaccard; the band.

    A task is "against" when a pair of losses is ordered significantly one way by Dice
    and significantly the other way by Jaccard (Wilcoxon, Holm over the pairs × 2
    metrics of the task), or when a per-case pair leaves the band
    :math:`(1-J)/2 \le 1-D \le 1-J` by more than ``tolerance``; "for" when the two
    rankings of the loss means are the same (τ = 1, ties alike); otherwise "neither"
    (orders swap between losses whose difference is not significant). The band is
    checked on every (run, case) pair — per seed, before the averaging. Any band
    violation makes the claim contradicted; else the verdict rule of the module.
    """
    scope = _scope(records, tasks, _lacks_c5)
    claim = _Claim(
        "C5",
        _C5_TITLE,
        needs="two or more losses on one task",
        statistic="Kendall τ between the rankings by mean Dice and by mean Jaccard; band check",
        rule=_C5_RULE.format(alpha=alpha),
    )
    if (untested := claim.untested(scope)) is not None:
        return untested
    rows = [_c5_row(task, tr, alpha, tolerance) for task, tr in scope.tested.items()]
    verdict, count = verdict_rule([r["outcome"] for r in rows], "tasks")
    if any(r["band_outside"] for r in rows):
        verdict = "contradicted"
    taus = [r["tau"] for r in rows]
    estimate = float(np.nanmean(taus)) if not all(math.isnan(t) for t in taus) else math.nan
    p_adj = holm([r["p_tau"] for r in rows])
    return claim.result(
        scope,
        experiment=f"tasks {_describe_tasks(scope, {r['task']: r['n'] for r in rows})}; "
        "all losses of each task",
        statistic=claim.statistic
        + " (estimate: mean τ over tasks; p: Kendall's test of τ = 0, Holm)",
        estimate=estimate,
        ci=(math.nan, math.nan),
        p_values={r["task"]: float(p) for r, p in zip(rows, p_adj)},
        verdict=verdict,
        reason=f"{count}; {_c5_evidence(rows)}",
        details=rows,
    )


# ---------------------------------------------------------------------------
# C6 it holds for multi-class tasks and across strata
# ---------------------------------------------------------------------------

_C6_TITLE = "C1 holds for multi-class tasks and across object-size and foreground-ratio strata"


def _c6_cells(multi_class: bool) -> list[tuple[str, tuple[str, str] | None]]:
    """C6's cells of one task, ``(name, stratum)``: the whole task when it is multi-class
    (stratum None), then every stratum of :data:`~metricseg.experiment.stats.STRATA`."""
    cells: list[tuple[str, tuple[str, str] | None]] = []
    if multi_class:
        cells.append(("multi-class (whole task)", None))
    cells += [(f"{by}: {label}", (by, label)) for by, bins in STRATA.items() for _, label in bins]
    return cells


def _c6_rows(
    task: str,
    tr: TaskRecords,
    cells: Sequence[tuple[str, tuple[str, str] | None]],
    metrics: Sequence[str],
    *,
    min_cases: int,
    alpha: float,
    confidence: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """C1's test in every cell of one task with ``min_cases`` or more cases (a row per
    cell and metric), and the smaller cells (task, cell, n)."""
    rows: list[dict[str, Any]] = []
    small: list[dict[str, Any]] = []
    for name, stratum in cells:
        n = len(tr.scored_cases(stratum=stratum))
        if n < min_cases:
            small.append({"task": task, "cell": name, "n": n})
            continue
        for metric in metrics:
            row = _group_test(tr, metric, confidence, alpha, stratum=stratum)
            assert row is not None  # n >= min_cases >= 1
            row["cell"] = name
            row["unit"] = f"{task} / {name}"
            rows.append(row)
    return rows, small


def claim_c6(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    metrics: Sequence[str] = ("dice", "jaccard"),
    min_cases: int = MIN_STRATUM_CASES,
    confidence: float = 0.95,
) -> ClaimResult:
    """C6: C1's test in every (task, stratum) cell, and on every multi-class task.

    Strata: mean object size (< 50, 50–500, ≥ 500 voxels) and foreground ratio
    (< 1 %, 1–10 %, ≥ 10 %) of a (case, class) in the target; a case's stratum score is
    the mean over its classes in the stratum (the unit stays the case). A cell with
    fewer than ``min_cases`` cases is listed and not a unit. Multi-class tasks
    (``num_classes`` > 2) add a whole-task cell. Holm over cells × metrics; a cell is
    "for" when every metric is; the verdict rule over the cells.
    """
    scope = _scope(records, tasks, _lacks_groups)
    claim = _Claim(
        "C6",
        _C6_TITLE,
        needs=_GROUPS_NEEDED,
        statistic="per cell as C1: mean per-case difference metric-sensitive − CE-based, 95 % "
        "paired t-interval; Wilcoxon signed-rank, Holm over cells × metrics",
        rule=VERDICT_RULE.format(alpha=alpha).replace("a task × stratum", "a task × stratum cell"),
    )
    if (untested := claim.untested(scope)) is not None:
        return untested
    rows: list[dict[str, Any]] = []
    small: list[dict[str, Any]] = []
    n_cases: dict[str, int] = {}
    multi: list[str] = []
    for task, tr in scope.tested.items():
        n_cases[task] = len(tr.scored_cases())
        multi_class = int(tasks[task].get("num_classes", len(tr.classes))) > 2
        if multi_class:
            multi.append(task)
        cells = _c6_cells(multi_class)
        task_rows, task_small = _c6_rows(
            task, tr, cells, metrics, min_cases=min_cases, alpha=alpha, confidence=confidence
        )
        rows += task_rows
        small += task_small
    too_few = [{**s, "outcome": "too few cases"} for s in small]
    if not rows:
        reason = f"no cell has {min_cases} or more cases"
        experiment = f"tasks {_describe_tasks(scope, n_cases)}"
        return claim.no_estimate(
            scope, "inconclusive", reason, experiment=experiment, details=too_few
        )
    verdict, count, units = _directional_verdict(rows, alpha, key="unit", unit="cells")
    estimate = float(np.mean([r["estimate"] for r in rows if r["metric"] == metrics[0]]))
    against = [u for u, o in units.items() if o == "against"]
    return claim.result(
        scope,
        experiment=f"tasks {_describe_tasks(scope, n_cases)}; multi-class: "
        f"{', '.join(multi) or 'none'}; {len(units)} cells with ≥ {min_cases} cases, "
        f"{len(small)} smaller cells left out",
        statistic=claim.statistic + " (estimate: mean over cells)",
        estimate=estimate,
        ci=(math.nan, math.nan),
        p_values=_p_values(rows, "unit", "metric"),
        verdict=verdict,
        reason=count + (f"; reversed in {', '.join(against)}" if against else ""),
        details=rows + too_few,
    )


# ---------------------------------------------------------------------------
# all claims, one line
# ---------------------------------------------------------------------------


def evaluate_claims(
    records: Records,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float = ALPHA,
    margin: float = EQUIVALENCE_MARGIN,
    min_cases: int = MIN_STRATUM_CASES,
) -> list[ClaimResult]:
    """C1 … C6 in order, with the shared significance level (the records indexed once)."""
    records = _indexed(records)
    return [
        claim_c1(records, tasks, alpha=alpha),
        claim_c2(records, tasks, alpha=alpha, margin=margin),
        claim_c3(records, tasks, alpha=alpha),
        claim_c4(records, tasks, alpha=alpha),
        claim_c5(records, tasks, alpha=alpha),
        claim_c6(records, tasks, alpha=alpha, min_cases=min_cases),
    ]


_HEADS = {
    "supported": "Reproduces the published finding",
    "contradicted": "Contradicts the published finding",
    "inconclusive": "Inconclusive on the published finding",
    "not run": "Does not test the published finding",
}


def overall_verdict(claims: Sequence[ClaimResult]) -> str:
    """One line from the claims table alone: C1 (the paper's main finding) leads, the
    others follow with their verdicts.

    Example:
        >>> c = ClaimResult("C1", "t", "", [], {}, "", 0.1, (0.0, 0.2), {}, "supported", "r", "")
        >>> overall_verdict([c])
        'Reproduces the published finding (C1 supported: metric-sensitive losses beat CE-based losses on Dice and Jaccard — r).'
    """
    by_id = {c.id: c for c in claims}
    c1 = by_id.get("C1")
    if c1 is None:
        head = "Does not test the published finding (C1 missing)"
    else:
        head = (
            f"{_HEADS[c1.verdict]} (C1 {c1.verdict}: metric-sensitive losses beat CE-based "
            f"losses on Dice and Jaccard — {c1.reason})"
        )
    rest = [f"{c.id} {c.verdict}" for c in claims if c.id != "C1"]
    return head + (f"; {', '.join(rest)}." if rest else ".")
