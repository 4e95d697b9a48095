"""Half precision, autocast and extreme logits: finite values, float32 results."""

import pytest
import torch

import metricseg.losses as L

MULTICLASS = ["soft_dice", "soft_jaccard", "soft_tversky", "generalized_dice", "lovasz_softmax",
              "ce", "weighted_ce", "focal", "dice_ce"]  # fmt: skip


def _binary_losses():
    return {
        "lovasz_hinge": L.get("lovasz_hinge"),
        "bce": L.get("bce"),
        "sigmoid_focal": L.get("focal", activation="sigmoid", alpha=0.25),
        "sigmoid_dice": L.get("soft_dice", activation="sigmoid"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_and_autocast_equal_float32_on_96_cubed(half):
    logits = torch.randn(1, 3, 96, 96, 96)
    labels = torch.randint(0, 3, (1, 96, 96, 96))
    losses = {name: L.get(name) for name in MULTICLASS}
    binary = (labels == 1).long()
    for name, loss in {**losses, **_binary_losses()}.items():
        x = logits[:, :1] if name in _binary_losses() else logits
        y = binary if name in _binary_losses() else labels
        ref = loss(x, y)
        direct = loss(x.to(half), y)
        with torch.autocast("cpu", dtype=half):
            autocast_half = loss(x.to(half), y)
            autocast_float = loss(x, y)
        for got in (direct, autocast_half, autocast_float):
            assert got.dtype == torch.float32, name
            assert torch.isfinite(got), name
            assert abs(float(got) - float(ref)) < 1e-3, (name, float(got), float(ref))


@pytest.mark.parametrize("name", MULTICLASS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_give_finite_values_and_gradients(name, dtype):
    logits = (torch.randint(0, 2, (2, 3, 6, 5)).float() * 2 - 1) * 1e4
    logits = logits.to(dtype).requires_grad_()
    labels = torch.randint(0, 3, (2, 6, 5))
    labels[0, 0, 0] = 255
    loss = L.get(name, ignore_index=255)(logits, labels)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad.float()).all()
    assert grad.dtype == dtype


@pytest.mark.parametrize("name", list(_binary_losses()))
def test_extreme_logits_binary(name):
    logits = ((torch.randint(0, 2, (2, 1, 6, 5)).float() * 2 - 1) * 1e4).requires_grad_()
    labels = torch.randint(0, 2, (2, 6, 5))
    loss = _binary_losses()[name](logits, labels)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
