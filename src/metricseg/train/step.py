"""One epoch of optimisation: batches from the sampler, mixed precision, DDP shards."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from metricseg.train import ddp
from metricseg.train.sampler import BatchSampler

__all__ = ["train_epoch"]


def train_epoch(
    net: torch.nn.Module,
    sampler: BatchSampler,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    *,
    device: torch.device,
    autocast: torch.dtype | None,
) -> float:
    """Run ``sampler.steps()`` optimiser steps and return the mean training loss.

    The network runs under autocast (``autocast`` dtype, CUDA only); the loss always
    gets float32 logits. Under torchrun each rank keeps its share of every global
    batch (:func:`metricseg.train.ddp.shard_batch`).
    """
    net.train()
    losses = []
    for _ in range(sampler.steps()):
        x, y = ddp.shard_batch(*sampler.batch())
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            device_type=device.type, dtype=autocast or torch.float32, enabled=autocast is not None
        ):
            logits = net(x)
        value = loss_fn(logits.float(), y)
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(value.detach()))
    return ddp.mean_over_processes(float(np.mean(losses)))
