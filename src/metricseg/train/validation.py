"""The validation score that selects the best epoch, from the one scoring path.

Every case is predicted by the :class:`~metricseg.train.predictor.Predictor`,
counted by :func:`metricseg.counts.confusion` and scored by
:func:`metricseg.metrics.dice`: the mean Dice over the foreground classes present in
the target or the prediction (a class absent from both has no Dice; a class
predicted but absent scores 0, so false positives cost). The epoch score is the
mean over the validation cases that have a score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from metricseg.counts import confusion
from metricseg.data.task import Case
from metricseg.metrics import dice
from metricseg.train.predictor import Predictor

__all__ = ["case_foreground_dice", "validation_dice"]


def case_foreground_dice(pred: np.ndarray, label: np.ndarray, num_classes: int) -> float:
    """Mean Dice over the foreground classes present in ``pred`` or ``label`` (NaN if none).

    Example:
        >>> import numpy as np
        >>> case_foreground_dice(np.array([[0, 1, 2, 2]]), np.array([[0, 1, 2, 0]]), 3)
        0.8333333333333333
    """
    counts = confusion(pred[None], label[None], num_classes)
    return float(dice(counts, include_background=False, reduction="mean"))


def validation_dice(predictor: Predictor, cases: Sequence[Case], num_classes: int) -> float:
    """Mean of :func:`case_foreground_dice` over ``cases`` (cases without a score left out)."""
    scores = [case_foreground_dice(predictor(c.image), c.label, num_classes) for c in cases]
    finite = [s for s in scores if not math.isnan(s)]
    return float(np.mean(finite)) if finite else math.nan
