"""How Dice, Jaccard, Tversky and weighted Hamming bound each other.

Closed forms (:mod:`metricseg.theory.bounds`), the weighted-Hamming
counterexample family (:mod:`metricseg.theory.hamming`), per-image against
pooled scores (:mod:`metricseg.theory.pooling`) and a verifier that checks every
claimed bound by exhaustive enumeration and adversarial search
(:func:`verify`). Derivations: ``docs/theory.md``. Needs only torch and numpy;
the plots (:mod:`metricseg.theory.plots`) need matplotlib.
"""

from metricseg.theory.bounds import (
    DICE_AT_MAX_GAP,
    JACCARD_AT_MAX_GAP,
    MAX_DICE_JACCARD_GAP,
    dice_from_jaccard,
    dice_jaccard_gap,
    dice_loss_bounds,
    hamming_loss_bound,
    jaccard_from_dice,
    tversky_dice_max_gap,
    tversky_dice_ratio_range,
    tversky_dice_worst_case,
)
from metricseg.theory.hamming import (
    hamming_counterexample,
    hamming_counterexample_family,
    inverse_frequency_counterexample,
)
from metricseg.theory.verify import BoundViolation, Claim, default_claims, verify

__all__ = [
    "DICE_AT_MAX_GAP",
    "JACCARD_AT_MAX_GAP",
    "MAX_DICE_JACCARD_GAP",
    "BoundViolation",
    "Claim",
    "default_claims",
    "dice_from_jaccard",
    "dice_jaccard_gap",
    "dice_loss_bounds",
    "hamming_counterexample",
    "hamming_counterexample_family",
    "hamming_loss_bound",
    "inverse_frequency_counterexample",
    "jaccard_from_dice",
    "tversky_dice_max_gap",
    "tversky_dice_ratio_range",
    "tversky_dice_worst_case",
    "verify",
]
