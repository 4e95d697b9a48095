"""Training: MONAI U-Nets, a seeded and resumable loop, sliding-window inference, scores.

Needs the ``train`` extra (``pip install metricseg[train]``).
"""

from metricseg.train.evaluation import case_rows, foreground_dice, object_sizes
from metricseg.train.inference import predict_labels, predict_logits
from metricseg.train.loop import (
    CHECKPOINT_NAME,
    TrainConfig,
    TrainResult,
    class_frequencies,
    make_loss,
    seed_everything,
    train,
)
from metricseg.train.models import DEFAULT_CHANNELS, build_model, size_divisor

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_CHANNELS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "case_rows",
    "class_frequencies",
    "foreground_dice",
    "make_loss",
    "object_sizes",
    "predict_labels",
    "predict_logits",
    "seed_everything",
    "size_divisor",
    "train",
]
