"""nnU-Net v2 trainers over metricseg losses (optional extra: ``pip install 'metricseg[nnunet]'``).

One nnU-Net trainer per metricseg loss, ``nnUNetTrainer_metricseg_<loss>``, made by one
factory (:func:`make_trainer`); nnU-Net finds them after one setting::

    export nnUNet_extTrainer="$(metricseg nnunet path)"
    nnUNetv2_train DATASET 3d_fullres 0 -tr nnUNetTrainer_metricseg_lovasz_softmax

Loss options and a short schedule come from the environment (:mod:`.options`); how the
loss sees nnU-Net's targets is in :mod:`.loss`; the trainers in :mod:`.trainers`.
``docs/nnunet.md`` has the details.

:mod:`.options` and :mod:`.loss` need only the metricseg core; the trainers (and the
names below that are resolved lazily: ``make_trainer``, ``MetricsegTrainer``,
``TRAINERS`` and every ``nnUNetTrainer_metricseg_<loss>``) need ``nnunetv2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metricseg.integrations.nnunet.loss import NnUNetLoss, build_nnunet_loss, metricseg_options
from metricseg.integrations.nnunet.options import (
    TRAINER_LOSSES,
    TRAINER_PREFIX,
    Schedule,
    check_loss_options,
    read_loss_options,
    read_schedule,
    trainer_name,
)

__all__ = [
    "TRAINER_LOSSES",
    "TRAINER_PREFIX",
    "NnUNetLoss",
    "Schedule",
    "build_nnunet_loss",
    "check_loss_options",
    "ext_trainer_path",
    "metricseg_options",
    "read_loss_options",
    "read_schedule",
    "trainer_name",
]

_LAZY = ("make_trainer", "MetricsegTrainer", "TRAINERS")


def ext_trainer_path() -> Path:
    """The folder to set ``nnUNet_extTrainer`` to: it holds one module that exports the trainers.

    Example:
        >>> (ext_trainer_path() / "metricseg_nnunet_trainers.py").is_file()
        True
    """
    return Path(__file__).resolve().parent / "ext_trainers"


def __getattr__(name: str) -> Any:
    if name in _LAZY or name.startswith(TRAINER_PREFIX):
        from metricseg.integrations.nnunet import trainers

        if hasattr(trainers, name):
            return getattr(trainers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
