"""What a metricseg nnU-Net trainer reads from the environment: loss options and a schedule.

Loss options (validated against the loss's own options before training starts):

* ``METRICSEG_NNUNET_LOSS_OPTIONS`` — a JSON object, e.g. ``'{"smooth": 1e-5}'``;
* ``METRICSEG_NNUNET_LOSS_OPTIONS_FILE`` — the path of a file holding such an object.

Set at most one of the two. ``activation`` and ``ignore_index`` are not options here:
the trainer sets them from nnU-Net's dataset (``"sigmoid"`` for region-based training,
``"softmax"`` otherwise; the dataset's ``ignore`` label). ``per_image`` defaults to
``not batch_dice`` of the nnU-Net plans and may be given to override it.

Schedule (positive integers; unset keeps nnU-Net's 1000 epochs × 250 iterations, 50
validation iterations):

* ``METRICSEG_NNUNET_EPOCHS`` — number of epochs;
* ``METRICSEG_NNUNET_ITERATIONS`` — training iterations per epoch;
* ``METRICSEG_NNUNET_VAL_ITERATIONS`` — validation iterations per epoch.

This module needs neither nnU-Net nor anything beyond the metricseg core.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metricseg.losses import available, describe

__all__ = [
    "ENV_EPOCHS",
    "ENV_ITERATIONS",
    "ENV_LOSS_OPTIONS",
    "ENV_LOSS_OPTIONS_FILE",
    "ENV_VAL_ITERATIONS",
    "SET_BY_TRAINER",
    "TRAINER_LOSSES",
    "TRAINER_PREFIX",
    "Schedule",
    "check_loss_options",
    "read_loss_options",
    "read_schedule",
    "trainer_name",
]

ENV_LOSS_OPTIONS = "METRICSEG_NNUNET_LOSS_OPTIONS"
ENV_LOSS_OPTIONS_FILE = "METRICSEG_NNUNET_LOSS_OPTIONS_FILE"
ENV_EPOCHS = "METRICSEG_NNUNET_EPOCHS"
ENV_ITERATIONS = "METRICSEG_NNUNET_ITERATIONS"
ENV_VAL_ITERATIONS = "METRICSEG_NNUNET_VAL_ITERATIONS"

TRAINER_PREFIX = "nnUNetTrainer_metricseg_"

#: options the trainer sets from nnU-Net's dataset, never from the user
SET_BY_TRAINER = ("activation", "ignore_index")

#: registry names without a trainer of their own: ``bce`` is ``ce`` with a sigmoid,
#: which the ``ce`` trainer already uses for region-based training
_NO_TRAINER = frozenset({"bce"})

#: the metricseg losses that get an nnU-Net trainer, in the registry's order
TRAINER_LOSSES: tuple[str, ...] = tuple(n for n in available() if n not in _NO_TRAINER)


def trainer_name(loss: str) -> str:
    """The nnU-Net trainer class name of a metricseg loss.

    Example:
        >>> trainer_name("lovasz_softmax")
        'nnUNetTrainer_metricseg_lovasz_softmax'
    """
    _check_loss(loss)
    return TRAINER_PREFIX + loss


def _check_loss(loss: str) -> None:
    if loss not in TRAINER_LOSSES:
        raise ValueError(
            f"loss {loss!r} has no nnU-Net trainer; the trainers are for {', '.join(TRAINER_LOSSES)}"
        )


def check_loss_options(loss: str, options: Mapping[str, Any], source: str = "options") -> None:
    """Refuse option names that ``loss`` does not take, and those the trainer sets.

    ``source`` names where the options came from, for the message.

    Example:
        >>> check_loss_options("soft_dice", {"smooth": 1.0})
        >>> check_loss_options("soft_dice", {"smoth": 1.0})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: options: unknown option 'smoth' for loss 'soft_dice' (trainer ...); it accepts: ...
    """
    _check_loss(loss)
    if not isinstance(options, Mapping):
        raise TypeError(
            f"{source}: loss options must be a JSON object of option: value, got "
            f"{type(options).__name__} {options!r}"
        )
    accepted = sorted(set(describe(loss).options) - set(SET_BY_TRAINER))
    where = f"loss {loss!r} (trainer {trainer_name(loss)})"
    for name in options:
        if name in SET_BY_TRAINER:
            raise ValueError(
                f"{source}: option {name!r} for {where} is set by the trainer from the nnU-Net "
                "dataset (activation: 'sigmoid' for region-based training, else 'softmax'; "
                "ignore_index: the dataset's 'ignore' label); remove it"
            )
        if name not in accepted:
            raise ValueError(
                f"{source}: unknown option {name!r} for {where}; it accepts: {', '.join(accepted)}"
            )
    if options.get("reduction") == "none":
        raise ValueError(
            f"{source}: reduction='none' for {where} gives one loss per image, but nnU-Net "
            "needs a scalar; use 'mean' or 'sum'"
        )


def read_loss_options(loss: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The loss options from the environment (see the module docs), checked for ``loss``.

    Example:
        >>> read_loss_options("soft_tversky", {ENV_LOSS_OPTIONS: '{"alpha": 0.3, "beta": 0.7}'})
        {'alpha': 0.3, 'beta': 0.7}
        >>> read_loss_options("ce", {})
        {}
    """
    env = os.environ if environ is None else environ
    text, file = env.get(ENV_LOSS_OPTIONS, ""), env.get(ENV_LOSS_OPTIONS_FILE, "")
    if text.strip() and file.strip():
        raise ValueError(
            f"set one of {ENV_LOSS_OPTIONS} and {ENV_LOSS_OPTIONS_FILE}, not both "
            f"(got {text!r} and {file!r})"
        )
    if file.strip():
        path = Path(file)
        if not path.is_file():
            raise ValueError(f"{ENV_LOSS_OPTIONS_FILE}={file!r} is not a file")
        text, source = path.read_text(encoding="utf-8"), f"{ENV_LOSS_OPTIONS_FILE}={file}"
    else:
        source = ENV_LOSS_OPTIONS
    if not text.strip():
        check_loss_options(loss, {}, source)
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{source} must hold a JSON object such as '{{\"smooth\": 1e-5}}', got {text!r} ({exc})"
        ) from None
    check_loss_options(loss, options, source)
    return dict(options)


@dataclass(frozen=True)
class Schedule:
    """Epochs and iterations per epoch; ``None`` keeps nnU-Net's value."""

    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {text!r}")
    return value


def read_schedule(environ: Mapping[str, str] | None = None) -> Schedule:
    """The epoch and iteration counts set in the environment.

    Example:
        >>> read_schedule({ENV_EPOCHS: "1", ENV_ITERATIONS: "2"})
        Schedule(epochs=1, iterations=2, val_iterations=None)
    """
    env = os.environ if environ is None else environ
    return Schedule(
        _positive_int(env, ENV_EPOCHS),
        _positive_int(env, ENV_ITERATIONS),
        _positive_int(env, ENV_VAL_ITERATIONS),
    )
