"""Compare folders of predicted label files on one ground truth with the study's statistics.

For researchers who train anywhere (nnU-Net, MONAI, their own code): every folder is
scored against the ground truth on the one scoring path (:mod:`metricseg.file_scoring`
counts, :func:`metricseg.metrics.score_from_counts` scores) into the same rows as a bench
run; then every pair of folders is compared **per label**, paired over the cases whose
ground truth holds that label (Wilcoxon signed-rank test, Holm over every test of the
comparison, mean difference with a 95 % paired *t*-interval), and judged by the verdict
rule of the claims table (:func:`metricseg.experiment.claims.verdict_rule`) with the
labels as units: "A scores a higher Dice than B" is *supported* when A is significantly
better on more than half of the labels and significantly worse on none.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metricseg.experiment import stats
from metricseg.experiment.claims import ALPHA, verdict_rule
from metricseg.experiment.scoring import score_columns
from metricseg.file_scoring import EvaluationError, SettingsError, evaluate_pairs, match_cases
from metricseg.io import read_image

__all__ = ["LabelTest", "PairVerdict", "compare_tests", "power_note", "score_folders"]


def _object_stats(gt: np.ndarray, labels: Sequence[int]) -> dict[int, tuple[int, float]]:
    from scipy import ndimage

    out = {}
    for label in labels:
        mask = gt == label
        voxels = int(mask.sum())
        if voxels == 0:
            out[label] = (0, math.nan)
        else:
            n = int(ndimage.label(mask)[1])
            out[label] = (n, voxels / n)
    return out


def score_folders(
    folders: Sequence[tuple[str, str | Path]],
    gt: str | Path,
    *,
    labels: Sequence[int] | None = None,
    ignore_index: int | None = None,
    geometry_tolerance: float | None = 1e-3,
) -> list[dict[str, Any]]:
    """Rows (as a bench's ``runs.csv``) of every ``(name, folder)`` against ``gt``.

    The case set is the ground truth's: a case without a prediction in any folder is
    an error naming the file. ``labels`` default to every foreground label of the ground
    truth or of any prediction; a label that no file holds is refused (a typo, most
    likely), one that some folders never predict is scored for them as well.

    Raises:
        SettingsError: ``labels`` names a label that no file holds.
    """
    scored = []
    for name, folder in folders:
        pairs, problems = match_cases(folder, gt)
        if problems:
            raise EvaluationError(f"{name}: {problems[0][1]}")
        # every label seen: the folders may differ in which labels they hold
        result = evaluate_pairs(
            pairs, ignore_index=ignore_index, geometry_tolerance=geometry_tolerance
        )
        scored.append((name, result))
    held = sorted({int(v) for _, r in scored for k in r.cases for v in k.labels})
    if labels is None:
        labels = sorted({label for _, r in scored for label in r.labels})
    else:
        missing = [int(label) for label in labels if label not in held]
        if missing:
            raise SettingsError(
                f"--labels {missing}: no prediction or ground-truth file holds "
                f"{'this label' if len(missing) == 1 else 'these labels'} "
                f"(labels found: {', '.join(map(str, held))}); check --labels"
            )
        labels = [int(label) for label in labels]
    rows: list[dict[str, Any]] = []
    objects: dict[str, dict[int, tuple[int, float]]] = {}
    for name, result in scored:
        for case in result.cases:
            if case.name not in objects:
                gt_labels = read_image(case.gt_path)[0]
                objects[case.name] = _object_stats(gt_labels, labels)
            counts = case.counts_of(labels)
            scores = score_columns(counts, case.num_voxels)
            for k, label in enumerate(labels):
                tp, fp, fn = (int(v) for v in counts[k])
                n_obj, size = objects[case.name][label]
                rows.append(
                    {
                        "task": "compare",
                        "loss": name,
                        "loss_name": "prediction",
                        "loss_options": {},
                        "seed": 0,
                        "fold": None,
                        "case": case.name,
                        "subject": case.name,
                        "class_index": int(label),
                        "class_name": str(label),
                        "tp": tp,
                        "fp": fp,
                        "fn": fn,
                        "voxels": case.num_voxels,
                        "target_voxels": tp + fn,
                        "pred_voxels": tp + fp,
                        "foreground_ratio": (tp + fn) / case.num_voxels
                        if case.num_voxels
                        else math.nan,
                        "objects": n_obj,
                        "mean_object_size": size,
                        **{column: float(values[k]) for column, values in scores.items()},
                    }
                )
    return rows


@dataclass(frozen=True)
class LabelTest:
    """One label of one pair: A against B over the cases whose ground truth holds the label."""

    a: str
    b: str
    label: int
    metric: str
    comparison: stats.PairedComparison
    p_holm: float
    outcome: str  #: "for" (A significantly better), "against" (B better) or "neither"


@dataclass(frozen=True)
class PairVerdict:
    """The verdict on "A scores a higher Dice than B" from its labels' outcomes."""

    a: str
    b: str
    verdict: str
    reason: str


def _scores(rows: Sequence[dict[str, Any]], name: str, label: int, metric: str) -> dict[str, float]:
    return {
        r["case"]: float(r[metric])
        for r in rows
        if r["loss"] == name and r["class_index"] == label and r["target_voxels"] > 0
    }


def compare_tests(
    rows: Sequence[dict[str, Any]],
    names: Sequence[str],
    *,
    metric: str = "dice",
    alpha: float = ALPHA,
) -> tuple[list[LabelTest], list[PairVerdict]]:
    """Every pair of ``names`` compared per label, Holm over all of them, and a verdict per pair."""
    labels = sorted({int(r["class_index"]) for r in rows if r["class_index"] > 0})
    raw = []
    for a, b in itertools.combinations(names, 2):
        for label in labels:
            sa, sb = _scores(rows, a, label, metric), _scores(rows, b, label, metric)
            cases = sorted(set(sa) & set(sb))
            if len(cases) >= 2:
                comparison = stats.compare_paired([sa[c] for c in cases], [sb[c] for c in cases])
                raw.append((a, b, label, comparison))
    adjusted = stats.holm([c.p for *_, c in raw]) if raw else np.zeros(0)
    tests = []
    for (a, b, label, c), p in zip(raw, adjusted):
        significant = p < alpha and c.direction != 0
        outcome = ("for" if c.direction > 0 else "against") if significant else "neither"
        tests.append(LabelTest(a, b, label, metric, c, float(p), outcome))
    verdicts = []
    for a, b in itertools.combinations(names, 2):
        outcomes = [t.outcome for t in tests if (t.a, t.b) == (a, b)]
        verdict, clause = verdict_rule(outcomes, "labels")
        verdicts.append(PairVerdict(a, b, verdict, clause))
    return tests, verdicts


def _folder_table(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[list[str]]:
    from metricseg.experiment.report.sections import fmt

    labels = sorted({int(r["class_index"]) for r in rows if r["class_index"] > 0})
    out = []
    for name in names:
        for label in labels:
            dice = list(_scores(rows, name, label, "dice").values())
            jac = list(_scores(rows, name, label, "jaccard").values())
            if not dice:
                continue
            lo, hi = stats.bootstrap_ci(dice)
            out.append(
                [
                    name,
                    str(label),
                    str(len(dice)),
                    f"{fmt(float(np.mean(dice)))} ± "
                    f"{fmt(float(np.std(dice, ddof=1)) if len(dice) > 1 else math.nan)}",
                    f"[{fmt(lo)}, {fmt(hi)}]",
                    fmt(float(np.mean(jac))),
                ]
            )
    return out


def power_note(tests: Sequence[LabelTest], alpha: float = ALPHA) -> str | None:
    """A warning when some label has too few cases for any test to reach ``alpha``, else None.

    Example:
        >>> power_note([])  # no tests, nothing to warn about
    """
    small = sorted({t.comparison.n for t in tests if stats.wilcoxon_min_p(t.comparison.n) >= alpha})
    if not small:
        return None
    n = small[0]
    return (
        f"too few cases: with {n} case(s) per label the signed-rank test's smallest p-value is "
        f"{stats.wilcoxon_min_p(n):.3g} (≥ {alpha}), so no difference can be significant and "
        "'inconclusive' says nothing about the models; compare on 6 or more cases"
    )


def compare_markdown(
    rows: Sequence[dict[str, Any]],
    names: Sequence[str],
    tests: Sequence[LabelTest],
    verdicts: Sequence[PairVerdict],
    header: dict[str, str],
) -> str:
    """``summary.md`` of a comparison: the verdicts, the scores, every test."""
    from metricseg.experiment.report.sections import fmt, fmt_p, md_table

    lines = ["# metricseg compare report\n", *(f"- **{k}**: {v}" for k, v in header.items()), ""]
    lines.append("## Verdicts\n")
    lines += [
        f"- **{v.a}** scores a higher Dice than **{v.b}**: **{v.verdict}** ({v.reason})."
        for v in verdicts
    ]
    lines.append(
        f"\nRule: per label, a paired Wilcoxon test over the cases whose ground truth holds the "
        f"label, Holm over every test; a label is 'for' when significant (p < {ALPHA}) with A "
        "better by the mean difference and the signed ranks, 'against' when B is. Supported: "
        "'for' on more than half of the labels and 'against' on none; contradicted: 'against' "
        "on more than half, or on some with 'for' on none; otherwise inconclusive.\n"
    )
    if (note := power_note(tests)) is not None:
        lines.append(f"**Note**: {note}.\n")
    lines.append("## Dice per folder and label\n")
    lines.append(
        md_table(
            ("folder", "label", "cases", "Dice mean ± sd", "Dice 95 % CI", "Jaccard mean"),
            _folder_table(rows, names),
        )
    )
    lines.append("## Paired tests\n")
    lines.append(
        md_table(
            ("A", "B", "label", "cases", "mean A − B", "95 % CI", "p", "p (Holm)", "outcome"),
            [
                [
                    t.a,
                    t.b,
                    str(t.label),
                    str(t.comparison.n),
                    fmt(t.comparison.mean_diff),
                    f"[{fmt(t.comparison.ci_low)}, {fmt(t.comparison.ci_high)}]",
                    fmt_p(t.comparison.p),
                    fmt_p(t.p_holm),
                    t.outcome,
                ]
                for t in tests
            ],
        )
    )
    empty = sorted({r["case"] for r in rows if r["class_index"] > 0 and r["target_voxels"] == 0})
    if empty:
        lines.append(
            f"Cases left out of a label's test because their ground truth lacks it: "
            f"{len(empty)} (their false positives are in `cases.csv`).\n"
        )
    return "\n".join(lines)


def write_compare_report(
    out: str | Path,
    rows: Sequence[dict[str, Any]],
    names: Sequence[str],
    tests: Sequence[LabelTest],
    verdicts: Sequence[PairVerdict],
    header: dict[str, str],
) -> None:
    """``cases.csv`` (one row per folder, case and label), ``summary.md`` and ``summary.json``."""
    from metricseg.atomic import atomic_write_json, atomic_write_text
    from metricseg.experiment.report import write_runs_csv

    out = Path(out)
    write_runs_csv(rows, out / "cases.csv")
    atomic_write_text(out / "summary.md", compare_markdown(rows, names, tests, verdicts, header))

    def test_dict(t: LabelTest) -> dict[str, Any]:
        c = t.comparison
        return {
            "a": t.a,
            "b": t.b,
            "label": t.label,
            "metric": t.metric,
            "n": c.n,
            "mean_diff": c.mean_diff,
            "ci": [c.ci_low, c.ci_high],
            "p": c.p,
            "p_holm": t.p_holm,
            "outcome": t.outcome,
        }

    summary = {
        "header": header,
        "verdicts": [v.__dict__ for v in verdicts],
        "tests": [test_dict(t) for t in tests],
    }
    atomic_write_json(out / "summary.json", _finite(summary))


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
