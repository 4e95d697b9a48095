"""Metric-sensitive and per-voxel segmentation losses over one soft-count core.

Functional forms (``soft_dice_loss``, ``lovasz_softmax_loss``, …) and thin
``nn.Module`` wrappers (``SoftDiceLoss``, ``LovaszSoftmaxLoss``, …) share one
vocabulary: ``activation``, ``per_image``, ``classes``, ``ignore_index``,
``class_weights``, ``reduction``. ``get(name, **options)`` builds a loss by
name; ``available()`` lists the names.
"""

from metricseg.losses.compound import CompoundLoss
from metricseg.losses.lovasz import (
    LovaszHingeLoss,
    LovaszSoftmaxLoss,
    lovasz_hinge_loss,
    lovasz_softmax_loss,
)
from metricseg.losses.pixel import (
    CrossEntropyLoss,
    FocalLoss,
    WeightedCrossEntropyLoss,
    class_weights_from_frequencies,
    cross_entropy_loss,
    focal_loss,
    weighted_cross_entropy_loss,
)
from metricseg.losses.region import (
    GeneralizedDiceLoss,
    SoftDiceLoss,
    SoftJaccardLoss,
    SoftTverskyLoss,
    generalized_dice_loss,
    soft_dice_loss,
    soft_jaccard_loss,
    soft_tversky_loss,
)
from metricseg.losses.registry import LossInfo, available, describe, get

__all__ = [
    "CompoundLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "LossInfo",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "SoftDiceLoss",
    "SoftJaccardLoss",
    "SoftTverskyLoss",
    "WeightedCrossEntropyLoss",
    "available",
    "class_weights_from_frequencies",
    "cross_entropy_loss",
    "describe",
    "focal_loss",
    "generalized_dice_loss",
    "get",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "soft_dice_loss",
    "soft_jaccard_loss",
    "soft_tversky_loss",
    "weighted_cross_entropy_loss",
]
