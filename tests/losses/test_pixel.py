"""Cross-entropy, weighted cross-entropy and focal loss against torch and hand values."""

import math

import pytest
import torch
import torch.nn.functional as F

from metricseg.losses import (
    FocalLoss,
    class_weights_from_frequencies,
    cross_entropy_loss,
    focal_loss,
    weighted_cross_entropy_loss,
)


@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
def test_cross_entropy_matches_torch_with_weights_and_ignore(spatial):
    logits = torch.randn(2, 4, *spatial, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, *spatial))
    labels.view(-1)[:5] = 255
    w = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    ref = F.cross_entropy(logits, labels, weight=w, ignore_index=255)
    torch.testing.assert_close(
        cross_entropy_loss(logits, labels, class_weights=w, ignore_index=255), ref
    )
    # soft targets: one-hot equals label map; per_image is the mean of single-image calls
    onehot = F.one_hot(labels.clamp_max(3), 4).movedim(-1, 1).double()
    torch.testing.assert_close(
        cross_entropy_loss(logits, onehot), F.cross_entropy(logits, labels.clamp_max(3))
    )
    single = torch.stack(
        [
            cross_entropy_loss(logits[i : i + 1], labels[i : i + 1], ignore_index=255)
            for i in range(2)
        ]
    )
    torch.testing.assert_close(
        cross_entropy_loss(logits, labels, ignore_index=255, per_image=True), single.mean()
    )


def test_sigmoid_cross_entropy_matches_bce_with_logits():
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    masks = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    ref = F.binary_cross_entropy_with_logits(logits, masks)
    torch.testing.assert_close(cross_entropy_loss(logits, masks, activation="sigmoid"), ref)
    labels = torch.randint(0, 2, (2, 4, 4))
    ref = F.binary_cross_entropy_with_logits(logits[:, 0], labels.double())
    torch.testing.assert_close(cross_entropy_loss(logits[:, :1], labels, activation="sigmoid"), ref)


def test_weight_schemes_hand_values():
    f = [0.5, 0.25, 0.25, 0.0]
    torch.testing.assert_close(
        class_weights_from_frequencies(f, "inverse_frequency"),
        torch.tensor([2.0, 4.0, 4.0, 0.0], dtype=torch.float64),
    )
    torch.testing.assert_close(
        class_weights_from_frequencies([2, 1, 1, 0], "inverse_sqrt_frequency"),
        torch.tensor([2**0.5, 2.0, 2.0, 0.0], dtype=torch.float64),
    )
    torch.testing.assert_close(
        class_weights_from_frequencies(f, "median_frequency"),
        torch.tensor([0.5, 1.0, 1.0, 0.0], dtype=torch.float64),
    )
    expected = [1 / math.log(1.02 + p) for p in f]
    torch.testing.assert_close(
        class_weights_from_frequencies(f, "log"), torch.tensor(expected, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="scheme must be one of"):
        class_weights_from_frequencies(f, "inverse")
    with pytest.raises(ValueError, match="not all 0"):
        class_weights_from_frequencies([0, 0], "log")


@pytest.mark.parametrize(
    "scheme", ["inverse_frequency", "inverse_sqrt_frequency", "median_frequency", "log"]
)
def test_weighted_ce_from_batch_and_from_dataset_frequencies(scheme):
    logits = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 6, 6))
    labels[0, 0] = 255
    counts = torch.bincount(labels[labels != 255], minlength=3)
    w = class_weights_from_frequencies(counts, scheme)
    ref = F.cross_entropy(logits, labels, weight=w, ignore_index=255)
    got = weighted_cross_entropy_loss(logits, labels, scheme=scheme, ignore_index=255)
    torch.testing.assert_close(got, ref)
    dataset = [0.7, 0.2, 0.1]
    ref = F.cross_entropy(
        logits, labels, weight=class_weights_from_frequencies(dataset, scheme), ignore_index=255
    )
    got = weighted_cross_entropy_loss(
        logits, labels, scheme=scheme, class_frequencies=dataset, ignore_index=255
    )
    torch.testing.assert_close(got, ref)


def test_weighted_ce_explicit_weights_and_errors():
    logits = torch.randn(2, 3, 4, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 4))
    ref = F.cross_entropy(logits, labels, weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(
        weighted_cross_entropy_loss(logits, labels, scheme=[1.0, 2.0, 3.0]), ref
    )
    with pytest.raises(ValueError, match="one value per class"):
        weighted_cross_entropy_loss(logits, labels, class_frequencies=[0.5, 0.5])


def test_focal_hand_formula_and_gamma_zero_is_ce():
    logits = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 5, 5))
    labels[0, 0, 0] = -100
    alpha = torch.tensor([0.25, 1.0, 2.0, 0.5], dtype=torch.float64)
    keep = labels != -100
    p = torch.softmax(logits, 1).movedim(1, -1)[keep]  # (V, C)
    y = labels[keep]
    py = p[torch.arange(len(y)), y]
    ref = (-alpha[y] * (1 - py) ** 1.5 * torch.log(py)).mean()
    got = focal_loss(logits, labels, gamma=1.5, alpha=alpha, ignore_index=-100)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(
        focal_loss(logits, labels, gamma=0.0, ignore_index=-100),
        F.cross_entropy(logits, labels, ignore_index=-100),
    )


def test_sigmoid_focal_matches_torchvision_formula():
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    masks = (torch.rand(2, 3, 4, 4) > 0.5).double()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    p_t = p * masks + (1 - p) * (1 - masks)
    ref = (ce * (1 - p_t) ** 2 * (0.25 * masks + 0.75 * (1 - masks))).mean()
    got = FocalLoss(activation="sigmoid", alpha=0.25)(logits, masks)
    torch.testing.assert_close(got, ref)
    with pytest.raises(ValueError, match="scalar alpha"):
        focal_loss(logits, masks.long().argmax(1), alpha=0.25)


@pytest.mark.parametrize("spatial", [(3, 4), (2, 3, 2)])
def test_gradcheck(spatial):
    logits = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, *spatial))
    labels.view(-1)[0] = 255
    masks = (torch.rand(2, 3, *spatial) > 0.5).double()
    cases = [
        lambda x: cross_entropy_loss(x, labels, ignore_index=255, class_weights=[1.0, 2.0, 0.5]),
        lambda x: weighted_cross_entropy_loss(
            x, labels, ignore_index=255, scheme="log", per_image=True
        ),
        lambda x: focal_loss(x, labels, ignore_index=255, gamma=2.0, alpha=[1.0, 2.0, 0.5]),
        lambda x: focal_loss(x, masks, activation="sigmoid", gamma=2.0, alpha=0.25),
        lambda x: cross_entropy_loss(x, masks, activation="sigmoid"),
    ]
    for fn in cases:
        assert torch.autograd.gradcheck(fn, (logits,), fast_mode=True)
