r"""Weighted sums of losses, e.g. soft Dice + cross-entropy.

.. math::

    \mathcal{L} = \sum_k \lambda_k \mathcal{L}_k(\text{logits}, \text{target})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["CompoundLoss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CompoundLoss(nn.Module):
    """Weighted sum of losses that all take ``(logits, target)``.

    Args:
        losses: a mapping ``name -> loss`` or a sequence of ``(loss, weight)``
            pairs (or of losses, each with weight 1). Losses are modules or
            functions of ``(logits, target)``.
        weights: with a mapping, ``name -> weight`` (missing names weigh 1).

    ``forward`` returns the weighted sum; :attr:`last_terms` keeps the detached
    value of each term of the last call (for logging).

    Example:
        >>> import torch
        >>> from metricseg.losses import CrossEntropyLoss, SoftDiceLoss
        >>> loss = CompoundLoss({"dice": SoftDiceLoss(), "ce": CrossEntropyLoss()},
        ...                     weights={"ce": 0.5})
        >>> logits, labels = torch.zeros(1, 2, 4), torch.tensor([[0, 1, 1, 0]])
        >>> value = loss(logits, labels)
        >>> bool(torch.isclose(value, loss.last_terms["dice"] + 0.5 * loss.last_terms["ce"]))
        True
    """

    def __init__(
        self,
        losses: Mapping[str, LossFn] | Sequence[LossFn | tuple[LossFn, float]],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(losses, Mapping):
            named = list(losses.items())
            weights = dict(weights or {})
            unknown = sorted(set(weights) - set(losses))
            if unknown:
                raise ValueError(f"weights names {unknown} that are not losses {sorted(losses)}")
            pairs = [(name, fn, float(weights.get(name, 1.0))) for name, fn in named]
        else:
            if weights is not None:
                raise ValueError(
                    "weights= goes with a mapping of losses; pass (loss, weight) pairs"
                )
            pairs = []
            for i, item in enumerate(losses):
                fn, w = item if isinstance(item, tuple) else (item, 1.0)
                pairs.append((f"{i}_{getattr(fn, '__name__', type(fn).__name__)}", fn, float(w)))
        if not pairs:
            raise ValueError("losses must name at least one loss")
        for name, fn, _ in pairs:
            if not callable(fn):
                raise TypeError(f"loss {name!r} is not callable: {fn!r}")
        self.names = [name for name, _, _ in pairs]
        self.weights = [w for _, _, w in pairs]
        self._fns = [fn for _, fn, _ in pairs]
        # register module terms so .to(), .state_dict() and repr see them
        self.terms = nn.ModuleDict({name: fn for name, fn, _ in pairs if isinstance(fn, nn.Module)})
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        self.last_terms = {}
        for name, fn, w in zip(self.names, self._fns, self.weights):
            value = fn(logits, target)
            self.last_terms[name] = value.detach()
            total = w * value if total is None else total + w * value
        assert total is not None
        return total

    def extra_repr(self) -> str:
        return "weights=" + repr(dict(zip(self.names, self.weights)))
