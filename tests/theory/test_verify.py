"""The verifier: its enumeration, its agreement with the closed forms, and that it
catches planted false bounds (by enumeration, and by the adversarial search alone)."""

from __future__ import annotations

import itertools
import json
import math
from functools import partial

import numpy as np
import pytest

from metricseg.theory import bounds
from metricseg.theory.verify import (
    BoundViolation,
    Claim,
    default_claims,
    enumerate_counts,
    verify,
)

FAST = {"restarts": 6, "steps": 60, "voxels": 12}


@pytest.fixture(scope="module")
def report():
    return verify(max_voxels=40, seed=1, hamming_max_voxels=25, **FAST)


@pytest.mark.parametrize("m", [1, 2, 7, 15])
def test_enumeration_matches_a_slow_loop(m):
    tp, fp, fn, tn = enumerate_counts(m)
    got = set(zip(tp.tolist(), fp.tolist(), fn.tolist()))
    want = {
        (float(t), float(f), float(n))
        for t, f, n in itertools.product(range(m + 1), repeat=3)
        if 1 <= t + f + n <= m
    }
    assert got == want and len(tp) == len(want) == math.comb(m + 3, 3) - 1
    assert (tn == 0).all()
    tp, fp, fn, tn = enumerate_counts(m, with_tn=True)
    got4 = set(zip(tp.tolist(), fp.tolist(), fn.tolist(), tn.tolist()))
    want4 = {
        tuple(float(x) for x in q)
        for q in itertools.product(range(m + 1), repeat=4)
        if sum(q) <= m and sum(q[:3]) >= 1
    }
    assert got4 == want4 and len(tp) == len(want4)


def test_enumeration_rejects_bad_sizes():
    with pytest.raises(ValueError, match="max_voxels must be an int >= 1, got 0"):
        enumerate_counts(0)
    with pytest.raises(TypeError, match="max_voxels must be an int"):
        enumerate_counts(2.5)  # type: ignore[arg-type]


def test_default_claims_hold_and_reachable_ends_agree_with_closed_forms(report):
    assert report.holds
    for r in report.results:
        c = r.claim
        if c.upper is not None and c.upper_attained:
            assert r.found_max == pytest.approx(c.upper, abs=1e-4), (c.name, c.params)
        if c.lower is not None and c.lower_attained:
            assert r.found_min == pytest.approx(c.lower, abs=1e-4), (c.name, c.params)
    # J = 12/29 is within reach of 40 voxels: the enumeration alone gets to 1.3e-7
    enum_max = report.find("D − J").by_source["enumeration"][1]
    assert enum_max == pytest.approx(bounds.MAX_DICE_JACCARD_GAP, abs=2e-7)
    assert enum_max <= bounds.MAX_DICE_JACCARD_GAP


def test_limits_that_are_not_attained_are_approached_but_not_passed(report):
    r = report.find("T_α/D", alpha=0.7)
    lo, hi = bounds.tversky_dice_ratio_range(0.7)
    assert lo <= r.found_min < lo + 0.02 and hi - 0.05 < r.found_max <= hi
    h = report.find("H − D", w_fp=1.0, w_fn=1.0)
    assert 0.9 < h.found_max < 1.0


def test_report_serialises_to_json(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["holds"] is True
    assert set(data["worst_tversky_dice_gap"]) >= {"0.5", "0.6", "0.7", "0.8", "0.9"}
    assert data["triples"] == math.comb(40 + 3, 3) - 1
    assert data["claims"][0]["name"] == "(1 − J)/2 ≤ 1 − D ≤ 1 − J"


def _dice_minus_jaccard(tp, fp, fn, tn):
    return 2 * tp / (2 * tp + fp + fn) - tp / (tp + fp + fn)


def test_planted_false_upper_bound_is_caught_by_enumeration():
    false_claim = Claim(
        "D − J ≤ 0.15 (false)", "dice/jaccard", _dice_minus_jaccard, "D − J", upper=0.15
    )
    with pytest.raises(BoundViolation, match=r"D − J ≤ 0\.15") as info:
        verify(max_voxels=20, claims=[false_claim], search=False)
    (broken,) = info.value.results
    assert broken.found_max > 0.15 and broken.max_source == "enumeration"
    tp, fp, fn, _ = broken.max_counts
    assert _dice_minus_jaccard(tp, fp, fn, 0) == pytest.approx(broken.found_max)


def _tversky_over_dice(tp, fp, fn, tn, *, alpha):
    return (tp / (tp + alpha * fp + (1 - alpha) * fn)) / (2 * tp / (2 * tp + fp + fn))


def test_planted_false_bound_is_caught_by_the_search_alone():
    # with a single voxel every hard case has T/D = 1, so only the search can break
    # the (false) claim T_0.7/D <= 1.2; the true supremum is 1/0.6
    false_claim = Claim(
        "T/D ≤ 1.2 (false)",
        "tversky/dice",
        partial(_tversky_over_dice, alpha=0.7),
        "T_α/D",
        lower=0.0,
        upper=1.2,
        params={"alpha": 0.7},
    )
    assert verify(max_voxels=1, claims=[false_claim], search=False).holds
    with pytest.raises(BoundViolation) as info:
        verify(max_voxels=1, claims=[false_claim], **FAST)
    (broken,) = info.value.results
    assert broken.max_source == "search" and broken.found_max > 1.2


def test_planted_false_lower_bound_is_caught_and_not_raised_when_asked():
    false_claim = Claim(
        "D − J ≥ 0.01 (false)", "dice/jaccard", _dice_minus_jaccard, "D − J", lower=0.01
    )
    rep = verify(max_voxels=5, claims=[false_claim], raise_on_violation=False, **FAST)
    assert not rep.holds and rep.results[0].found_min == 0.0


def test_true_claims_plus_one_false_claim_report_only_the_false_one():
    claims = default_claims(alphas=(0.7,), hamming_weights=((1.0, 1.0),))
    claims.append(
        Claim("D − J ≤ 0.17 (false)", "dice/jaccard", _dice_minus_jaccard, "D − J", upper=0.17)
    )
    with pytest.raises(BoundViolation) as info:
        verify(max_voxels=30, hamming_max_voxels=10, claims=claims, **FAST)
    assert [r.claim.name for r in info.value.results] == ["D − J ≤ 0.17 (false)"]


def test_undefined_everywhere_is_an_error():
    nan_claim = Claim("nothing", "dice/jaccard", lambda tp, fp, fn, tn: tp * np.nan, "nan")
    with pytest.raises(ValueError, match="undefined on every case"):
        verify(max_voxels=3, claims=[nan_claim], search=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_voxels": 0}, "max_voxels must be an int >= 1"),
        ({"restarts": 0}, "restarts must be an int >= 1"),
        ({"hamming_max_voxels": -2}, "hamming_max_voxels must be an int >= 1"),
    ],
)
def test_verify_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        verify(**kwargs)


@pytest.mark.slow
def test_default_verify_agrees_with_closed_forms_to_1e_4():
    rep = verify()
    for r in rep.results:
        c = r.claim
        if c.upper is not None and c.upper_attained:
            assert r.found_max == pytest.approx(c.upper, abs=1e-4)


@pytest.mark.parametrize("with_tn", [False, True])
def test_blocks_cover_the_enumeration_exactly_once(with_tn):
    from metricseg.theory.verify import iter_count_blocks

    blocks = list(iter_count_blocks(15, with_tn=with_tn, block_size=7))
    assert len(blocks) > 3
    joined = [np.concatenate(parts) for parts in zip(*blocks)]
    for got, want in zip(joined, enumerate_counts(15, with_tn=with_tn)):
        np.testing.assert_array_equal(got, want)


def test_verify_with_small_blocks_finds_the_same_extremes(monkeypatch):
    import importlib

    # the package re-exports the function verify under the module's name
    verify_module = importlib.import_module("metricseg.theory.verify")

    claims = default_claims(alphas=(0.8,), hamming_weights=((1.0, 2.0),))
    whole = verify(max_voxels=25, hamming_max_voxels=12, claims=claims, search=False)
    original = verify_module.iter_count_blocks
    monkeypatch.setattr(
        verify_module,
        "iter_count_blocks",
        lambda m, with_tn=False: original(m, with_tn=with_tn, block_size=50),
    )
    blocked = verify(max_voxels=25, hamming_max_voxels=12, claims=claims, search=False)
    for a, b in zip(whole.results, blocked.results):
        assert (a.found_min, a.found_max, a.cases) == (b.found_min, b.found_max, b.cases)
        assert (a.min_counts, a.max_counts) == (b.min_counts, b.max_counts)


# --- one scoring path (issue 12, item 1) ---------------------------------------------------------


def test_the_verifier_scores_through_metricseg_metrics(monkeypatch):
    import metricseg.metrics as metrics
    import metricseg.theory._scores as scores

    seen = []

    def spy(tp, fp, fn, metric, **kw):
        seen.append((metric, kw.get("alpha"), kw.get("beta")))
        return metrics.score_from_tp_fp_fn(tp, fp, fn, metric, **kw)

    monkeypatch.setattr(scores, "score_from_tp_fp_fn", spy)
    verify(max_voxels=6, hamming_max_voxels=5, steps=2, restarts=2)
    names = {m for m, _, _ in seen}
    assert names == {"dice", "jaccard", "tversky", "hamming"}
    # the one Tversky parametrisation: alpha on FP, beta = 1 - alpha on FN
    assert {(a, b) for m, a, b in seen if m == "tversky"} == {
        (a, 1 - a) for a in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    }
    # and the values are the metrics' own
    counts = np.array([[2, 1, 3]])
    assert scores.tversky(2, 1, 3, 0.3, 0.7) == metrics.tversky(counts, alpha=0.3, beta=0.7)[0]


def test_hamming_bound_is_met_exactly_not_passed_by_round_off():
    # H is formed as (N - (w_fp f + w_fn n))/N, one rounding for integer counts and weights
    # of 1 or 1/2: the enumeration reaches the attained bound max(w) = 1 exactly (it was
    # 1 + 1.3e-15 with 1 - (...)/N); a weight of 10 still rounds (|H| > 1 there)
    report = verify(max_voxels=10, hamming_max_voxels=40, search=False)
    for w in ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0)):
        r = report.find("(1 − H)/(1 − J)", w_fp=w[0], w_fn=w[1])
        assert r.found_max == r.claim.upper
