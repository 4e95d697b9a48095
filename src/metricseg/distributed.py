"""Sums across ``torch.distributed`` processes, for exact batch statistics under DDP.

Batch-aggregated losses (``per_image=False``) and metric accumulators are
functions of counts summed over the whole batch or dataset. Under DDP each
process sees a shard, so the counts must be summed across processes before the
score is formed — with gradients for the losses. With an all-reduce whose
backward is again a sum (``torch.distributed.nn.all_reduce``), every rank
computes the same loss value, and after DDP averages the parameter gradients
over the ``W`` ranks, the result equals the gradient of one process holding
the whole batch.

Losses that are not functions of sums — the pooled Lovász-Softmax needs one
sort over all voxels of the batch — gather the per-voxel rows instead
(:func:`all_gather_cat`, also with gradients; ranks may hold different numbers
of rows). The backward of a differentiable gather returns to every rank the
sum over ranks of the gradient of its own rows, so the same convention holds:
each rank's input gradient is ``W`` times the whole-batch gradient of its
shard, and DDP's ``1/W`` average of the parameter gradients makes it exact.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_cat",
    "all_reduce_sum",
    "barrier",
    "is_distributed",
    "is_main_process",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when a default process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes in the default group (1 outside one)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the default group (0 outside one)."""
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """True on rank 0 and outside a process group: the process that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process of the default group (a no-op outside one)."""
    if is_distributed():
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; backward sums the gradients over ranks, since every rank's loss uses the sum.

    (Our own rather than ``torch.distributed.nn.functional.all_reduce``, which
    newer torch releases deprecate.)
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    """``(W, *shape)``: every rank's tensor; backward returns the sum over ranks of this rank's slice.

    The backward all-reduces the whole gradient and keeps this rank's slice:
    it works on every backend (gloo has no reduce-scatter) for about twice the
    traffic of a reduce-scatter.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tensor = tensor.contiguous()
        pieces = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(pieces, tensor)
        return torch.stack(pieces)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad[rank()]


def all_reduce_sum(tensor: torch.Tensor, *, differentiable: bool | None = None) -> torch.Tensor:
    """Sum ``tensor`` over all processes; a no-op outside a multi-process group.

    Args:
        tensor: any tensor, the same shape on every rank.
        differentiable: ``True`` makes the result carry gradients (backward
            sums the incoming gradients over ranks); ``False`` reduces a detached copy; ``None`` chooses
            ``tensor.requires_grad``.

    Returns:
        A new tensor with the sum (the input is not modified).
    """
    if not is_distributed():
        return tensor
    if differentiable is None:
        differentiable = tensor.requires_grad
    if differentiable:
        return _AllReduceSum.apply(tensor)
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_cat(
    tensor: torch.Tensor, dim: int = 0, *, differentiable: bool | None = None
) -> torch.Tensor:
    """Concatenate ``tensor`` of every process along ``dim``, in rank order.

    Ranks may differ in the size along ``dim`` (all other sizes must agree):
    the sizes are gathered first and every tensor is zero-padded to the
    largest, then trimmed again after the gather. A no-op outside a
    multi-process group.

    Args:
        tensor: any tensor (bool tensors travel as uint8).
        dim: the dimension to concatenate along.
        differentiable: ``True`` makes the result carry gradients (backward hands every rank the sum
            over ranks of the gradient of its own slice); ``False`` gathers a
            detached copy; ``None`` chooses ``tensor.requires_grad``.

    Returns:
        ``(..., sum_r n_r, ...)``, the slices of ranks ``0, 1, ...`` one after another.

    Example:
        >>> all_gather_cat(torch.tensor([[1, 2]]), dim=1)  # one process: unchanged
        tensor([[1, 2]])
    """
    if not is_distributed():
        return tensor
    if tensor.ndim == 0:
        raise ValueError("all_gather_cat needs a tensor with at least one dim, got a scalar")
    dim = dim % tensor.ndim
    if differentiable is None:
        differentiable = tensor.requires_grad
    is_bool = tensor.dtype == torch.bool
    if is_bool:
        if differentiable:
            raise ValueError("a bool tensor has no gradient; pass differentiable=False")
        tensor = tensor.to(torch.uint8)
    shape = torch.tensor(tensor.shape, dtype=torch.int64, device=tensor.device)
    shapes = [torch.empty_like(shape) for _ in range(world_size())]
    dist.all_gather(shapes, shape)
    sizes = [int(s[dim]) for s in shapes]
    for rank, other in enumerate(shapes):
        rest = [n for i, n in enumerate(other.tolist()) if i != dim]
        mine = [n for i, n in enumerate(tensor.shape) if i != dim]
        if len(other) != tensor.ndim or rest != mine:
            raise ValueError(
                f"all_gather_cat along dim {dim}: rank {rank} holds shape {tuple(other.tolist())}, "
                f"this rank {tuple(tensor.shape)}; all sizes but dim {dim} must agree"
            )
    largest = max(sizes)
    if tensor.shape[dim] < largest:
        pad_shape = list(tensor.shape)
        pad_shape[dim] = largest - tensor.shape[dim]
        tensor = torch.cat([tensor, tensor.new_zeros(pad_shape)], dim=dim)
    if differentiable:
        pieces = list(_AllGather.apply(tensor).unbind(0))
    else:
        tensor = tensor.detach().contiguous()
        pieces = [torch.empty_like(tensor) for _ in sizes]
        dist.all_gather(pieces, tensor)
    out = torch.cat([p.narrow(dim, 0, n) for p, n in zip(pieces, sizes)], dim=dim)
    return out.bool() if is_bool else out
