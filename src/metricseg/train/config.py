"""Every option of a training run besides task, loss and seed, validated at construction."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from metricseg.train.models import DEFAULT_CHANNELS

__all__ = ["AMP_MODES", "TrainConfig"]

#: Values of :attr:`TrainConfig.amp`.
AMP_MODES = ("auto", "bf16", "fp16", "off")


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _number(name: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0) or value != value:
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _sizes(name: str, value: Any, *, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of ints, got {value!r}")
    out = tuple(value)
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in out):
        raise ValueError(f"{name} must be a non-empty list of ints >= {minimum}, got {value!r}")
    return out


@dataclass
class TrainConfig:
    """Everything that decides a training run besides task, loss and seed.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: images, patches or slices per step.
        lr: Adam learning rate (cosine-annealed to zero over ``epochs``).
        weight_decay: Adam weight decay.
        channels: U-Net widths per level (see :func:`~metricseg.train.models.build_model`).
        num_res_units: residual units per U-Net block.
        steps_per_epoch: optimiser steps per epoch; ``None`` is one pass over
            the training cases (rounded up to whole batches).
        patch_size: training patch size; ``None`` takes ``task.patch_size``
            (for 2D slices of 3D cases: its last two sizes), and whole images
            when that is ``None`` as well.
        network_dims: spatial dims of the network; ``None`` is the task's. ``2``
            on a 3D task trains a 2D network on axial slices (axis 0 of
            ``(z, y, x)``) and predicts a volume slice by slice, stacked back
            ("train in 2D, score in 3D").
        foreground_prob: chance that a patch (or a slice) is centred on a
            foreground voxel (contains foreground).
        augment: random flips along every spatial axis.
        patience: stop after this many epochs without a better validation
            Dice (``None``: never stop early).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        amp: ``"auto"`` (bf16/fp16 on CUDA, off on CPU), ``"bf16"``, ``"fp16"`` or ``"off"``.
        deterministic: ask torch for deterministic algorithms (``warn_only``).
        loss_options: keyword options for the loss constructor.

    Example:
        >>> TrainConfig(epochs=5, channels=[8, 16]).channels
        (8, 16)
        >>> TrainConfig(epochs=0)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an int >= 1, got 0
    """

    epochs: int = 30
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-5
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    num_res_units: int = 1
    steps_per_epoch: int | None = None
    patch_size: tuple[int, ...] | None = None
    network_dims: int | None = None
    foreground_prob: float = 0.33
    augment: bool = True
    patience: int | None = None
    device: str = "cpu"
    amp: str = "auto"
    deterministic: bool = True
    loss_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.epochs = _int("epochs", self.epochs, 1)
        self.batch_size = _int("batch_size", self.batch_size, 1)
        self.lr = _number("lr", self.lr, positive=True)
        self.weight_decay = _number("weight_decay", self.weight_decay, positive=False)
        self.channels = _sizes("channels", self.channels)
        if len(self.channels) < 2:
            raise ValueError(f"channels must list >= 2 widths, got {list(self.channels)}")
        self.num_res_units = _int("num_res_units", self.num_res_units, 0)
        if self.steps_per_epoch is not None:
            self.steps_per_epoch = _int("steps_per_epoch", self.steps_per_epoch, 1)
        if self.patch_size is not None:
            self.patch_size = _sizes("patch_size", self.patch_size)
        if self.network_dims not in (None, 2, 3):
            raise ValueError(f"network_dims must be None, 2 or 3, got {self.network_dims!r}")
        prob = _number("foreground_prob", self.foreground_prob, positive=False)
        if prob > 1:
            raise ValueError(f"foreground_prob must be in [0, 1], got {self.foreground_prob!r}")
        if self.patience is not None:
            self.patience = _int("patience", self.patience, 1)
        for name in ("augment", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a string like 'cpu' or 'cuda:0', got {self.device!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if not isinstance(self.loss_options, dict):
            raise ValueError(f"loss_options must be a table of options, got {self.loss_options!r}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TrainConfig:
        """Build from a study file's table, naming unknown keys.

        Example:
            >>> TrainConfig.from_options({"epochs": 3}).epochs
            3
            >>> TrainConfig.from_options({"epoch": 3})
            Traceback (most recent call last):
            ...
            ValueError: unknown training option(s) ['epoch']; expected some of ['amp', 'augment', 'batch_size', 'channels', 'deterministic', 'device', 'epochs', 'foreground_prob', 'loss_options', 'lr', 'network_dims', 'num_res_units', 'patch_size', 'patience', 'steps_per_epoch', 'weight_decay']
        """
        if not isinstance(options, dict):
            raise ValueError(f"training options must be a table, got {options!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown training option(s) {unknown}; expected some of {sorted(known)}"
            )
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["patch_size"] = list(self.patch_size) if self.patch_size else None
        return d
