"""Training curves of a study: validation Dice per epoch for each task and loss.

Every run stores its history (one record per epoch, with the validation Dice that
selected its model). :func:`training_curves` averages the runs of a task and loss
(seeds, folds) epoch by epoch, and flags a loss that is **still improving**: its
mean validation Dice rose by more than :data:`STILL_IMPROVING_RISE` over the last
20 % of the epochs — a sign that the budget, not the loss, limits its score.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metricseg.experiment.spec import RunSpec

__all__ = ["STILL_IMPROVING_RISE", "Curve", "training_curves"]

#: Rise of the mean validation Dice over the last 20 % of epochs that flags a loss
#: as still improving.
STILL_IMPROVING_RISE = 0.01


@dataclass(frozen=True)
class Curve:
    """Validation Dice per epoch of one task and loss, over its runs."""

    task: str
    loss: str
    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    runs: int

    @property
    def rise_in_last_fifth(self) -> float:
        """Mean validation Dice at the last epoch minus at the start of the last 20 % of epochs."""
        values = np.asarray(self.mean, dtype=np.float64)
        if values.size < 2 or np.isnan(values).all():
            return math.nan
        start = max(0, values.size - 1 - math.ceil(0.2 * values.size))
        return float(values[-1] - values[start])

    @property
    def still_improving(self) -> bool:
        """True when the mean validation Dice rose by more than :data:`STILL_IMPROVING_RISE`
        over the last 20 % of the epochs."""
        rise = self.rise_in_last_fifth
        return not math.isnan(rise) and rise > STILL_IMPROVING_RISE


def training_curves(results: Sequence[Mapping[str, Any]]) -> list[Curve]:
    """One :class:`Curve` per (task, loss) of the results, in the order they first appear.

    Runs that stopped early are padded with NaN after their last epoch (left out of
    the mean of later epochs).

    Example:
        >>> spec = RunSpec("t", "ce").to_dict()
        >>> hist = [{"epoch": e, "val_dice": v} for e, v in [(1, 0.2), (2, 0.4), (3, 0.5), (4, 0.7)]]
        >>> c = training_curves([{"spec": spec, "history": hist}])[0]
        >>> c.mean, c.still_improving
        ([0.2, 0.4, 0.5, 0.7], True)
    """
    groups: dict[tuple[str, str], list[list[float]]] = {}
    for res in results:
        spec = RunSpec.from_dict(res["spec"])
        values = [
            math.nan if h.get("val_dice") is None else float(h["val_dice"])
            for h in res.get("history", [])
        ]
        groups.setdefault((spec.task_label, spec.loss_label), []).append(values)
    curves = []
    for (task, loss), runs in groups.items():
        length = max((len(r) for r in runs), default=0)
        table = np.full((len(runs), length), np.nan)
        for i, r in enumerate(runs):
            table[i, : len(r)] = r
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN epoch: NaN is right
            mean = np.nanmean(table, axis=0) if length else np.zeros(0)
            low = np.nanmin(table, axis=0) if length else np.zeros(0)
            high = np.nanmax(table, axis=0) if length else np.zeros(0)
        curves.append(
            Curve(
                task,
                loss,
                list(range(1, length + 1)),
                mean.tolist(),
                low.tolist(),
                high.tolist(),
                len(runs),
            )
        )
    return curves
