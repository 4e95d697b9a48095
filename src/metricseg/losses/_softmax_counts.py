r"""Softmax and soft counts fused: :func:`metricseg.counts.soft_counts` of ``softmax(logits)``.

For a label-map target the soft counts of softmax probabilities need no
one-hot target and no softmax autograd graph. Forward walks over chunks of
voxels: softmax of the chunk, then the sums of
:func:`~metricseg.counts.soft_counts` (TP by ``gather`` + ``scatter_add`` in
float64, :math:`\sum_i p_{ci}` or :math:`\sum_i p_{ci}^2`). The chunk's
probabilities are written into the one ``(B, C, *spatial)`` buffer that
backward then turns, chunk by chunk and in place, into the gradient with
respect to the logits: with :math:`h_{ci} = \partial L / \partial p_{ci}
= b_c k p_{ci}^{k-1} + a_c [y_i = c]` (:math:`a = \partial L/\partial TP -
\partial L/\partial FP - \partial L/\partial FN`, :math:`b = \partial L /
\partial FP`, :math:`k = 2` when squared),

.. math::

    \frac{\partial L}{\partial z_{ci}} = p_{ci}\Big(h_{ci} - \sum_{c'} p_{c'i} h_{c'i}\Big).

So soft Dice with softmax needs about one input-sized buffer in all — the
probabilities, which become the gradient — instead of the probabilities,
their gradient and the softmax backward's output, and computes ``exp`` once.
The chunks are cache-sized and run on :func:`metricseg._parallel.map_chunks`'s
single-threaded workers: no op opens a parallel region, so a busy machine
costs the loss its share of the cores and no barrier waits (each chunk's
sums are kept apart and added in chunk order, so the result does not depend
on how the chunks were shared out). The buffer is advised onto huge pages
(:mod:`metricseg._hugepages`). A second
backward through the same graph (``retain_graph=True``) recomputes the
probabilities; without gradients (``torch.no_grad()`` or logits that need
none) no buffer is kept. The result equals
``soft_counts(softmax(logits), labels)`` (tested). The backward is not itself
differentiable: a second derivative raises instead of coming out partial
(for one, pass ``torch.softmax(logits, 1)`` with ``activation=None``, which
takes the unfused path).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from metricseg import _hugepages
from metricseg._parallel import map_chunks

#: voxels per chunk times classes times images stays near this many elements (2 MiB of
#: float32: the five passes over a chunk's probabilities hit the cache)
_CHUNK_ELEMENTS = 1 << 19
#: fewest voxels per chunk
_MIN_STEP = 1024


def _chunks(n: int, b: int, c: int) -> list[tuple[int, int]]:
    step = _CHUNK_ELEMENTS // max(1, b * c)
    if step >= 64:
        step -= step % 64  # chunks start on cache lines
    step = max(_MIN_STEP, step)
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _input_sized(like: torch.Tensor) -> torch.Tensor:
    """A new contiguous buffer shaped like the input, on huge pages where the OS allows.

    One place for the tests to watch. The huge-page advice (:mod:`metricseg._hugepages`)
    saves most of the cost of first touching the buffer, which is new every call.
    """
    return _hugepages.empty_like(like)


def _softmax_into(z: torch.Tensor, p: torch.Tensor) -> None:
    """``p = softmax(z, dim=1)`` for a (B, C, n) chunk, written into ``p``."""
    torch.sub(z, z.amax(dim=1, keepdim=True), out=p).exp_()
    p.mul_(p.sum(dim=1, keepdim=True).reciprocal_())


class SoftmaxSoftCounts(torch.autograd.Function):
    """``soft_counts(softmax(logits, 1), labels)`` per image, memory-lean.

    forward(logits (B, C, N) float, labels (B, N) int64 in [0, C) with ignored
    voxels set to any class, valid (B, N) bool or None, target_counts (B, C)
    float (voxels of each class, ignored excluded), squared, keep_probs) -> (B, C, 3).
    ``keep_probs``: keep the probabilities for backward; pass
    ``torch.is_grad_enabled() and logits.requires_grad`` (inside ``forward`` grad
    mode is always off, and ``ctx.needs_input_grad`` ignores ``torch.no_grad()``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor | None,
        target_counts: torch.Tensor,
        squared: bool,
        keep_probs: bool,
    ) -> torch.Tensor:
        b, c, n = logits.shape
        wide = torch.float64
        # the probabilities, kept for backward (which turns them into the gradient)
        probs = _input_sized(logits) if keep_probs else None
        chunks = _chunks(n, b, c)

        def chunk(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            s, e = chunks[i]
            z = logits[:, :, s:e]
            p = probs[:, :, s:e] if probs is not None else torch.empty_like(z)
            _softmax_into(z, p)
            y = labels[:, s:e]
            hit = p.gather(1, y.unsqueeze(1)).squeeze(1)  # (B, n)
            # no bmm / einsum here: they would run on MKL's threads (see _parallel)
            q = p * p if squared else p
            if valid is not None:
                w = valid[:, s:e].to(p.dtype)  # (B, n)
                hit.mul_(w)
                q = q * w.unsqueeze(1)
            # TP by scatter_add in float64 (it adds one voxel after another); the sum of p
            # over a chunk's voxels in float32 (torch sums pairwise; a float64 sum would
            # convert the chunk first), the chunks' sums in float64
            tp = torch.zeros((b, c), dtype=wide, device=p.device)
            return tp.scatter_add_(1, y, hit.to(wide)), q.sum(2).to(wide)

        parts = map_chunks(chunk, len(chunks), b * c * (chunks[0][1] - chunks[0][0]))
        # summed in chunk order: the same result however the chunks were shared out
        tp = torch.stack([t for t, _ in parts]).sum(0)
        sp = torch.stack([q for _, q in parts]).sum(0)
        ctx.save_for_backward(logits, labels, valid)
        ctx.probs = probs
        ctx.squared = squared
        tp = tp.to(logits.dtype)
        sp = sp.to(logits.dtype)
        st = target_counts.to(logits.dtype)
        return torch.stack((tp, sp - tp, st - tp), dim=-1)

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: say so, do not
    # return a silently partial second derivative
    def backward(ctx: Any, grad_counts: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        logits, labels, valid = ctx.saved_tensors
        b, c, n = logits.shape
        out, ctx.probs = ctx.probs, None
        recompute = out is None  # a second backward through the same graph
        if recompute:
            out = _input_sized(logits)
        g = grad_counts.to(logits.dtype)
        a = g[..., 0] - g[..., 1] - g[..., 2]  # dL/dTP, (B, C)
        bfp = g[..., 1].unsqueeze(-1)  # dL/d(sum p or sum p^2), (B, C, 1)
        # h = coef p^(k-1): coef = 2 b when squared (k = 2), b otherwise
        coef = bfp * 2 if ctx.squared else bfp
        squared = ctx.squared
        chunks = _chunks(n, b, c)

        def chunk(i: int) -> None:
            s, e = chunks[i]
            p = out[:, :, s:e]  # probabilities in, gradient out (chunks are disjoint)
            if recompute:
                _softmax_into(logits[:, :, s:e], p)
            y = labels[:, s:e].unsqueeze(1)
            a_y = torch.gather(a, 1, y.squeeze(1)).unsqueeze(1)  # (B, 1, n)
            target_term = p.gather(1, y).mul_(a_y)
            # sum_c' p h over the classes, by a product and a sum rather than a bmm
            # (which would run on MKL's threads, see _parallel)
            ph = torch.mul(p, coef)
            if squared:
                # h = 2 b p: p (h - sum_c' p h) = p (2 b p - sum_c' 2 b p^2)
                mean_h = torch.mul(ph, p).sum(1, keepdim=True).add_(target_term)
                p.mul_(ph.sub_(mean_h))
            else:
                mean_h = ph.sum(1, keepdim=True).add_(target_term)
                p.mul_(torch.sub(coef, mean_h))
            p.scatter_add_(1, y, target_term)
            if valid is not None:
                p.mul_(valid[:, s:e].unsqueeze(1))

        map_chunks(chunk, len(chunks), b * c * (chunks[0][1] - chunks[0][0]))
        return out, None, None, None, None, None
