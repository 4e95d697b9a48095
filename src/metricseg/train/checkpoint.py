"""The training checkpoint: one typed state, one save / load pair, nothing unpickled.

A checkpoint is two files in the run folder, both written atomically after every
epoch:

* ``checkpoint.json`` — the format and the run's identity (task, loss, seed,
  config), read first: a checkpoint of another run is refused before its tensors
  are read;
* ``checkpoint.pt`` — :class:`TrainState` as plain containers of tensors, numbers
  and strings (random-generator states as a tensor and a JSON string), read with
  ``torch.load(weights_only=True)``, which never runs code from the file.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from metricseg.atomic import atomic_write_json, torch_save_atomic

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "TrainState",
    "load_checkpoint",
    "remove_orphans",
    "save_checkpoint",
]

#: File name of the per-run checkpoint inside the run folder.
CHECKPOINT_NAME = "checkpoint.pt"
_IDENTITY_NAME = "checkpoint.json"
_FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the fix."""


@dataclass
class TrainState:
    """Everything a resumed run needs to end exactly as the uninterrupted run."""

    identity: dict[str, Any]
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    sampler: str
    torch_rng: torch.Tensor
    cuda_rng: torch.Tensor | None
    history: list[dict[str, float]]
    best: float
    best_epoch: int
    best_model: dict[str, torch.Tensor] | None
    bad_epochs: int
    elapsed: float

    @property
    def best_score(self) -> float:
        """The best validation score, NaN when no epoch had one."""
        return self.best if self.best > -math.inf else math.nan


def save_checkpoint(folder: str | Path, state: TrainState) -> Path:
    """Write ``state`` into ``folder`` (identity first, then the tensors), atomically."""
    folder = Path(folder)
    atomic_write_json(folder / _IDENTITY_NAME, {"format": _FORMAT, "identity": state.identity})
    payload = {"format": _FORMAT, **{f.name: getattr(state, f.name) for f in fields(state)}}
    return torch_save_atomic(folder / CHECKPOINT_NAME, payload)


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: {why}; delete the run folder {path.parent} to start this run afresh, "
        "or choose another output folder"
    )


def load_checkpoint(
    folder: str | Path, identity: dict[str, Any], *, map_location: torch.device | str = "cpu"
) -> TrainState | None:
    """The state saved in ``folder`` for the run ``identity``, or None when there is none.

    Raises:
        CheckpointError: the checkpoint belongs to another run, is of another
            format, or is not a metricseg checkpoint (e.g. a pickle that would run
            code: ``weights_only=True`` refuses it).
    """
    folder = Path(folder)
    path, id_path = folder / CHECKPOINT_NAME, folder / _IDENTITY_NAME
    if not path.exists() and not id_path.exists():
        return None
    if not path.is_file() or not id_path.is_file():
        raise _refuse(path, f"{CHECKPOINT_NAME} and {_IDENTITY_NAME} must both be files")
    try:
        head = json.loads(id_path.read_text())
    except (OSError, ValueError) as exc:
        raise _refuse(id_path, f"unreadable ({exc})") from None
    if not isinstance(head, dict) or head.get("format") != _FORMAT:
        raise _refuse(id_path, f"checkpoint format {head.get('format')!r}, expected {_FORMAT}")
    if head.get("identity") != identity:
        raise _refuse(
            path, f"belongs to another run ({head.get('identity')}); this run is {identity}"
        )
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _refuse(path, f"not a metricseg checkpoint, refused to load it ({first})") from None
    return _state_from(path, data, identity)


def _state_from(path: Path, data: Any, identity: dict[str, Any]) -> TrainState:
    names = [f.name for f in fields(TrainState)]
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise _refuse(path, "not a metricseg checkpoint of this version")
    missing = [n for n in names if n not in data]
    if missing:
        raise _refuse(path, f"incomplete checkpoint (missing {missing})")
    if data["identity"] != identity:
        raise _refuse(path, "its identity differs from checkpoint.json")
    state = TrainState(**{n: data[n] for n in names})
    if not isinstance(state.sampler, str) or not isinstance(state.torch_rng, torch.Tensor):
        raise _refuse(path, "malformed random-generator state")
    return state


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete temporary checkpoint files a killed write left in ``folder``; return them.

    Only names that :mod:`metricseg.atomic` gives the temporary files of this
    module's two files are touched (``.checkpoint.pt.*.tmp``, ``.checkpoint.json.*.tmp``).
    Call it only while holding the run's lock.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for name in (CHECKPOINT_NAME, _IDENTITY_NAME):
        for tmp in folder.glob(f".{name}.*.tmp"):
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed
