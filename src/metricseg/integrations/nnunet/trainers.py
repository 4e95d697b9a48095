"""nnU-Net trainers over metricseg losses: one class per loss, all made by :func:`make_trainer`.

``nnUNetTrainer_metricseg_<loss>`` for every loss in
:data:`~metricseg.integrations.nnunet.options.TRAINER_LOSSES` (soft Dice, soft Jaccard,
soft Tversky, generalized Dice, Lovász-Softmax, Lovász hinge, CE, weighted CE, focal,
Dice + CE) is an ``nnUNetTrainer`` whose only change is the loss (and, when set in the
environment, the number of epochs and iterations):

* the metricseg loss gets ``activation``, ``per_image`` (``not batch_dice`` of the plans)
  and ``ignore_index`` from nnU-Net's dataset and plans, then the user's options
  (:mod:`.options`), and is tried out on a small batch before any data is loaded;
* deep supervision: nnU-Net's own ``DeepSupervisionWrapper`` with the weights nnU-Net's
  ``_build_loss`` computes for this configuration (1/2^k, the lowest scale 0 — 1e-6
  under DDP —, normalised to sum 1), read from the loss nnU-Net would have built;
* DDP: nothing extra. With ``per_image=False`` metricseg's losses sum their counts (or
  gather their rows, for Lovász) over the processes with gradients, so each rank's loss
  is the loss of the global batch and DDP's average of the gradients is the
  whole-batch gradient; no second gather is added on top (nnU-Net's own Dice does the
  same with its ``AllGatherGrad``);
* resuming (``--c``): the checkpoint is read with ``torch.load(weights_only=True)``
  (:mod:`.checkpoint`) instead of nnU-Net's full unpickle.

The classes live in this module under their names, e.g.
``metricseg.integrations.nnunet.trainers.nnUNetTrainer_metricseg_lovasz_softmax``;
nnU-Net finds them by name through ``nnUNet_extTrainer``
(:func:`metricseg.integrations.nnunet.ext_trainer_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

from metricseg.integrations.nnunet.checkpoint import load_checkpoint_weights_only
from metricseg.integrations.nnunet.loss import build_nnunet_loss
from metricseg.integrations.nnunet.options import (
    TRAINER_LOSSES,
    read_loss_options,
    read_schedule,
    trainer_name,
)

__all__ = ["TRAINERS", "MetricsegTrainer", "make_trainer"]


class MetricsegTrainer(nnUNetTrainer):
    """Base of the metricseg trainers: nnU-Net's trainer with a metricseg loss.

    Subclasses set :attr:`metricseg_loss` (a name for ``metricseg.losses.get``); use
    :func:`make_trainer` rather than subclassing by hand.
    """

    metricseg_loss: ClassVar[str] = ""

    # nnU-Net saves the names of __init__'s arguments (from this signature) to re-create
    # the trainer, so it stays exactly nnUNetTrainer's
    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 (nnU-Net's own default)
    ) -> None:
        if not type(self).metricseg_loss:
            raise TypeError(
                f"{type(self).__name__} names no metricseg loss; use "
                "metricseg.integrations.nnunet.make_trainer(loss)"
            )
        # read and check the options before nnU-Net creates folders and log files
        self.metricseg_loss_options: dict[str, Any] = read_loss_options(type(self).metricseg_loss)
        schedule = read_schedule()
        super().__init__(plans, configuration, fold, dataset_json, device)
        if schedule.epochs is not None:
            self.num_epochs = schedule.epochs
        if schedule.iterations is not None:
            self.num_iterations_per_epoch = schedule.iterations
        if schedule.val_iterations is not None:
            self.num_val_iterations_per_epoch = schedule.val_iterations

    def _build_loss(self) -> torch.nn.Module:
        # nnU-Net's own loss, only for its deep-supervision weights: whatever this nnU-Net
        # version (and a subclass's _get_deep_supervision_scales) makes of them
        default = super()._build_loss()
        weights = default.weight_factors if isinstance(default, DeepSupervisionWrapper) else None
        label_manager = self.label_manager
        loss = build_nnunet_loss(
            type(self).metricseg_loss,
            self.metricseg_loss_options,
            regions=bool(label_manager.has_regions),
            ignore_label=label_manager.ignore_label,
            batch_dice=bool(self.configuration_manager.batch_dice),
            num_outputs=int(label_manager.num_segmentation_heads),
        )
        self.print_to_log_file(
            f"metricseg loss {type(self).metricseg_loss!r}: {loss.loss!r}"
            + (
                f", deep-supervision weights {[round(float(w), 6) for w in weights]}"
                if weights
                else ""
            )
        )
        return DeepSupervisionWrapper(loss, weights) if weights is not None else loss

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """nnU-Net's ``load_checkpoint``, reading the file with ``weights_only=True``.

        nnU-Net unpickles the file in full (``weights_only=False``); its contents need no
        more than tensors, plain values and NumPy scalars (:mod:`.checkpoint`). The body
        is nnU-Net 2.8.1's: handing its ``load_checkpoint`` a dict instead fails there
        (its local ``checkpoint`` is only bound for a file name).
        """
        if not self.was_initialized:
            self.initialize()
        checkpoint = (
            load_checkpoint_weights_only(filename_or_checkpoint, map_location=self.device)
            if isinstance(filename_or_checkpoint, (str, Path))
            else filename_or_checkpoint
        )
        network = self.network.module if self.is_ddp else self.network
        if isinstance(network, OptimizedModule):
            network = network._orig_mod
        own_keys = network.state_dict().keys()
        # a checkpoint of a DataParallel/DDP module prefixes its keys with "module."
        weights = {
            (k[7:] if k not in own_keys and k.startswith("module.") else k): v
            for k, v in checkpoint["network_weights"].items()
        }
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint.get(
            "inference_allowed_mirroring_axes", self.inference_allowed_mirroring_axes
        )
        network.load_state_dict(weights)
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])


def make_trainer(loss: str) -> type[MetricsegTrainer]:
    """The nnU-Net trainer class for metricseg loss ``loss``, named ``nnUNetTrainer_metricseg_<loss>``.

    Example:
        >>> make_trainer("focal").__name__
        'nnUNetTrainer_metricseg_focal'
    """
    name = trainer_name(loss)
    return type(
        name,
        (MetricsegTrainer,),
        {
            "metricseg_loss": loss,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": (
                f"nnU-Net trainer with the metricseg loss {loss!r} "
                f"(``metricseg.losses.get({loss!r}, **options)``; options from "
                "METRICSEG_NNUNET_LOSS_OPTIONS or METRICSEG_NNUNET_LOSS_OPTIONS_FILE)."
            ),
        },
    )


#: trainer name -> class, one per loss in TRAINER_LOSSES
TRAINERS: dict[str, type[MetricsegTrainer]] = {
    trainer_name(n): make_trainer(n) for n in TRAINER_LOSSES
}
# importable under their names: nnU-Net looks trainers up as module attributes
globals().update(TRAINERS)
__all__ += list(TRAINERS)
