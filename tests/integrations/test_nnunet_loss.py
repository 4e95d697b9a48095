"""The nnU-Net loss adapter and the trainers' options — these need no nnU-Net.

Checked against the metricseg losses called directly on the same tensors, and the
ignored voxels of region-based training against an independent computation: cropping
them away instead of masking them.
"""

from __future__ import annotations

import json

import pytest
import torch

from metricseg.integrations.nnunet import (
    TRAINER_LOSSES,
    NnUNetLoss,
    build_nnunet_loss,
    metricseg_options,
    read_loss_options,
    read_schedule,
    trainer_name,
)
from metricseg.integrations.nnunet.options import (
    ENV_EPOCHS,
    ENV_ITERATIONS,
    ENV_LOSS_OPTIONS,
    ENV_LOSS_OPTIONS_FILE,
    ENV_VAL_ITERATIONS,
    Schedule,
)
from metricseg.integrations.nnunet.run import set_environment
from metricseg.losses import available, get

LABEL_LOSSES = [n for n in TRAINER_LOSSES if n != "lovasz_hinge"]
REGION_LOSSES = [n for n in TRAINER_LOSSES if n != "lovasz_softmax"]


def test_one_trainer_per_registered_loss_but_bce():
    assert set(TRAINER_LOSSES) == set(available()) - {"bce"}
    # the nine the issue names, and the Lovász hinge for region-based training
    for name in (
        "soft_dice",
        "soft_jaccard",
        "soft_tversky",
        "generalized_dice",
        "lovasz_softmax",
        "ce",
        "weighted_ce",
        "focal",
        "dice_ce",
        "lovasz_hinge",
    ):
        assert name in TRAINER_LOSSES
        assert trainer_name(name) == f"nnUNetTrainer_metricseg_{name}"
    with pytest.raises(ValueError, match="'bce' has no nnU-Net trainer"):
        trainer_name("bce")


# ----------------------------------------------------------------------------- options


def test_options_from_variable_and_from_file(tmp_path):
    assert read_loss_options("soft_dice", {}) == {}
    env = {ENV_LOSS_OPTIONS: '{"smooth": 1e-5, "classes": "foreground"}'}
    assert read_loss_options("soft_dice", env) == {"smooth": 1e-5, "classes": "foreground"}
    file = tmp_path / "opts.json"
    file.write_text(json.dumps({"alpha": 0.3, "beta": 0.7}))
    assert read_loss_options("soft_tversky", {ENV_LOSS_OPTIONS_FILE: str(file)}) == {
        "alpha": 0.3,
        "beta": 0.7,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {ENV_LOSS_OPTIONS: '{"smoth": 1}'},
            r"unknown option 'smoth' for loss 'soft_dice'.*smooth",
        ),
        ({ENV_LOSS_OPTIONS: '{"activation": "sigmoid"}'}, r"'activation'.*set by the trainer"),
        ({ENV_LOSS_OPTIONS: '{"ignore_index": 4}'}, r"'ignore_index'.*set by the trainer"),
        ({ENV_LOSS_OPTIONS: '{"reduction": "none"}'}, r"needs a scalar"),
        ({ENV_LOSS_OPTIONS: "smooth=1"}, r"METRICSEG_NNUNET_LOSS_OPTIONS must hold a JSON object"),
        ({ENV_LOSS_OPTIONS: "[1, 2]"}, r"must be a JSON object"),
        ({ENV_LOSS_OPTIONS: "{}", ENV_LOSS_OPTIONS_FILE: "x.json"}, r"not both"),
        ({ENV_LOSS_OPTIONS_FILE: "/no/such/options.json"}, r"is not a file"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_the_loss(env, message):
    with pytest.raises((ValueError, TypeError), match=message):
        read_loss_options("soft_dice", env)


def test_an_option_of_another_loss_is_unknown_here():
    with pytest.raises(ValueError, match=r"unknown option 'gamma' for loss 'soft_dice'"):
        read_loss_options("soft_dice", {ENV_LOSS_OPTIONS: '{"gamma": 2}'})
    assert read_loss_options("focal", {ENV_LOSS_OPTIONS: '{"gamma": 2}'}) == {"gamma": 2}


def test_schedule():
    assert read_schedule({}) == Schedule()
    env = {ENV_EPOCHS: "2", ENV_ITERATIONS: "3", ENV_VAL_ITERATIONS: "1"}
    assert read_schedule(env) == Schedule(2, 3, 1)
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=f"{ENV_EPOCHS} must be a positive integer"):
            read_schedule({ENV_EPOCHS: bad})


def test_set_environment_replaces_the_options_file():
    env = {ENV_LOSS_OPTIONS_FILE: "old.json"}
    set_environment("soft_dice", {"smooth": 1.0}, epochs=1, iterations=2, environ=env)
    assert env == {ENV_LOSS_OPTIONS: '{"smooth": 1.0}', ENV_EPOCHS: "1", ENV_ITERATIONS: "2"}
    assert read_loss_options("soft_dice", env) == {"smooth": 1.0}
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        set_environment("soft_dice", None, epochs=0, environ={})


def test_options_the_trainer_sets():
    # label maps: softmax, per image unless batch Dice, the ignore label as ignore_index
    assert metricseg_options("soft_dice", {}, regions=False, ignore_label=3, batch_dice=False) == {
        "activation": "softmax",
        "per_image": True,
        "ignore_index": 3,
    }
    # regions: sigmoid; the ignore label is a mask channel, not an ignore_index
    assert metricseg_options("ce", {}, regions=True, ignore_label=3, batch_dice=True) == {
        "activation": "sigmoid",
        "per_image": False,
    }
    # the Lovász hinge takes no activation; the user may override per_image
    assert metricseg_options(
        "lovasz_hinge", {"per_image": False}, regions=True, ignore_label=None, batch_dice=False
    ) == {"per_image": False}


# ----------------------------------------------------------------------------- adapter


def _labels(shape, num_classes, ignore=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, shape, generator=g).to(torch.int16)
    if ignore is not None:
        labels[torch.rand(shape, generator=g) < 0.2] = ignore
    return labels


@pytest.mark.parametrize("loss", LABEL_LOSSES)
@pytest.mark.parametrize("batch_dice", [True, False])
def test_label_maps_equal_the_metricseg_loss_on_the_same_tensors(loss, batch_dice):
    adapter = build_nnunet_loss(
        loss, {}, regions=False, ignore_label=3, batch_dice=batch_dice, num_outputs=3
    )
    logits = torch.randn(2, 3, 6, 5, 4, generator=torch.Generator().manual_seed(1))
    target = _labels((2, 1, 6, 5, 4), 3, ignore=3)  # nnU-Net's (B, 1, *spatial), int16
    direct = get(loss, activation="softmax", per_image=not batch_dice, ignore_index=3)
    assert torch.equal(adapter(logits, target), direct(logits, target[:, 0].long()))
    # nnU-Net also hands labels over as floats
    assert torch.equal(adapter(logits, target.float()), direct(logits, target[:, 0].long()))


@pytest.mark.parametrize("loss", LABEL_LOSSES)
def test_ignored_voxels_do_not_count(loss):
    adapter = build_nnunet_loss(
        loss, {}, regions=False, ignore_label=3, batch_dice=True, num_outputs=3
    )
    target = _labels((2, 1, 6, 6), 3, ignore=3, seed=2)
    ignored = (target == 3).expand(2, 3, 6, 6)
    logits = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(3), requires_grad=True)
    value = adapter(logits, target)
    value.backward()
    assert bool(torch.isfinite(value))
    assert bool((logits.grad[ignored] == 0).all()) and bool((logits.grad[~ignored] != 0).any())
    other = logits.detach().masked_fill(ignored, 7.0)
    assert torch.allclose(adapter(other, target), value.detach(), rtol=1e-6, atol=1e-7)


def _regions(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < 0.4).to(torch.uint8)


@pytest.mark.parametrize("loss", REGION_LOSSES)
@pytest.mark.parametrize("batch_dice", [True, False])
def test_regions_equal_the_metricseg_loss_with_sigmoid(loss, batch_dice):
    adapter = build_nnunet_loss(
        loss, {}, regions=True, ignore_label=None, batch_dice=batch_dice, num_outputs=2
    )
    logits = torch.randn(3, 2, 5, 6, generator=torch.Generator().manual_seed(4))
    masks = _regions((3, 2, 5, 6), seed=5)
    options = {"per_image": not batch_dice}
    if loss != "lovasz_hinge":
        options["activation"] = "sigmoid"
    assert torch.equal(adapter(logits, masks), get(loss, **options)(logits, masks.float()))


@pytest.mark.parametrize("loss", REGION_LOSSES)
@pytest.mark.parametrize("batch_dice", [True, False])
def test_regions_with_an_ignore_channel_equal_the_loss_on_the_cropped_voxels(loss, batch_dice):
    """The ignored voxels (a slab at the end of the last axis) are left out: the same loss as on
    the tensors cropped to the kept voxels (per image: each image cropped to its own slab)."""
    b, c, h, w = 3, 2, 5, 8
    logits = torch.randn(
        b, c, h, w, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    masks = _regions((b, c, h, w), seed=7)
    keep_width = [8, 5, 3] if not batch_dice else [5, 5, 5]
    ignore = torch.zeros(b, 1, h, w, dtype=torch.uint8)
    for i, k in enumerate(keep_width):
        ignore[i, :, :, k:] = 1
    target = torch.cat([masks, ignore], 1)  # nnU-Net: the ignore mask is the last channel
    adapter = build_nnunet_loss(
        loss, {}, regions=True, ignore_label=3, batch_dice=batch_dice, num_outputs=c
    )
    options = {"per_image": not batch_dice}
    if loss != "lovasz_hinge":
        options["activation"] = "sigmoid"
    direct = get(loss, **options)
    x = logits.clone().requires_grad_(True)
    value = adapter(x, target)
    if batch_dice:
        expected = direct(logits[..., :5], masks[..., :5].double())
    else:
        expected = torch.stack(
            [
                direct(logits[i : i + 1, ..., :k], masks[i : i + 1, ..., :k].double())
                for i, k in enumerate(keep_width)
            ]
        ).mean()
    assert torch.allclose(value, expected, rtol=1e-12, atol=1e-12)
    value.backward()
    assert bool((x.grad[ignore.bool().expand(b, c, h, w)] == 0).all())


def test_region_target_without_its_ignore_channel_is_refused():
    adapter = NnUNetLoss(get("soft_dice", activation="sigmoid"), regions=True, has_ignore=True)
    with pytest.raises(ValueError, match=r"2 region masks \+ 1 ignore mask"):
        adapter(torch.randn(1, 2, 4, 4), _regions((1, 2, 4, 4)))


def test_label_target_with_channels_is_refused():
    adapter = NnUNetLoss(get("soft_dice"), regions=False, has_ignore=False)
    with pytest.raises(ValueError, match=r"label map \(B, 1, \*spatial\)"):
        adapter(torch.randn(1, 3, 4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.long))


@pytest.mark.parametrize(
    ("loss", "regions", "options", "message"),
    [
        ("lovasz_softmax", True, {}, r"lovasz_softmax.*region-based.*use lovasz_hinge"),
        (
            "lovasz_hinge",
            False,
            {},
            r"lovasz_hinge.*label maps \(softmax\), 3 output channels.*lovasz_softmax",
        ),
        (
            "soft_dice",
            False,
            {"class_weights": [1, 1]},
            r"class_weights must hold one weight per class \(3",
        ),
        ("focal", False, {"gamma": -1}, r"gamma must be a finite number >= 0"),
    ],
)
def test_a_loss_that_does_not_fit_the_dataset_fails_before_training(
    loss, regions, options, message
):
    with pytest.raises(ValueError, match=message):
        build_nnunet_loss(
            loss, options, regions=regions, ignore_label=None, batch_dice=True, num_outputs=3
        )


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize(
    ("loss", "regions"), [(n, False) for n in LABEL_LOSSES] + [(n, True) for n in REGION_LOSSES]
)
def test_a_batch_without_labelled_voxels_gives_zero(loss, regions, per_image):
    """Sparse annotations: a patch entirely in the ignored region (some losses would raise)."""
    c = 2 if regions else 3
    adapter = build_nnunet_loss(
        loss, {}, regions=regions, ignore_label=3, batch_dice=not per_image, num_outputs=c
    )
    x = torch.randn(2, c, 4, 4, requires_grad=True)
    if regions:
        target = torch.zeros(2, c + 1, 4, 4, dtype=torch.int16)
        target[:, -1] = 1
    else:
        target = torch.full((2, 1, 4, 4), 3, dtype=torch.int16)
    value = adapter(x, target)
    value.backward()
    assert float(value.detach()) == 0.0 and bool((x.grad == 0).all())


@pytest.mark.parametrize("loss", REGION_LOSSES)
def test_per_image_an_image_without_labelled_voxels_scores_zero(loss):
    adapter = build_nnunet_loss(
        loss, {}, regions=True, ignore_label=3, batch_dice=False, num_outputs=2
    )
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    target = torch.cat(
        [_regions((2, 2, 4, 4), seed=8), torch.zeros(2, 1, 4, 4, dtype=torch.uint8)], 1
    )
    target[1, -1] = 1  # image 1: nothing labelled
    options = {"per_image": True} | ({} if loss == "lovasz_hinge" else {"activation": "sigmoid"})
    first = get(loss, **options)(x[:1], target[:1, :2].double())
    assert torch.allclose(adapter(x, target), first / 2, rtol=1e-12, atol=0)
