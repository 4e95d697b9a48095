"""Training: one run of a MONAI U-Net, seeded, checkpointed, resumable, returned as a Predictor.

Needs the ``train`` extra (``pip install metricseg[train]``). The parts
(docs/architecture.md): ``config`` (options), ``sampler`` (batches), ``checkpoint``
(typed state, one save / load pair), ``step`` (an epoch), ``validation`` (model
selection), ``predictor`` (inference), ``loop`` (:func:`train`), ``models``, ``ddp``.
"""

from metricseg.train.checkpoint import CHECKPOINT_NAME, CheckpointError, TrainState
from metricseg.train.config import TrainConfig
from metricseg.train.loop import (
    TrainResult,
    class_frequencies,
    make_loss,
    make_predictor,
    seed_everything,
    train,
)
from metricseg.train.models import DEFAULT_CHANNELS, build_model, size_divisor
from metricseg.train.predictor import Predictor, predict_logits

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_CHANNELS",
    "CheckpointError",
    "Predictor",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "build_model",
    "class_frequencies",
    "make_loss",
    "make_predictor",
    "predict_logits",
    "seed_everything",
    "size_divisor",
    "train",
]
