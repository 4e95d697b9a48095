"""Sums across ``torch.distributed`` processes, for exact batch statistics under DDP.

Batch-aggregated losses (``per_image=False``) and metric accumulators are
functions of counts summed over the whole batch or dataset. Under DDP each
process sees a shard, so the counts must be summed across processes before the
score is formed — with gradients for the losses. With an all-reduce whose
backward is again a sum (``torch.distributed.nn.all_reduce``), every rank
computes the same loss value, and after DDP averages the parameter gradients
over the ``W`` ranks, the result equals the gradient of one process holding
the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum", "is_distributed", "world_size"]


def is_distributed() -> bool:
    """True when a default process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(tensor: torch.Tensor, *, differentiable: bool | None = None) -> torch.Tensor:
    """Sum ``tensor`` over all processes; a no-op outside a multi-process group.

    Args:
        tensor: any tensor, the same shape on every rank.
        differentiable: ``True`` uses ``torch.distributed.nn.all_reduce`` so the
            result carries gradients (backward sums the incoming gradients over
            ranks); ``False`` reduces a detached copy; ``None`` chooses
            ``tensor.requires_grad``.

    Returns:
        A new tensor with the sum (the input is not modified).
    """
    if not is_distributed():
        return tensor
    if differentiable is None:
        differentiable = tensor.requires_grad
    if differentiable:
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(tensor, op=dist.ReduceOp.SUM)
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out
