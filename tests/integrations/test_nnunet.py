"""The nnU-Net trainers, one per metricseg loss (need ``pip install 'metricseg[nnunet]'``).

Each trainer is created as nnU-Net creates it (plans, configuration, fold, dataset.json),
its loss taken from ``_build_loss`` exactly as nnU-Net's ``initialize`` does, and checked
on nnU-Net's own network with deep supervision: the value equals the metricseg loss
called directly on the same tensors with nnU-Net's weights, the lowest scale gets no
gradient, ignored voxels get none either, and a few optimisation steps lower the loss.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys

import pytest
import torch

if importlib.util.find_spec("nnunetv2") is None and os.environ.get("CI") != "true":
    pytest.skip(
        "nnunetv2 is not installed (pip install 'metricseg[nnunet]'); CI=true makes this an error",
        allow_module_level=True,
    )

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from metricseg.integrations.nnunet import TRAINER_LOSSES, trainer_name
from metricseg.integrations.nnunet.options import ENV_EPOCHS, ENV_ITERATIONS, ENV_LOSS_OPTIONS
from metricseg.integrations.nnunet.trainers import TRAINERS, MetricsegTrainer, make_trainer
from metricseg.losses import get

LABEL_LOSSES = [n for n in TRAINER_LOSSES if n != "lovasz_hinge"]
REGION_LOSSES = [n for n in TRAINER_LOSSES if n != "lovasz_softmax"]

#: the 3d_fullres plans nnU-Net made for a 32³ demo dataset, with narrow stages so the
#: network trains quickly here; 4 stages -> 3 deep-supervision outputs
PLANS = {
    "dataset_name": "Dataset901_MetricsegDemo",
    "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
    "original_median_shape_after_transp": [16, 16, 16],
    "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2],
    "transpose_backward": [0, 1, 2],
    "configurations": {
        "3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2,
            "patch_size": [16, 16, 16],
            "median_image_size_in_voxels": [16.0, 16.0, 16.0],
            "spacing": [1.0, 1.0, 1.0],
            "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {
                "is_seg": False,
                "order": 3,
                "order_z": 0,
                "force_separate_z": None,
            },
            "resampling_fn_seg_kwargs": {
                "is_seg": True,
                "order": 1,
                "order_z": 0,
                "force_separate_z": None,
            },
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {
                "is_seg": False,
                "order": 1,
                "order_z": 0,
                "force_separate_z": None,
            },
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": 4,
                    "features_per_stage": [4, 8, 16, 16],
                    "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * 4,
                    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                    "n_conv_per_stage": [1, 1, 1, 1],
                    "n_conv_per_stage_decoder": [1, 1, 1],
                    "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                    "dropout_op": None,
                    "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
            "batch_dice": True,
        }
    },
    "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {},
}
#: nnU-Net's Primus trainers: they import timm, which imports torchvision
PRIMUS = "nnunetv2.training.nnUNetTrainer.primus.primus_trainers"
#: nnU-Net's weights for 3 outputs: 1, 1/2, 1/4 with the last set to 0, normalised
DS_WEIGHTS = (2 / 3, 1 / 3, 0.0)


def _dataset_json(regions: bool, ignore: bool) -> dict:
    labels: dict = (
        {"background": 0, "whole": [1, 2], "small": 2}
        if regions
        else {"background": 0, "large": 1, "small": 2}
    )
    if ignore:
        labels["ignore"] = 3
    meta = {
        "channel_names": {"0": "demo"},
        "labels": labels,
        "numTraining": 6,
        "file_ending": ".nii.gz",
    }
    if regions:
        meta["regions_class_order"] = [1, 2]
    return meta


@pytest.fixture(autouse=True)
def one_thread():
    # small convolutions: one thread is many times faster than two on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch):
    for name in ("raw", "preprocessed", "results"):
        monkeypatch.setenv(f"nnUNet_{name}", str(tmp_path / name))
    for name in (ENV_LOSS_OPTIONS, ENV_EPOCHS, ENV_ITERATIONS):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _trainer(loss: str, *, regions: bool = False, ignore: bool = False, batch_dice: bool = True):
    plans = copy.deepcopy(PLANS)
    plans["configurations"]["3d_fullres"]["batch_dice"] = batch_dice
    plans["continue_training"] = False
    return TRAINERS[trainer_name(loss)](
        plans, "3d_fullres", 0, _dataset_json(regions, ignore), device=torch.device("cpu")
    )


def _network(trainer: nnUNetTrainer) -> torch.nn.Module:
    torch.manual_seed(0)
    return trainer.build_network_architecture(
        trainer.plans_manager,
        trainer.configuration_manager,
        1,
        trainer.label_manager.num_segmentation_heads,
        enable_deep_supervision=True,
    )


def _balls(batch: int = 2, size: int = 16) -> torch.Tensor:
    """Label maps (B, 1, s, s, s): a large ball (1) with a small ball (2) beside it."""
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij")
    )
    labels = torch.zeros(batch, 1, size, size, size, dtype=torch.int16)
    for b in range(batch):
        c1 = torch.tensor([6.0 + b, 7.0, 8.0]).view(3, 1, 1, 1)
        c2 = torch.tensor([11.0, 10.0 - b, 5.0]).view(3, 1, 1, 1)
        labels[b, 0][((grid - c1) ** 2).sum(0) <= 16] = 1
        labels[b, 0][((grid - c2) ** 2).sum(0) <= 5] = 2
    return labels


def _scales(labels: torch.Tensor, ignore_slab: bool) -> list[torch.Tensor]:
    """nnU-Net's deep-supervision targets (nearest-exact downsampling, as its transform)."""
    if ignore_slab:
        labels = labels.clone()
        labels[..., :3] = 3
    out = []
    for s in (1, 2, 4):
        size = labels.shape[-1] // s
        out.append(
            torch.nn.functional.interpolate(
                labels.float(), size=[size] * 3, mode="nearest-exact"
            ).to(labels.dtype)
        )
    return out


def _regions_target(labels: torch.Tensor, ignore: bool) -> torch.Tensor:
    """nnU-Net's region target: masks of (1 or 2) and of 2, then the ignore mask."""
    masks = [((labels == 1) | (labels == 2)), labels == 2]
    if ignore:
        masks.append(labels == 3)
    return torch.cat(masks, 1).to(torch.int16)


def _inputs(labels: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return labels.float() + 0.3 * torch.randn(labels.shape, generator=g)


def _targets(labels: list[torch.Tensor], regions: bool, ignore: bool) -> list[torch.Tensor]:
    return [_regions_target(t, ignore) if regions else t for t in labels]


def _direct(loss: str, trainer: MetricsegTrainer, regions: bool, ignore: bool):
    """The metricseg loss as a user would call it on these tensors, with the trainer's settings."""
    options = {"per_image": not trainer.configuration_manager.batch_dice}
    if loss != "lovasz_hinge":
        options["activation"] = "sigmoid" if regions else "softmax"
    if ignore and not regions:
        options["ignore_index"] = 3
    return get(loss, **options)


MODES = [(loss, False) for loss in LABEL_LOSSES] + [(loss, True) for loss in REGION_LOSSES]


def _id(mode):
    return f"{mode[0]}-{'regions' if mode[1] else 'labels'}"


def test_one_class_per_loss_made_by_the_factory():
    assert len(TRAINERS) == len(TRAINER_LOSSES) == 10
    for loss in TRAINER_LOSSES:
        cls = TRAINERS[trainer_name(loss)]
        assert issubclass(cls, MetricsegTrainer) and issubclass(cls, nnUNetTrainer)
        assert cls.__name__ == cls.__qualname__ == trainer_name(loss)
        assert cls.metricseg_loss == loss
        # importable under its name, from the package and from nnU-Net's ext-trainer module
        import metricseg.integrations.nnunet as pkg
        from metricseg.integrations.nnunet.ext_trainers import metricseg_nnunet_trainers as ext

        assert getattr(pkg, cls.__name__) is cls and getattr(ext, cls.__name__) is cls
    assert make_trainer("soft_dice").metricseg_loss == "soft_dice"


def test_nnunets_trainer_lookup_finds_the_trainers_through_nnUNet_extTrainer(monkeypatch):
    """nnU-Net's own lookup (used by nnUNetv2_train and nnUNetv2_predict), with the one setting."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from metricseg.integrations.nnunet import ext_trainer_path

    _without_primus_if_torchvision_is_broken(monkeypatch)
    monkeypatch.setenv("nnUNet_extTrainer", str(ext_trainer_path()))
    cls = recursive_find_trainer_class_by_name("nnUNetTrainer_metricseg_lovasz_softmax")
    assert cls is TRAINERS["nnUNetTrainer_metricseg_lovasz_softmax"]
    # nnU-Net removes the modules it imported from the folder again
    assert "metricseg_nnunet_trainers" not in sys.modules
    monkeypatch.delenv("nnUNet_extTrainer")
    with pytest.raises(RuntimeError, match="nnUNet_extTrainer"):
        recursive_find_trainer_class_by_name("nnUNetTrainer_metricseg_lovasz_softmax")


def _without_primus_if_torchvision_is_broken(monkeypatch) -> None:
    """nnU-Net's lookup imports its Primus trainers, which need timm and so torchvision.

    Where torchvision cannot be imported (PyPI's CUDA build beside a CPU torch), mark that
    one nnU-Net module as absent, as Python does for a module set to None in sys.modules;
    nnU-Net's lookup skips a module that cannot be imported under its own name.
    """
    try:
        import dynamic_network_architectures.architectures.primus  # noqa: F401
    except Exception:
        monkeypatch.setitem(sys.modules, PRIMUS, None)


@pytest.mark.parametrize("mode", MODES, ids=_id)
def test_loss_equals_the_metricseg_loss_with_nnunets_deep_supervision_weights(nnunet_env, mode):
    loss, regions = mode
    trainer = _trainer(loss, regions=regions, batch_dice=loss != "dice_ce")
    built = trainer._build_loss()
    assert isinstance(built, DeepSupervisionWrapper)
    assert built.weight_factors == pytest.approx(DS_WEIGHTS, abs=1e-12)
    labels = _balls()
    outputs = [o.detach().requires_grad_(True) for o in _network(trainer)(_inputs(labels))]
    assert [tuple(o.shape[2:]) for o in outputs] == [(16,) * 3, (8,) * 3, (4,) * 3]
    targets = _targets(_scales(labels, ignore_slab=False), regions, ignore=False)
    value = built(outputs, targets)
    direct = _direct(loss, trainer, regions, ignore=False)
    expected = sum(
        w * direct(o.detach(), t.float() if regions else t[:, 0].long())
        for w, o, t in zip(DS_WEIGHTS, outputs, targets)
        if w
    )
    assert bool(torch.isfinite(value))
    assert torch.allclose(value.detach(), expected, rtol=1e-6, atol=1e-7)
    value.backward()
    # the lowest scale has weight 0: nnU-Net's wrapper leaves it out
    assert outputs[2].grad is None
    assert bool((outputs[0].grad != 0).any()) and bool((outputs[1].grad != 0).any())


@pytest.mark.parametrize("mode", MODES, ids=_id)
def test_ignore_label_is_respected(nnunet_env, mode):
    loss, regions = mode
    trainer = _trainer(loss, regions=regions, ignore=True, batch_dice=False)
    assert trainer.label_manager.ignore_label == 3
    built = trainer._build_loss()
    labels = _balls()
    outputs = [o.detach().requires_grad_(True) for o in _network(trainer)(_inputs(labels))]
    targets = _targets(_scales(labels, ignore_slab=True), regions, ignore=True)
    value = built(outputs, targets)
    value.backward()
    for o, t in zip(outputs[:2], targets[:2]):
        ignored = (t[:, -1:] == 1) if regions else (t == 3)
        ignored = ignored.expand_as(o)
        assert bool(ignored.any())
        assert bool((o.grad[ignored] == 0).all()), "an ignored voxel got a gradient"
    # other logits at the ignored voxels give the same loss
    changed = [
        o.detach().masked_fill(((t[:, -1:] == 1) if regions else (t == 3)).expand_as(o), 5.0)
        for o, t in zip(outputs, targets)
    ]
    assert torch.allclose(built(changed, targets), value.detach(), rtol=1e-6, atol=1e-7)
    if not regions:  # label maps: exactly the metricseg loss with ignore_index
        direct = _direct(loss, trainer, regions, ignore=True)
        expected = sum(
            w * direct(o.detach(), t[:, 0].long())
            for w, o, t in zip(DS_WEIGHTS, outputs, targets)
            if w
        )
        assert torch.allclose(value.detach(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", MODES, ids=_id)
def test_a_few_steps_lower_the_loss(nnunet_env, mode):
    loss, regions = mode
    trainer = _trainer(loss, regions=regions)
    built = trainer._build_loss()
    network = _network(trainer)
    labels = _balls()
    x = _inputs(labels)
    targets = _targets(_scales(labels, ignore_slab=False), regions, ignore=False)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-2)
    values = []
    for _ in range(8):
        optimiser.zero_grad()
        value = built(network(x), targets)
        value.backward()
        optimiser.step()
        values.append(float(value.detach()))
    assert all(torch.isfinite(torch.tensor(values)))
    assert values[-1] < values[0], values


def test_batch_dice_of_the_plans_sets_per_image(nnunet_env):
    assert (
        _trainer("soft_dice", batch_dice=True)._build_loss().loss.loss.options["per_image"] is False
    )
    assert (
        _trainer("soft_dice", batch_dice=False)._build_loss().loss.loss.options["per_image"] is True
    )


def test_options_and_schedule_from_the_environment(nnunet_env, monkeypatch):
    monkeypatch.setenv(ENV_LOSS_OPTIONS, '{"alpha": 0.3, "beta": 0.7, "per_image": true}')
    monkeypatch.setenv(ENV_EPOCHS, "2")
    monkeypatch.setenv(ENV_ITERATIONS, "3")
    trainer = _trainer("soft_tversky", batch_dice=True)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch) == (2, 3)
    assert trainer.num_val_iterations_per_epoch == 50  # nnU-Net's, not set
    options = trainer._build_loss().loss.loss.options  # every option of the module, defaults too
    given = {k: options[k] for k in ("activation", "per_image", "alpha", "beta")}
    assert given == {"activation": "softmax", "per_image": True, "alpha": 0.3, "beta": 0.7}
    monkeypatch.setenv(ENV_LOSS_OPTIONS, '{"gama": 2}')
    with pytest.raises(ValueError, match=r"unknown option 'gama' for loss 'focal'"):
        _trainer("focal")


def test_a_loss_that_cannot_do_the_dataset_fails_in_build_loss(nnunet_env):
    with pytest.raises(ValueError, match=r"'lovasz_softmax'.*region-based.*lovasz_hinge"):
        _trainer("lovasz_softmax", regions=True)._build_loss()


def test_resume_reads_the_checkpoint_weights_only(nnunet_env, monkeypatch, tmp_path):
    """--c: a checkpoint nnU-Net wrote comes back whole, read with weights_only=True."""
    import numpy as np

    # initialize() only looks at the file endings of the preprocessed data
    data = nnunet_env / "preprocessed" / PLANS["dataset_name"] / "nnUNetPlans_3d_fullres"
    data.mkdir(parents=True)
    (data / "demo_000.b2nd").write_bytes(b"")
    saved = _trainer("soft_dice")
    saved.initialize()
    saved.current_epoch = 4  # nnU-Net stores the next epoch: 5
    for epoch in range(5):
        saved.logger.log("train_losses", np.float32(0.5 - epoch / 10), epoch)
        saved.logger.log("mean_fg_dice", np.float64(epoch / 10), epoch)
    saved._best_ema = np.float64(0.25)
    path = tmp_path / "checkpoint_latest.pth"
    saved.save_checkpoint(str(path))

    seen = []
    real_load = torch.load

    def load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    resumed = _trainer("soft_dice")
    resumed.load_checkpoint(str(path))
    assert seen == [True]
    assert resumed.current_epoch == 5 and float(resumed._best_ema) == 0.25
    logged = resumed.logger.get_checkpoint()
    assert [float(v) for v in logged["train_losses"]] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    for (name, a), b in zip(
        saved.network.state_dict().items(), resumed.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert (
        resumed.optimizer.state_dict()["param_groups"]
        == saved.optimizer.state_dict()["param_groups"]
    )
