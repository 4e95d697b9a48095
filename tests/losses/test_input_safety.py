"""Inputs every loss refuses with a clear error (issue 11, items 7, 8, 9 and 12).

Each case here returned a plausible number (or an unclear crash) before: 0/255 masks
gave focal -278810, one-hot targets ×255 negative losses, C = 1 with softmax a loss
and gradient of 0, an empty image a loss of 0, numpy targets an AttributeError.
"""

import numpy as np
import pytest
import torch

import metricseg.losses as L

#: every multi-class (softmax) loss, functional form
SOFTMAX = {
    "soft_dice": L.soft_dice_loss,
    "soft_jaccard": L.soft_jaccard_loss,
    "soft_tversky": L.soft_tversky_loss,
    "generalized_dice": L.generalized_dice_loss,
    "lovasz_softmax": L.lovasz_softmax_loss,
    "ce": L.cross_entropy_loss,
    "weighted_ce": L.weighted_cross_entropy_loss,
    "focal": L.focal_loss,
    "dice_ce": lambda x, t, **kw: L.get("dice_ce", **kw)(x, t),
}
#: losses that score sigmoid channels against dense (mask) targets
SIGMOID = {
    "soft_dice": L.soft_dice_loss,
    "soft_jaccard": L.soft_jaccard_loss,
    "generalized_dice": L.generalized_dice_loss,
    "ce": L.cross_entropy_loss,
    "focal": L.focal_loss,
    "lovasz_hinge": lambda x, t, activation="sigmoid", **kw: L.lovasz_hinge_loss(x, t, **kw),
}
ALL = {**SOFTMAX, "lovasz_hinge": L.lovasz_hinge_loss}


def one_hot(labels: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, c).movedim(-1, 1).to(torch.float64)


def _inputs(c: int = 3, shape=(2, 4, 5)):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape[0], c, *shape[1:], dtype=torch.float64, generator=g)
    labels = torch.randint(0, c, shape, generator=g)
    return logits, labels


# --- item 7: dense targets outside [0, 1], and softmax targets that are no distribution ---


@pytest.mark.parametrize("name", list(SOFTMAX))
def test_one_hot_times_255_is_refused_with_the_fix(name):
    logits, labels = _inputs()
    target = one_hot(labels, 3) * 255
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*divide by 255"):
        SOFTMAX[name](logits, target)


@pytest.mark.parametrize("name", list(SIGMOID))
def test_0_255_masks_are_refused_for_sigmoid_losses(name):
    # the case: focal(activation="sigmoid") gave -278810 on 0/255 masks
    logits, labels = _inputs(c=2)
    masks = one_hot(labels, 2) * 255
    with pytest.raises(ValueError, match="divide by 255"):
        SIGMOID[name](logits, masks, activation="sigmoid")


@pytest.mark.parametrize("name", list(SOFTMAX))
def test_negative_dense_targets_are_refused(name):
    logits, labels = _inputs()
    target = one_hot(labels, 3)
    target[0, 0, 0, 0] = -0.5
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got values from -0.5"):
        SOFTMAX[name](logits, target)


@pytest.mark.parametrize("name", [n for n in SOFTMAX if n != "lovasz_softmax"])
def test_softmax_needs_targets_that_sum_to_one_over_classes(name):
    logits, labels = _inputs()
    multi = one_hot(labels, 3)
    multi[:, 1] = 1.0  # every voxel also labelled 1: two labels per voxel
    with pytest.raises(ValueError, match="must sum to 1 over the classes"):
        SOFTMAX[name](logits, multi)
    partial = one_hot(labels, 3)
    partial[0, :, 0, 0] = 0.0  # an unlabelled voxel
    with pytest.raises(ValueError, match="must sum to 1 over the classes"):
        SOFTMAX[name](logits, partial)
    # soft labels that are class distributions are fine (label smoothing)
    smooth = 0.9 * one_hot(labels, 3) + 0.1 / 3
    assert torch.isfinite(SOFTMAX[name](logits, smooth))


def test_lovasz_softmax_needs_an_exact_one_hot_target():
    logits, labels = _inputs()
    smooth = 0.9 * one_hot(labels, 3) + 0.1 / 3
    with pytest.raises(ValueError, match="must be one-hot"):
        L.lovasz_softmax_loss(logits, smooth)


@pytest.mark.parametrize("name", ["soft_dice", "soft_jaccard", "generalized_dice", "ce", "focal"])
def test_sigmoid_takes_multi_label_and_soft_targets(name):
    logits, _ = _inputs()
    g = torch.Generator().manual_seed(1)
    soft = torch.rand(logits.shape, dtype=torch.float64, generator=g)  # sums are anything
    assert torch.isfinite(SIGMOID[name](logits, soft, activation="sigmoid"))
    assert torch.isfinite(SIGMOID[name](logits, (soft > 0.3).double(), activation="sigmoid"))


def test_sum_to_one_is_checked_within_a_tolerance_for_half_precision_labels():
    logits, labels = _inputs()
    smooth = (0.9 * one_hot(labels, 3) + 0.1 / 3).half()  # sums off by ~1e-4
    assert torch.isfinite(L.soft_dice_loss(logits, smooth))


def test_dense_nan_is_refused():
    logits, labels = _inputs()
    target = one_hot(labels, 3)
    target[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        L.cross_entropy_loss(logits, target)


# --- item 8: C = 1 with softmax ------------------------------------------------------------


@pytest.mark.parametrize("name", list(SOFTMAX))
def test_one_channel_softmax_is_refused_pointing_to_sigmoid(name):
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"C = 1 channel.*activation='sigmoid'"):
        SOFTMAX[name](logits, labels)


def test_one_channel_sigmoid_still_works():
    logits = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (2, 4, 4))
    for fn in (L.soft_dice_loss, L.cross_entropy_loss, L.focal_loss):
        loss = fn(logits, labels, activation="sigmoid")
        (grad,) = torch.autograd.grad(loss, logits)
        assert loss > 0 and grad.abs().sum() > 0


# --- item 9: empty inputs and numpy inputs ------------------------------------------------


def _binary_if_hinge(name, logits, labels):
    if name == "lovasz_hinge":
        return logits[:, :1], (labels == 1).long()
    return logits, labels


@pytest.mark.parametrize("name", list(ALL))
def test_zero_spatial_size_is_refused(name):
    logits, labels = _binary_if_hinge(
        name, torch.randn(2, 3, 0, 4), torch.zeros(2, 0, 4, dtype=torch.long)
    )
    with pytest.raises(ValueError, match="spatial size of 0"):
        ALL[name](logits, labels)


@pytest.mark.parametrize("name", list(ALL))
def test_empty_batch_is_refused(name):
    logits, labels = _binary_if_hinge(
        name, torch.randn(0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long)
    )
    with pytest.raises(ValueError, match=r"empty batch \(B = 0"):
        ALL[name](logits, labels)


@pytest.mark.parametrize("name", list(ALL))
def test_numpy_targets_and_logits_are_refused_with_the_fix(name):
    logits, labels = _binary_if_hinge(name, *_inputs())
    with pytest.raises(TypeError, match=r"target must be a torch.Tensor.*torch.from_numpy"):
        ALL[name](logits, labels.numpy())
    with pytest.raises(TypeError, match=r"logits must be a torch.Tensor.*torch.from_numpy"):
        ALL[name](logits.numpy(), labels)


# --- item 12: ignore_index, one rule -------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL))
def test_ignore_index_that_is_a_class_is_refused(name):
    logits, labels = _binary_if_hinge(name, *_inputs())
    with pytest.raises(ValueError, match=r"ignore_index=1 lies inside the class range"):
        ALL[name](logits, labels, ignore_index=1)


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("per_image", [False, True])
def test_ignore_index_minus_one_in_a_signed_label_map_drops_those_voxels(name, per_image):
    logits, labels = _binary_if_hinge(name, *_inputs(shape=(2, 4, 6)))
    marked = labels.clone()
    marked[..., 4:] = -1  # the last two columns of every image are unlabelled
    got = ALL[name](logits, marked, ignore_index=-1, per_image=per_image)
    want = ALL[name](
        logits[..., :4].contiguous(), labels[..., :4].contiguous(), per_image=per_image
    )
    torch.testing.assert_close(got, want)


def test_numpy_label_maps_still_work_in_counts_and_metrics():
    # the refusal is for losses (autograd needs tensors); counts and metrics take numpy
    from metricseg.counts import confusion

    assert confusion(np.array([[0, 1]]), np.array([[0, 1]]), 2).shape == (1, 2, 3)
