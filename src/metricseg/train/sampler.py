"""Training batches: whole images, random patches, or 2D slices of 3D volumes.

All randomness comes from one numpy generator seeded by the run's seed, whose
state (with the epoch's remaining case order) is saved in the checkpoint, so a
resumed run draws exactly what the uninterrupted run draws.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from metricseg.data.patches import random_patch
from metricseg.data.task import Case, Task
from metricseg.train.config import TrainConfig

__all__ = ["BatchSampler", "network_dims", "training_patch"]


def network_dims(task: Task, config: TrainConfig) -> int:
    """Spatial dims of the network: ``config.network_dims``, else the task's.

    Example:
        >>> from metricseg.data.task import Task
        >>> t = Task("t", 3, 2, 1, ["bg", "fg"], [], [], [])
        >>> network_dims(t, TrainConfig()), network_dims(t, TrainConfig(network_dims=2))
        (3, 2)
    """
    dims = config.network_dims or task.spatial_dims
    if dims > task.spatial_dims:
        raise ValueError(
            f"network_dims={dims} but task {task.name!r} is {task.spatial_dims}D; a "
            "network can have the task's dims, or 2 for slices of a 3D task"
        )
    return dims


def training_patch(task: Task, config: TrainConfig) -> tuple[int, ...] | None:
    """The patch the network is trained on (None: whole images / slices).

    ``config.patch_size`` wins; otherwise the task's, cut to the in-plane sizes
    for 2D slices of a 3D task.
    """
    dims = network_dims(task, config)
    patch = config.patch_size or task.patch_size
    if patch is None:
        return None
    patch = tuple(int(p) for p in patch)
    if config.patch_size is None and len(patch) > dims:
        patch = patch[-dims:]
    if len(patch) != dims:
        raise ValueError(
            f"patch_size {list(patch)} has {len(patch)} sizes for a {dims}D network on task "
            f"{task.name!r}; give {dims}"
        )
    return patch


class BatchSampler:
    """Draws training batches ``(x (B, C_in, *patch), y (B, *patch))`` from ``task.train``.

    Three modes, by the network's dims and the patch:

    * whole images (no patch; all cases of one shape) — the cases are stacked once;
    * random patches (:func:`~metricseg.data.patches.random_patch`, foreground
      oversampled with ``config.foreground_prob``);
    * slices: a 2D network on a 3D task draws a case, then an axial slice (one
      holding foreground with probability ``foreground_prob``), then a patch of it.
    """

    def __init__(self, task: Task, config: TrainConfig, seed: int) -> None:
        self.cases: Sequence[Case] = list(task.train)
        if not self.cases:
            raise ValueError(f"task {task.name!r} has no training cases")
        self.config = config
        self.dims = network_dims(task, config)
        self.slices = self.dims < task.spatial_dims
        self.patch = training_patch(task, config)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.order: list[int] = []
        self.images: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.foreground_slices: list[np.ndarray] = []
        if self.slices:
            self.foreground_slices = [
                np.flatnonzero(c.label.reshape(c.label.shape[0], -1).any(axis=1))
                for c in self.cases
            ]
        if self.patch is None:
            shapes = {c.label.shape[-self.dims :] for c in self.cases}
            if len(shapes) > 1:
                raise ValueError(
                    f"task {task.name!r}: training cases differ in shape ({sorted(shapes)[:3]}...); "
                    "set patch_size to train on patches"
                )
            if not self.slices:
                self.images = np.stack([c.image for c in self.cases]).astype(np.float32)
                self.labels = np.stack([c.label for c in self.cases]).astype(np.int64)

    def steps(self) -> int:
        """Optimiser steps per epoch."""
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

    def _slice(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        case, fg = self.cases[i], self.foreground_slices[i]
        if fg.size and self.rng.random() < self.config.foreground_prob:
            z = int(fg[self.rng.integers(fg.size)])
        else:
            z = int(self.rng.integers(case.label.shape[0]))
        return case.image[:, z], case.label[z]

    def _sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self._slice(i) if self.slices else (self.cases[i].image, self.cases[i].label)
        if self.patch is None:
            return image, label
        return random_patch(image, label, self.patch, self.rng, self.config.foreground_prob)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch: float32 images and int64 label maps."""
        idx = self._next_indices(self.config.batch_size)
        if self.images is not None and self.labels is not None:
            x, y = self.images[idx], self.labels[idx]
        else:
            pairs = [self._sample(i) for i in idx]
            x = np.stack([p[0] for p in pairs]).astype(np.float32)
            y = np.stack([p[1] for p in pairs]).astype(np.int64)
        if self.config.augment:
            flips = self.rng.random(self.dims) < 0.5
            axes = [a for a, f in enumerate(flips) if f]
            if axes:
                x = np.flip(x, axis=[2 + a for a in axes])
                y = np.flip(y, axis=[1 + a for a in axes])
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def state(self) -> str:
        """The generator state and the rest of the epoch's order, as JSON (for the checkpoint)."""
        return json.dumps({"rng": self.rng.bit_generator.state, "order": list(self.order)})

    def load_state(self, state: str) -> None:
        """Restore what :meth:`state` returned."""
        data: dict[str, Any] = json.loads(state)
        self.rng.bit_generator.state = data["rng"]
        self.order = [int(i) for i in data["order"]]
