"""Data-parallel training under ``torchrun``: process group, model wrapper, batch and validation shards.

``torchrun --nproc_per_node=N -m metricseg train ...`` starts ``N`` processes
and tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in the
environment. :func:`init_from_env` joins them into one process group (NCCL on
CUDA, gloo on CPU) and gives each process its own GPU; :func:`train
<metricseg.train.loop.train>` then needs only a few hooks, all of which are
no-ops in a single process:

* **batches** — every rank draws the same global batch of ``batch_size``
  images from the same seeded generators (so the sampler state is the same on
  every rank and a checkpoint of rank 0 resumes them all, with any number of
  processes), and keeps every ``W``-th image starting at its rank
  (:func:`shard_batch`). With DDP's gradient averaging and the losses' exact
  batch statistics (``per_image=False`` sums or gathers over processes), a
  step equals the one-process step on the whole batch up to float summation
  order;
* **model** — :func:`wrap_model` puts the network in
  :class:`~torch.nn.parallel.DistributedDataParallel` for the training
  forward; validation and checkpoints use the plain module;
* **validation** — each rank scores every ``W``-th validation case and the
  scores are summed over processes (:func:`mean_over_shards`), so every rank
  selects the same epoch and stops early at the same time;
* **files and logs** — only rank 0 writes checkpoints and results and shows
  progress (:func:`metricseg.distributed.is_main_process`).
"""

from __future__ import annotations

import atexit
import gc
import math
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

from metricseg.distributed import is_distributed, rank, world_size

__all__ = [
    "init_from_env",
    "launched_by_torchrun",
    "local_processes",
    "mean_over_processes",
    "mean_over_shards",
    "shard_batch",
    "shutdown",
    "wrap_model",
]

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """True when the environment describes a group of more than one process (``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_processes() -> int:
    """Processes ``torchrun`` started on this node (``LOCAL_WORLD_SIZE``; 1 outside torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Uses NCCL when ``device`` is CUDA (and makes ``cuda:LOCAL_RANK`` this
    process's current device, so that ``"cuda"`` means its own GPU), gloo
    otherwise. Returns True when this call created the group (it is left at
    exit); does nothing (False) outside ``torchrun`` or when a group exists
    already.

    Example:
        >>> init_from_env("cpu")  # a single process: nothing to join
        False
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; cannot run under torchrun")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch sees no CUDA device")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Leave the process group (if there is one); also registered to run at exit.

    A DDP wrapper (and its reducer's pending gloo work, which holds tensors) can
    outlive the training in a reference cycle; were it freed during interpreter
    finalisation, gloo's threads would need the GIL and abort the process. So
    collect it first, while the interpreter is alive.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` in a process group, else ``model`` itself."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    if device.type != "cuda":
        return DistributedDataParallel(model)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(model, device_ids=[index])


def shard_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This rank's images of a global batch: every ``W``-th, starting at the rank.

    The global batch size must be a multiple of ``W`` so that every rank holds
    as many images (mean-reduced losses are then exact after DDP's averaging).

    Example:
        >>> x, y = shard_batch(torch.zeros(4, 1), torch.zeros(4))  # one process: all of it
        >>> x.shape[0], y.shape[0]
        (4, 4)
    """
    w = world_size()
    if w == 1:
        return tensors
    b = tensors[0].shape[0]
    if b % w:
        raise ValueError(
            f"batch_size={b} (the global batch) must be a multiple of the number of "
            f"processes ({w}) under torchrun"
        )
    return tuple(t[rank() :: w] for t in tensors)


def mean_over_processes(value: float) -> float:
    """Mean of ``value`` over all processes (``value`` itself in one process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t) / world_size()


def mean_over_shards(score: Callable[[Sequence[T]], float], items: Sequence[T]) -> float:
    """Mean of ``score([item])`` over ``items``, NaN scores left out; items spread over ranks.

    In one process this is ``score(items)`` (which must be that mean); in a
    group every rank scores every ``W``-th item and the sums and counts are
    added over processes, so all ranks get the same number.
    """
    if not is_distributed():
        return score(items)
    values = [score([item]) for item in list(items)[rank() :: world_size()]]
    finite = [v for v in values if not math.isnan(v)]
    t = torch.tensor([math.fsum(finite), len(finite)], dtype=torch.float64,
                     device=_collective_device())  # fmt: skip
    dist.all_reduce(t)
    return float(t[0] / t[1]) if t[1] > 0 else math.nan


def _collective_device() -> torch.device:
    # NCCL reduces CUDA tensors only
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
