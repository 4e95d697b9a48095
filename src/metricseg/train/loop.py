"""One training run: seeded, checkpointed every epoch, resumable to the same result.

:func:`train` wires the parts, each with one owner:

* :class:`~metricseg.train.config.TrainConfig` — the options;
* :class:`~metricseg.train.sampler.BatchSampler` — batches, all randomness from a
  saved generator, so a resumed run draws what the uninterrupted run draws;
* :mod:`~metricseg.train.checkpoint` — the typed state, saved atomically after every
  epoch and loaded without unpickling;
* :func:`~metricseg.train.step.train_epoch` — one epoch (mixed precision on CUDA:
  bf16 where supported, else fp16 with a ``GradScaler``; float32 on CPU);
* :func:`~metricseg.train.validation.validation_dice` — model selection on the mean
  foreground validation Dice, with optional early stopping;
* :class:`~metricseg.train.predictor.Predictor` — what :func:`train` returns.

Under ``torchrun`` (:mod:`metricseg.train.ddp`) every rank trains on its share of each
global batch and rank 0 alone writes the checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metricseg.data.task import Case, Task
from metricseg.distributed import is_main_process
from metricseg.train import ddp
from metricseg.train.checkpoint import TrainState, load_checkpoint, remove_orphans, save_checkpoint
from metricseg.train.config import TrainConfig
from metricseg.train.models import build_model, size_divisor
from metricseg.train.predictor import Predictor, autocast_dtype
from metricseg.train.sampler import BatchSampler, network_dims, training_patch
from metricseg.train.step import train_epoch
from metricseg.train.validation import validation_dice

__all__ = [
    "TrainResult",
    "class_frequencies",
    "make_loss",
    "make_predictor",
    "seed_everything",
    "train",
]


@dataclass
class TrainResult:
    """What :func:`train` returns: the selected model as a predictor, and how it got there."""

    predictor: Predictor
    history: list[dict[str, float]]
    best_epoch: int
    best_val_dice: float
    epochs_run: int
    seconds: float
    resumed_from_epoch: int = 0

    @property
    def model(self) -> torch.nn.Module:
        """The network with the weights of the selected epoch."""
        return self.predictor.model


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
    """The loss ``name`` from ``metricseg.losses``.

    ``weighted_ce`` with a frequency scheme gets the class frequencies of the training
    cases (once, instead of each batch's); with ``foreground_weight`` or explicit weights it
    needs none.
    """
    from metricseg import losses

    explicit = "foreground_weight" in options or not isinstance(options.get("scheme", ""), str)
    if name == "weighted_ce" and "class_frequencies" not in options and not explicit:
        options["class_frequencies"] = class_frequencies(task.train, task.num_classes)
    return losses.get(name, **options)


def make_predictor(model: torch.nn.Module, task: Task, config: TrainConfig) -> Predictor:
    """The predictor that covers ``task``'s images the way ``model`` was trained."""
    dims = network_dims(task, config)
    patch = training_patch(task, config)
    device = torch.device(config.device)
    return Predictor(
        model,
        network_dims=dims,
        divisor=size_divisor(config.channels),
        roi_size=patch if (patch is not None and dims == 3) else None,
        device=device,
        autocast=autocast_dtype(config.amp, device),
    )


@contextlib.contextmanager
def _determinism(enabled: bool) -> Iterator[None]:
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


class _Run:
    """The parts of one run and the state that moves between epochs."""

    def __init__(self, task: Task, loss_fn: torch.nn.Module, config: TrainConfig, seed: int):
        self.task, self.loss_fn, self.config = task, loss_fn, config
        self.device = torch.device(config.device)
        seed_everything(seed)  # before the network: its initial weights come from the seed
        model = build_model(
            network_dims(task, config),
            task.in_channels,
            task.num_classes,
            channels=config.channels,
            num_res_units=config.num_res_units,
        ).to(self.device)
        self.predictor = make_predictor(model, task, config)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=config.epochs
        )
        self.autocast = autocast_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.sampler = BatchSampler(task, config, seed)
        self.history: list[dict[str, float]] = []
        self.best, self.best_epoch, self.bad_epochs, self.elapsed = -math.inf, 0, 0, 0.0
        self.best_model: dict[str, torch.Tensor] | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.predictor.model

    def restore(self, state: TrainState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.scaler.load_state_dict(state.scaler)
        self.sampler.load_state(state.sampler)
        torch.set_rng_state(state.torch_rng.cpu())
        if self.device.type == "cuda" and state.cuda_rng is not None:
            torch.cuda.set_rng_state(state.cuda_rng.cpu(), self.device)
        self.history = list(state.history)
        self.best, self.best_epoch = float(state.best), int(state.best_epoch)
        self.best_model, self.bad_epochs = state.best_model, int(state.bad_epochs)
        self.elapsed = float(state.elapsed)

    def snapshot(self, identity: dict[str, Any]) -> TrainState:
        cuda = self.device.type == "cuda"
        return TrainState(
            identity=identity,
            epoch=len(self.history),
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            sampler=self.sampler.state(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(self.device) if cuda else None,
            history=self.history,
            best=self.best,
            best_epoch=self.best_epoch,
            best_model=self.best_model,
            bad_epochs=self.bad_epochs,
            elapsed=self.elapsed,
        )

    def stopped(self) -> bool:
        patience = self.config.patience
        return bool(self.history) and patience is not None and self.bad_epochs >= patience

    def epoch(self, net: torch.nn.Module) -> dict[str, float]:
        """Train one epoch, validate, keep the best weights; return the epoch's record."""
        t0 = time.perf_counter()
        loss = train_epoch(
            net,
            self.sampler,
            self.loss_fn,
            self.optimizer,
            self.scaler,
            device=self.device,
            autocast=self.autocast,
        )
        self.scheduler.step()
        val = math.nan
        if self.task.val:
            val = ddp.mean_over_shards(
                lambda cases: validation_dice(self.predictor, cases, self.task.num_classes),
                self.task.val,
            )
        score = -math.inf if math.isnan(val) else val
        if score > self.best or self.best_model is None or not self.task.val:
            self.best, self.best_epoch, self.bad_epochs = score, len(self.history) + 1, 0
            self.best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        self.elapsed += time.perf_counter() - t0
        record = {
            "epoch": len(self.history) + 1,
            "train_loss": loss,
            "val_dice": val,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
        }
        self.history.append(record)
        return record


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
        loss: a name for :func:`metricseg.losses.get` (with ``config.loss_options``) or
            a module ``loss(logits, target)`` with logits ``(B, C, *spatial)`` and label
            maps ``(B, *spatial)`` int64.
        config: a :class:`~metricseg.train.config.TrainConfig` (defaults if None).
        seed: seeds the weights, the batch order, the patches and the flips.
        out_dir: folder for the checkpoint (written atomically after every epoch);
            None keeps nothing on disk. The caller must be the only process using it.
        resume: continue from the checkpoint in ``out_dir`` if there is one; the run
            then ends exactly as the uninterrupted run would have.
        progress: show a progress bar (None: only when stderr is a terminal).
        on_epoch_end: called as ``on_epoch_end(epoch, record)`` after each epoch's
            checkpoint is written.

    Returns:
        A :class:`TrainResult` whose ``predictor`` holds the weights of the epoch with
        the best mean foreground validation Dice (the last epoch without validation cases).
    """
    config = config or TrainConfig()
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={config.device!r} but torch sees no CUDA device")
    loss_name = loss if isinstance(loss, str) else type(loss).__name__
    loss_fn = make_loss(loss, task, **config.loss_options) if isinstance(loss, str) else loss
    identity = {"task": task.name, "loss": loss_name, "seed": seed, "config": config.to_dict()}
    with _determinism(config.deterministic):
        run = _Run(task, loss_fn.to(device), config, seed)
        folder = Path(out_dir) if out_dir is not None else None
        if folder is not None and is_main_process():
            remove_orphans(folder)
        state = (
            load_checkpoint(folder, identity, map_location=device) if folder and resume else None
        )
        if state is not None:
            run.restore(state)
        resumed_from = len(run.history)
        _epochs(
            run, identity, folder, progress, on_epoch_end, f"{task.name}/{loss_name}/seed{seed}"
        )
        if run.best_model is not None:
            run.model.load_state_dict(run.best_model)
        return TrainResult(
            predictor=run.predictor,
            history=run.history,
            best_epoch=run.best_epoch,
            best_val_dice=run.best if run.best > -math.inf else math.nan,
            epochs_run=len(run.history),
            seconds=run.elapsed,
            resumed_from_epoch=resumed_from,
        )


def _epochs(
    run: _Run,
    identity: dict[str, Any],
    folder: Path | None,
    progress: bool | None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None,
    desc: str,
) -> None:
    main = is_main_process()  # under torchrun rank 0 alone logs and writes checkpoints
    net = ddp.wrap_model(run.model)
    bar = _progress(run.config.epochs, desc, progress if main else False)
    bar.update(len(run.history))
    try:
        while len(run.history) < run.config.epochs and not run.stopped():
            record = run.epoch(net)
            if folder is not None and main:
                save_checkpoint(folder, run.snapshot(identity))
            bar.update(1)
            bar.set_postfix(
                loss=f"{record['train_loss']:.3f}", val_dice=f"{record['val_dice']:.3f}"
            )
            if on_epoch_end is not None:
                on_epoch_end(int(record["epoch"]), record)
    finally:
        bar.close()
