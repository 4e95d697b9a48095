r"""Lovász-Softmax and Lovász hinge losses (Berman, Rannen Triki and Blaschko, CVPR 2018).

The Lovász extension of the Jaccard loss of class :math:`c` is

.. math::

    \overline{\Delta_J}(e) = \sum_{k=1}^{N} e_{\pi(k)}\, g_k,\qquad
    g_k = J_k - J_{k-1},\quad
    J_k = 1 - \frac{|G| - |G \cap \pi_{1..k}|}{|G| + |\pi_{1..k} \setminus G|},

where :math:`e` are the voxel errors sorted in decreasing order by :math:`\pi`,
:math:`G` the voxels of class :math:`c` and :math:`J_0 = 0`. For Lovász-Softmax
:math:`e_i = |[y_i = c] - p_{ci}|`; for the Lovász hinge
:math:`e_i = \max(0, 1 - s_i x_i)` with :math:`s_i = \pm 1` and logits :math:`x`.

Implementation: the rows — every (image, class) pair, or every class of the
pooled batch when ``per_image=False`` — are sorted batched, in at most four
blocks of rows per worker (``_row_blocks``: at least 2¹⁶ elements each, and
a quarter of all elements in flight), however many images and classes there
are, which bounds the sort's working memory. The blocks run on
:func:`metricseg._parallel.map_chunks`'s single-threaded workers, so that a
machine whose cores are held by other processes costs the loss its share of
the cores and no barrier waits. On the CPU a block is sorted by one
stable radix sort of int64 keys built from the rows and the bits of the
float32 errors (``_sort_descending``; timings in ``benchmarks/bench_losses.py``);
elsewhere by one batched ``torch.sort``. Since
:math:`J_k = k / (|G| - \mathrm{cumsum}_k(G) + k)`, the gradient ``g`` needs one
cumulative sum. Ignored voxels get the error :math:`-\infty`, so they sort to
the end of their row, where their ``g`` is set to 0: rows of different valid
lengths share one sort. A custom :class:`torch.autograd.Function` keeps only
the gradient with respect to the input (the piecewise-linear Lovász gradient,
scattered back by the sort permutation block by block into one buffer), so no
autograd graph is built through sort and gather, and the memory kept for
backward is one input-sized tensor.

Under DDP (an initialised ``torch.distributed`` group of ``W > 1`` processes),
``per_image=False`` with ``sync_across_processes=True`` (the default) is exact:
every rank gathers the class-probability rows (or logits, for the hinge) and
the labels of all ranks with a differentiable all-gather
(:func:`metricseg.distributed.all_gather_cat`; ranks may hold different batch
and image sizes) and computes the Lovász loss of the whole global batch. Every rank gets
the same value; the gather's backward hands each rank ``W`` times the
whole-batch gradient of its own shard, so DDP's ``1/W`` average of the
parameter gradients equals the one-process whole-batch gradient. The cost:
each rank holds and sorts ``C × (all voxels of the global batch)`` — ``W``
times the memory and sort work of the per-process loss — plus one all-gather
of ``C + 1`` values per voxel. ``sync_across_processes=False`` keeps the
cheaper per-process pooled loss.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from typing import Any

import torch

from metricseg import _hugepages, _parallel
from metricseg._checks import check_dense_target, check_label_range, check_probabilities_shape
from metricseg._parallel import map_chunks, one_thread, workers
from metricseg.distributed import all_gather_cat, is_distributed
from metricseg.losses._common import (
    LossModule,
    activate,
    check_class_weights,
    check_ignore_index,
    check_label_map_dtype,
    check_loss_inputs,
    check_options,
    full_precision,
    label_counts,
    reduce_images,
    selected_classes,
    weighted_class_mean,
)
from metricseg.types import Activation, Classes, Reduction, Weights

__all__ = ["LovaszHingeLoss", "LovaszSoftmaxLoss", "lovasz_hinge_loss", "lovasz_softmax_loss"]


#: torch radix-sorts a 1-D integer tensor only from this many elements (its grain size)
_RADIX_MIN_ELEMENTS = 1 << 15
_LOW_MASK = 0x7FFFFFFF  # clears the sign bit: -0.0 becomes +0.0
_INF_BITS = 0x7F800000  # bits of float32 +inf, the largest non-negative float32


@functools.cache
def _cpu_radix_sort() -> bool:
    """Whether torch sorts large 1-D non-negative integer CPU tensors by a radix sort.

    PyTorch uses FBGEMM's parallel radix sort for an ascending ``torch.sort`` of
    a 1-D integer tensor with non-negative values (x86 wheels; built with
    FBGEMM and OpenMP). Elsewhere an integer sort is a comparison sort, and one
    sort of all rows of a block would be slower than the batched row sort.
    """
    return "fbgemm" in torch.backends.quantized.supported_engines and (
        torch.backends.openmp.is_available()
    )


def _sort_descending(errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.sort(errors, dim=1, descending=True)`` of (R, N) errors, faster on the CPU.

    ``errors`` hold values :math:`\\ge 0`; anything else (:math:`-\\infty` at
    ignored voxels, NaN) only has to sort after them. On the CPU, float32 rows
    are sorted by **one** stable radix sort of the int64 keys
    ``row · 2³¹ + bits(+∞) − bits(e)``, and ``row · 2³¹ + bits(+∞) + 1`` for
    the rest: the bits of a non-negative float32 order like the float, so the
    keys order by row, then by decreasing error, then by index. Ties keep their
    index order, as in a stable sort. Elsewhere (GPU, float64, small inputs, a
    torch without the radix sort) the batched float sort is used, whose tie
    order is unspecified.
    """
    r, n = errors.shape
    if not (
        errors.device.type == "cpu"
        and errors.dtype == torch.float32
        and _RADIX_MIN_ELEMENTS <= r * n
        and r < 2**31
        and _cpu_radix_sort()
    ):
        values, perm = torch.sort(errors, dim=1, descending=True)
        return values, perm
    errors = errors.contiguous()
    # bits(+inf) - bits(e) in [0, 2**31) for e >= 0 (int32), then the row offset (int64)
    low = torch.bitwise_and(errors.view(torch.int32), _LOW_MASK).neg_().add_(_INF_BITS)
    low.masked_fill_(~(errors >= 0), _INF_BITS + 1)
    rows = torch.arange(r, dtype=torch.int64, device=errors.device).unsqueeze(1)
    key = torch.add(low, rows << 31).view(-1)
    del low
    perm = torch.empty_like(key)
    # on one thread: the parallel radix sort meets a barrier at every pass, and each
    # stalls while another process holds a core (blocks of several rows are sorted
    # at the same time by map_chunks's workers instead)
    with one_thread():
        try:
            # the sorted keys overwrite the keys: no second key buffer, and measurably faster
            torch.sort(key, stable=True, out=(key, perm))
        except RuntimeError:  # a torch that refuses an output aliasing its input
            perm = torch.sort(key, stable=True)[1]
    del key
    perm = perm.view(r, n).sub_(rows * n)  # index within the row
    return errors.gather(1, perm), perm


def _lovasz_rows(
    errors: torch.Tensor,
    fg: torch.Tensor,
    positives: torch.Tensor,
    hinge: bool,
    out: torch.Tensor,
) -> torch.Tensor:
    r"""Lovász loss of each row, and its gradient written into ``out``.

    ``errors`` (R, N) float32/float64 hold :math:`-\infty` at ignored voxels
    (the hinge's are clamped at 0 first); ``fg`` (R, N) bool the foreground of
    each row; ``positives`` (R,) its size. Writes the gradient with respect to
    the input — the error's gradient, negated on the foreground (where the
    error is ``1 - x``) — into ``out`` (R, N), in the original order, and
    returns the (R,) row losses.

    With :math:`D_k = |G| - \mathrm{cumsum}_k(G) + k`, :math:`J_k = k / D_k`, and
    the increments :math:`g_k = J_k - J_{k-1}` have the closed forms
    :math:`1/D_k` (voxel ``k`` in ``G``; then :math:`D_k = D_{k-1}`) and
    :math:`(D_k - k) / (D_k (D_k - 1))` (not in ``G``; :math:`D_k = D_{k-1} + 1`).
    Differencing ``J`` directly would cancel catastrophically in float32 (``J``
    is near 1 and the steps are near :math:`1/N`).
    """
    sorted_errors, perm = _sort_descending(errors)
    n = sorted_errors.shape[1]
    fg = fg.gather(1, perm)
    # float32 counts are exact up to 2**24 voxels per row
    acc = errors_dtype = sorted_errors.dtype
    if acc != torch.float64 and n > 2**24:
        acc = torch.float64
    k = torch.arange(1, n + 1, dtype=acc, device=sorted_errors.device)
    d = fg.cumsum(1, dtype=acc)
    d.neg_().add_(k).add_(positives.to(acc).unsqueeze(1))  # D_k
    grad = d - k  # |G| - cumsum_k(G)
    grad.div_(d)
    # D_k - 1 is 0 only on the foreground (replaced next) or at k = 1 of a row
    # without foreground (set below); integer-valued, so -1 then +1 is exact
    grad.div_(d.sub_(1))
    d.add_(1).reciprocal_()
    torch.where(fg, d, grad, out=grad)  # in place: 1/D_k on the foreground
    # a row without foreground: J_k = 1 for all k, so g = (1, 0, 0, ...)
    grad[:, 0].masked_fill_(positives == 0, 1.0)
    if acc != errors_dtype:
        grad, d = grad.to(errors_dtype), d.to(errors_dtype)
    # ignored voxels (-inf) and, for the hinge, voxels at or past the max(0, .) kink carry
    # nothing (softmax errors lie in [0, 1]: without ignored voxels nothing is inactive)
    if hinge or bool(sorted_errors[:, -1].lt(0).any()):
        inactive = sorted_errors <= 0 if hinge else sorted_errors < 0
        grad.masked_fill_(inactive, 0.0)
        sorted_errors.masked_fill_(inactive, 0.0)
        del inactive
    wide = torch.float64 if sorted_errors.device.type == "cpu" else sorted_errors.dtype
    loss = (sorted_errors.mul_(grad)).sum(1, dtype=wide).to(errors_dtype)
    del sorted_errors
    # d error / d x is -1 on the foreground (error 1 - x) and +1 elsewhere
    torch.where(fg, grad.neg(), grad, out=grad)
    del d, fg
    out.scatter_(1, perm, grad)
    return loss


#: blocks of rows (``_row_blocks``) hold at least this many elements
_BLOCK_MIN_ELEMENTS = 1 << 16


def _row_blocks(rows: int, n: int, parts: int = 4) -> list[tuple[int, int]]:
    """Ranges of rows sorted together: ``1/parts`` of all elements each, at least 2¹⁶.

    So there are at most ``parts`` blocks (one for small inputs; one per row when
    there are fewer than ``parts`` rows), however many images and classes: the
    Python loop never runs per image or class. The forward passes ``parts = 4 ×``
    the number of workers of :func:`metricseg._parallel.map_chunks`, which sort
    as many blocks at once, so a quarter of all elements is in flight either
    way. The working set of a block (sort keys, indices and the radix sort's
    own buffers: about 40 bytes per element) then stays below 10 bytes per
    input element from 2¹⁸ elements on — less than a Python loop over single
    rows keeps for autograd (SMP: about 23) — and every block is large enough
    for a fast radix sort.
    """
    target = max(_BLOCK_MIN_ELEMENTS, rows * n // parts)
    step = max(1, target // max(1, n))
    return [(s, min(rows, s + step)) for s in range(0, rows, step)]


def _small_labels(labels: torch.Tensor, top: int) -> torch.Tensor:
    """Labels in the narrowest integer dtype holding ``top`` (fewer bytes to gather)."""
    if top < 256:
        # uint8, so that the 0/1 result of eq_ can be viewed as bool without a copy
        return labels.to(torch.uint8)
    if top < 2**15:
        return labels.to(torch.int16)
    return labels


def _as_bool(flags: torch.Tensor) -> torch.Tensor:
    """0/1 flags as bool: a free reinterpretation for uint8, a copy otherwise."""
    return flags.view(torch.bool) if flags.dtype == torch.uint8 else flags.bool()


def _plan(b: int, c: int, n: int, per_image: bool) -> tuple[list[tuple[int, int]], bool]:
    """The blocks of rows of a (B, C, N) input, and whether it is too small to share out.

    As many blocks in flight as workers, so a quarter of all elements in flight.
    An input too small to share out (``tiny``) runs all its ops on one thread, as
    its blocks do in :func:`~metricseg._parallel.map_chunks`: a second thread gains
    little there, and every op's barrier stalls while another process holds a core.
    """
    rows, m = (b * c, n) if per_image else (c, b * n)
    k = workers(rows, rows * m // (4 * torch.get_num_threads()))
    blocks = _row_blocks(rows, m, parts=4 * k)
    return blocks, (blocks[0][1] - blocks[0][0]) * m < _parallel.MIN_CHUNK_ELEMENTS


class _OneThreadSoftmax(torch.autograd.Function):
    """``torch.softmax(x, 1)`` whose backward, too, runs on one thread (small inputs).

    The same kernels as autograd's softmax, so the same values and gradients; only
    the thread count of the backward differs, which autograd would otherwise run
    on all of torch's threads.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with one_thread():
            p = torch.softmax(x, dim=1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (p,) = ctx.saved_tensors
        with one_thread():
            return torch._softmax_backward_data(grad, p, 1, p.dtype)


class _LovaszFunction(torch.autograd.Function):
    """Row losses of Lovász-Softmax (``hinge=False``) or the Lovász hinge (``hinge=True``).

    forward(x (B, C, N), target, ignored (B, N) or None, positives, per_image, hinge):

    * softmax: ``x`` probabilities, ``target`` labels (B, N) with ignored voxels set to C;
    * hinge: ``x`` logits, ``target`` boolean foreground (B, C, N).

    Returns (B, C) losses (``per_image``) or (C,) losses of the pooled batch.
    The rows — (image, class) pairs, or classes of the pooled batch — are
    handled in blocks of several rows (``_row_blocks``), one sort per block;
    each block writes its part of the input gradient, the only tensor kept for
    backward.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        target: torch.Tensor,
        ignored: torch.Tensor | None,
        positives: torch.Tensor,
        per_image: bool,
        hinge: bool,
    ) -> torch.Tensor:
        b, c, n = x.shape
        blocks, ctx.tiny = _plan(b, c, n, per_image)
        ctx.per_image = per_image
        with one_thread() if ctx.tiny else contextlib.nullcontext():
            loss, grad = _lovasz_blocks(
                x.detach(), target, ignored, positives, per_image, hinge, blocks
            )
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        scale = grad_loss.unsqueeze(-1) if ctx.per_image else grad_loss.view(1, -1, 1)
        with one_thread() if ctx.tiny else contextlib.nullcontext():
            return grad * scale.to(grad.dtype), None, None, None, None, None


def _lovasz_blocks(
    x: torch.Tensor,
    target: torch.Tensor,
    ignored: torch.Tensor | None,
    positives: torch.Tensor,
    per_image: bool,
    hinge: bool,
    blocks: list[tuple[int, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward of :class:`_LovaszFunction`: (row losses, gradient (B, C, N))."""
    b, c, n = x.shape
    rows, m = (b * c, n) if per_image else (c, b * n)
    if not hinge:
        small = _small_labels(target, c)
        cls = torch.arange(c, device=x.device, dtype=small.dtype)
    # the gradient (B, C, N), or (C, B, N) for the pooled batch until the end
    grad = _hugepages.empty((rows, m), dtype=x.dtype, device=x.device)
    loss = torch.empty(rows, dtype=x.dtype, device=x.device)
    positives = positives.reshape(-1)
    if per_image:
        # once, not per block: a copy where the input is not viewable (a channel slice)
        x_rows = x.reshape(rows, m)
        fg_rows = target.reshape(rows, m) if hinge else None

    def block(i: int) -> None:
        s, e = blocks[i]
        if per_image:
            xr = x_rows[s:e]
            row = torch.arange(s, e, device=x.device)
            img = row // c
            skip = None if ignored is None else ignored[img]
            if fg_rows is not None:
                fg = fg_rows[s:e]
            else:
                fg = _as_bool(small[img].eq_(cls[row % c].view(-1, 1)))
        else:
            xr = x[:, s:e].transpose(0, 1).reshape(e - s, m)
            skip = None if ignored is None else ignored.reshape(1, m)
            if hinge:
                fg = target[:, s:e].transpose(0, 1).reshape(e - s, m)
            else:
                fg = small.reshape(1, m) == cls[s:e].view(-1, 1)
        if hinge:
            # errors 1 - x on the foreground, 1 + x elsewhere; max(0, .) as the loss does
            errors = torch.where(fg, 1.0 - xr, 1.0 + xr).clamp_min_(0.0)
        else:
            # error 1 - p for the target class, p for the others
            errors = torch.rsub(xr, 1.0)
            torch.where(fg, errors, xr, out=errors)
        if skip is not None:
            errors.masked_fill_(skip, float("-inf"))
        # blocks write disjoint rows of loss and grad
        loss[s:e] = _lovasz_rows(errors, fg, positives[s:e], hinge, grad[s:e])

    map_chunks(block, len(blocks), (blocks[0][1] - blocks[0][0]) * m)
    if not per_image:
        grad = grad.view(c, b, n).transpose(0, 1).contiguous()
    return (loss.view(b, c) if per_image else loss), grad.view(b, c, n)


def _gather_pooled(x: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """The pooled batch of all processes as one image: ``(1, C, M)``, then ``(1, ..., M)``.

    ``x`` (B, C, N) (differentiable) and each of ``others`` (B, N) or (B, K, N)
    (not differentiable) of this rank are flattened to ``M_r = B N`` voxels and
    concatenated over ranks in rank order (``M = sum_r M_r``).
    """
    out = []
    for i, t in enumerate((x, *others)):
        rows = t.reshape(t.shape[0], -1, t.shape[-1]).transpose(0, 1)
        rows = rows.reshape(rows.shape[0], -1)
        pooled = all_gather_cat(rows, dim=1, differentiable=i == 0)
        out.append(pooled.unsqueeze(0) if t.ndim == 3 else pooled)
    return out


def _dense_to_labels(target: torch.Tensor, validate_args: bool) -> torch.Tensor:
    """A one-hot target (B, C, *spatial), already checked against the logits, as labels."""
    t = target.detach()
    if validate_args:
        check_dense_target(t, "target", distribution=False)  # names a 0/255 mask
        if not (bool(((t == 0) | (t == 1)).all()) and bool((t.sum(1) == 1).all())):
            raise ValueError(
                "a (B, C, *spatial) target for Lovász-Softmax must be one-hot (exactly one 1 "
                "per voxel); soft targets have no Lovász extension — pass a label map"
            )
    return t.argmax(1)


def _check_lovasz_softmax_options(options: Mapping[str, Any]) -> None:
    check_options(options)
    if options.get("activation") == "sigmoid":
        raise ValueError(
            "lovasz_softmax_loss needs activation 'softmax' or None, got 'sigmoid'; "
            "for binary or multi-label problems use lovasz_hinge_loss"
        )


def _check_lovasz_hinge_options(options: Mapping[str, Any]) -> None:
    check_options(options)


def lovasz_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: Activation = "softmax",
    per_image: bool = False,
    classes: Classes = "present",
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Lovász-Softmax loss: the convex Lovász extension of the Jaccard loss, per class.

    .. math::

        \mathcal{L} = \frac{\sum_{c} w_c\, \overline{\Delta_{J_c}}(m(c))}{\sum_c w_c},
        \qquad m_i(c) = |[y_i = c] - p_{ci}|

    over the selected classes (see the module docs for :math:`\overline{\Delta_J}`).

    Args:
        logits: ``(B, C, *spatial)`` float, any number of spatial dims
            (probabilities with ``activation=None``).
        target: label map ``(B, *spatial)`` of ints, or one-hot ``(B, C, *spatial)``.
        activation: ``"softmax"`` (default) or ``None`` (probabilities given).
        per_image: one loss per image, then the mean (``True``), or one loss over
            the pooled batch (``False``, the default).
        classes: ``"present"`` (default; classes in the target of the image or
            batch, as in Berman et al.), ``"all"``, ``"foreground"`` or a list.
        ignore_index: label whose voxels are left out entirely.
        class_weights: one weight per class, background included.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)`` with ``per_image``).
        sync_across_processes: with ``per_image=False`` under DDP, pool the
            batches of all processes (exact global loss; see the module docs).
        validate_args: read the inputs' values to check them (label range, a
            one-hot target, probabilities with ``activation=None``, weights);
            ``False`` skips these host syncs (see
            :func:`~metricseg.losses.soft_dice_loss`).

    Returns:
        scalar loss (``(B,)`` for ``reduction="none"`` with ``per_image=True``).

    Example:
        >>> import torch
        >>> probs = torch.tensor([[[0.8, 0.4], [0.2, 0.6]]])  # (1, 2, 2)
        >>> labels = torch.tensor([[0, 1]])
        >>> # class 0: errors sorted (0.4 bg, 0.2 fg), g = (1/2, 1/2) -> 0.3
        >>> # class 1: errors sorted (0.4 fg, 0.2 bg), g = (1, 0) -> 0.4
        >>> round(float(lovasz_softmax_loss(probs, labels, activation=None)), 4)
        0.35
    """
    _check_lovasz_softmax_options(locals())
    logits = check_loss_inputs(logits, target, activation)
    with full_precision(logits.device), contextlib.ExitStack() as stack:
        kind = check_probabilities_shape(logits, target, "logits", "target")
        b, c, n = logits.shape[0], logits.shape[1], math.prod(logits.shape[2:])
        tiny = logits.device.type == "cpu" and _plan(b, c, n, per_image)[1]
        if tiny:  # the whole loss on one thread, its softmax's backward included
            stack.enter_context(one_thread())
        if tiny and activation == "softmax":
            probs = _OneThreadSoftmax.apply(logits)
        else:
            probs = activate(logits, activation, validate_args)
        b, c = probs.shape[:2]
        ignore_index = check_ignore_index(ignore_index, c)
        if kind == "dense":
            if ignore_index is not None:
                raise ValueError("ignore_index applies to label-map targets (B, *spatial)")
            target = _dense_to_labels(target, validate_args)
        elif validate_args:
            check_label_range(target, "target", c, ignore_index)
        labels = target.reshape(b, -1).to(torch.int64)
        ignored = None
        if ignore_index is not None:
            ignored = labels == ignore_index
            if bool(ignored.any()):
                labels = labels.masked_fill(ignored, c)
            else:
                ignored = None
        x = probs.reshape(b, c, -1)
        if not per_image and sync_across_processes and is_distributed():
            # ignored voxels already hold the label c, so the gathered labels say which
            x, labels = _gather_pooled(x, labels)
            ignored = labels == c
            ignored = ignored if bool(ignored.any()) else None
        positives = label_counts(labels, c, per_image)
        per_class = _LovaszFunction.apply(x, labels, ignored, positives, per_image, False)
        selected = selected_classes(classes, c, positives > 0)
        weights = check_class_weights(class_weights, c, per_class, validate_args)
        return reduce_images(weighted_class_mean(per_class, selected, weights), reduction)


def lovasz_hinge_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    per_image: bool = False,
    classes: Classes = "all",
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    reduction: Reduction = "mean",
    sync_across_processes: bool = True,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Lovász hinge loss for binary (or independent multi-label) segmentation.

    .. math::

        \mathcal{L} = \overline{\Delta_{J}}\big(\max(0, 1 - s \odot x)\big),
        \qquad s_i = 2[y_i = 1] - 1

    per channel, averaged over the selected channels with ``class_weights``.

    Args:
        logits: ``(B, C, *spatial)`` float logits (no activation; ``C = 1`` for binary).
        target: with ``C = 1``, a label map ``(B, *spatial)`` of 0/1 (plus
            ``ignore_index``); or 0/1 masks ``(B, C, *spatial)`` (bool, int or float;
            multi-label is fine, soft values are not: the hinge needs a sign).
        per_image: one loss per image and channel (``True``) or pooled (``False``).
        classes: ``"all"`` (default), ``"present"`` (channels with foreground)
            or a list of channel indices.
        ignore_index: label-map value whose voxels are left out (``C = 1``).
        class_weights: one weight per channel.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)`` with ``per_image``).
        sync_across_processes: with ``per_image=False`` under DDP, pool the
            batches of all processes (exact global loss; see the module docs).
        validate_args: read the target's values to check them (labels 0/1 or
            ``ignore_index``, masks 0/1, weights); ``False`` skips these host syncs.

    Returns:
        scalar loss (``(B,)`` for ``reduction="none"`` with ``per_image=True``).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[[2.0, -0.5, 0.5]]])  # (1, 1, 3)
        >>> labels = torch.tensor([[1, 0, 1]])
        >>> # errors (0, 0.5, 0.5); sorted (0.5 fg, 0.5 bg, 0) -> g = (1/2, 1/6, 0)
        >>> round(float(lovasz_hinge_loss(logits, labels)), 4)
        0.3333
    """
    _check_lovasz_hinge_options(locals())
    logits = check_loss_inputs(logits, target, None)
    with full_precision(logits.device):
        b, c = logits.shape[:2]
        ignored = None
        if target.ndim == logits.ndim - 1:
            if c != 1:
                raise ValueError(
                    f"a label-map target (B, *spatial) needs logits with C = 1 channel, got "
                    f"C = {c}; for multi-class problems use lovasz_softmax_loss, for "
                    "multi-label ones pass 0/1 masks (B, C, *spatial)"
                )
            check_label_map_dtype(target)
            ignore_index = check_ignore_index(ignore_index, 2)
            if validate_args:
                check_label_range(target, "target", 2, ignore_index)
            if tuple(target.shape) != (b, *logits.shape[2:]):
                raise ValueError(
                    f"target must have shape (B, *spatial) = {(b, *logits.shape[2:])}, "
                    f"got {tuple(target.shape)}"
                )
            flat = target.reshape(b, -1)
            fg = (flat == 1).unsqueeze(1)
            if ignore_index is not None:
                ignored = flat == ignore_index
                if not bool(ignored.any()):
                    ignored = None
        elif target.shape == logits.shape:
            if ignore_index is not None:
                raise ValueError("ignore_index applies to label-map targets (B, *spatial)")
            t = target.detach()
            if validate_args and not bool(((t == 0) | (t == 1)).all()):
                check_dense_target(t, "target", distribution=False)  # names a 0/255 mask
                raise ValueError("target masks (B, C, *spatial) must hold only 0 and 1")
            fg = t.reshape(b, c, -1).bool()
        else:
            raise ValueError(
                f"target must be a label map (B, *spatial) or masks (B, C, *spatial) for "
                f"logits {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        if ignored is not None:
            fg = fg & ~ignored.unsqueeze(1)
        x = logits.reshape(b, c, -1)
        if not per_image and sync_across_processes and is_distributed():
            skip = torch.zeros_like(fg[:, 0]) if ignored is None else ignored
            x, fg, ignored = _gather_pooled(x, fg, skip)
            ignored = ignored if bool(ignored.any()) else None
        positives = fg.sum(-1)
        if not per_image:
            positives = positives.sum(0)
        per_class = _LovaszFunction.apply(x, fg, ignored, positives, per_image, True)
        selected = selected_classes(classes, c, positives > 0)
        weights = check_class_weights(class_weights, c, per_class, validate_args)
        return reduce_images(weighted_class_mean(per_class, selected, weights), reduction)


class LovaszSoftmaxLoss(LossModule):
    """Lovász-Softmax loss (module form of :func:`lovasz_softmax_loss`; options as there).

    Example:
        >>> import torch
        >>> loss = LovaszSoftmaxLoss(per_image=True, ignore_index=255)
        >>> target = torch.tensor([[[0, 1], [2, 255]]])
        >>> float(loss(torch.zeros(1, 3, 2, 2), target)) > 0
        True
    """

    function = staticmethod(lovasz_softmax_loss)
    option_checks = staticmethod(_check_lovasz_softmax_options)

    def __init__(
        self,
        *,
        activation: Activation = "softmax",
        per_image: bool = False,
        classes: Classes = "present",
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        reduction: Reduction = "mean",
        sync_across_processes: bool = True,
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())


class LovaszHingeLoss(LossModule):
    """Lovász hinge loss, binary or multi-label (module form of :func:`lovasz_hinge_loss`)."""

    function = staticmethod(lovasz_hinge_loss)
    option_checks = staticmethod(_check_lovasz_hinge_options)

    def __init__(
        self,
        *,
        per_image: bool = False,
        classes: Classes = "all",
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        reduction: Reduction = "mean",
        sync_across_processes: bool = True,
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())
