"""The training loop: seeded, checkpointed every epoch, resumable to the same result.

One call of :func:`train` fits one network with one loss on one task:

* **seeding** — ``random``, numpy and torch are seeded from ``seed``; batches,
  patches and flips are drawn from generators whose state is saved, so that a
  run resumed from a checkpoint draws exactly what the uninterrupted run draws;
* **mixed precision** on CUDA (bfloat16 where supported, else float16 with a
  ``GradScaler``); float32 on CPU;
* **model selection** on the mean foreground Dice of the validation cases,
  evaluated every epoch; optional early stopping after ``patience`` epochs
  without improvement;
* **checkpoint** ``checkpoint.pt`` written atomically after every epoch (model,
  optimizer, scheduler, scaler, RNG states, epoch, best score and weights,
  history), so ``resume=True`` continues an interrupted run;
* **data parallel** under ``torchrun`` (:mod:`metricseg.train.ddp`): DDP, each
  rank training on its share of every global batch, rank 0 writing the checkpoint.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metricseg.atomic import torch_save_atomic
from metricseg.data.patches import random_patch
from metricseg.data.task import Case, Task
from metricseg.distributed import is_main_process
from metricseg.train import ddp
from metricseg.train.evaluation import foreground_dice
from metricseg.train.inference import predict_labels
from metricseg.train.models import DEFAULT_CHANNELS, build_model, size_divisor

__all__ = [
    "CHECKPOINT_NAME",
    "TrainConfig",
    "TrainResult",
    "class_frequencies",
    "make_loss",
    "seed_everything",
    "train",
]

#: File name of the per-run checkpoint inside the run folder.
CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """Everything that decides a training run besides task, loss and seed.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: images (2D) or patches (3D) per step.
        lr: Adam learning rate (cosine-annealed to zero over ``epochs``).
        weight_decay: Adam weight decay.
        channels: U-Net widths per level (see :func:`build_model`).
        num_res_units: residual units per U-Net block.
        steps_per_epoch: optimiser steps per epoch; ``None`` is one pass over
            the training cases (rounded up to whole batches).
        patch_size: training patch size; ``None`` takes ``task.patch_size``,
            and whole images when that is ``None`` as well.
        foreground_prob: chance that a patch is centred on a foreground voxel.
        augment: random flips along every spatial axis.
        patience: stop after this many epochs without a better validation
            Dice (``None``: never stop early).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        amp: ``"auto"`` (bf16/fp16 on CUDA, off on CPU), ``"bf16"``, ``"fp16"`` or ``"off"``.
        deterministic: ask torch for deterministic algorithms (``warn_only``).
        loss_options: keyword options for the loss constructor.
    """

    epochs: int = 30
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-5
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    num_res_units: int = 1
    steps_per_epoch: int | None = None
    patch_size: tuple[int, ...] | None = None
    foreground_prob: float = 0.33
    augment: bool = True
    patience: int | None = None
    device: str = "cpu"
    amp: str = "auto"
    deterministic: bool = True
    loss_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {self.amp!r}")
        self.channels = tuple(int(c) for c in self.channels)
        if self.patch_size is not None:
            self.patch_size = tuple(int(p) for p in self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["patch_size"] = list(self.patch_size) if self.patch_size else None
        return d


@dataclass
class TrainResult:
    """What :func:`train` returns: the selected model and how it got there."""

    model: torch.nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_dice: float
    epochs_run: int
    seconds: float
    resumed_from_epoch: int = 0


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code draws from the global RNG
    torch.manual_seed(seed)


def class_frequencies(cases: Sequence[Case], num_classes: int) -> list[float]:
    """Voxel frequency of every class over ``cases`` (sums to 1).

    Example:
        >>> import numpy as np
        >>> from metricseg.data.task import Case
        >>> c = Case("a", np.zeros((1, 2, 2), np.float32), np.array([[0, 0], [0, 1]]))
        >>> class_frequencies([c], 3)
        [0.75, 0.25, 0.0]
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for case in cases:
        counts += np.bincount(case.label.reshape(-1), minlength=num_classes)[:num_classes]
    return (counts / max(int(counts.sum()), 1)).tolist()


def make_loss(name: str, task: Task, **options: Any) -> torch.nn.Module:
    """The loss ``name`` from ``metricseg.losses``; ``weighted_ce`` gets the training class frequencies."""
    from metricseg import losses

    if name == "weighted_ce" and "class_frequencies" not in options:
        options["class_frequencies"] = class_frequencies(task.train, task.num_classes)
    return losses.get(name, **options)


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class _BatchSampler:
    """Draws training batches; all randomness comes from two generators whose state is saved."""

    def __init__(self, task: Task, config: TrainConfig, seed: int) -> None:
        self.cases = list(task.train)
        if not self.cases:
            raise ValueError(f"task {task.name!r} has no training cases")
        self.patch = config.patch_size or task.patch_size
        if self.patch is None:
            shapes = {c.label.shape for c in self.cases}
            if len(shapes) > 1:
                raise ValueError(
                    f"task {task.name!r}: training cases differ in shape ({sorted(shapes)[:3]}...); "
                    "set patch_size to train on patches"
                )
            self.images = np.stack([c.image for c in self.cases]).astype(np.float32)
            self.labels = np.stack([c.label for c in self.cases]).astype(np.int64)
        self.config = config
        self.spatial_dims = task.spatial_dims
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.order: list[int] = []

    def steps(self) -> int:
        if self.config.steps_per_epoch is not None:
            return self.config.steps_per_epoch
        return math.ceil(len(self.cases) / self.config.batch_size)

    def _next_indices(self, n: int) -> list[int]:
        out = []
        for _ in range(n):
            if not self.order:
                self.order = self.rng.permutation(len(self.cases)).tolist()
            out.append(self.order.pop())
        return out

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._next_indices(self.config.batch_size)
        if self.patch is None:
            x, y = self.images[idx], self.labels[idx]
        else:
            pairs = [
                random_patch(
                    self.cases[i].image,
                    self.cases[i].label,
                    tuple(self.patch),
                    self.rng,
                    self.config.foreground_prob,
                )
                for i in idx
            ]
            x = np.stack([p[0] for p in pairs]).astype(np.float32)
            y = np.stack([p[1] for p in pairs]).astype(np.int64)
        if self.config.augment:
            flips = self.rng.random(self.spatial_dims) < 0.5
            axes = [a for a, f in enumerate(flips) if f]
            if axes:
                x = np.flip(x, axis=[2 + a for a in axes])
                y = np.flip(y, axis=[1 + a for a in axes])
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "order": list(self.order)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = list(state["order"])


def validation_dice(
    model: torch.nn.Module,
    task: Task,
    cases: Sequence[Case],
    *,
    device: torch.device,
    divisor: int,
    roi_size: Sequence[int] | None,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Mean over ``cases`` of the mean foreground Dice (cases with nothing to score skipped)."""
    scores = []
    for case in cases:
        pred = predict_labels(
            model,
            case.image,
            device=device,
            divisor=divisor,
            roi_size=roi_size,
            autocast_dtype=autocast_dtype,
        )
        d = foreground_dice(pred, case.label, task.num_classes)
        if not math.isnan(d):
            scores.append(d)
    return float(np.mean(scores)) if scores else math.nan


def inference_roi(task: Task, config: TrainConfig) -> tuple[int, ...] | None:
    """Window size for sliding-window inference: the training patch for 3D tasks, else None."""
    patch = config.patch_size or task.patch_size
    return tuple(patch) if (patch is not None and task.spatial_dims == 3) else None


def _progress(total: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def train(
    task: Task,
    loss: str | torch.nn.Module,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train one U-Net on ``task`` with ``loss`` and return the best-validation model.

    Args:
        task: a :class:`~metricseg.data.task.Task`.
        loss: a name for :func:`metricseg.losses.get` (with
            ``config.loss_options``) or a module ``loss(logits, target)`` with
            logits ``(B, C, *spatial)`` and label maps ``(B, *spatial)`` int64.
        config: a :class:`TrainConfig` (defaults if None).
        seed: seeds the weights, the batch order, the patches and the flips.
        out_dir: folder for ``checkpoint.pt`` (written atomically after every
            epoch); None keeps nothing on disk.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists. The run
            then ends exactly as the uninterrupted run would have.
        progress: show a progress bar (None: only when stderr is a terminal).
        on_epoch_end: called as ``on_epoch_end(epoch, record)`` after each
            epoch's checkpoint is written.

    Returns:
        A :class:`TrainResult` whose ``model`` holds the weights of the epoch
        with the best mean foreground validation Dice (the last epoch when the
        task has no validation cases).
    """
    config = config or TrainConfig()
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={config.device!r} but torch sees no CUDA device")
    loss_name = loss if isinstance(loss, str) else type(loss).__name__
    loss_fn = make_loss(loss, task, **config.loss_options) if isinstance(loss, str) else loss
    loss_fn = loss_fn.to(device)

    previous_det = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        seed_everything(seed)
        model = build_model(
            task.spatial_dims,
            task.in_channels,
            task.num_classes,
            channels=config.channels,
            num_res_units=config.num_res_units,
        ).to(device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        amp_dtype = _autocast_dtype(config.amp, device)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        sampler = _BatchSampler(task, config, seed)
        divisor = size_divisor(config.channels)
        roi = inference_roi(task, config)

        identity = {
            "task": task.name,
            "loss": loss_name,
            "seed": seed,
            "config": config.to_dict(),
        }
        start_epoch = 0
        history: list[dict[str, float]] = []
        best = -math.inf
        best_epoch = 0
        best_state: dict[str, torch.Tensor] | None = None
        bad_epochs = 0
        elapsed = 0.0
        ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
        if resume and ckpt_path is not None and ckpt_path.is_file():
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
            if ckpt.get("identity") != identity:
                raise ValueError(
                    f"{ckpt_path} belongs to another run ({ckpt.get('identity')}); "
                    f"this run is {identity}. Remove it or choose another out_dir."
                )
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            sampler.load_state(ckpt["sampler"])
            torch.set_rng_state(ckpt["torch_rng"].cpu())
            if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), device)
            start_epoch = int(ckpt["epoch"])
            history = list(ckpt["history"])
            best, best_epoch = float(ckpt["best"]), int(ckpt["best_epoch"])
            best_state = ckpt["best_model"]
            bad_epochs = int(ckpt["bad_epochs"])
            elapsed = float(ckpt["elapsed"])
        resumed_from = start_epoch
        stopped = bool(history) and config.patience is not None and bad_epochs >= config.patience

        # under torchrun (metricseg.train.ddp) rank 0 alone logs and writes checkpoints
        main = is_main_process()
        net = ddp.wrap_model(model)
        bar = _progress(
            config.epochs, f"{task.name}/{loss_name}/seed{seed}", progress if main else False
        )
        bar.update(start_epoch)
        try:
            for epoch in range(start_epoch, config.epochs):
                if stopped:
                    break
                t0 = time.perf_counter()
                net.train()
                losses = []
                for _ in range(sampler.steps()):
                    x, y = ddp.shard_batch(*sampler.batch())
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(
                        device_type=device.type,
                        dtype=amp_dtype or torch.float32,
                        enabled=amp_dtype is not None,
                    ):
                        logits = net(x)
                    value = loss_fn(logits.float(), y)
                    scaler.scale(value).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    losses.append(float(value.detach()))
                scheduler.step()
                if task.val:
                    val = ddp.mean_over_shards(
                        lambda cases: validation_dice(
                            model,
                            task,
                            cases,
                            device=device,
                            divisor=divisor,
                            roi_size=roi,
                            autocast_dtype=amp_dtype,
                        ),
                        task.val,
                    )
                else:
                    val = math.nan
                score = -math.inf if math.isnan(val) else val
                if score > best or best_state is None or not task.val:
                    best, best_epoch, bad_epochs = score, epoch + 1, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_epochs += 1
                elapsed += time.perf_counter() - t0
                record = {
                    "epoch": epoch + 1,
                    "train_loss": ddp.mean_over_processes(float(np.mean(losses))),
                    "val_dice": val,
                    "lr": float(optimizer.param_groups[0]["lr"]),
                }
                history.append(record)
                if ckpt_path is not None and main:
                    torch_save_atomic(
                        ckpt_path,
                        {
                            "format": _CHECKPOINT_FORMAT,
                            "identity": identity,
                            "epoch": epoch + 1,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(),
                            "sampler": sampler.state(),
                            "torch_rng": torch.get_rng_state(),
                            "cuda_rng": torch.cuda.get_rng_state(device)
                            if device.type == "cuda"
                            else None,
                            "history": history,
                            "best": best,
                            "best_epoch": best_epoch,
                            "best_model": best_state,
                            "bad_epochs": bad_epochs,
                            "elapsed": elapsed,
                        },
                    )
                bar.update(1)
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_dice=f"{val:.3f}")
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, record)
                if config.patience is not None and bad_epochs >= config.patience:
                    stopped = True
        finally:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        return TrainResult(
            model=model,
            history=history,
            best_epoch=best_epoch,
            best_val_dice=best if best > -math.inf else math.nan,
            epochs_run=len(history),
            seconds=elapsed,
            resumed_from_epoch=resumed_from,
        )
    finally:
        torch.use_deterministic_algorithms(previous_det[0], warn_only=previous_det[1])
