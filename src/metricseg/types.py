"""The shared vocabulary as types: ``Literal`` aliases of every option name, and input types.

Every option value that the metrics and the losses share is spelled here once
(``docs/conventions.md``). The tuples of allowed values that the checks use at
run time are read from the same ``Literal`` aliases, so a new value is added in
one place.

Example:
    >>> from metricseg.types import REDUCTIONS, Reduction
    >>> REDUCTIONS
    ('mean', 'sum', 'none')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Optional, TypeAlias, Union, get_args

import numpy as np
import torch

__all__ = [
    "ACTIVATIONS",
    "AGGREGATES",
    "CLASS_MODES",
    "EMPTY_POLICIES",
    "GDL_WEIGHT_TYPES",
    "METRICS",
    "REDUCTIONS",
    "WEIGHT_SCHEMES",
    "Activation",
    "Aggregate",
    "ArrayLike",
    "ClassMode",
    "Classes",
    "EmptyPolicy",
    "GDLWeightType",
    "MetricName",
    "Reduction",
    "WeightScheme",
    "Weights",
]

# ``Optional`` / ``Union`` rather than ``X | Y``: these aliases are evaluated at run
# time, and ``Literal[...] | None`` needs Python 3.10's typing internals everywhere.

#: How logits become probabilities: softmax over classes, per-channel sigmoid, or
#: ``None`` for probabilities given as they are.
Activation: TypeAlias = Optional[Literal["softmax", "sigmoid"]]  # noqa: UP045
#: Which classes a loss averages over, by name.
ClassMode: TypeAlias = Literal["all", "present", "foreground"]
#: A class mode, or a list of class indices.
Classes: TypeAlias = Union[ClassMode, Sequence[int]]  # noqa: UP007
#: How per-image losses are reduced over the batch (or scores over images and classes).
Reduction: TypeAlias = Literal["mean", "sum", "none"]
#: The score when prediction and target are both empty; also the value of a
#: ratio whose denominator is 0 in :func:`metricseg.metrics.safe_divide`.
EmptyPolicy: TypeAlias = Literal["nan", "one", "zero"]
#: The hard scores of :mod:`metricseg.metrics`.
MetricName: TypeAlias = Literal["dice", "jaccard", "tversky", "hamming", "sensitivity", "precision"]
#: How :func:`metricseg.metrics.aggregate` averages over images and classes.
Aggregate: TypeAlias = Literal["class", "macro", "micro", "global_class", "global"]
#: Class weights of the weighted cross-entropy from class frequencies.
WeightScheme: TypeAlias = Literal[
    "inverse_frequency", "inverse_sqrt_frequency", "median_frequency", "log"
]
#: Class weights of the generalized Dice loss.
GDLWeightType: TypeAlias = Literal["square", "simple", "uniform"]

#: A label map, mask stack or count array: a torch tensor (CPU or CUDA) or a numpy array.
ArrayLike: TypeAlias = Union[torch.Tensor, np.ndarray]  # noqa: UP007
#: One number per class: a tensor, an array or a plain sequence.
Weights: TypeAlias = Union[torch.Tensor, np.ndarray, Sequence[float]]  # noqa: UP007

ACTIVATIONS: tuple[str | None, ...] = (*get_args(get_args(Activation)[0]), None)
CLASS_MODES: tuple[str, ...] = get_args(ClassMode)
REDUCTIONS: tuple[str, ...] = get_args(Reduction)
EMPTY_POLICIES: tuple[str, ...] = get_args(EmptyPolicy)
METRICS: tuple[str, ...] = get_args(MetricName)
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
WEIGHT_SCHEMES: tuple[str, ...] = get_args(WeightScheme)
GDL_WEIGHT_TYPES: tuple[str, ...] = get_args(GDLWeightType)
