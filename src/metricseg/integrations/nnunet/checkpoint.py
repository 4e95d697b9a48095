"""Read nnU-Net's training checkpoints without unpickling arbitrary objects.

nnU-Net 2.8 loads its checkpoints (``checkpoint_latest.pth``, ``checkpoint_final.pth``)
with ``torch.load(weights_only=False)``: a full unpickle, which runs whatever code a
crafted file names. A checkpoint holds only tensors, state dicts, plain Python values,
a ``torch.device`` and NumPy scalars (the logged losses and pseudo Dice), so
``weights_only=True`` reads it once NumPy's scalar constructor and dtype classes are
allowed — nothing that can run code. The metricseg trainers load their checkpoints
this way when nnU-Net resumes a training (``--c``).

Needs torch and NumPy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_checkpoint_weights_only", "numpy_safe_globals"]


def numpy_safe_globals() -> list[Any]:
    """NumPy's scalar constructor and its built-in dtype classes, for ``torch.serialization.safe_globals``.

    A pickled NumPy scalar is ``scalar(dtype, bytes)``; the dtype is pickled by its
    class. The constructor is named ``numpy._core.multiarray.scalar`` by NumPy 2 and
    ``numpy.core.multiarray.scalar`` by NumPy 1; both names are allowed, so a
    checkpoint written under either version reads.

    Example:
        >>> np.dtype in numpy_safe_globals()
        True
    """
    try:
        from numpy._core.multiarray import scalar  # NumPy 2
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtype_classes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}
    return [
        (scalar, "numpy._core.multiarray.scalar"),
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        *sorted(dtype_classes, key=lambda c: c.__name__),
    ]


def load_checkpoint_weights_only(
    path: str | Path, map_location: torch.device | str | None = None
) -> dict[str, Any]:
    """An nnU-Net checkpoint read with ``torch.load(weights_only=True)``.

    Raises ``pickle.UnpicklingError`` (from torch) when the file names anything but
    tensors, plain values and NumPy scalars.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "c.pth"
        >>> torch.save({"current_epoch": 3, "logging": {"train_losses": [np.float32(0.5)]}}, path)
        >>> load_checkpoint_weights_only(path)["logging"]["train_losses"]
        [np.float32(0.5)]
    """
    with torch.serialization.safe_globals(numpy_safe_globals()):
        data = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} holds a {type(data).__name__}, not an nnU-Net checkpoint (a dict)"
        )
    return data
