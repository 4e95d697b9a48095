r"""Numerical verification of the claimed bounds: exhaustive enumeration and adversarial search.

Each bound metricseg claims is a :class:`Claim`: a quantity computed from the
counts ``(tp, fp, fn, tn)`` of one image (say :math:`D - J`, or
:math:`T_\alpha / D`) and the interval ``[lower, upper]`` it must stay in. The
verifier evaluates every claim

1. on **every** hard count triple :math:`(t, f, n)` with
   :math:`1 \le t + f + n \le` ``max_voxels`` (vectorised numpy, float64); claims
   that need the true negatives too (the Hamming similarity) on every
   quadruple :math:`(t, f, n, tn)` with :math:`t + f + n \ge 1` and
   :math:`t + f + n + tn \le` ``hamming_max_voxels``;
2. by an **adversarial search** over soft predictions (and soft or hard
   targets) of ``voxels`` voxels: ``restarts`` random starting points, each
   pushed by gradient ascent (Adam, float64) towards the claim's end, on the
   soft counts of :func:`metricseg.counts.soft_counts` — the counts that the
   soft Dice, soft Jaccard and soft Tversky losses use.

It reports, per claim, the smallest and largest value found next to the closed
form, and raises :class:`BoundViolation` if any value falls outside its claimed
interval. Claims are plain data, so a test can plant a false one and see it caught.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from metricseg.counts import FN, FP, TP, soft_counts
from metricseg.theory import _scores, bounds
from metricseg.theory._args import check_int

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_HAMMING_WEIGHTS",
    "BoundViolation",
    "Claim",
    "ClaimResult",
    "VerificationReport",
    "default_claims",
    "enumerate_counts",
    "iter_count_blocks",
    "verify",
]

#: Tversky weights on false positives checked by default (beta = 1 - alpha).
DEFAULT_ALPHAS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Hamming weights ``(w_fp, w_fn)`` checked by default.
DEFAULT_HAMMING_WEIGHTS: tuple[tuple[float, float], ...] = (
    (1.0, 1.0),
    (1.0, 0.5),
    (0.5, 1.0),
    (1.0, 10.0),
)

#: Slack allowed for float64 round-off when checking a bound.
TOLERANCE = 1e-9

Quantity = Callable[[Any, Any, Any, Any], Any]


@dataclass(frozen=True)
class Claim:
    """A claimed bound ``lower <= quantity(tp, fp, fn, tn) <= upper``.

    Attributes:
        name: what is claimed, for people (``"D − J ≤ 3 − 2√2"``).
        pair: which scores it relates: ``"dice/jaccard"``, ``"tversky/dice"``
            or ``"hamming/dice"``.
        quantity: function of the counts ``(tp, fp, fn, tn)`` (numpy arrays or
            torch tensors, arithmetic only); NaN where undefined (e.g. a ratio
            with both sides 0), and such cases are skipped.
        label: short name of the quantity (``"D − J"``).
        lower, upper: the claimed interval; ``None`` for no claim on that side.
        lower_attained, upper_attained: whether the end is reached (or
            approached to 1e-4) at finite counts, so that the enumeration is
            expected to agree with it; ``False`` for ends only reached in a limit.
        needs_tn: the quantity uses the true negatives.
        params: parameters of the quantity (``{"alpha": 0.7}``).
    """

    name: str
    pair: str
    quantity: Quantity
    label: str
    lower: float | None = None
    upper: float | None = None
    lower_attained: bool = False
    upper_attained: bool = False
    needs_tn: bool = False
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimResult:
    """What the verifier found for one :class:`Claim`.

    ``found_min`` / ``found_max`` are over enumeration and search together; the
    ``*_counts`` give the ``(tp, fp, fn, tn)`` where they were found and
    ``*_source`` which part found them (``"enumeration"`` or ``"search"``).
    """

    claim: Claim
    found_min: float
    found_max: float
    min_counts: tuple[float, float, float, float]
    max_counts: tuple[float, float, float, float]
    min_source: str
    max_source: str
    cases: int
    #: ``{"enumeration": (min, max), "search": (min, max)}``, for the parts that ran
    by_source: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        c = self.claim
        ok_low = c.lower is None or self.found_min >= c.lower - TOLERANCE
        ok_high = c.upper is None or self.found_max <= c.upper + TOLERANCE
        return ok_low and ok_high

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        return {
            "name": c.name,
            "pair": c.pair,
            "quantity": c.label,
            "params": dict(c.params),
            "lower": _json_float(c.lower),
            "upper": _json_float(c.upper),
            "lower_attained": c.lower_attained,
            "upper_attained": c.upper_attained,
            "found_min": self.found_min,
            "found_max": self.found_max,
            "min_counts": list(self.min_counts),
            "max_counts": list(self.max_counts),
            "min_source": self.min_source,
            "max_source": self.max_source,
            # how far the extremes found stay inside the claimed ends (0 = reached)
            "lower_shortfall": None if c.lower is None else self.found_min - c.lower,
            "upper_shortfall": (
                None if c.upper is None or not math.isfinite(c.upper) else c.upper - self.found_max
            ),
            "cases": self.cases,
            "by_source": {k: list(v) for k, v in self.by_source.items()},
            "holds": self.holds,
        }


def _json_float(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "inf" if x > 0 else "-inf"


class BoundViolation(AssertionError):
    """A claimed bound is broken; ``results`` holds every broken claim's result."""

    def __init__(self, results: Sequence[ClaimResult]):
        self.results = list(results)
        lines = []
        for r in self.results:
            c = r.claim
            lines.append(
                f"{c.name} {dict(c.params) or ''}: found {c.label} in "
                f"[{r.found_min:.10g}, {r.found_max:.10g}] (min at counts {r.min_counts} "
                f"by {r.min_source}, max at {r.max_counts} by {r.max_source}), claimed "
                f"[{c.lower}, {c.upper}]"
            )
        super().__init__("claimed bound broken:\n  " + "\n  ".join(lines))


# --- the quantities -------------------------------------------------------------------------


def _dice_loss_over_jaccard_loss(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
    return (1 - _scores.dice(tp, fp, fn)) / (1 - _scores.jaccard(tp, fp, fn))


def _dice_minus_jaccard(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
    return _scores.dice(tp, fp, fn) - _scores.jaccard(tp, fp, fn)


def _dice_minus_dice_from_jaccard(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
    j = _scores.jaccard(tp, fp, fn)
    return _scores.dice(tp, fp, fn) - 2 * j / (1 + j)


def _tversky_over_dice(tp: Any, fp: Any, fn: Any, tn: Any, *, alpha: float) -> Any:
    return _scores.tversky(tp, fp, fn, alpha, 1 - alpha) / _scores.dice(tp, fp, fn)


def _tversky_dice_gap(tp: Any, fp: Any, fn: Any, tn: Any, *, alpha: float) -> Any:
    return abs(_scores.tversky(tp, fp, fn, alpha, 1 - alpha) - _scores.dice(tp, fp, fn))


def _hamming_loss_over_jaccard_loss(
    tp: Any, fp: Any, fn: Any, tn: Any, *, w_fp: float, w_fn: float
) -> Any:
    total = tp + fp + fn + tn
    hamming_loss = 1 - _scores.hamming(tp, fp, fn, total, w_fp, w_fn)
    return hamming_loss / (1 - _scores.jaccard(tp, fp, fn))


def _hamming_minus_dice(tp: Any, fp: Any, fn: Any, tn: Any, *, w_fp: float, w_fn: float) -> Any:
    total = tp + fp + fn + tn
    return _scores.hamming(tp, fp, fn, total, w_fp, w_fn) - _scores.dice(tp, fp, fn)


def default_claims(
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    hamming_weights: Sequence[tuple[float, float]] = DEFAULT_HAMMING_WEIGHTS,
) -> list[Claim]:
    """The bounds metricseg claims (``docs/theory.md``), for the given parameter grids.

    Example:
        >>> [c.name for c in default_claims(alphas=(), hamming_weights=())]
        ['(1 − J)/2 ≤ 1 − D ≤ 1 − J', '0 ≤ D − J ≤ 3 − 2√2', 'D = 2J/(1 + J)']
    """
    claims = [
        Claim(
            "(1 − J)/2 ≤ 1 − D ≤ 1 − J",
            "dice/jaccard",
            _dice_loss_over_jaccard_loss,
            "(1 − D)/(1 − J)",
            lower=0.5,
            upper=1.0,
            upper_attained=True,  # at t = 0; the lower end needs t/(f + n) → ∞
        ),
        Claim(
            "0 ≤ D − J ≤ 3 − 2√2",
            "dice/jaccard",
            _dice_minus_jaccard,
            "D − J",
            lower=0.0,
            upper=bounds.MAX_DICE_JACCARD_GAP,
            lower_attained=True,
            upper_attained=True,  # within 1.3e-7 at J = 12/29
        ),
        Claim(
            "D = 2J/(1 + J)",
            "dice/jaccard",
            _dice_minus_dice_from_jaccard,
            "D − 2J/(1 + J)",
            lower=0.0,
            upper=0.0,
            lower_attained=True,
            upper_attained=True,
        ),
    ]
    for alpha in alphas:
        lo, hi = bounds.tversky_dice_ratio_range(alpha)
        exact = alpha == 0.5
        claims.append(
            Claim(
                "1/(2 max(α,β)) ≤ T_α/D ≤ 1/(2 min(α,β))",
                "tversky/dice",
                partial(_tversky_over_dice, alpha=alpha),
                "T_α/D",
                lower=lo,
                upper=hi,
                lower_attained=exact,
                upper_attained=exact,
                params={"alpha": alpha},
            )
        )
        claims.append(
            Claim(
                "|T_α − D| ≤ (1 − √(2m))/(1 + √(2m)), m = min(α, β)",
                "tversky/dice",
                partial(_tversky_dice_gap, alpha=alpha),
                "|T_α − D|",
                lower=0.0,
                upper=bounds.tversky_dice_max_gap(alpha),
                lower_attained=True,
                upper_attained=min(alpha, 1 - alpha) > 0,
                params={"alpha": alpha},
            )
        )
    for w_fp, w_fn in hamming_weights:
        claims.append(
            Claim(
                "1 − H ≤ max(w_fp, w_fn)(1 − J)",
                "hamming/dice",
                partial(_hamming_loss_over_jaccard_loss, w_fp=w_fp, w_fn=w_fn),
                "(1 − H)/(1 − J)",
                lower=0.0,
                upper=bounds.hamming_loss_bound(w_fp, w_fn),
                lower_attained=min(w_fp, w_fn) == 0,
                upper_attained=True,  # no true negatives, only the heavier error
                needs_tn=True,
                params={"w_fp": w_fp, "w_fn": w_fn},
            )
        )
        claims.append(
            Claim(
                "H − D ≤ 1, approached (no approximation exists)",
                "hamming/dice",
                partial(_hamming_minus_dice, w_fp=w_fp, w_fn=w_fn),
                "H − D",
                upper=1.0,
                needs_tn=True,
                params={"w_fp": w_fp, "w_fn": w_fn},
            )
        )
    return claims


# --- exhaustive enumeration -----------------------------------------------------------------


def iter_count_blocks(
    max_voxels: int, *, with_tn: bool = False, block_size: int = 1 << 20
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`enumerate_counts` in blocks of about ``block_size`` cases, so that
    memory stays bounded however large ``max_voxels`` is.

    Yields:
        ``(tp, fp, fn, tn)``, four 1-D float64 arrays of equal length.
    """
    m = check_int(max_voxels, "max_voxels", 1)
    block_size = check_int(block_size, "block_size", 1)
    # every (f, n) with f + n <= m, ordered by f + n: those with f + n <= k are a prefix
    f_all, n_all = np.triu_indices(m + 1)
    n_all = n_all - f_all
    order = np.argsort(f_all + n_all, kind="stable")
    f_all, n_all = f_all[order].astype(np.float64), n_all[order].astype(np.float64)
    pending: list[tuple[np.ndarray, ...]] = []
    pending_size = 0
    for t in range(m + 1):
        k = m - t
        count = (k + 1) * (k + 2) // 2
        fp, fn = f_all[:count], n_all[:count]
        tp = np.full(count, float(t))
        if t == 0:  # t = f = n = 0 is no image
            tp, fp, fn = tp[1:], fp[1:], fn[1:]
        tn = np.zeros_like(tp)
        if with_tn:
            reps = (m - (tp + fp + fn)).astype(np.int64) + 1
            tp, fp, fn = (np.repeat(x, reps) for x in (tp, fp, fn))
            # tn runs 0..room within each repeated run
            starts = np.repeat(np.cumsum(reps) - reps, reps)
            tn = (np.arange(len(tp)) - starts).astype(np.float64)
        pending.append((tp, fp, fn, tn))
        pending_size += len(tp)
        if pending_size >= block_size or t == m:
            tps, fps, fns, tns = (np.concatenate(parts) for parts in zip(*pending))
            yield tps, fps, fns, tns
            pending, pending_size = [], 0


def enumerate_counts(max_voxels: int, *, with_tn: bool = False) -> tuple[np.ndarray, ...]:
    """Every count triple (or quadruple) with ``t + f + n >= 1`` and ``t + f + n (+ tn) <= max_voxels``.

    Returns:
        ``(tp, fp, fn, tn)``, four 1-D float64 arrays of equal length
        (``tn`` all zero unless ``with_tn``).

    Example:
        >>> tp, fp, fn, tn = enumerate_counts(2)
        >>> len(tp)   # C(2 + 3, 3) - 1 triples
        9
        >>> len(enumerate_counts(2, with_tn=True)[0])   # C(2 + 4, 4) - 3 with t = f = n = 0
        12
    """
    blocks = list(iter_count_blocks(max_voxels, with_tn=with_tn, block_size=1 << 62))
    return tuple(np.concatenate(parts) for parts in zip(*blocks))


@dataclass
class _Extremes:
    """Running smallest and largest value of one claim's quantity over blocks."""

    low: float = math.inf
    high: float = -math.inf
    low_at: tuple[float, ...] = ()
    high_at: tuple[float, ...] = ()
    cases: int = 0

    def update(self, values: np.ndarray, counts: tuple[np.ndarray, ...]) -> None:
        defined = ~np.isnan(values)
        n_defined = int(np.count_nonzero(defined))
        if n_defined == 0:
            return
        self.cases += n_defined
        i, j = int(np.nanargmin(values)), int(np.nanargmax(values))
        if values[i] < self.low:
            self.low, self.low_at = float(values[i]), tuple(float(x[i]) for x in counts)
        if values[j] > self.high:
            self.high, self.high_at = float(values[j]), tuple(float(x[j]) for x in counts)


def _enumerate_claims(
    claims: Sequence[Claim], max_voxels: int, with_tn: bool
) -> tuple[list[_Extremes], int]:
    """Extremes of each claim over every case of one enumeration, and the number of cases."""
    extremes = [_Extremes() for _ in claims]
    total = 0
    if not claims:
        return extremes, total
    for counts in iter_count_blocks(max_voxels, with_tn=with_tn):
        total += len(counts[0])
        for claim, ext in zip(claims, extremes):
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.asarray(claim.quantity(*counts), dtype=np.float64)
            ext.update(values, counts)
    return extremes, total


# --- adversarial search ---------------------------------------------------------------------


def _adversarial_search(
    claims: Sequence[Claim],
    *,
    restarts: int,
    voxels: int,
    steps: int,
    seed: int,
) -> list[dict[str, tuple[float, tuple[float, ...]]]]:
    """For each claim, the smallest and largest quantity reached by gradient search.

    All claims and both directions are optimised in one batch: each (claim,
    direction) owns its own ``restarts`` rows of parameters, so the gradient of
    the summed objective is the gradient of each objective on its own rows.
    """
    # the tensors are tiny (a few hundred rows of a few voxels): intra-op threads only
    # add synchronisation, which costs several times the work on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _search_one_thread(claims, restarts=restarts, voxels=voxels, steps=steps, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _search_one_thread(
    claims: Sequence[Claim], *, restarts: int, voxels: int, steps: int, seed: int
) -> list[dict[str, tuple[float, tuple[float, ...]]]]:
    jobs = [(i, sign) for i in range(len(claims)) for sign in (-1.0, 1.0)]
    generator = torch.Generator().manual_seed(seed)
    rows = len(jobs) * restarts
    dtype = torch.float64
    # starting logits of several scales: near 0 explores the soft interior, large
    # ones start near hard predictions
    scale = torch.tensor([0.5, 2.0, 6.0], dtype=dtype)[torch.arange(rows) % 3].view(rows, 1)
    pred_logits = (
        torch.randn(rows, voxels, generator=generator, dtype=dtype) * scale
    ).requires_grad_()
    target_logits = (
        torch.randn(rows, voxels, generator=generator, dtype=dtype) * scale
    ).requires_grad_()
    # half the restarts keep a fixed hard target (as in training), half let it be soft
    hard_rows = (torch.arange(rows) // max(restarts // 2, 1)) % 2 == 0
    hard_target = (torch.rand(rows, voxels, generator=generator, dtype=dtype) < 0.5).to(dtype)
    hard_target[:, 0] = 1.0  # at least one foreground voxel
    optimiser = torch.optim.Adam([pred_logits, target_logits], lr=0.1)

    def counts_now() -> tuple[torch.Tensor, ...]:
        probs = torch.sigmoid(pred_logits)
        target = torch.where(hard_rows.view(rows, 1), hard_target, torch.sigmoid(target_logits))
        c = soft_counts(probs.unsqueeze(1), target.unsqueeze(1))[:, 0]
        tp, fp, fn = c[:, TP], c[:, FP], c[:, FN]
        return tp, fp, fn, voxels - tp - fp - fn

    def evaluate(
        tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, tn: torch.Tensor
    ) -> torch.Tensor:
        values = []
        for k, (i, _) in enumerate(jobs):
            sl = slice(k * restarts, (k + 1) * restarts)
            values.append(claims[i].quantity(tp[sl], fp[sl], fn[sl], tn[sl]))
        return torch.stack(values)  # (jobs, restarts)

    signs = torch.tensor([s for _, s in jobs], dtype=dtype).view(-1, 1)
    best = torch.full((len(jobs), restarts), -math.inf, dtype=dtype)
    best_counts = torch.zeros(len(jobs), restarts, 4, dtype=dtype)
    for _ in range(steps):
        optimiser.zero_grad()
        tp, fp, fn, tn = counts_now()
        values = evaluate(tp, fp, fn, tn)
        objective = signs * values
        with torch.no_grad():
            finite = torch.nan_to_num(objective.detach(), nan=-math.inf)
            improved = finite > best
            best = torch.where(improved, finite, best)
            stacked = torch.stack((tp, fp, fn, tn), -1).detach().view(len(jobs), restarts, 4)
            best_counts = torch.where(improved.unsqueeze(-1), stacked, best_counts)
        # ascend each objective; NaN (undefined) entries contribute no gradient
        torch.nan_to_num(objective, nan=0.0).sum().neg().backward()
        optimiser.step()

    found: list[dict[str, tuple[float, tuple[float, ...]]]] = [{} for _ in claims]
    for k, (i, sign) in enumerate(jobs):
        r = int(torch.argmax(best[k]))
        if math.isfinite(float(best[k, r])):
            key = "max" if sign > 0 else "min"
            found[i][key] = (float(sign * best[k, r]), tuple(float(x) for x in best_counts[k, r]))
    return found


# --- the verifier ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationReport:
    """All :class:`ClaimResult` of one :func:`verify` run, with its settings and timing."""

    results: list[ClaimResult]
    max_voxels: int
    hamming_max_voxels: int
    seed: int
    triples: int
    quadruples: int
    seconds: float

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.results)

    def find(self, label: str, **params: float) -> ClaimResult:
        """The result for the claim with quantity ``label`` and exactly these ``params``."""
        for r in self.results:
            if r.claim.label == label and dict(r.claim.params) == params:
                return r
        raise KeyError(f"no claim with quantity {label!r} and params {params}")

    def to_dict(self) -> dict[str, Any]:
        tversky = {
            str(r.claim.params["alpha"]): {
                "found": r.found_max,
                "enumeration": r.by_source.get("enumeration", (math.nan, math.nan))[1],
                "closed_form": r.claim.upper,
                "counts": list(r.max_counts),
            }
            for r in self.results
            if r.claim.label == "|T_α − D|"
        }
        dj = self.find("D − J")
        return {
            "max_voxels": self.max_voxels,
            "hamming_max_voxels": self.hamming_max_voxels,
            "seed": self.seed,
            "triples": self.triples,
            "quadruples": self.quadruples,
            "seconds": self.seconds,
            "holds": self.holds,
            "worst_dice_jaccard_gap": {
                "found": dj.found_max,
                "enumeration": dj.by_source.get("enumeration", (math.nan, math.nan))[1],
                "closed_form": bounds.MAX_DICE_JACCARD_GAP,
                "counts": list(dj.max_counts),
            },
            "worst_tversky_dice_gap": tversky,
            "claims": [r.to_dict() for r in self.results],
        }


def _four(counts: tuple[float, ...]) -> tuple[float, float, float, float]:
    """The ``(tp, fp, fn, tn)`` where an extreme was found."""
    tp, fp, fn, tn = counts
    return tp, fp, fn, tn


def verify(
    max_voxels: int = 300,
    seed: int = 0,
    *,
    claims: Sequence[Claim] | None = None,
    hamming_max_voxels: int = 60,
    restarts: int = 24,
    voxels: int = 16,
    steps: int = 300,
    search: bool = True,
    raise_on_violation: bool = True,
) -> VerificationReport:
    """Check every claim by exhaustive enumeration and adversarial search.

    Args:
        max_voxels: enumerate every hard ``(tp, fp, fn)`` with sum up to this.
        seed: seed of the adversarial search (the enumeration is deterministic).
        claims: what to check; :func:`default_claims` when ``None``.
        hamming_max_voxels: enumerate every ``(tp, fp, fn, tn)`` with sum up to
            this for claims that need the true negatives.
        restarts: random starting points per claim and direction.
        voxels: number of voxels of the soft predictions searched over.
        steps: gradient steps per start.
        search: run the adversarial search (``False``: enumeration only).
        raise_on_violation: raise :class:`BoundViolation` if a claim is broken.

    Returns:
        a :class:`VerificationReport`.

    Example:
        >>> report = verify(max_voxels=30, steps=20, restarts=4)
        >>> report.holds, round(report.find("D − J").found_max, 4)
        (True, 0.1716)
    """
    start = time.perf_counter()
    for name, value, minimum in (
        ("max_voxels", max_voxels, 1),
        ("hamming_max_voxels", hamming_max_voxels, 1),
        ("restarts", restarts, 1),
        ("voxels", voxels, 1),
        ("steps", steps, 0),
    ):
        check_int(value, name, minimum)
    claims = list(default_claims() if claims is None else claims)
    plain = [c for c in claims if not c.needs_tn]
    with_tn = [c for c in claims if c.needs_tn]
    plain_ext, triples = _enumerate_claims(plain, max_voxels, with_tn=False)
    tn_ext, quadruples = _enumerate_claims(with_tn, hamming_max_voxels, with_tn=True)
    enumerated = dict(zip(map(id, plain + with_tn), plain_ext + tn_ext))
    searched = (
        _adversarial_search(claims, restarts=restarts, voxels=voxels, steps=steps, seed=seed)
        if search and steps > 0
        else [{} for _ in claims]
    )
    results = []
    for claim, found in zip(claims, searched):
        ext = enumerated[id(claim)]
        candidates: dict[str, list[tuple[float, tuple[float, ...], str]]] = {"min": [], "max": []}
        if ext.cases:
            candidates["min"].append((ext.low, ext.low_at, "enumeration"))
            candidates["max"].append((ext.high, ext.high_at, "enumeration"))
        for key, (found_value, where) in found.items():
            candidates[key].append((found_value, where, "search"))
        if not candidates["min"]:
            raise ValueError(f"claim {claim.name!r}: its quantity is undefined on every case")
        low = min(candidates["min"], key=lambda v: v[0])
        high = max(candidates["max"], key=lambda v: v[0])
        by_source = {
            source: (
                min((v[0] for v in candidates["min"] if v[2] == source), default=math.nan),
                max((v[0] for v in candidates["max"] if v[2] == source), default=math.nan),
            )
            for source in {v[2] for v in candidates["min"] + candidates["max"]}
        }
        results.append(
            ClaimResult(
                claim=claim,
                found_min=low[0],
                found_max=high[0],
                min_counts=_four(low[1]),
                max_counts=_four(high[1]),
                min_source=low[2],
                max_source=high[2],
                cases=ext.cases + (restarts * 2 if found else 0),
                by_source=by_source,
            )
        )
    report = VerificationReport(
        results=results,
        max_voxels=int(max_voxels),
        hamming_max_voxels=int(hamming_max_voxels),
        seed=int(seed),
        triples=triples,
        quadruples=quadruples,
        seconds=time.perf_counter() - start,
    )
    broken = [r for r in results if not r.holds]
    if broken and raise_on_violation:
        raise BoundViolation(broken)
    return report
