r"""Per-voxel losses: cross-entropy, weighted cross-entropy and focal loss.

Softmax forms (multi-class, label maps or one-hot / soft targets) and sigmoid
forms (binary with ``C = 1``, or multi-label masks ``(B, C, *spatial)``) share
one code path. Every loss is a weighted mean of voxel terms,

.. math::

    \mathcal{L} = \frac{\sum_i v_i\, \ell_i}{\sum_i d_i},

over the voxels of an image (``per_image=True``, then ``reduction`` over
images) or of the whole batch (``per_image=False``). For cross-entropy
:math:`v_i = d_i = w_{y_i}` (the class weight of the voxel's label, as
``torch.nn.functional.cross_entropy``); for the focal loss :math:`v_i =
\alpha_{y_i}` and :math:`d_i = 1` (Lin et al. 2017). Voxels labelled
``ignore_index`` have :math:`v_i = d_i = 0`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from metricseg._checks import check_choice, check_label_range, check_probabilities_shape
from metricseg.losses._common import (
    LossModule,
    check_class_weights,
    check_dense,
    check_ignore_index,
    check_loss_inputs,
    check_options,
    check_probabilities,
    full_precision,
    nonneg_number,
    per_class_numbers,
    reduce_images,
)
from metricseg.metrics import safe_divide
from metricseg.types import WEIGHT_SCHEMES, Activation, Reduction, Weights, WeightScheme

__all__ = [
    "WEIGHT_SCHEMES",
    "CrossEntropyLoss",
    "FocalLoss",
    "WeightedCrossEntropyLoss",
    "class_weights_from_frequencies",
    "cross_entropy_loss",
    "focal_loss",
    "foreground_class_weights",
    "weighted_cross_entropy_loss",
]

# WEIGHT_SCHEMES (the named class-weight schemes) comes from metricseg.types


def _log_probs(
    x: torch.Tensor, activation: Activation, validate_args: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p, log(1 - p)) for sigmoid; (log p, empty) for softmax or probabilities."""
    if activation == "softmax":
        return torch.log_softmax(x, dim=1), x.new_empty(0)
    if activation == "sigmoid":
        return F.logsigmoid(x), F.logsigmoid(-x)
    if validate_args:
        check_probabilities(x)
    tiny = torch.finfo(x.dtype).tiny
    return x.clamp_min(tiny).log(), x.new_empty(0)


def _modulation(log_p: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal factor (1 - p)^gamma from log p, accurate for p near 1."""
    one_minus = -torch.expm1(log_p)
    if gamma < 1:
        # d/dp (1-p)^gamma is infinite at p = 1 for gamma < 1
        one_minus = one_minus.clamp_min(torch.finfo(log_p.dtype).eps)
    return one_minus.pow(gamma)


def _flat_labels(
    target: torch.Tensor,
    b: int,
    c: int,
    activation: Activation,
    ignore_index: int | None,
    validate_args: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A label-map target as ``(B, N)`` int64 labels with the ignored voxels set to 0, and
    the mask of the counted voxels (None without ``ignore_index``)."""
    if activation == "sigmoid" and c != 1:
        raise ValueError(
            f"a label-map target with activation='sigmoid' needs C = 1 channel, got "
            f"C = {c}; pass 0/1 masks (B, C, *spatial) for multi-label problems"
        )
    if validate_args:
        check_label_range(target, "target", 2 if activation == "sigmoid" else c, ignore_index)
    y = target.reshape(b, -1).to(torch.int64)
    valid: torch.Tensor | None = None
    if ignore_index is not None:
        valid = y != ignore_index
        y = y.masked_fill(~valid, 0)
    return y, valid


def _label_sums(
    log_p: torch.Tensor,
    y: torch.Tensor,
    valid: torch.Tensor | None,
    w: torch.Tensor | None,
    gamma: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-image numerator and denominator for a label map ``y`` ``(B, N)`` under softmax
    (or probabilities ``log_p`` ``(B, C, N)``): :math:`\sum_i v_i \ell_i` with
    :math:`v_i = w_{y_i}` (0 where ignored), over :math:`\sum_i v_i` for CE and over the
    number of counted voxels for the focal loss."""
    log_p_y = log_p.gather(1, y.unsqueeze(1)).squeeze(1)  # (B, N)
    terms = -log_p_y if gamma is None else -_modulation(log_p_y, gamma) * log_p_y
    v = w[y] if w is not None else torch.ones_like(log_p_y)
    if valid is not None:
        v = v * valid
    num = (v * terms).sum(-1)
    if gamma is None:
        return num, v.sum(-1)
    b, n = y.shape
    den = valid.sum(-1).to(log_p.dtype) if valid is not None else log_p.new_full((b,), n)
    return num, den


def _dense_sums(
    log_p: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None, gamma: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-image numerator and denominator for a one-hot / soft target ``t`` ``(B, C, N)``
    under softmax (or probabilities): :math:`-\sum_{c,i} w_c t_{ci} \log p_{ci}` (times the
    focal factor) over :math:`\sum_{c,i} w_c t_{ci}` for CE and over ``N`` for the focal
    loss."""
    b, c, n = t.shape
    wt = t if w is None else t * w.view(1, c, 1)
    if gamma is None:
        return -(wt * log_p).sum((1, 2)), wt.sum((1, 2))
    num = -(wt * _modulation(log_p, gamma) * log_p).sum((1, 2))
    return num, log_p.new_full((b,), n)


def _sigmoid_sums(
    x: torch.Tensor,
    t: torch.Tensor,
    log_p: torch.Tensor,
    log_not_p: torch.Tensor,
    w: torch.Tensor | None,
    valid: torch.Tensor | None,
    gamma: float | None,
    sigmoid_alpha: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image numerator and denominator of the binary cross-entropy (focal loss with
    ``gamma``) of every channel of the logits ``x`` ``(B, C, N)`` against the 0/1 or soft
    target ``t``: channel weights ``w``, the ignored voxels of ``valid`` left out; the
    denominator is the weight sum for CE and channels × counted voxels for the focal loss."""
    terms = -(t * log_p + (1 - t) * log_not_p)  # binary cross-entropy with logits
    if gamma is not None:
        p = torch.sigmoid(x)
        one_minus_pt = p + t - 2 * p * t
        terms = terms * one_minus_pt.pow(gamma)
        if sigmoid_alpha is not None:
            terms = terms * (sigmoid_alpha * t + (1 - sigmoid_alpha) * (1 - t))
    c = x.shape[1]
    v = torch.ones_like(terms) if w is None else w.view(1, c, 1).expand_as(terms)
    if valid is not None:
        v = v * valid.unsqueeze(1)
    num = (v * terms).sum((1, 2))
    if gamma is None:
        return num, v.sum((1, 2))
    count = valid.sum(-1).to(x.dtype) if valid is not None else x.shape[2]
    return num, c * count * torch.ones_like(num)


def _pixel_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: Activation,
    per_image: bool,
    ignore_index: int | None,
    weights: Weights | None,
    gamma: float | None,
    reduction: Reduction,
    validate_args: bool,
    sigmoid_alpha: float | None = None,
    weights_name: str = "class_weights",
) -> torch.Tensor:
    """CE (``gamma=None``) or focal loss (``gamma`` given); see the module docs."""
    logits = check_loss_inputs(logits, target, activation)
    with full_precision(logits.device):
        b, c = logits.shape[:2]
        kind = check_probabilities_shape(logits, target, "logits", "target")
        ignore_index = check_ignore_index(ignore_index, c if activation != "sigmoid" else 2)
        x = logits.reshape(b, c, -1)
        w = check_class_weights(weights, c, x, validate_args, weights_name)
        y: torch.Tensor | None = None
        valid: torch.Tensor | None = None
        if kind == "dense":
            check_dense(target, activation, validate_args)
        if kind == "labels":
            y, valid = _flat_labels(target, b, c, activation, ignore_index, validate_args)
        elif ignore_index is not None:
            raise ValueError(
                f"ignore_index={ignore_index} applies to label-map targets (B, *spatial)"
            )
        log_p, log_not_p = _log_probs(x, activation, validate_args)
        if activation == "sigmoid":
            t = (y == 1).unsqueeze(1) if y is not None else target.reshape(b, c, -1)
            num, den = _sigmoid_sums(
                x, t.to(x.dtype), log_p, log_not_p, w, valid, gamma, sigmoid_alpha
            )
        elif y is not None:
            num, den = _label_sums(log_p, y, valid, w, gamma)
        else:
            num, den = _dense_sums(log_p, target.reshape(b, c, -1).to(x.dtype), w, gamma)
        if not per_image:
            num, den = num.sum(), den.sum()
        # no voxel counted (all ignored, or zero weight): loss 0, no gradient
        return reduce_images(safe_divide(num, den, zero_division="zero"), reduction)


def _focal_alpha(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 0 <= value <= 1:
            raise ValueError(f"a scalar {name} must lie in [0, 1], got {value}")
        return
    if not isinstance(value, torch.Tensor):
        per_class_numbers(value, name)


def _scheme(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, str):
        check_choice(value, name, WEIGHT_SCHEMES)
    elif not isinstance(value, torch.Tensor):
        per_class_numbers(value, name)


def _positive_or_none(value: Any, name: str) -> None:
    if value is None:
        return
    nonneg_number(value, name)
    if float(value) <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _class_frequencies(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, torch.Tensor):
        per_class_numbers(value, name)


_PIXEL_CHECKS = {
    "gamma": nonneg_number,
    "alpha": _focal_alpha,
    "scheme": _scheme,
    "class_frequencies": _class_frequencies,
    "foreground_weight": _positive_or_none,
}


def _check_pixel_options(options: Mapping[str, Any]) -> None:
    """The option checks of every per-voxel loss (functional and module forms)."""
    check_options(options, _PIXEL_CHECKS)
    alpha = options.get("alpha")
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        if options.get("activation", "softmax") != "sigmoid":
            raise ValueError(
                f"a scalar alpha={alpha} applies to activation='sigmoid'; for softmax pass "
                "one weight per class"
            )
    scheme = options.get("scheme")
    explicit = scheme is not None and not isinstance(scheme, str)
    if explicit and options.get("class_frequencies") is not None:
        raise ValueError("pass either explicit weights as scheme=[...] or class_frequencies")
    if options.get("foreground_weight") is not None:
        if explicit or isinstance(scheme, str):
            raise ValueError(
                f"foreground_weight={options['foreground_weight']} sets the class weights "
                f"(1 on background, foreground_weight on every other class); it excludes "
                f"scheme={scheme!r}: pass one of them"
            )
        if options.get("class_frequencies") is not None:
            raise ValueError(
                "foreground_weight sets the class weights itself; class_frequencies would be "
                "unused: pass one of them"
            )
        if options.get("activation") == "sigmoid":
            raise ValueError(
                "foreground_weight weighs classes of a softmax (1 on class 0, w on the "
                "others); with activation='sigmoid' every channel is foreground. Use two "
                "channels with activation='softmax', or class_weights per channel"
            )


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: Activation = "softmax",
    per_image: bool = False,
    ignore_index: int | None = None,
    class_weights: Weights | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Cross-entropy, :math:`-\sum_i w_{y_i} \log p_{y_i i} / \sum_i w_{y_i}`.

    Args:
        logits: ``(B, C, *spatial)`` float (probabilities with ``activation=None``).
        target: label map ``(B, *spatial)``, or one-hot / soft ``(B, C, *spatial)``
            in [0, 1] (soft cross-entropy :math:`-\sum_c w_c t_c \log p_c`; with
            softmax the target must sum to 1 over classes at every voxel). With
            ``activation="sigmoid"``: binary cross-entropy per channel, target a 0/1
            label map for ``C = 1`` or masks / soft masks ``(B, C, *spatial)`` in [0, 1].
        activation: ``"softmax"`` (default; needs ``C >= 2``), ``"sigmoid"`` or ``None``.
        per_image: mean per image then ``reduction`` over images, or one mean over the batch.
        ignore_index: label whose voxels are left out (label maps); not a class.
        class_weights: one weight per class (per channel for sigmoid).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over images (``per_image``).
        validate_args: read the inputs' values to check them (label range, target
            range and class sums, probabilities with ``activation=None``, weights);
            ``False`` skips these host syncs (see :func:`~metricseg.losses.soft_dice_loss`).

    Example:
        >>> import torch
        >>> logits = torch.randn(2, 3, 4, 5)
        >>> labels = torch.randint(0, 3, (2, 4, 5))
        >>> ref = torch.nn.functional.cross_entropy(logits, labels)
        >>> bool(torch.isclose(cross_entropy_loss(logits, labels), ref))
        True
    """
    _check_pixel_options(locals())
    return _pixel_loss(
        logits, target, activation=activation, per_image=per_image, ignore_index=ignore_index,
        weights=class_weights, gamma=None, reduction=reduction, validate_args=validate_args,
    )  # fmt: skip


def class_weights_from_frequencies(
    frequencies: Weights, scheme: WeightScheme = "inverse_frequency"
) -> torch.Tensor:
    r"""Class weights from per-class voxel frequencies (counts or fractions).

    With :math:`f_c` the frequencies normalised to sum 1:
    ``"inverse_frequency"`` :math:`1/f_c`, ``"inverse_sqrt_frequency"``
    :math:`1/\sqrt{f_c}`, ``"median_frequency"`` :math:`\mathrm{median}(f)/f_c`
    (Eigen & Fergus 2015; median over the classes that occur), ``"log"``
    :math:`1/\ln(1.02 + f_c)` (ENet, Paszke et al. 2016). A class that never
    occurs gets weight 0 in the inverse schemes (it cannot appear in a target).

    Example:
        >>> w = class_weights_from_frequencies([6, 2, 0, 2], "median_frequency")
        >>> [round(v, 4) for v in w.tolist()]
        [0.3333, 1.0, 0.0, 1.0]
    """
    check_choice(scheme, "scheme", WEIGHT_SCHEMES)
    f = torch.as_tensor(frequencies).to(torch.float64)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"class_frequencies must be a 1-D sequence, got shape {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()) or bool((f < 0).any()) or float(f.sum()) <= 0:
        raise ValueError(f"class_frequencies must be finite, >= 0 and not all 0, got {f.tolist()}")
    f = f / f.sum()
    occurs = f > 0
    safe = torch.where(occurs, f, 1.0)
    if scheme == "log":
        return 1.0 / torch.log(1.02 + f)
    if scheme == "inverse_frequency":
        w = 1.0 / safe
    elif scheme == "inverse_sqrt_frequency":
        w = 1.0 / safe.sqrt()
    else:
        # the lower median, so the weight of some class is exactly 1
        w = f[occurs].sort().values[(int(occurs.sum()) - 1) // 2] / safe
    return torch.where(occurs, w, 0.0)


def _batch_frequencies(
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None,
    activation: Activation,
    validate_args: bool,
) -> torch.Tensor:
    if target.ndim >= 2 and not target.dtype.is_floating_point and target.dtype != torch.bool:
        if activation == "sigmoid" and num_classes == 1:
            keep = target != ignore_index if ignore_index is not None else None
            pos = (target == 1) if keep is None else (target == 1) & keep
            return torch.stack([pos.sum()]).to(torch.float64)
        if validate_args:  # before bincount, which would refuse a negative label unclearly
            check_label_range(target, "target", num_classes, ignore_index)
        flat = target.reshape(-1)
        if ignore_index is not None:
            flat = flat[flat != ignore_index]
        return torch.bincount(flat.to(torch.int64), minlength=num_classes)[:num_classes].double()
    dims = [d for d in range(target.ndim) if d != 1]
    return target.detach().to(torch.float64).sum(dims)


def foreground_class_weights(num_classes: int, foreground_weight: float) -> torch.Tensor:
    """Class weights ``(1, w, ..., w)``: 1 on the background (class 0), ``w`` on every other.

    Example:
        >>> foreground_class_weights(3, 5.0).tolist()
        [1.0, 5.0, 5.0]
    """
    w = torch.full((num_classes,), float(foreground_weight), dtype=torch.float64)
    w[0] = 1.0
    return w


def weighted_cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scheme: WeightScheme | Weights | None = None,
    class_frequencies: Weights | None = None,
    foreground_weight: float | None = None,
    activation: Activation = "softmax",
    per_image: bool = False,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Cross-entropy with class weights from class frequencies, a foreground weight, or given.

    The class weights :math:`w_c` come from exactly one of:

    * ``scheme``, a named scheme (see :func:`class_weights_from_frequencies`) applied
      to ``class_frequencies`` — or, when those are ``None``, to the class
      frequencies of each batch's target (ignored voxels excluded);
    * ``scheme``, an explicit sequence of one weight per class;
    * ``foreground_weight`` :math:`w`: weight 1 on the background (class 0) and
      :math:`w` on every other class — the one-parameter family a study sweeps.

    ``scheme=None`` (the default) means ``"inverse_frequency"`` unless
    ``foreground_weight`` is given. ``foreground_weight`` excludes ``scheme`` and
    ``class_frequencies``, and applies to softmax (or probabilities), not sigmoid.

    Args:
        scheme: a scheme name, an explicit sequence of weights, or ``None``.
        class_frequencies: per-class voxel frequencies of the training set,
            supplied once; ``None`` computes them from the target of each batch.
            For ``activation="sigmoid"`` they are the foreground frequencies of the
            channels.
        foreground_weight: weight of every foreground class (> 0), background 1.
        Other arguments as :func:`cross_entropy_loss`.

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 2, 4)
        >>> labels = torch.tensor([[0, 0, 0, 1]])
        >>> # weights (4/3, 4): every voxel has loss ln 2 -> the weighted mean is ln 2
        >>> round(float(weighted_cross_entropy_loss(logits, labels)), 4)
        0.6931
        >>> # foreground weight 3: (3 ln 2 + 3 * ln 2) / (3 + 3) = ln 2 again
        >>> round(float(weighted_cross_entropy_loss(logits, labels, foreground_weight=3.0)), 4)
        0.6931
    """
    _check_pixel_options(locals())
    logits = check_loss_inputs(logits, target, activation)
    c = logits.shape[1]
    weights: Weights
    weights_name = "class_weights"
    if foreground_weight is not None:
        weights = foreground_class_weights(c, foreground_weight)
    elif scheme is None or isinstance(scheme, str):
        name: WeightScheme = "inverse_frequency" if scheme is None else scheme
        if class_frequencies is None:
            check_probabilities_shape(logits, target, "logits", "target")
            class_frequencies = _batch_frequencies(
                target, c, ignore_index, activation, validate_args
            )
        elif len(class_frequencies) != c:
            raise ValueError(
                f"class_frequencies must hold one value per class ({c}), got "
                f"{len(class_frequencies)}"
            )
        weights = class_weights_from_frequencies(class_frequencies, name)
    else:
        weights, weights_name = scheme, "scheme"
    return _pixel_loss(
        logits, target, activation=activation, per_image=per_image, ignore_index=ignore_index,
        weights=weights, gamma=None, reduction=reduction, validate_args=validate_args,
        weights_name=weights_name,
    )  # fmt: skip


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | Weights | None = None,
    activation: Activation = "softmax",
    per_image: bool = False,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    r"""Focal loss (Lin et al. 2017), :math:`-\alpha_{y_i}(1 - p_{y_i i})^\gamma \log p_{y_i i}`.

    Averaged over the (non-ignored) voxels; ``gamma = 0`` with no ``alpha`` is
    the cross-entropy.

    Args:
        gamma: focusing parameter, >= 0.
        alpha: softmax: ``None`` or one weight per class (the class weights of
            the focal loss). Sigmoid: ``None``, a float in [0, 1] weighing
            positives by :math:`\alpha` and negatives by :math:`1-\alpha`
            (as ``torchvision.ops.sigmoid_focal_loss``), or one weight per channel.
        Other arguments as :func:`cross_entropy_loss`.

    Example:
        >>> import torch
        >>> logits = torch.log(torch.tensor([[[0.75], [0.25]]]))  # p = (0.75, 0.25)
        >>> labels = torch.tensor([[0]])
        >>> # (1 - 0.75)^2 * -ln 0.75
        >>> round(float(focal_loss(logits, labels)), 5)
        0.01798
    """
    _check_pixel_options(locals())
    sigmoid_alpha = None
    weights: Weights | None = None
    if isinstance(alpha, (int, float)):  # a bool was refused by the option check
        sigmoid_alpha = float(alpha)
    else:
        weights = alpha
    return _pixel_loss(
        logits, target, activation=activation, per_image=per_image, ignore_index=ignore_index,
        weights=weights, gamma=gamma, reduction=reduction, validate_args=validate_args,
        sigmoid_alpha=sigmoid_alpha, weights_name="alpha",
    )  # fmt: skip


class CrossEntropyLoss(LossModule):
    """Cross-entropy, softmax or sigmoid (module form of :func:`cross_entropy_loss`)."""

    function = staticmethod(cross_entropy_loss)
    option_checks = staticmethod(_check_pixel_options)

    def __init__(
        self,
        *,
        activation: Activation = "softmax",
        per_image: bool = False,
        ignore_index: int | None = None,
        class_weights: Weights | None = None,
        reduction: Reduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())


class WeightedCrossEntropyLoss(LossModule):
    """Cross-entropy with class weights (module form of :func:`weighted_cross_entropy_loss`).

    Example:
        >>> import torch
        >>> loss = WeightedCrossEntropyLoss(scheme="log", class_frequencies=[0.9, 0.1])
        >>> float(loss(torch.zeros(1, 2, 3), torch.tensor([[0, 1, 1]]))) > 0
        True
    """

    function = staticmethod(weighted_cross_entropy_loss)
    option_checks = staticmethod(_check_pixel_options)
    tensor_options = ("scheme", "class_frequencies")

    def __init__(
        self,
        *,
        scheme: WeightScheme | Weights | None = None,
        class_frequencies: Weights | None = None,
        foreground_weight: float | None = None,
        activation: Activation = "softmax",
        per_image: bool = False,
        ignore_index: int | None = None,
        reduction: Reduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())


class FocalLoss(LossModule):
    """Focal loss, softmax or sigmoid (module form of :func:`focal_loss`)."""

    function = staticmethod(focal_loss)
    option_checks = staticmethod(_check_pixel_options)
    tensor_options = ("alpha",)

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | Weights | None = None,
        activation: Activation = "softmax",
        per_image: bool = False,
        ignore_index: int | None = None,
        reduction: Reduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(locals())
