from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from metricseg.experiment import claims, stats
from metricseg.experiment.claims import ClaimResult, verdict_rule

from .test_stats import binary_rows

INDEPENDENT = {"independent": True, "num_classes": 2}
MS = ("soft_dice", "soft_jaccard", "lovasz_softmax")
CE = ("ce", "weighted_ce", "focal")


def study(
    task: str,
    offsets: dict[str, Any],
    *,
    n: int = 12,
    seeds: int = 2,
    noise: float = 0.003,
    rng_seed: int = 0,
    target: list[int] | None = None,
    base: np.ndarray | None = None,
    subjects: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of one binary task: every loss scores ``base + offset + noise`` on each case and
    seed. ``offsets`` maps a variant label to an offset, or to ``(registry name, options,
    offset)``; an offset may be a per-case array."""
    rng = np.random.default_rng(rng_seed)
    base = rng.uniform(0.55, 0.75, n) if base is None else base
    rows = []
    for label, spec in offsets.items():
        name, options, off = spec if isinstance(spec, tuple) else (label, {}, spec)
        scores = np.clip(base + off + rng.normal(0, noise, (seeds, n)), 0, 1)
        rows += binary_rows(
            task,
            label,
            scores,
            loss_name=name,
            loss_options=options,
            target=target,
            subjects=subjects,
        )
    return rows


def by_id(results: list[ClaimResult]) -> dict[str, ClaimResult]:
    return {c.id: c for c in results}


# ---------------------------------------------------------------------------
# the verdict rule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        (["for"], "supported"),
        (["for", "for", "neither"], "supported"),
        (["for", "neither", "neither"], "inconclusive"),  # support on a minority
        (["for", "for", "against"], "inconclusive"),  # reversed somewhere
        (["neither", "neither"], "inconclusive"),
        (["against", "neither"], "contradicted"),  # reversed on some, supported on none
        (["against", "against", "for"], "contradicted"),  # reversed on the majority
        ([], "inconclusive"),
    ],
)
def test_verdict_rule(outcomes, verdict):
    assert verdict_rule(outcomes)[0] == verdict
    with pytest.raises(ValueError, match="outcomes"):
        verdict_rule(["yes"])


# ---------------------------------------------------------------------------
# C1 on constructed data
# ---------------------------------------------------------------------------


def c1_study(ms_offset: float, ce_offset: float, **kw) -> list[dict[str, Any]]:
    return study("t", {**dict.fromkeys(MS, ms_offset), **dict.fromkeys(CE, ce_offset)}, **kw)


def test_c1_clearly_better_is_supported():
    rows = c1_study(0.1, 0.0)
    c = claims.claim_c1(rows, {"t": INDEPENDENT})
    assert c.verdict == "supported" and c.tasks == ["t"]
    assert c.estimate == pytest.approx(0.1, abs=0.005)
    assert c.ci[0] < c.estimate < c.ci[1] and c.ci[0] > 0.09
    # 12 cases, every difference positive: exact p = 2 / 2^12, Holm over 2 metrics
    assert c.p_values == pytest.approx({"t/dice": 2 * 2 / 4096, "t/jaccard": 2 * 2 / 4096})
    assert [d["outcome"] for d in c.details] == ["for", "for"]
    assert c.details[0]["chance"] == pytest.approx(0.02 / 1.01)
    assert "soft_dice" in c.experiment and "12 cases × 2 seeds" in c.experiment


def test_c1_equal_is_inconclusive_and_reversed_is_contradicted():
    equal = claims.claim_c1(c1_study(0.0, 0.0, noise=0.02), {"t": INDEPENDENT})
    assert equal.verdict == "inconclusive"
    assert all(d["p_holm"] >= 0.05 and d["outcome"] == "neither" for d in equal.details)
    assert abs(equal.estimate) < 0.02
    rev = claims.claim_c1(c1_study(0.0, 0.1), {"t": INDEPENDENT})
    assert rev.verdict == "contradicted" and rev.estimate == pytest.approx(-0.1, abs=0.005)
    assert [d["outcome"] for d in rev.details] == ["against", "against"]


def test_c1_at_chance_level_is_no_support():
    # 1 % foreground: chance Dice 2f/(1+f) = 0.0198; the metric-sensitive losses hover
    # around it and beat CE (which predicts next to nothing) on every case
    rng = np.random.default_rng(3)
    base = np.full(12, 0.0198) + rng.normal(0, 0.002, 12)
    rows = study("t", {**dict.fromkeys(MS, 0.0), **dict.fromkeys(CE, -0.015)}, base=base,
                 noise=0.0005)  # fmt: skip
    c = claims.claim_c1(rows, {"t": INDEPENDENT})
    dice = c.details[0]
    assert dice["p_holm"] < 0.05 and dice["direction"] == 1  # significant, the claimed way
    assert not dice["above_chance"] and dice["outcome"] == "neither"
    assert dice["note"] == "at chance level" and c.verdict == "inconclusive"


def test_c1_case_set_leaves_out_an_empty_target_for_every_loss():
    # case c03 has no foreground: ce predicts 40 voxels there, the others nothing
    target = [100] * 12
    target[3] = 0
    rows = c1_study(0.1, 0.0, target=target)
    for r in rows:
        if r["loss"] == "ce" and r["case"] == "c03" and r["class_index"] == 1:
            r.update(fp=40.0, dice=0.0, jaccard=0.0)
    c = claims.claim_c1(rows, {"t": INDEPENDENT})
    assert [d["n"] for d in c.details] == [11, 11] and c.verdict == "supported"
    fpv = {v.loss: v for v in stats.false_positive_volume(rows)}
    assert fpv["ce"].empty_fp_voxels == 40.0 and fpv["focal"].empty_fp_voxels == 0.0
    # loss options as read back from a CSV file (JSON text) are understood
    text = [{**r, "loss_options": json.dumps(r["loss_options"])} for r in rows]
    assert claims.claim_c1(text, {"t": INDEPENDENT}).to_dict() == c.to_dict()


def test_non_independent_tasks_are_kept_out_of_claims():
    strong = c1_study(0.2, 0.0)  # a big effect, but on slices of one subject
    slices = [{**r, "task": "slices"} for r in strong]
    flat = c1_study(0.0, 0.0, noise=0.02)
    tasks = {"slices": {"independent": False, "num_classes": 2}, "t": INDEPENDENT}
    c = claims.claim_c1(slices + flat, tasks)
    assert c.tasks == ["t"] and "not independent" in c.not_tested["slices"]
    assert c.verdict == "inconclusive" and all(d["task"] == "t" for d in c.details)
    # only a dependent task: the experiment ran, nothing could be tested
    only = claims.claim_c1(slices, tasks)
    assert only.verdict == "inconclusive" and only.tasks == []
    assert "cannot be tested" in only.reason and "slices" in only.reason
    # a task declared independent whose cases share subjects is not tested either
    shared = c1_study(0.2, 0.0, subjects=[f"s{i // 2}" for i in range(12)])
    c = claims.claim_c1(shared, {"t": INDEPENDENT})
    assert c.tasks == [] and "share subjects" in c.not_tested["t"]
    with pytest.raises(ValueError, match="no entry for task 't'"):
        claims.claim_c1(flat, {"other": INDEPENDENT})


def test_c1_holm_over_tasks_and_majority():
    a = [{**r, "task": "a"} for r in c1_study(0.1, 0.0, rng_seed=1)]
    b = [{**r, "task": "b"} for r in c1_study(0.1, 0.0, rng_seed=2)]
    e = [{**r, "task": "e"} for r in c1_study(0.0, 0.0, rng_seed=3, noise=0.02)]
    tasks = dict.fromkeys("abe", INDEPENDENT)
    c = claims.claim_c1(a + b + e, tasks)
    assert c.verdict == "supported"  # 2 of 3 for, none against
    assert c.reason.startswith("2 of 3 tasks for, 0 against")
    raw = [d["p"] for d in c.details]
    assert [d["p_holm"] for d in c.details] == pytest.approx(list(stats.holm(raw)))
    assert math.isnan(c.ci[0])  # several tasks: per-task CIs live in details
    r = [{**r, "task": "r"} for r in c1_study(0.0, 0.1, rng_seed=4)]
    assert claims.claim_c1(a + b + r, dict.fromkeys("abr", INDEPENDENT)).verdict == "inconclusive"


# ---------------------------------------------------------------------------
# C2
# ---------------------------------------------------------------------------


def test_c2_equal_supported_different_contradicted_small_inconclusive():
    # three equal losses; (rng_seed 0 draws the ~1-in-20 family-wise false positive)
    equal = study("t", dict.fromkeys(MS, 0.0), n=30, noise=0.002, rng_seed=1)
    eq = claims.claim_c2(equal, {"t": INDEPENDENT})
    assert eq.verdict == "supported"
    assert len(eq.details) == 3 and all(not d["significant"] for d in eq.details)
    assert all(d["inside_margin"] and d["mdd"] < claims.EQUIVALENCE_MARGIN for d in eq.details)
    assert "detectable" in eq.reason

    diff = study("t", {"soft_dice": 0.0, "soft_jaccard": -0.05, "lovasz_softmax": 0.0})
    c = claims.claim_c2(diff, {"t": INDEPENDENT})
    assert c.verdict == "contradicted"
    sig = [d["pair"] for d in c.details if d["significant"]]
    assert sig == ["soft_dice − soft_jaccard", "soft_jaccard − lovasz_softmax"]
    assert abs(c.estimate) == pytest.approx(0.05, abs=0.005)

    # 8 noisy cases: nothing significant, nothing shown equal either
    small = claims.claim_c2(study("t", dict.fromkeys(MS, 0.0), n=8, noise=0.05), {"t": INDEPENDENT})
    assert small.verdict == "inconclusive"
    assert all(not d["significant"] and not d["inside_margin"] for d in small.details)
    assert all(d["mdd"] > claims.EQUIVALENCE_MARGIN for d in small.details)
    # 5 cases: no difference can be detected at all by the signed-rank test
    tiny = claims.claim_c2(study("t", dict.fromkeys(MS, 0.0), n=5), {"t": INDEPENDENT})
    assert all(d["mdd"] == math.inf for d in tiny.details) and tiny.verdict == "inconclusive"
    assert "too few cases" in tiny.reason and "too few cases" not in small.reason
    # two tasks of 7 cases: 6 tests, the first at 0.05/6 = 0.0083, and the signed-rank test
    # cannot go below 2/2^7 = 0.0156 -- tight CIs, but "no difference" would be vacuous
    two = [{**r, "task": t} for t in ("a", "b") for r in study("t", dict.fromkeys(MS, 0.0), n=7)]
    c = claims.claim_c2(two, dict.fromkeys("ab", INDEPENDENT))
    assert all(d["inside_margin"] and d["mdd"] == math.inf for d in c.details)
    assert c.verdict == "inconclusive" and "detectable at 80% power: ∞" in c.reason
    assert (
        claims.claim_c2(study("t", {"soft_dice": 0.0, "ce": 0.0}), {"t": INDEPENDENT}).verdict
        == "not run"
    )


# ---------------------------------------------------------------------------
# C3
# ---------------------------------------------------------------------------

WEIGHTS = (1, 2, 5, 10, 20, 50, 100)


def sweep(best_offset: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        f"wce_fg{w}": ("weighted_ce", {"foreground_weight": w}, -0.05 + 0.005 * i)
        for i, w in enumerate(WEIGHTS)
    }
    out["wce_fg10"] = ("weighted_ce", {"foreground_weight": 10}, best_offset)
    out["wce_median"] = ("weighted_ce", {"scheme": "median_frequency"}, -0.04)
    return out


def test_c3_best_weight_still_below_is_supported():
    rows = study("t", {"soft_dice": 0.1, "lovasz_softmax": 0.05, **sweep(0.02)})
    c = claims.claim_c3(rows, {"t": INDEPENDENT})
    assert c.verdict == "supported"
    (d,) = c.details
    assert d["best_weighted_ce"] == "wce_fg10" and d["best_weight"] == "foreground weight 10"
    assert d["best_metric_sensitive"] == "soft_dice"
    assert len(d["sweep"]) == 8 and {s["weight"] for s in d["sweep"]} >= {"scheme median_frequency"}
    assert c.estimate == pytest.approx(0.08, abs=0.005)


def test_c3_a_weight_that_closes_the_gap_is_not_support():
    closes = claims.claim_c3(study("t", {"soft_dice": 0.1, **sweep(0.1)}, noise=0.02),
                             {"t": INDEPENDENT})  # fmt: skip
    assert closes.verdict == "inconclusive"
    beats = claims.claim_c3(study("t", {"soft_dice": 0.1, **sweep(0.2)}), {"t": INDEPENDENT})
    assert beats.verdict == "contradicted"
    one = study("t", {"soft_dice": 0.1, "wce": ("weighted_ce", {}, 0.0)})
    c = claims.claim_c3(one, {"t": INDEPENDENT})
    assert c.verdict == "not run" and "no weighted_ce sweep" in c.not_tested["t"]


# ---------------------------------------------------------------------------
# C4
# ---------------------------------------------------------------------------


def tversky(drops: list[float], *, with_half: bool = False) -> dict[str, Any]:
    alphas = [0.6, 0.7, 0.8, 0.9]
    out: dict[str, Any] = {
        f"tversky_a{a}": ("soft_tversky", {"alpha": a, "beta": round(1 - a, 10)}, d)
        for a, d in zip(alphas, drops)
    }
    if with_half:
        out["tversky_a0.5"] = ("soft_tversky", {"alpha": 0.5, "beta": 0.5}, 0.0)
    return out


def test_c4_monotone_supported_flat_inconclusive_rising_contradicted():
    falling = study("t", {"soft_dice": 0.0, **tversky([-0.01, -0.03, -0.06, -0.1])})
    c = claims.claim_c4(falling, {"t": INDEPENDENT})
    assert c.verdict == "supported"
    (d,) = c.details
    assert d["levels"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert d["variants"]["0"] == ["soft_dice"] and d["monotone"]
    assert d["p_decreasing"] < 1e-6 and c.estimate == pytest.approx(-0.1, abs=0.005)

    flat = study("t", {"soft_dice": 0.0, **tversky([0.0] * 4)}, noise=0.02)
    f = claims.claim_c4(flat, {"t": INDEPENDENT})
    assert f.verdict == "inconclusive" and f.details[0]["p_holm"] >= 0.05

    rising = study("t", {"soft_dice": 0.0, **tversky([0.02, 0.04, 0.06, 0.08])})
    assert claims.claim_c4(rising, {"t": INDEPENDENT}).verdict == "contradicted"


def test_c4_levels_half_run_and_left_out_variants():
    rows = study("t", {"soft_dice": 0.0, **tversky([-0.01, -0.03, -0.06, -0.1], with_half=True)})
    rows += study("t", {"tv_bad": ("soft_tversky", {"alpha": 0.7, "beta": 0.7}, 0.0)})
    (d,) = claims.claim_c4(rows, {"t": INDEPENDENT}).details
    assert d["variants"]["0"] == ["tversky_a0.5"]  # the α = β = ½ run itself, not soft Dice
    assert d["left_out"] == ["tv_bad (α=0.7, β=0.7: β ≠ 1 − α)"]
    none = claims.claim_c4(study("t", {"soft_dice": 0.0, "ce": 0.0}), {"t": INDEPENDENT})
    assert none.verdict == "not run" and "a trend needs 3" in none.not_tested["t"]


# ---------------------------------------------------------------------------
# C5
# ---------------------------------------------------------------------------


def test_c5_same_ranking_band_and_violation():
    rows = study("t", {"soft_dice": 0.1, "ce": 0.0, "focal": -0.05})
    c = claims.claim_c5(rows, {"t": INDEPENDENT})
    assert c.verdict == "supported" and c.estimate == 1.0
    (d,) = c.details
    assert d["band_outside"] == 0 and d["band_pairs"] == 3 * 2 * 12  # losses × seeds × cases
    # a row whose Jaccard exceeds its Dice leaves the band (1 - D <= 1 - J fails)
    broken = [dict(r) for r in rows]
    target = next(r for r in broken if r["class_index"] == 1 and r["loss"] == "ce")
    target["jaccard"] = target["dice"] + 0.05
    b = claims.claim_c5(broken, {"t": INDEPENDENT})
    assert b.verdict == "contradicted" and b.details[0]["band_outside"] == 1
    assert b.details[0]["band_max_violation"] == pytest.approx(0.05)


def test_c5_a_swap_without_significance_is_neither():
    # A: Dice 0.5 on every case; B: 0.1 / 0.88 alternating. Dice ranks A first (0.5 > 0.49),
    # Jaccard ranks B first (J = D/(2-D) is convex): mean 1/3 against 0.419
    n = 12
    b_scores = np.where(np.arange(n) % 2 == 0, 0.1, 0.88)
    rows = binary_rows("t", "a", [np.full(n, 0.5)]) + binary_rows("t", "b", [b_scores])
    c = claims.claim_c5(rows, {"t": INDEPENDENT})
    (d,) = c.details
    assert d["dice_means"][0] > d["dice_means"][1] and d["jaccard_means"][0] < d["jaccard_means"][1]
    assert d["tau"] == -1.0 and not d["same_ranking"] and d["significant_flips"] == []
    assert d["outcome"] == "neither" and c.verdict == "inconclusive"


# ---------------------------------------------------------------------------
# C6
# ---------------------------------------------------------------------------

STRATA_TARGET = [30] * 10 + [200] * 10 + [2000] * 10  # < 50 / 50–500 / ≥ 500 voxels


def test_c6_strata_supported_and_reversed_in_one():
    offsets = {**dict.fromkeys(MS, 0.1), **dict.fromkeys(CE, 0.0)}
    rows = study("t", offsets, n=30, target=STRATA_TARGET)
    c = claims.claim_c6(rows, {"t": INDEPENDENT})
    assert c.verdict == "supported"
    cells = {d["cell"]: d for d in c.details if d.get("metric") == "dice"}
    assert set(cells) == {
        "mean_object_size: < 50 vox", "mean_object_size: 50–500 vox",
        "mean_object_size: ≥ 500 vox", "foreground_ratio: < 1 %",
        "foreground_ratio: 1–10 %", "foreground_ratio: ≥ 10 %",
    }  # fmt: skip
    assert all(d["n"] == 10 for d in cells.values())
    # metric-sensitive losses lose on small objects: reversed in those cells
    small = np.array([-0.1] * 10 + [0.1] * 20)
    rows = study("t", {**dict.fromkeys(MS, small), **dict.fromkeys(CE, 0.0)}, n=30,
                 target=STRATA_TARGET)  # fmt: skip
    c = claims.claim_c6(rows, {"t": INDEPENDENT})
    assert c.verdict == "inconclusive"
    assert (
        "t / mean_object_size: < 50 vox" in c.reason and "t / foreground_ratio: < 1 %" in c.reason
    )


def test_c6_multi_class_cell_and_small_cells():
    rows = study("m", {**dict.fromkeys(MS, 0.1), **dict.fromkeys(CE, 0.0)}, n=12)
    multi = list(rows)
    for r in rows:  # a second foreground class, identical to the first
        if r["class_index"] == 1:
            multi.append({**r, "class_index": 2, "class_name": "fg2"})
    c = claims.claim_c6(multi, {"m": {"independent": True, "num_classes": 3}})
    units = {d["cell"] for d in c.details if "metric" in d}
    assert "multi-class (whole task)" in units and "mean_object_size: 50–500 vox" in units
    small = [d for d in c.details if d["outcome"] == "too few cases"]
    assert {d["cell"] for d in small} >= {"mean_object_size: < 50 vox"}
    assert all(d["n"] < claims.MIN_STRATUM_CASES for d in small)
    assert c.verdict == "supported"


# ---------------------------------------------------------------------------
# every claim on one small study; JSON; the one-line verdict
# ---------------------------------------------------------------------------


def full_study() -> list[dict[str, Any]]:
    offsets = {
        "soft_dice": 0.10,
        "soft_jaccard": 0.09,
        "lovasz_softmax": 0.08,
        "ce": 0.0,
        "focal": -0.01,
        **{
            f"wce_fg{w}": ("weighted_ce", {"foreground_weight": w}, off)
            for w, off in zip(WEIGHTS, (-0.02, -0.015, 0.01, 0.02, 0.03, 0.025, 0.005))
        },
        "wce_median": ("weighted_ce", {"scheme": "median_frequency"}, 0.015),
        **tversky([0.085, 0.065, 0.045, 0.035]),
    }
    return study("brats", offsets, n=12, seeds=2, noise=0.002)


def test_every_claim_on_a_small_study():
    rows = full_study()
    slices = [{**r, "task": "atlas"} for r in rows if r["loss"] in ("soft_dice", "ce")]
    tasks = {"brats": INDEPENDENT, "atlas": {"independent": False, "num_classes": 2}}
    results = claims.evaluate_claims(rows + slices, tasks)
    assert [c.id for c in results] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    # the claims take the rows, or the rows indexed once: the same results
    index = stats.index_records(rows + slices)
    assert claims.claim_c3(index, tasks).to_dict() == by_id(results)["C3"].to_dict()
    v = {c.id: c.verdict for c in results}
    assert v == {
        "C1": "supported",
        "C2": "contradicted",  # 0.01 apart with tiny noise: the choice does matter here
        "C3": "supported",
        "C4": "supported",
        "C5": "supported",
        "C6": "supported",
    }
    c = by_id(results)
    assert all(r.tasks == ["brats"] for r in results)
    assert "not independent" in c["C1"].not_tested["atlas"]
    assert c["C3"].details[0]["best_weighted_ce"] == "wce_fg20"
    for r in results:
        d = r.to_dict()
        text = json.dumps(d, allow_nan=False)  # NaN and inf made JSON-safe
        assert json.loads(text)["verdict"] == r.verdict
    line = claims.overall_verdict(results)
    assert line.startswith("Reproduces the published finding (C1 supported")
    assert line.endswith("C2 contradicted, C3 supported, C4 supported, C5 supported, C6 supported.")


def test_claims_not_run_and_overall_verdict_from_claims_only():
    rows = study("t", {"soft_dice": 0.0, "lovasz_softmax": 0.0})  # no CE, no sweeps
    results = claims.evaluate_claims(rows, {"t": INDEPENDENT})
    v = {c.id: c.verdict for c in results}
    assert v["C1"] == v["C3"] == v["C4"] == v["C6"] == "not run"
    assert "not run" in by_id(results)["C4"].reason
    line = claims.overall_verdict(results)
    assert line.startswith("Does not test the published finding (C1 not run")
    rev = claims.evaluate_claims(c1_study(0.0, 0.1), {"t": INDEPENDENT})
    assert claims.overall_verdict(rev).startswith("Contradicts the published finding")
    d = by_id(results)["C4"].to_dict()
    assert d["estimate"] is None and d["ci"] == [None, None]
