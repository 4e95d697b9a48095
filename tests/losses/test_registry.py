"""Registry, compound loss and the ``metricseg losses`` command."""

import json
import math
import subprocess
import sys

import pytest
import torch

import metricseg.losses as L
from metricseg.cli import main

REQUIRED = ["soft_dice", "soft_jaccard", "soft_tversky", "generalized_dice", "lovasz_softmax",
            "lovasz_hinge", "ce", "weighted_ce", "focal", "dice_ce"]  # fmt: skip


@pytest.mark.parametrize("name", REQUIRED)
def test_required_names_train_with_the_trainer_convention(name):
    assert name in L.available()
    opts = {"class_frequencies": [0.5, 0.3, 0.2]} if name == "weighted_ce" else {}
    loss = L.get(name, **opts)
    logits = torch.randn(2, 3, 6, 5, requires_grad=True)
    labels = torch.randint(0, 3, (2, 6, 5))
    if name == "lovasz_hinge":
        logits, labels = logits[:, :1], (labels == 1).long()
    value = loss(logits, labels)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)


def test_get_passes_options_and_rejects_unknown():
    loss = L.get("soft_tversky", alpha=0.2, beta=0.8, smooth=0.0)
    x, y = torch.randn(1, 2, 4, dtype=torch.float64), torch.randint(0, 2, (1, 4))
    torch.testing.assert_close(
        loss(x, y), L.soft_tversky_loss(x, y, alpha=0.2, beta=0.8, smooth=0.0)
    )
    with pytest.raises(ValueError, match=r"unknown loss 'dice'.*soft_dice"):
        L.get("dice")
    with pytest.raises(TypeError, match=r"unknown option.*gama"):
        L.get("focal", gama=2)
    with pytest.raises(TypeError, match=r"unknown option.*gamma"):
        L.get("dice_ce", gamma=2)
    assert L.describe("focal").options["gamma"] == 2.0


def test_dice_ce_is_the_weighted_sum_and_routes_options():
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 5, 5))
    y[0, 0] = 255
    loss = L.get("dice_ce", ignore_index=255, smooth=0.5, dice_weight=2.0, ce_weight=0.5)
    # the Dice term is over the foreground classes by default (as nnU-Net's Dice + CE)
    expected = 2.0 * L.soft_dice_loss(
        x, y, ignore_index=255, smooth=0.5, classes="foreground"
    ) + 0.5 * L.cross_entropy_loss(x, y, ignore_index=255)
    torch.testing.assert_close(loss(x, y), expected)


def test_compound_loss_sequence_form_and_errors():
    x, y = torch.randn(1, 2, 4, dtype=torch.float64), torch.randint(0, 2, (1, 4))
    loss = L.CompoundLoss([(L.soft_jaccard_loss, 3.0), L.FocalLoss()])
    torch.testing.assert_close(loss(x, y), 3 * L.soft_jaccard_loss(x, y) + L.focal_loss(x, y))
    with pytest.raises(ValueError, match="at least one"):
        L.CompoundLoss([])
    with pytest.raises(ValueError, match="not losses"):
        L.CompoundLoss({"a": L.SoftDiceLoss()}, weights={"b": 1.0})


def test_cli_lists_every_loss_with_options(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert f"│ {name} " in out  # a row of the rich table
    assert "per_image=False" in out and "classes='present'" in out
    assert main(["losses", "--json", "soft_tversky"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["options"]["alpha"] == 0.5
    assert main(["losses", "nope"]) == 2


def test_cli_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "metricseg", "losses", "focal"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "│ focal " in out and "gamma=2.0" in out


# --- dice_ce over the foreground, weighted_ce with a foreground weight (issue 13, item 8) ------


def test_dice_ce_takes_its_dice_term_over_the_foreground_by_default():
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 5, 5))
    ce = L.cross_entropy_loss(x, y)
    fg = L.soft_dice_loss(x, y, classes="foreground")
    torch.testing.assert_close(L.get("dice_ce")(x, y), fg + ce)
    assert L.get("dice_ce").terms["dice"].options["classes"] == "foreground"
    # background included on request
    torch.testing.assert_close(L.get("dice_ce", classes="all")(x, y), L.soft_dice_loss(x, y) + ce)
    # sigmoid: every channel is a foreground class
    xs, ys = x[:, :1], (y == 1).long()
    torch.testing.assert_close(
        L.get("dice_ce", activation="sigmoid")(xs, ys),
        L.soft_dice_loss(xs, ys, activation="sigmoid")
        + L.cross_entropy_loss(xs, ys, activation="sigmoid"),
    )


def test_weighted_ce_foreground_weight():
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 6, 5))
    for w in (1.0, 5.0, 50.0):
        got = L.get("weighted_ce", foreground_weight=w)(x, y)
        want = torch.nn.functional.cross_entropy(
            x, y, weight=torch.tensor([1.0, w, w], dtype=torch.float64)
        )
        torch.testing.assert_close(got, want)
    # by hand: two voxels, background (p=1/2) and foreground (p=1/2), weight 4
    x1, y1 = torch.zeros(1, 2, 2, dtype=torch.float64), torch.tensor([[0, 1]])
    torch.testing.assert_close(
        L.weighted_cross_entropy_loss(x1, y1, foreground_weight=4.0),
        torch.tensor((1 * math.log(2) + 4 * math.log(2)) / 5, dtype=torch.float64),
    )
    # the default is still the inverse frequency of the batch
    torch.testing.assert_close(
        L.weighted_cross_entropy_loss(x, y),
        L.weighted_cross_entropy_loss(x, y, scheme="inverse_frequency"),
    )
    with pytest.raises(ValueError, match="excludes scheme"):
        L.get("weighted_ce", foreground_weight=5.0, scheme=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="excludes scheme"):
        L.get("weighted_ce", foreground_weight=5.0, scheme="log")
    with pytest.raises(ValueError, match="class_frequencies would be unused"):
        L.get("weighted_ce", foreground_weight=5.0, class_frequencies=[1, 2, 3])
    with pytest.raises(ValueError, match="foreground_weight must be > 0"):
        L.get("weighted_ce", foreground_weight=0.0)
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        L.get("weighted_ce", foreground_weight=2.0, activation="sigmoid")
