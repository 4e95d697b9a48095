"""metricseg.metrics: hand-derived scores, empty-mask rules, a loop reference, identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metricseg.counts import confusion
from metricseg.metrics import (
    aggregate,
    dice,
    hamming,
    jaccard,
    precision,
    score_from_counts,
    sensitivity,
    tversky,
)

nan = float("nan")


def loop_scores(pred, gt, c, metric, ignore_index=None, alpha=0.5, beta=0.5, w_fp=1.0, w_fn=1.0):
    """Slow obvious reference: loop over images and classes with numpy masks and plain floats."""
    out = np.empty((pred.shape[0], c))
    for b in range(pred.shape[0]):
        keep = np.ones(gt[b].shape, bool) if ignore_index is None else gt[b] != ignore_index
        n = int(keep.sum())
        for k in range(c):
            p, t = (pred[b] == k) & keep, (gt[b] == k) & keep
            tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
            if tp == fp == fn == 0:
                out[b, k] = nan
                continue
            den = {
                "dice": 2 * tp + fp + fn,
                "jaccard": tp + fp + fn,
                "tversky": tp + alpha * fp + beta * fn,
                "sensitivity": tp + fn,
                "precision": tp + fp,
            }
            if metric == "hamming":
                out[b, k] = 1 - (w_fp * fp + w_fn * fn) / n
            else:
                num = 2 * tp if metric == "dice" else tp
                out[b, k] = num / den[metric] if den[metric] else 0.0
    return out


def test_hand_derived_2d_binary():
    gt = np.array([[[0, 1, 1], [0, 1, 0]]])  # 3 foreground voxels
    pred = np.array([[[1, 1, 1], [0, 0, 0]]])  # TP 2, FP 1, FN 1
    assert dice(pred, gt, num_classes=2)[0, 1] == pytest.approx(4 / 6)
    assert jaccard(pred, gt, num_classes=2)[0, 1] == pytest.approx(2 / 4)
    assert sensitivity(pred, gt, num_classes=2)[0, 1] == pytest.approx(2 / 3)
    assert precision(pred, gt, num_classes=2)[0, 1] == pytest.approx(2 / 3)
    assert tversky(pred, gt, num_classes=2, alpha=0.2, beta=0.8)[0, 1] == pytest.approx(2 / 3)
    assert hamming(pred, gt, num_classes=2, w_fp=3.0, w_fn=1.0)[0, 1] == pytest.approx(1 - 4 / 6)
    # background: TP 2, FP 1, FN 1 as well
    assert dice(pred, gt, num_classes=2)[0, 0] == pytest.approx(4 / 6)


def test_hand_derived_3d_multiclass_with_ignore_index():
    gt = np.zeros((1, 2, 2, 3), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[0, 0, 0] = [1, 1, 2]
    pred[0, 0, 0] = [1, 2, 2]
    gt[0, 1, 1] = [255, 255, 255]  # ignored: whatever pred says there is not counted
    pred[0, 1, 1] = [1, 2, 0]
    d = dice(pred, gt, num_classes=3, ignore_index=255)
    # class 0: TP 6 FP 0 FN 0; class 1: TP 1 FN 1; class 2: TP 1 FP 1
    np.testing.assert_allclose(d, [[1.0, 2 / 3, 2 / 3]])
    h = hamming(pred, gt, num_classes=3, ignore_index=255)  # N = 12 - 3 = 9
    np.testing.assert_allclose(h, [[1.0, 1 - 1 / 9, 1 - 1 / 9]])


def test_empty_rules():
    # one image, classes: 1 both empty, 2 target empty only, 3 prediction empty only
    pred = np.array([[0, 2, 2, 0]])
    gt = np.array([[0, 0, 3, 3]])
    for fn_ in (dice, jaccard, sensitivity, precision, tversky):
        s = fn_(pred, gt, num_classes=4)
        assert math.isnan(s[0, 1]), fn_.__name__
        assert s[0, 2] == 0.0 and s[0, 3] == 0.0, fn_.__name__
        assert fn_(pred, gt, num_classes=4, empty="one")[0, 1] == 1.0
        assert fn_(pred, gt, num_classes=4, empty="zero")[0, 1] == 0.0
    # hamming follows the same empty policy; one-sided cases are plain numbers
    h = hamming(pred, gt, num_classes=4)
    assert math.isnan(h[0, 1]) and h[0, 2] == 0.5 and h[0, 3] == 0.5


def test_reduction_and_include_background():
    pred = np.array([[0, 1, 1, 0], [0, 0, 0, 0]])
    gt = np.array([[0, 1, 0, 0], [0, 0, 0, 0]])
    d = dice(pred, gt, num_classes=2)
    np.testing.assert_allclose(d, [[0.8, 2 / 3], [1.0, nan]])
    assert dice(pred, gt, num_classes=2, include_background=False).shape == (2, 1)
    # macro: class 0 mean (0.8 + 1)/2 = 0.9, class 1: 2/3 (image 2 is NaN, left out)
    assert dice(pred, gt, num_classes=2, reduction="mean") == pytest.approx((0.9 + 2 / 3) / 2)
    assert dice(pred, gt, num_classes=2, reduction="sum") == pytest.approx(0.8 + 2 / 3 + 1.0)


@pytest.mark.parametrize(
    "metric", ["dice", "jaccard", "tversky", "hamming", "sensitivity", "precision"]
)
def test_loop_reference_small(metric):
    rng = np.random.default_rng(11)
    pred = rng.integers(0, 6, (3, 7, 8, 5))
    gt = np.where(rng.random(pred.shape) < 0.5, pred, rng.integers(0, 6, pred.shape))
    gt[rng.random(gt.shape) < 0.1] = 99
    pred[pred == 5] = 0  # class 5 never predicted
    params = {"alpha": 0.3, "beta": 0.7} if metric == "tversky" else {}
    if metric == "hamming":
        params = {"w_fp": 0.25, "w_fn": 2.0}
    fn_ = {
        "dice": dice, "jaccard": jaccard, "tversky": tversky, "hamming": hamming,
        "sensitivity": sensitivity, "precision": precision,
    }[metric]  # fmt: skip
    got = fn_(pred, gt, num_classes=6, ignore_index=99, **params)
    want = loop_scores(pred, gt, 6, metric, ignore_index=99, **params)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


@pytest.mark.slow
def test_loop_reference_random_volumes():
    rng = np.random.default_rng(5)
    for trial in range(3):
        c = int(rng.integers(2, 10))
        pred = rng.integers(0, c, (2, 40, 40, 40))
        gt = np.where(rng.random(pred.shape) < 0.6, pred, rng.integers(0, c, pred.shape))
        if trial == 2:
            # the last class absent from both everywhere: NaN in every image
            pred[pred == c - 1] = 0
            gt[gt == c - 1] = 0
        for metric, fn_ in (("dice", dice), ("jaccard", jaccard), ("hamming", hamming)):
            np.testing.assert_allclose(
                fn_(pred, gt, num_classes=c), loop_scores(pred, gt, c, metric), equal_nan=True
            )


def test_jaccard_is_dice_over_two_minus_dice():
    rng = np.random.default_rng(2)
    pred = rng.integers(0, 5, (4, 16, 16))
    gt = np.where(rng.random(pred.shape) < 0.4, pred, rng.integers(0, 5, pred.shape))
    d = dice(pred, gt, num_classes=5)
    j = jaccard(pred, gt, num_classes=5)
    np.testing.assert_allclose(j, d / (2 - d), rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)),
        min_size=1,
        max_size=8,
    )
)
def test_identities_on_counts(triples):
    counts = np.array(triples, dtype=np.int64)
    d = score_from_counts(counts, "dice")
    j = score_from_counts(counts, "jaccard")
    np.testing.assert_allclose(j, d / (2 - d), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(score_from_counts(counts, "tversky"), d, equal_nan=True)
    np.testing.assert_allclose(
        score_from_counts(counts, "tversky", alpha=1, beta=1), j, equal_nan=True
    )
    assert np.array_equal(np.isnan(d), (counts == 0).all(1))
    # Dice is the harmonic mean of sensitivity and precision where both are positive
    s, p = score_from_counts(counts, "sensitivity"), score_from_counts(counts, "precision")
    pos = counts[:, 0] > 0
    np.testing.assert_allclose(d[pos], 2 * s[pos] * p[pos] / (s[pos] + p[pos]), rtol=1e-12)


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 4, (2, 6, 7, 3))
    gt = rng.integers(0, 4, (2, 6, 7, 3))
    for fn_ in (dice, jaccard, tversky, hamming, sensitivity, precision):
        a = fn_(pred, gt, num_classes=4)
        b = fn_(torch.from_numpy(pred), torch.from_numpy(gt), num_classes=4)
        assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
        assert b.dtype == torch.float64 and a.dtype == np.float64
        np.testing.assert_array_equal(a, b.numpy())
        # counts input gives the same numbers as label maps
        np.testing.assert_array_equal(fn_(confusion(pred, gt, 4)), a)


def test_perfect_prediction_and_class_permutation():
    rng = np.random.default_rng(8)
    gt = rng.integers(0, 4, (2, 10, 10))
    d = dice(gt, gt, num_classes=4)
    assert np.all((d == 1) | np.isnan(d))
    pred = rng.integers(0, 4, gt.shape)
    perm = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(
        dice(perm[pred], perm[gt], num_classes=4)[:, perm], dice(pred, gt, num_classes=4)
    )


def test_mask_stacks_and_hamming_voxels():
    pred = np.zeros((1, 2, 4), bool)
    gt = np.zeros((1, 2, 4), bool)
    pred[0, 0, :2] = True
    gt[0, 0, 1:3] = True
    pred[0, 1, 3] = True
    gt[0, 1, 3] = True
    np.testing.assert_allclose(dice(pred, gt), [[0.5, 1.0]])
    np.testing.assert_allclose(hamming(pred, gt), [[0.5, 1.0]])  # N = 4 voxels
    counts = confusion(pred, gt, 2)
    np.testing.assert_allclose(hamming(counts, num_voxels=np.array([4])), [[0.5, 1.0]])


def test_monai_dice_agrees_where_defined():
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(9)
    pred = torch.from_numpy(rng.integers(0, 3, (2, 8, 8)))
    gt = torch.from_numpy(rng.integers(0, 3, (2, 8, 8)))
    oh = lambda x: torch.nn.functional.one_hot(x, 3).permute(0, 3, 1, 2).float()  # noqa: E731
    ref = monai_metrics.DiceMetric(include_background=True, reduction="none")(oh(pred), oh(gt))
    np.testing.assert_allclose(
        dice(pred, gt, num_classes=3).numpy(), ref.double().numpy(), rtol=1e-6
    )


def test_aggregate_matches_definitions():
    rng = np.random.default_rng(6)
    counts = rng.integers(0, 20, (5, 4, 3))
    counts[1, 2] = 0  # one empty case
    s = score_from_counts(counts, "dice")
    per_class = np.array([np.nanmean(s[:, k]) for k in range(4)])
    np.testing.assert_allclose(aggregate(counts, "dice", average="class"), per_class)
    assert aggregate(counts, "dice", average="macro") == pytest.approx(per_class.mean())
    pooled = counts.sum(1)
    micro = np.mean([2 * t / (2 * t + f + n) for t, f, n in pooled])
    assert aggregate(counts, "dice", average="micro") == pytest.approx(micro)
    g = counts.sum(0)
    gc = np.array([2 * t / (2 * t + f + n) for t, f, n in g])
    np.testing.assert_allclose(aggregate(counts, "dice", average="global_class"), gc)
    assert aggregate(counts, "dice", average="global", classes=[1, 3]) == pytest.approx(
        gc[[1, 3]].mean()
    )


def test_bad_input_messages():
    ok = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="num_classes is required"):
        dice(ok, ok)
    with pytest.raises(ValueError, match=r"empty must be one of .* got 'maybe'"):
        dice(ok, ok, num_classes=2, empty="maybe")
    with pytest.raises(ValueError, match="reduction must be one of"):
        dice(ok, ok, num_classes=2, reduction="avg")
    with pytest.raises(ValueError, match=r"shape \(B, C, 3\) or \(C, 3\)"):
        dice(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0, got -1"):
        tversky(np.ones((1, 2, 3)), alpha=-1)
    with pytest.raises(ValueError, match="metric must be one of"):
        score_from_counts(np.ones((2, 3)), "f1")
    with pytest.raises(ValueError, match="average must be one of"):
        aggregate(np.ones((1, 2, 3)), "dice", average="weighted")


# --- one rule for ignore_index (issue 11, item 12) ------------------------------------------


def test_ignore_index_that_is_a_class_is_refused_everywhere():
    from metricseg.metrics import MetricAccumulator

    gt = np.array([[0, 1, 2, 2]])
    pred = np.array([[0, 1, 1, 2]])
    # before: accepted, dropping class 2's voxels and halving the macro Dice
    with pytest.raises(
        ValueError, match=r"ignore_index=2 lies inside the class range.*include_background"
    ):
        dice(pred, gt, num_classes=3, ignore_index=2)
    with pytest.raises(ValueError, match="ignore_index=1 lies inside"):
        MetricAccumulator(3, ignore_index=1)
    with pytest.raises(ValueError, match="applies to label maps"):
        dice(confusion(pred, gt, 3), ignore_index=255)


def test_ignore_index_minus_one_in_signed_ground_truth():
    from metricseg.metrics import MetricAccumulator

    gt = np.array([[0, 1, -1, 2, -1, 1]], dtype=np.int16)
    pred = np.array([[0, 1, 2, 2, 0, 0]], dtype=np.int16)
    kept = np.array([0, 1, 3, 5])
    np.testing.assert_array_equal(
        dice(pred, gt, num_classes=3, ignore_index=-1),
        dice(pred[:, kept], gt[:, kept], num_classes=3),
    )
    # kept: gt (0, 1, 2, 1), pred (0, 1, 2, 0); N = 4 voxels, not 6
    np.testing.assert_allclose(hamming(pred, gt, num_classes=3, ignore_index=-1), [[0.75, 0.75, 1]])
    acc = MetricAccumulator(3, ignore_index=-1)
    acc.update(pred, gt)
    np.testing.assert_allclose(acc.compute().per_class["dice"], [2 / 3, 2 / 3, 1.0])


# --- one division rule (issue 12, item 1) ------------------------------------------------------


def test_safe_divide_policies_and_gradients():
    from metricseg.metrics import safe_divide

    num = torch.tensor([1.0, 0.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    den = torch.tensor([4.0, 0.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    for policy, value in (("zero", 0.0), ("one", 1.0)):
        out = safe_divide(num, den, zero_division=policy)
        torch.testing.assert_close(
            out, torch.tensor([0.25, value, value, 1.5], dtype=torch.float64)
        )
    out = safe_divide(num, den, zero_division="nan")
    assert out[0] == 0.25 and out[1:3].isnan().all()
    # no inf or NaN reaches the gradient where the denominator is 0
    g_num, g_den = torch.autograd.grad(safe_divide(num, den, zero_division="one").sum(), (num, den))
    torch.testing.assert_close(g_num, torch.tensor([0.25, 0, 0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(g_den, torch.tensor([-1 / 16, 0, 0, -0.75], dtype=torch.float64))
    # numpy in, numpy out, without a warning
    with np.errstate(all="raise"):
        got = safe_divide(np.array([1.0, 1.0]), np.array([2.0, 0.0]), zero_division="zero")
    assert got.tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="zero_division must be one of"):
        safe_divide(num, den, zero_division="inf")


def test_metrics_and_region_losses_divide_by_the_one_helper(monkeypatch):
    import metricseg.metrics as metrics_mod
    from metricseg.losses import soft_dice_loss

    calls = []
    real = metrics_mod.safe_divide

    def spy(num, den, *, zero_division):
        calls.append(zero_division)
        return real(num, den, zero_division=zero_division)

    monkeypatch.setattr(metrics_mod, "safe_divide", spy)
    import metricseg.losses.region as region_mod

    monkeypatch.setattr(region_mod, "safe_divide", spy)
    score_from_counts(np.array([[1, 2, 3]]), "dice")
    assert calls == ["zero"]
    soft_dice_loss(torch.rand(1, 2, 4), torch.tensor([[0, 1, 1, 0]]), smooth=0.0)
    assert calls[1] == "one"


def test_score_from_tp_fp_fn_equals_score_from_counts():
    from metricseg.metrics import METRICS, score_from_tp_fp_fn

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, (50, 3)).astype(np.float64)
    counts[0] = 0
    for metric in METRICS:
        kw = {"num_voxels": np.full(50, 20.0)} if metric == "hamming" else {}
        want = score_from_counts(counts, metric, alpha=0.3, beta=0.7, w_fp=2.0, **kw)
        got = score_from_tp_fp_fn(*counts.T, metric, alpha=0.3, beta=0.7, w_fp=2.0, **kw)
        np.testing.assert_array_equal(got, want)  # numpy path, bit for bit
        got_t = score_from_tp_fp_fn(*torch.from_numpy(counts).T, metric, alpha=0.3, beta=0.7,
                                    w_fp=2.0, **kw)  # fmt: skip
        np.testing.assert_array_equal(got_t.numpy(), want)


def test_public_metrics_are_plain_functions_with_their_own_docstrings():
    import inspect

    for fn in (dice, jaccard, sensitivity, precision, tversky, hamming):
        assert inspect.isfunction(fn) and fn.__module__ == "metricseg.metrics"
        assert "{shared}" not in fn.__doc__ and "Example:" in fn.__doc__
        assert fn.__code__.co_name == fn.__name__  # defined by `def`, not built by a factory
        params = inspect.signature(fn).parameters
        assert params["empty"].annotation == "EmptyPolicy"
        assert params["reduction"].annotation == "Reduction"
