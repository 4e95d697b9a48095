r"""The loss an nnU-Net trainer calls: a metricseg loss on nnU-Net's targets, at one scale.

nnU-Net calls ``loss(output, target)`` with, at each deep-supervision scale,

* ``output``: logits ``(B, C, *spatial)``;
* ``target``: a label map ``(B, 1, *spatial)`` (labels ``0..C-1``, plus the dataset's
  ``ignore`` label where it has one), or — for **region-based** training — 0/1 region
  masks ``(B, R, *spatial)``, with one more channel, last, marking ignored voxels
  when the dataset has an ignore label.

:class:`NnUNetLoss` hands the metricseg loss what it takes: the label map
``(B, *spatial)`` with ``ignore_index`` = the ignore label and ``activation="softmax"``;
or the region masks with ``activation="sigmoid"``. metricseg's losses take an ignore
*label* but no voxel mask for multi-label targets, so for region-based training with
an ignore label the ignored voxels are **dropped** before the loss is called: with
``per_image=False`` the kept voxels of the batch become one row ``(1, C, N_kept)``
(every metricseg loss pools a batch over its voxels, so this is the same loss); with
``per_image=True`` each image is scored on its own kept voxels and the image losses
are reduced by ``reduction``. The one difference: ``weighted_ce`` without
``class_frequencies`` then takes its frequencies per image, not per batch.

Deep supervision (a list of outputs and targets) is nnU-Net's own
``DeepSupervisionWrapper`` around this module (see :mod:`.trainers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from metricseg.distributed import is_distributed
from metricseg.integrations.nnunet.options import check_loss_options
from metricseg.losses import describe, get

__all__ = ["NnUNetLoss", "build_nnunet_loss", "metricseg_options"]


def metricseg_options(
    loss: str,
    options: Mapping[str, Any],
    *,
    regions: bool,
    ignore_label: int | None,
    batch_dice: bool,
) -> dict[str, Any]:
    """The options the metricseg loss gets: what nnU-Net's dataset and plans say, then ``options``.

    ``activation``: ``"sigmoid"`` for region-based training, else ``"softmax"``;
    ``per_image``: ``not batch_dice`` (``options`` may override it);
    ``ignore_index``: the ignore label (label maps only; regions drop ignored voxels).

    Example:
        >>> metricseg_options("soft_dice", {"smooth": 1.0}, regions=False, ignore_label=3,
        ...                   batch_dice=True)
        {'activation': 'softmax', 'per_image': False, 'ignore_index': 3, 'smooth': 1.0}
    """
    check_loss_options(loss, options)
    accepted = describe(loss).options
    full: dict[str, Any] = {}
    if "activation" in accepted:
        full["activation"] = "sigmoid" if regions else "softmax"
    if "per_image" in accepted:
        full["per_image"] = not batch_dice
    if ignore_label is not None and not regions:
        full["ignore_index"] = int(ignore_label)
    full.update(options)
    return full


def _zero(output: torch.Tensor) -> torch.Tensor:
    """A loss of 0 that still depends on ``output`` (zero gradients; DDP sees every parameter used)."""
    return output.sum() * 0.0


def _label_map(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """nnU-Net's ``(B, 1, *spatial)`` label map (any dtype) as an integer ``(B, *spatial)``."""
    if target.ndim == output.ndim:
        if target.shape[1] != 1:
            raise ValueError(
                f"target must be nnU-Net's label map (B, 1, *spatial) for output of shape "
                f"{tuple(output.shape)}, got shape {tuple(target.shape)}"
            )
        target = target[:, 0]
    # nnU-Net's data loaders and transforms hand labels over as float or int16 / uint8
    return target.long() if target.is_floating_point() else target


class NnUNetLoss(nn.Module):
    """A metricseg loss called on nnU-Net's ``(output, target)`` at one scale.

    Args:
        loss: the metricseg loss module, built with the options of
            :func:`metricseg_options`.
        regions: region-based training (sigmoid, masks ``(B, R, *spatial)``).
        has_ignore: the dataset has an ignore label (for regions: the target's
            last channel marks the ignored voxels).
        ignore_label: the ignore label of label-map targets (``None`` for regions).
        syncs: the loss sums or gathers over DDP processes with ``per_image=False``
            (``sync_across_processes``).
        per_image: the ``per_image`` the loss was built with.
        reduction: the ``reduction`` the loss was built with (``"mean"`` or ``"sum"``).

    Example:
        >>> import torch
        >>> from metricseg.losses import get
        >>> loss = NnUNetLoss(get("soft_dice"), regions=False, has_ignore=False)
        >>> logits, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 1, 8, 8))
        >>> bool(loss(logits, labels) == get("soft_dice")(logits, labels[:, 0]))
        True
    """

    def __init__(
        self,
        loss: nn.Module,
        *,
        regions: bool,
        has_ignore: bool,
        per_image: bool = False,
        reduction: str = "mean",
        ignore_label: int | None = None,
        syncs: bool = True,
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum' for nnU-Net, got {reduction!r}")
        self.loss = loss
        self.regions = regions
        self.has_ignore = has_ignore
        self.per_image = per_image
        self.reduction = reduction
        self.ignore_label = None if regions else ignore_label
        self.syncs = syncs

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.regions:
            labels = _label_map(target, output)
            if self.ignore_label is not None and self._nothing_labelled(
                labels != self.ignore_label
            ):
                return _zero(output)
            return self.loss(output, labels)
        masks, keep = self._region_masks(output, target)
        if keep is None or bool(keep.all()):
            return self.loss(output, masks)
        if self._nothing_labelled(keep):
            return _zero(output)
        return self._without_ignored(output, masks, keep)

    def _nothing_labelled(self, keep: torch.Tensor) -> bool:
        """No voxel of the batch is labelled, and the loss needs no other process to know.

        With sparse annotations a whole patch can lie in the ignored region; then the loss
        is 0 with zero gradients (some losses would raise on it: the Lovász hinge on no
        voxels, weighted CE on no class frequencies). A batch loss that takes part in a
        collective under DDP is still called, so that no process waits for this one.
        """
        if bool(keep.any()):
            return False
        return not (self.syncs and not self.per_image and is_distributed())

    def _region_masks(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        channels = output.shape[1] + (1 if self.has_ignore else 0)
        if target.ndim != output.ndim or target.shape[1] != channels:
            what = f"{output.shape[1]} region masks" + (
                " + 1 ignore mask" if self.has_ignore else ""
            )
            raise ValueError(
                f"target must hold {what} (B, {channels}, *spatial) for output of shape "
                f"{tuple(output.shape)}, got shape {tuple(target.shape)}"
            )
        dtype = torch.float64 if output.dtype == torch.float64 else torch.float32
        if not self.has_ignore:
            return target.to(dtype), None
        keep = target[:, -1] == 0
        return target[:, :-1].to(dtype), keep

    def _without_ignored(
        self, output: torch.Tensor, masks: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """The loss over the kept voxels only (see the module docs)."""

        def kept(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            # (B', C, *spatial) -> (1, C, N_kept): the kept voxels of all images as one row
            return x.movedim(1, -1)[k].transpose(0, 1).unsqueeze(0)

        if not self.per_image:
            return self.loss(kept(output, keep), kept(masks, keep))
        # an image without a labelled voxel scores 0, as metricseg's per-image losses give it
        values = [
            self.loss(
                kept(output[b : b + 1], keep[b : b + 1]), kept(masks[b : b + 1], keep[b : b + 1])
            )
            if bool(keep[b].any())
            else _zero(output[b : b + 1])
            for b in range(output.shape[0])
        ]
        stacked = torch.stack(values)
        return stacked.mean() if self.reduction == "mean" else stacked.sum()

    def extra_repr(self) -> str:
        return f"regions={self.regions}, has_ignore={self.has_ignore}"


def build_nnunet_loss(
    loss: str,
    options: Mapping[str, Any],
    *,
    regions: bool,
    ignore_label: int | None,
    batch_dice: bool,
    num_outputs: int,
) -> NnUNetLoss:
    """Build and try out the metricseg loss ``loss`` for an nnU-Net dataset.

    The loss is called once on a small made-up batch of the dataset's kind (``num_outputs``
    channels, labels or region masks, an ignored voxel where there is an ignore label),
    so an option that does not fit the dataset (``class_weights`` of the wrong length, a
    loss that cannot do multi-label) fails here, before nnU-Net loads any data.

    Example:
        >>> loss = build_nnunet_loss("soft_jaccard", {}, regions=False, ignore_label=None,
        ...                          batch_dice=True, num_outputs=3)
        >>> loss.loss.options["per_image"]
        False
    """
    full = metricseg_options(
        loss, options, regions=regions, ignore_label=ignore_label, batch_dice=batch_dice
    )
    kind = (
        f"{'region-based (sigmoid)' if regions else 'label maps (softmax)'}, "
        f"{num_outputs} output channels"
        + (f", ignore label {ignore_label}" if ignore_label is not None else "")
    )
    try:
        module = get(loss, **full)
        adapter = NnUNetLoss(
            module,
            regions=regions,
            has_ignore=ignore_label is not None,
            per_image=bool(full.get("per_image", False)),
            reduction=str(full.get("reduction", "mean")),
            ignore_label=ignore_label,
            syncs=_syncs(loss, full),
        )
        _try_out(adapter, loss, full, regions, ignore_label, num_outputs)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"metricseg loss {loss!r} with options {full} does not fit this nnU-Net dataset "
            f"({kind}): {exc}"
        ) from exc
    return adapter


def _syncs(loss: str, options: Mapping[str, Any]) -> bool:
    return "sync_across_processes" in describe(loss).options and bool(
        options.get("sync_across_processes", True)
    )


def _try_out(
    adapter: NnUNetLoss,
    loss: str,
    full: dict[str, Any],
    regions: bool,
    ignore_label: int | None,
    num_outputs: int,
) -> None:
    """One call on a 2 × C × 4 × 4 batch, without collectives (ranks need not take part)."""
    local = dict(full)
    if "sync_across_processes" in describe(loss).options:
        local["sync_across_processes"] = False
    probe = NnUNetLoss(
        get(loss, **local),
        regions=regions,
        has_ignore=adapter.has_ignore,
        per_image=adapter.per_image,
        reduction=adapter.reduction,
        ignore_label=adapter.ignore_label,
        syncs=False,
    )
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, num_outputs, 4, 4, generator=gen)
    if regions:
        target = torch.randint(
            0, 2, (2, num_outputs + (ignore_label is not None), 4, 4), generator=gen
        )
        if ignore_label is not None:
            target[:, -1] = 0
            target[:, -1, 0, 0] = 1
    else:
        target = (torch.arange(32).view(2, 1, 4, 4) % num_outputs).to(torch.int16)
        if ignore_label is not None:
            target[:, 0, 0, 0] = ignore_label
    with torch.no_grad():
        value = probe(logits, target)
    if value.ndim != 0 or not bool(torch.isfinite(value)):
        raise ValueError(f"the loss must give a finite scalar, got {value}")
