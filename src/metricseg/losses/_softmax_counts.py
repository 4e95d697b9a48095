r"""Softmax and soft counts fused: :func:`metricseg.counts.soft_counts` of ``softmax(logits)``.

For a label-map target the soft counts of softmax probabilities need neither
the probabilities nor a one-hot target in memory at once. Forward walks over
chunks of voxels: softmax of the chunk, then the sums of
:func:`~metricseg.counts.soft_counts` (TP by ``gather`` + ``scatter_add`` in
float64, :math:`\sum_i p_{ci}` or :math:`\sum_i p_{ci}^2`), keeping only the
per-voxel log-sum-exp ``(B, 1, N)``. Backward recomputes the chunk's
probabilities as :math:`\exp(z - \mathrm{lse})` and writes the gradient
straight into one ``(B, C, *spatial)`` buffer: with :math:`h_{ci} = \partial L / \partial p_{ci}
= b_c k p_{ci}^{k-1} + a_c [y_i = c]` (:math:`a = \partial L/\partial TP -
\partial L/\partial FP - \partial L/\partial FN`, :math:`b = \partial L /
\partial FP`, :math:`k = 2` when squared),

.. math::

    \frac{\partial L}{\partial z_{ci}} = p_{ci}\Big(h_{ci} - \sum_{c'} p_{c'i} h_{c'i}\Big).

So the peak memory of soft Dice with softmax is about one gradient-sized buffer,
instead of probabilities, their gradient and the softmax backward's output.
The result equals ``soft_counts(softmax(logits), labels)`` (tested).
"""

from __future__ import annotations

from typing import Any

import torch

from metricseg import _hugepages

#: voxels per chunk times classes times images stays near this many elements
_CHUNK_ELEMENTS = 1 << 20


def _chunks(n: int, b: int, c: int) -> list[tuple[int, int]]:
    step = max(1024, _CHUNK_ELEMENTS // max(1, b * c))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


class SoftmaxSoftCounts(torch.autograd.Function):
    """``soft_counts(softmax(logits, 1), labels)`` per image, memory-lean.

    forward(logits (B, C, N) float, labels (B, N) int64 in [0, C) with ignored
    voxels set to any class, valid (B, N) bool or None, target_counts (B, C)
    float (voxels of each class, ignored excluded), squared) -> (B, C, 3).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor | None,
        target_counts: torch.Tensor,
        squared: bool,
    ) -> torch.Tensor:
        b, c, n = logits.shape
        wide = torch.float64
        tp = torch.zeros((b, c), dtype=wide, device=logits.device)
        sp = torch.zeros((b, c), dtype=wide, device=logits.device)
        # log-sum-exp per voxel (B, 1, N), so backward gets p = exp(z - lse) in two passes
        lse = _hugepages.empty_like(logits[:, :1])
        for s, e in _chunks(n, b, c):
            z = logits[:, :, s:e]
            top = z.amax(dim=1, keepdim=True)
            ez = torch.sub(z, top).exp_()  # one exp per voxel and class
            total = ez.sum(dim=1, keepdim=True)
            torch.add(top, total.log(), out=lse[:, :, s:e])
            y = labels[:, s:e].unsqueeze(1)
            inv = total.reciprocal_()  # (B, 1, n)
            w = None if valid is None else valid[:, s:e].unsqueeze(1).to(ez.dtype)
            if squared:
                p = ez.mul_(inv)
                hit = p.gather(1, y)
                if w is not None:
                    hit.mul_(w)
                p_sum = torch.einsum("bcn,bcn->bc", p, p if w is None else p * w)
            else:
                # p = ez / total: the voxel weights 1/total (times the valid mask) go into
                # the sums, one batched matmul (B, C, n) @ (B, n, 1), instead of
                # dividing the whole chunk and summing it
                if w is not None:
                    inv.mul_(w)
                hit = ez.gather(1, y).mul_(inv)
                p_sum = torch.bmm(ez, inv.transpose(1, 2)).squeeze(-1)
            hit = hit.to(wide)
            tp.scatter_add_(1, y.squeeze(1), hit.squeeze(1))
            sp.add_(p_sum)
        ctx.save_for_backward(logits, lse, labels, valid)
        ctx.squared = squared
        tp = tp.to(logits.dtype)
        sp = sp.to(logits.dtype)
        st = target_counts.to(logits.dtype)
        return torch.stack((tp, sp - tp, st - tp), dim=-1)

    @staticmethod
    def backward(ctx: Any, grad_counts: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        logits, lse, labels, valid = ctx.saved_tensors
        b, c, n = logits.shape
        g = grad_counts.to(logits.dtype)
        a = (g[..., 0] - g[..., 1] - g[..., 2]).unsqueeze(-1)  # dL/dTP, (B, C, 1)
        bfp = g[..., 1].unsqueeze(-1)  # dL/d(sum p or sum p^2), (B, C, 1)
        out = _hugepages.empty_like(logits)
        for s, e in _chunks(n, b, c):
            p = torch.sub(logits[:, :, s:e], lse[:, :, s:e]).exp_()
            y = labels[:, s:e].unsqueeze(1)
            p_y = p.gather(1, y)
            a_y = torch.gather(a.squeeze(-1), 1, y.squeeze(1)).unsqueeze(1)  # (B, 1, n)
            target_term = p_y * a_y
            if ctx.squared:
                h = bfp * p * 2
                mean_h = (p * h).sum(1, keepdim=True)
            else:
                h = bfp
                # (B, 1, C) @ (B, C, n): a plain batched matmul; the einsum spelling of
                # the same sum transposes p first and costs ten times as much on the CPU
                mean_h = torch.bmm(bfp.transpose(1, 2), p)
            mean_h.add_(target_term)
            chunk = out[:, :, s:e]
            torch.sub(h, mean_h, out=chunk)
            chunk.mul_(p)
            chunk.scatter_add_(1, y, target_term)
            if valid is not None:
                chunk.mul_(valid[:, s:e].unsqueeze(1))
        return out, None, None, None, None
