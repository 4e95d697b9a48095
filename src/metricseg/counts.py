r"""The one statistics core: true positives, false positives and false negatives.

Every metric and every region loss in metricseg is a function of three numbers
per image and class,

.. math::

    TP_{bc} = \sum_i p_{bci}\, t_{bci}, \qquad
    FP_{bc} = \sum_i p_{bci} - TP_{bc}, \qquad
    FN_{bc} = \sum_i t_{bci} - TP_{bc},

where :math:`p` is the (hard or soft) prediction and :math:`t` the target of
image :math:`b`, class :math:`c` and voxel :math:`i`. This module computes them

* **hard** (:func:`confusion`), as int64 counts from label maps or boolean
  masks, in one ``bincount`` pass;
* **soft** (:func:`soft_counts`), as float sums from probabilities, with
  gradients, for the region losses.

Neither builds a one-hot ``(B, C, *spatial)`` copy of a label map: label maps
are counted with ``bincount`` / ``gather`` / ``scatter_add``.

The last axis of the result is always ``(TP, FP, FN)``; use :data:`TP`,
:data:`FP`, :data:`FN` to index it.
"""

from __future__ import annotations

from typing import Any

import torch

from metricseg._checks import (
    as_tensor,
    check_dense_target,
    check_ignore_index,
    check_label_range,
    check_not_empty,
    check_num_classes,
    check_probabilities_shape,
    is_integer_dtype,
    require_tensor,
)
from metricseg._parallel import map_chunks
from metricseg.types import ArrayLike

__all__ = ["FN", "FP", "TP", "confusion", "soft_counts"]

#: Index of the true positives on the last axis of a counts tensor.
TP = 0
#: Index of the false positives on the last axis of a counts tensor.
FP = 1
#: Index of the false negatives on the last axis of a counts tensor.
FN = 2


def _check_mask(
    mask: ArrayLike, batch_spatial: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    mask_t, _ = as_tensor(mask, "mask")
    if mask_t.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean array (B, *spatial), got dtype {mask_t.dtype}")
    if tuple(mask_t.shape) != batch_spatial:
        raise ValueError(
            f"mask must have shape (B, *spatial) = {batch_spatial}, got {tuple(mask_t.shape)}"
        )
    return mask_t.to(device)


def confusion(
    pred: ArrayLike,
    target: ArrayLike,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    per_image: bool = True,
    one_hot: bool | None = None,
    mask: ArrayLike | None = None,
    validate_args: bool = True,
) -> Any:
    r"""Hard TP, FP, FN per image and class, in one counting pass.

    Args:
        pred: predicted label map ``(B, *spatial)`` of integers in
            ``[0, num_classes)``, or a mask stack ``(B, C, *spatial)`` (boolean,
            or 0/1 integers with ``one_hot=True``) for multi-label problems.
            Any number of spatial dims. A ``torch.Tensor`` (CPU or CUDA) or a
            ``numpy.ndarray``.
        target: ground truth of the same kind and shape as ``pred``.
        num_classes: number of classes ``C``, background included.
        ignore_index: label-map value in ``target`` whose voxels are left out of
            every count (prediction there does not matter). It must not be a
            class (outside ``[0, num_classes)``, e.g. 255, or -1 in a signed label
            map), as in the losses; to leave a class out of the scores, select
            the classes of the metric instead. Label maps only; for mask stacks
            use ``mask``.
        per_image: ``True`` gives counts per image ``(B, C, 3)``; ``False``
            pools the batch into ``(C, 3)``.
        one_hot: how to read integer inputs: ``None`` (default) reads boolean
            inputs as mask stacks and integer inputs as label maps; ``True``
            reads integer inputs as 0/1 mask stacks ``(B, C, *spatial)``.
        mask: optional boolean ``(B, *spatial)``; only voxels where it is
            ``True`` are counted.
        validate_args: check that labels lie in ``[0, num_classes)`` (or are
            ``ignore_index``) and mask stacks hold only 0/1. That reads the values,
            a host sync on an accelerator; a training loop whose labels are known
            to be valid may pass ``False``. Out-of-range labels then give wrong
            counts or a device error, not a message. Shapes and dtypes are always
            checked.

    Returns:
        int64 counts ``(B, C, 3)`` (or ``(C, 3)``), last axis ``(TP, FP, FN)``,
        of the same kind (torch on the same device, or numpy) as ``pred``.

    A label map is counted with ``bincount`` over the combined index
    ``target·C + pred``, which yields the full per-image confusion matrix; TP is
    its diagonal, FP its column sums minus the diagonal, FN its row sums minus
    the diagonal. On the CPU this runs per image in cache-sized chunks (a uint8
    index when ``C² < 256``); on other devices as one ``bincount`` over
    ``(b·C + target)·C + pred`` for the whole batch.

    Example:
        >>> import numpy as np
        >>> pred = np.array([[0, 1, 1, 2]])
        >>> gt = np.array([[0, 1, 2, 2]])
        >>> confusion(pred, gt, 3)[0].tolist()   # rows: classes 0, 1, 2
        [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    num_classes = check_num_classes(num_classes)
    ignore_index = check_ignore_index(
        ignore_index, num_classes, fix="To leave a class out of the scores, select classes"
    )
    pred_t, pred_np = as_tensor(pred, "pred")
    target_t, _ = as_tensor(target, "target")
    if target_t.device != pred_t.device:
        raise ValueError(
            f"pred and target must be on one device, got pred on {pred_t.device} and "
            f"target on {target_t.device}"
        )
    if pred_t.shape != target_t.shape:
        raise ValueError(
            f"pred and target must have the same shape, got pred {tuple(pred_t.shape)} "
            f"and target {tuple(target_t.shape)}"
        )
    if pred_t.ndim < 2:
        raise ValueError(
            f"pred must have shape (B, *spatial) or (B, C, *spatial), got {tuple(pred_t.shape)}"
        )
    check_not_empty(pred_t, "pred", 1)
    for name, t in (("pred", pred_t), ("target", target_t)):
        if t.dtype.is_floating_point or t.dtype.is_complex:
            raise TypeError(
                f"{name} must hold integer labels or booleans, got dtype {t.dtype}; "
                "threshold or argmax probabilities first"
            )
    masks = one_hot if one_hot is not None else (pred_t.dtype == torch.bool)
    if (pred_t.dtype == torch.bool) != (target_t.dtype == torch.bool) and one_hot is None:
        raise TypeError(
            f"pred and target must both be boolean mask stacks or both integer label maps, "
            f"got pred {pred_t.dtype} and target {target_t.dtype}"
        )
    if masks:
        counts = _confusion_masks(pred_t, target_t, num_classes, ignore_index, mask, validate_args)
    else:
        counts = _confusion_labels(
            pred_t, target_t, num_classes, ignore_index, mask, validate=validate_args
        )
    if not per_image:
        counts = counts.sum(0)
    return counts.cpu().numpy() if pred_np else counts


#: Voxels per counting chunk on the CPU: the int64 index of one chunk (2 MiB) stays
#: in cache, where one index over the whole volume would be a fresh allocation
#: whose page faults cost more than the counting itself.
_CPU_CHUNK = 1 << 18


def _confusion_labels(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
    *,
    validate: bool = True,
) -> torch.Tensor:
    b = pred.shape[0]
    c = num_classes
    on_cpu = pred.device.type == "cpu"
    if validate and not on_cpu:
        check_label_range(pred, "pred", c)
        check_label_range(target, "target", c, ignore_index)
    # on the CPU each chunk is range-checked just before it is counted, while in cache
    t = target.reshape(b, -1)
    p = pred.reshape(b, -1)
    drop = None
    if ignore_index is not None:
        drop = t == ignore_index
    if mask is not None:
        keep = _check_mask(mask, (b, *pred.shape[1:]), pred.device).reshape(b, -1)
        drop = ~keep if drop is None else drop | ~keep
    if not on_cpu:
        cm = _confusion_matrix_whole(p, t, c, drop)
    else:
        cm = _confusion_matrix_chunks(pred, target, p, t, c, ignore_index, drop, validate)
    tp = torch.diagonal(cm, dim1=1, dim2=2)
    fp = cm.sum(1) - tp  # predicted c, target other
    fn = cm.sum(2) - tp  # target c, predicted other
    return torch.stack((tp, fp, fn), dim=-1)


class _OutOfRange(Exception):
    """A chunk holds a label outside the classes (the caller says which)."""


def _confusion_matrix_chunks(
    pred: torch.Tensor,
    target: torch.Tensor,
    p: torch.Tensor,
    t: torch.Tensor,
    c: int,
    ignore_index: int | None,
    drop: torch.Tensor | None,
    validate: bool = True,
) -> torch.Tensor:
    """Confusion matrices ``(B, C, C)`` of flat CPU label maps ``(B, N)``, chunk by chunk.

    Per image, in cache-sized chunks, each range-checked while in cache and
    counted by one ``bincount`` of the index ``t·C + p``. Where the ``C² + 1``
    bins fit in a byte the index is a uint8: ``bincount`` over bytes is twice
    as fast, and casting both label chunks to uint8 then multiplying and adding
    bytes beats one int64 add with a cast on output (labels are range-checked
    first, so ``t·C + p < C²``; byte arithmetic wraps mod 256, which is exact
    for a result below 256). The chunks run on :func:`metricseg._parallel.
    map_chunks`'s single-threaded workers (no op opens a parallel region, so a
    busy machine costs no barrier waits); counts are integers, so their sum
    does not depend on how the chunks were shared out. ``pred`` and ``target``
    are the unflattened inputs, for the error message. ``validate=False`` skips the
    range checks (the caller vouches for the labels).
    """
    b, n = t.shape
    bins = c * c
    as_bytes = bins < 256
    # an int64 index is computed in the inputs' own dtype when that holds bins
    fused = torch.iinfo(torch.promote_types(p.dtype, t.dtype)).max >= bins
    starts = range(0, n, _CPU_CHUNK)
    jobs = [(i, start) for i in range(b) for start in starts]

    def count(j: int) -> torch.Tensor:
        i, start = jobs[j]
        stop = min(start + _CPU_CHUNK, n)
        p_chunk, t_chunk = p[i, start:stop], t[i, start:stop]
        if validate and not _in_range(p_chunk, c):
            raise _OutOfRange
        if validate and not _in_range(t_chunk, c):
            bad = (t_chunk < 0) | (t_chunk >= c)
            if ignore_index is not None:
                bad &= t_chunk != ignore_index
            if bool(bad.any()):
                raise _OutOfRange
        if as_bytes:
            # copy=True: a uint8 input must not be changed in place
            idx = t_chunk.to(torch.uint8, copy=True).mul_(c).add_(p_chunk.to(torch.uint8))
        elif fused:
            idx = torch.add(p_chunk, t_chunk, alpha=c).to(torch.int64)
        else:  # widen first: t*C + p would overflow the label dtype
            idx = t_chunk.to(torch.int64, copy=True).mul_(c).add_(p_chunk)
        if drop is not None:
            idx.masked_fill_(drop[i, start:stop], bins)
        return torch.bincount(idx, minlength=bins + 1)[:bins]

    try:
        parts = map_chunks(count, len(jobs), min(_CPU_CHUNK, n))
    except _OutOfRange:
        check_label_range(pred, "pred", c)  # raises, describing all of pred
        check_label_range(target, "target", c, ignore_index)  # raises
        raise AssertionError(
            "a chunk held a label out of range, but the whole map does not"
        ) from None
    return torch.stack(parts).view(b, len(starts), bins).sum(1).view(b, c, c)


def _in_range(labels: torch.Tensor, num_classes: int) -> bool:
    lo, hi = torch.aminmax(labels)
    return int(lo) >= 0 and int(hi) < num_classes


def _confusion_matrix_whole(
    p: torch.Tensor, t: torch.Tensor, c: int, drop: torch.Tensor | None
) -> torch.Tensor:
    """Confusion matrices ``(B, C, C)`` of flat label maps ``(B, N)`` in one ``bincount``.

    For accelerators, where one launch over the whole batch beats a loop of chunks:
    the index ``(b*C + t)*C + p`` is built in place in one int64 buffer.
    """
    b = t.shape[0]
    bins = b * c * c
    idx = t.to(torch.int64, copy=True)
    if b > 1:
        idx.add_(torch.arange(b, device=idx.device).mul_(c).unsqueeze(1))
    idx.mul_(c).add_(p)
    if drop is not None:
        # left-out voxels go to one extra bin rather than compacting the buffer
        idx.masked_fill_(drop, bins)
    return torch.bincount(idx.view(-1), minlength=bins + 1)[:bins].view(b, c, c)


def _confusion_masks(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
    validate: bool,
) -> torch.Tensor:
    if ignore_index is not None:
        raise ValueError(
            f"ignore_index={ignore_index} applies to label maps; for mask stacks "
            "(B, C, *spatial) pass mask= (B, *spatial) instead"
        )
    if pred.ndim < 3 or pred.shape[1] != num_classes:
        raise ValueError(
            f"mask stacks must have shape (B, C, *spatial) with C = num_classes = "
            f"{num_classes}, got {tuple(pred.shape)}"
        )
    for name, t in (("pred", pred), ("target", target)):
        if t.dtype != torch.bool:
            if not is_integer_dtype(t.dtype):
                raise TypeError(f"{name} must be boolean or 0/1 integers, got {t.dtype}")
            if not validate:
                continue
            lo, hi = torch.aminmax(t)
            if int(lo) < 0 or int(hi) > 1:
                raise ValueError(
                    f"{name} read as a one-hot mask stack must hold only 0 and 1, "
                    f"got values from {int(lo)} to {int(hi)}"
                )
    b = pred.shape[0]
    p = pred.reshape(b, num_classes, -1).bool()
    t = target.reshape(b, num_classes, -1).bool()
    if mask is not None:
        keep = _check_mask(mask, (b, *pred.shape[2:]), pred.device).reshape(b, 1, -1)
        p = p & keep
        t = t & keep
    tp = (p & t).sum(-1)
    sp = p.sum(-1)
    st = t.sum(-1)
    return torch.stack((tp, sp - tp, st - tp), dim=-1)


def soft_counts(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int | None = None,
    mask: torch.Tensor | None = None,
    per_image: bool = True,
    squared: bool = False,
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Soft TP, FP, FN per image and class from probabilities, with gradients.

    .. math::

        TP_{bc} = \sum_i p_{bci} t_{bci},\quad
        FP_{bc} = \sum_i p_{bci}^{k} - TP_{bc},\quad
        FN_{bc} = \sum_i t_{bci}^{k} - TP_{bc}

    with :math:`k = 1`, or :math:`k = 2` when ``squared`` (Milletari's squared
    denominator: then ``FP`` and ``FN`` are not counts but keep
    ``2TP + FP + FN = Σp² + Σt²``, which is what the Dice and Jaccard forms need).
    Voxels left out by ``ignore_index`` / ``mask`` are excluded from all three.

    Args:
        probs: probabilities ``(B, C, *spatial)`` (already activated; float16 and
            bfloat16 are accumulated in float32).
        target: label map ``(B, *spatial)`` of integers (counted by ``gather`` and
            ``scatter_add``, never one-hot encoded), or a one-hot / soft target
            ``(B, C, *spatial)`` of floats in [0, 1].
        ignore_index: label-map value to leave out (label-map targets only); not
            a class, as in :func:`confusion`.
        mask: optional boolean ``(B, *spatial)`` of voxels to count.
        per_image: ``True`` gives ``(B, C, 3)``, ``False`` pools into ``(C, 3)``.
        squared: use squared terms in ``FP`` and ``FN`` as above.
        validate_args: check that labels lie in ``[0, C)`` (or are
            ``ignore_index``) and that a one-hot / soft target lies in ``[0, 1]``;
            ``False`` skips these reads of the values (a host sync on an
            accelerator each), for training loops with known-good targets.

    Returns:
        ``(B, C, 3)`` (or ``(C, 3)``) of float32 (float64 for float64 ``probs``),
        last axis ``(TP, FP, FN)``, differentiable with respect to ``probs``
        (and to a soft ``target``).

    Example:
        >>> import torch
        >>> p = torch.tensor([[[0.9, 0.2, 0.0], [0.1, 0.8, 1.0]]])  # (1, 2, 3)
        >>> t = torch.tensor([[0, 1, 1]])
        >>> soft_counts(p, t)[0]
        tensor([[0.9000, 0.2000, 0.1000],
                [1.8000, 0.1000, 0.2000]])
    """
    probs = require_tensor(probs, "probs")
    target = require_tensor(target, "target")
    if not probs.dtype.is_floating_point:
        raise TypeError(f"probs must be floating point, got {probs.dtype}")
    kind = check_probabilities_shape(probs, target, "probs", "target")
    check_not_empty(probs, "probs", 2)
    ignore_index = check_ignore_index(ignore_index, probs.shape[1])
    if validate_args and kind == "dense":
        check_dense_target(target, "target", distribution=False)
    # autocast would run the einsums below in half precision again
    with torch.autocast(device_type=probs.device.type, enabled=False):
        return _soft_counts(
            probs, target, kind, ignore_index, mask, per_image, squared, validate_args
        )


def _soft_counts(
    probs: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    ignore_index: int | None,
    mask: torch.Tensor | None,
    per_image: bool,
    squared: bool,
    validate: bool,
) -> torch.Tensor:
    if probs.dtype in (torch.float16, torch.bfloat16):
        probs = probs.float()
    b, c = probs.shape[:2]
    p = probs.reshape(b, c, -1)
    valid: torch.Tensor | None = None
    if mask is not None:
        valid = _check_mask(mask, (b, *probs.shape[2:]), probs.device).reshape(b, -1)

    if kind == "labels":
        if validate:
            check_label_range(target, "target", c, ignore_index)
        t = target.reshape(b, -1).to(torch.int64)
        if ignore_index is not None:
            keep = t != ignore_index
            valid = keep if valid is None else valid & keep
        if valid is not None:
            t = t.masked_fill(~valid, 0)
        # p at the target class of each voxel; sums in float64 because
        # scatter_add accumulates sequentially
        hit = p.gather(1, t.unsqueeze(1)).squeeze(1).to(torch.float64)
        ones = torch.ones((), dtype=torch.float64, device=p.device).expand_as(hit)
        if valid is not None:
            w = valid.to(torch.float64)
            hit = hit * w
            ones = w
        tp = torch.zeros((b, c), dtype=torch.float64, device=p.device).scatter_add(1, t, hit)
        st = torch.zeros((b, c), dtype=torch.float64, device=p.device).scatter_add(1, t, ones)
        tp = tp.to(p.dtype)
        st = st.to(p.dtype)
        if squared:
            sp = torch.einsum("bcn,bcn->bc", p, p * valid.unsqueeze(1) if valid is not None else p)
        elif valid is not None:
            sp = torch.einsum("bcn,bn->bc", p, valid.to(p.dtype))
        else:
            sp = p.sum(-1)
    else:
        if ignore_index is not None:
            raise ValueError(
                f"ignore_index={ignore_index} applies to label-map targets; for one-hot or "
                "soft targets (B, C, *spatial) pass mask= (B, *spatial) instead"
            )
        t = target.reshape(b, c, -1).to(p.dtype)
        if valid is not None:
            w = valid.to(p.dtype).unsqueeze(1)
            pw = p * w
            tp = torch.einsum("bcn,bcn->bc", pw, t)
            sp = torch.einsum("bcn,bcn->bc", pw, p) if squared else pw.sum(-1)
            tw = t * w
            st = torch.einsum("bcn,bcn->bc", tw, t) if squared else tw.sum(-1)
        else:
            tp = torch.einsum("bcn,bcn->bc", p, t)
            sp = torch.einsum("bcn,bcn->bc", p, p) if squared else p.sum(-1)
            st = torch.einsum("bcn,bcn->bc", t, t) if squared else t.sum(-1)
    counts = torch.stack((tp, sp - tp, st - tp), dim=-1)
    if not per_image:
        counts = counts.sum(0)
    return counts
