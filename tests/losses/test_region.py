"""Soft Dice / Jaccard / Tversky / generalized Dice: hand values, metric equality, MONAI."""

import pytest
import torch
import torch.nn.functional as F

from metricseg.counts import FN, FP, TP, confusion
from metricseg.losses import (
    GeneralizedDiceLoss,
    SoftDiceLoss,
    generalized_dice_loss,
    soft_dice_loss,
    soft_jaccard_loss,
    soft_tversky_loss,
)

REGION = {
    "dice": soft_dice_loss,
    "jaccard": soft_jaccard_loss,
    "tversky": lambda x, t, **kw: soft_tversky_loss(x, t, alpha=0.3, beta=0.7, **kw),
    "generalized_dice": generalized_dice_loss,
}


def _hard_score(counts, kind):
    tp, fp, fn = (counts[..., i].double() for i in (TP, FP, FN))
    if kind == "dice":
        return 2 * tp / (2 * tp + fp + fn)
    if kind == "jaccard":
        return tp / (tp + fp + fn)
    return tp / (tp + 0.3 * fp + 0.7 * fn)


def _every_class_present(b, c, shape):
    labels = torch.randint(0, c, (b, *shape))
    labels.view(b, -1)[:, :c] = torch.arange(c)  # each image holds each class
    return labels


@pytest.mark.parametrize("kind", ["dice", "jaccard", "tversky"])
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("spatial", [(7, 9), (4, 5, 6)])
def test_one_minus_loss_is_the_hard_metric(kind, per_image, spatial):
    b, c = 3, 4
    target = _every_class_present(b, c, spatial)
    pred = _every_class_present(b, c, spatial)
    probs = F.one_hot(pred, c).movedim(-1, 1).double()
    loss = REGION[kind](probs, target, activation=None, smooth=0.0, per_image=per_image)
    counts = confusion(pred, target, c, per_image=per_image)
    metric = _hard_score(counts, kind).mean(-1).mean()
    torch.testing.assert_close(1 - loss, metric)


@pytest.mark.parametrize("kind", ["dice", "jaccard", "tversky"])
def test_one_minus_loss_equals_metricseg_metrics(kind):
    metrics = pytest.importorskip("metricseg.metrics")
    b, c = 2, 3
    target = _every_class_present(b, c, (6, 5, 4))
    pred = _every_class_present(b, c, (6, 5, 4))
    probs = F.one_hot(pred, c).movedim(-1, 1).double()
    loss = REGION[kind](
        probs, target, activation=None, smooth=0.0, per_image=True, reduction="none"
    )
    if kind == "tversky":
        score = metrics.tversky(pred, target, alpha=0.3, beta=0.7, num_classes=c)
    else:
        score = getattr(metrics, kind)(pred, target, num_classes=c)
    torch.testing.assert_close(1 - loss, score.mean(-1))


@pytest.mark.parametrize("kind", list(REGION))
@pytest.mark.parametrize("classes", ["all", "present", "foreground", [0, 2]])
def test_per_image_equals_mean_of_single_image_calls(kind, classes):
    logits = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 5, 6))
    target[1] = target[1].clamp_max(1)  # image 1 lacks classes 2 and 3
    kw = {"classes": classes, "per_image": True, "ignore_index": 255}
    target[0, 0, :3] = 255
    batch = REGION[kind](logits, target, **kw)
    single = torch.stack(
        [REGION[kind](logits[i : i + 1], target[i : i + 1], **kw) for i in range(3)]
    )
    torch.testing.assert_close(batch, single.mean())
    none = REGION[kind](logits, target, reduction="none", **kw)
    torch.testing.assert_close(none, single)


def test_hand_values_dice_jaccard_tversky_with_smooth():
    probs = torch.tensor([[[0.9, 0.2, 0.0], [0.1, 0.8, 1.0]]], dtype=torch.float64)
    target = torch.tensor([[0, 1, 1]])
    # class 0: TP 0.9 FP 0.2 FN 0.1; class 1: TP 1.8 FP 0.1 FN 0.2
    s = 1.0
    d0, d1 = (1.8 + s) / (1.8 + 0.3 + s), (3.6 + s) / (3.6 + 0.3 + s)
    got = soft_dice_loss(probs, target, activation=None, smooth=s)
    torch.testing.assert_close(got, torch.tensor(1 - (d0 + d1) / 2, dtype=torch.float64))
    j0, j1 = (0.9 + s) / (1.2 + s), (1.8 + s) / (2.1 + s)
    got = soft_jaccard_loss(probs, target, activation=None, smooth=s, log_loss=True)
    expected = -(torch.log(torch.tensor(j0)) + torch.log(torch.tensor(j1))) / 2
    torch.testing.assert_close(got.float(), expected.float())
    t0 = 0.9 / (0.9 + 0.2 * 0.2 + 0.8 * 0.1)
    t1 = 1.8 / (1.8 + 0.2 * 0.1 + 0.8 * 0.2)
    got = soft_tversky_loss(probs, target, activation=None, alpha=0.2, beta=0.8, smooth=0.0)
    torch.testing.assert_close(got, torch.tensor(1 - (t0 + t1) / 2, dtype=torch.float64))


def test_squared_denominator_and_class_weights():
    probs = torch.tensor([[[0.9, 0.2, 0.0], [0.1, 0.8, 1.0]]], dtype=torch.float64)
    target = torch.tensor([[0, 1, 1]])
    # Milletari: 2 Σpt / (Σp² + Σt²)
    d0 = 2 * 0.9 / (0.81 + 0.04 + 0.0 + 1)
    d1 = 2 * 1.8 / (0.01 + 0.64 + 1.0 + 2)
    got = soft_dice_loss(
        probs, target, activation=None, smooth=0.0, squared=True, class_weights=[1.0, 3.0]
    )
    torch.testing.assert_close(got, torch.tensor(1 - (d0 + 3 * d1) / 4, dtype=torch.float64))


def test_tversky_half_half_is_dice_and_one_one_is_jaccard():
    logits = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 8, 8))
    kw = {"smooth": 0.0, "per_image": True}
    torch.testing.assert_close(
        soft_tversky_loss(logits, target, alpha=0.5, beta=0.5, **kw),
        soft_dice_loss(logits, target, **kw),
    )
    torch.testing.assert_close(
        soft_tversky_loss(logits, target, alpha=1, beta=1, **kw),
        soft_jaccard_loss(logits, target, **kw),
    )


@pytest.mark.parametrize("kind", list(REGION))
def test_label_map_equals_one_hot_target_and_ignore_equals_dropping_voxels(kind):
    logits = torch.randn(2, 3, 10, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 10))
    onehot = F.one_hot(target, 3).movedim(-1, 1).double()
    torch.testing.assert_close(REGION[kind](logits, target), REGION[kind](logits, onehot))
    target_ign = target.clone()
    target_ign[:, 7:] = -1
    dropped = REGION[kind](logits[..., :7], target[:, :7])
    torch.testing.assert_close(REGION[kind](logits, target_ign, ignore_index=-1), dropped)


def test_absent_class_never_gives_nan_or_inf():
    logits = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(2, 6, 6, dtype=torch.long)  # only class 0
    for fn in REGION.values():
        for smooth in (0.0, 1e-5):
            for log_loss in (False, True):
                loss = fn(logits, target, smooth=smooth, log_loss=log_loss)
                (grad,) = torch.autograd.grad(loss, logits)
                assert torch.isfinite(loss) and torch.isfinite(grad).all()
    # GDL: absent class takes the largest finite weight -> its FP still counts
    probs = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    only0 = torch.tensor([[0, 0, 0]])
    # w0 = 1/9, w1 := 1/9; GD = 2*(2/9) / ((1/9)(4 + 1) + (1/9)*1)
    got = generalized_dice_loss(probs, only0, activation=None, smooth=0.0)
    torch.testing.assert_close(got, torch.tensor(1 - 4 / 6, dtype=torch.float64))


def test_empty_in_target_and_prediction_scores_one_with_smooth_zero():
    probs = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)
    target = torch.tensor([[0, 0]])
    assert float(soft_dice_loss(probs, target, activation=None, smooth=0.0)) == 0.0


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("batch", [True, False])
def test_cross_check_against_monai(per_image, batch):
    monai_losses = pytest.importorskip("monai.losses")
    if per_image == batch:
        return
    logits = torch.randn(2, 4, 6, 7, 5, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 6, 7, 5))
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=batch)(
        logits, target[:, None]
    )
    torch.testing.assert_close(soft_dice_loss(logits, target, per_image=per_image), ref)
    ref = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, batch=batch)(
        logits, target[:, None]
    )
    torch.testing.assert_close(generalized_dice_loss(logits, target, per_image=per_image), ref)
    ref = monai_losses.TverskyLoss(
        softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, batch=batch
    )(logits, target[:, None])
    got = soft_tversky_loss(logits, target, alpha=0.3, beta=0.7, per_image=per_image)
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("kind", list(REGION))
@pytest.mark.parametrize("spatial", [(3, 4), (2, 3, 2)])
def test_gradcheck(kind, spatial):
    logits = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, *spatial))
    target.view(-1)[0] = 7
    fn = REGION[kind]
    for kw in ({}, {"per_image": True, "squared": True, "ignore_index": 7, "smooth": 0.0},
               {"log_loss": True, "activation": "sigmoid", "ignore_index": 7}):  # fmt: skip
        if "ignore_index" not in kw:
            kw = {**kw, "ignore_index": 7}
        assert torch.autograd.gradcheck(
            lambda x, kw=kw: fn(x, target, **kw), (logits,), fast_mode=True
        )
    # soft targets: gradients for both (GDL's weights come from the target without gradient);
    # a softmax needs a class distribution per voxel, a sigmoid takes any values in [0, 1]
    grad_t = kind != "generalized_dice"
    soft = torch.rand(2, 3, *spatial, dtype=torch.float64)
    dist = (soft / soft.sum(1, keepdim=True)).requires_grad_(grad_t)
    assert torch.autograd.gradcheck(lambda x, t: fn(x, t), (logits, dist), fast_mode=True)
    soft.requires_grad_(grad_t)
    assert torch.autograd.gradcheck(
        lambda x, t: fn(x, t, activation="sigmoid"), (logits, soft), fast_mode=True
    )


def test_modules_and_input_errors():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    assert torch.isclose(
        SoftDiceLoss(smooth=0.0)(logits, target), soft_dice_loss(logits, target, smooth=0.0)
    )
    assert "weight_type='simple'" in repr(GeneralizedDiceLoss(weight_type="simple"))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'smoth'"):
        SoftDiceLoss(smoth=1.0)
    with pytest.raises(ValueError, match="label 3, outside"):
        soft_dice_loss(logits, target + 1)
    with pytest.raises(TypeError, match="integer dtype"):
        soft_dice_loss(logits, target.float())
    with pytest.raises(ValueError, match=r"\(B, \*spatial\)"):
        soft_dice_loss(logits, target[:, :3])
    with pytest.raises(ValueError, match="ignore_index=1 lies inside the class range"):
        soft_dice_loss(logits, target, ignore_index=1)
    with pytest.raises(ValueError, match="activation must be one of"):
        soft_dice_loss(logits, target, activation="relu")
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        soft_dice_loss(logits, target, activation=None)
    with pytest.raises(ValueError, match="class_weights must hold one weight per class"):
        soft_dice_loss(logits, target, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="classes holds \\[5\\]"):
        soft_dice_loss(logits, target, classes=[0, 5])
    with pytest.raises(ValueError, match="reduction must be one of"):
        soft_dice_loss(logits, target, reduction="avg")
    with pytest.raises(TypeError, match="floating point"):
        soft_dice_loss(target, target)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_fused_softmax_counts_equal_soft_counts_of_softmax(squared, ignore, monkeypatch):
    import metricseg.losses._softmax_counts as fused
    from metricseg.counts import soft_counts
    from metricseg.losses.region import _softmax_label_counts

    monkeypatch.setattr(fused, "_CHUNK_ELEMENTS", 64)  # 8 chunks of 10 voxels, a ragged last one
    monkeypatch.setattr(fused, "_MIN_STEP", 8)
    assert len(fused._chunks(77, 2, 3)) == 8
    logits = torch.randn(2, 3, 7, 11, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 7, 11))
    if ignore:
        labels[0, :3] = 255
    ref = soft_counts(
        torch.softmax(logits, 1), labels, ignore_index=255 if ignore else None, squared=squared
    )
    got = _softmax_label_counts(logits, labels, 255 if ignore else None, squared)
    torch.testing.assert_close(got, ref)
    weights = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), logits)
    (g_got,) = torch.autograd.grad((got * weights).sum(), logits, retain_graph=True)
    torch.testing.assert_close(g_got, g_ref)
    # a second backward through the same graph recomputes the probabilities it consumed
    (g_again,) = torch.autograd.grad((got * weights).sum(), logits)
    torch.testing.assert_close(g_again, g_ref)
    buffers = []
    real_input_sized = fused._input_sized
    monkeypatch.setattr(
        fused, "_input_sized", lambda t: buffers.append(t.shape) or real_input_sized(t)
    )
    with torch.no_grad():  # no gradient: no input-sized buffer, the same counts
        torch.testing.assert_close(
            _softmax_label_counts(logits, labels, 255 if ignore else None, squared), ref
        )
    assert buffers == []
    _softmax_label_counts(logits, labels, 255 if ignore else None, squared)
    assert buffers == [logits.reshape(2, 3, -1).shape]


def test_fused_path_refuses_a_second_derivative():
    """The fused backward is not itself differentiable: double backward raises, not a partial
    Hessian (soft Dice has curvature in the probabilities)."""
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 6, 6))
    (grad,) = torch.autograd.grad(soft_dice_loss(logits, target), logits, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


# --- generalized Dice: the weight of an absent class (issue 11, item 13) ----------------------


def _gdl_example():
    # 4x4, three classes: class 1 is absent from the target but predicted with some mass;
    # the background (4 voxels) is smaller than class 2 (12), so its weight is the largest
    target = torch.tensor(
        [[[2, 2, 2, 2], [2, 0, 0, 2], [2, 0, 0, 2], [2, 2, 2, 2]]], dtype=torch.long
    )
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 3, 4, 4, dtype=torch.float64, generator=g)
    logits[:, 1] += 1.0
    return logits, target


def test_gdl_absent_class_takes_the_largest_weight_over_the_classes_in_the_loss():
    logits, target = _gdl_example()
    probs = torch.softmax(logits, 1)
    # by hand, classes 1 and 2: w2 = 1/12^2; class 1 absent takes w2 (not background's 1/4^2)
    p, t = probs[0, 1:].reshape(2, -1), torch.stack([target == 1, target == 2]).reshape(2, -1)
    tp = (p * t).sum(1)
    den = (p + t).sum(1)
    w = torch.tensor([1 / 144, 1 / 144], dtype=torch.float64)
    want = 1 - (2 * (w * tp).sum() + 1e-5) / ((w * den).sum() + 1e-5)
    got = generalized_dice_loss(logits, target, classes="foreground")
    torch.testing.assert_close(got, want)
    # before: class 1 took the background's weight 1/4^2, the largest of all classes
    w_old = torch.tensor([1 / 16, 1 / 144], dtype=torch.float64)
    old = 1 - (2 * (w_old * tp).sum() + 1e-5) / ((w_old * den).sum() + 1e-5)
    assert abs(float(old) - float(got)) > 0.05


@pytest.mark.parametrize("per_image", [True, False])
def test_gdl_foreground_matches_monai_without_background(per_image):
    monai_losses = pytest.importorskip("monai.losses")
    logits, target = _gdl_example()
    logits2, target2 = torch.randn(2, 3, 4, 4, dtype=torch.float64), target.repeat(2, 1, 1)
    target2[1] = torch.randint(0, 2, (4, 4))  # image 2: class 2 absent
    for x, y in ((logits, target), (logits2, target2)):
        ref = monai_losses.GeneralizedDiceLoss(
            include_background=False, softmax=True, to_onehot_y=True, batch=not per_image
        )(x, y[:, None])
        got = generalized_dice_loss(x, y, classes="foreground", per_image=per_image)
        torch.testing.assert_close(got, ref)


def test_gdl_image_without_foreground_gives_zero_with_no_gradient():
    # decided and documented: no selected class in the target -> no weight -> loss 0, no
    # gradient (as MONAI); before, it saturated near 1 (0.99975) with almost no gradient
    logits = torch.randn(1, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(1, 64, 64, dtype=torch.long)
    loss = generalized_dice_loss(logits, target, classes="foreground", per_image=True)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == 0.0 and grad.abs().max().item() == 0.0
    monai_losses = pytest.importorskip("monai.losses")
    ref = monai_losses.GeneralizedDiceLoss(include_background=False, softmax=True, to_onehot_y=True)
    assert ref(logits, target[:, None]).item() == pytest.approx(0.0, abs=1e-12)
    # in a batch pooled with an image that has foreground, its false positives count
    both = torch.stack([target[0], torch.ones(64, 64, dtype=torch.long)])
    x2 = torch.randn(2, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    (g2,) = torch.autograd.grad(
        generalized_dice_loss(x2, both, classes="foreground", per_image=False), x2
    )
    assert float(g2[0].abs().max()) > 0
