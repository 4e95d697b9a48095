"""The one figure helper of metricseg: theory, data and report plots all draw through it.

Figures use matplotlib's object interface on an Agg canvas of their own — no pyplot,
no global backend switch, so importing or calling metricseg never changes the backend
of the user's program — and are written atomically (a temporary file in the target
folder, then renamed). Needs matplotlib (``pip install 'metricseg[report]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from metricseg.atomic import atomic_path

__all__ = ["new_figure", "save_png"]


def new_figure(
    width: float, height: float, *, dpi: int = 110, layout: str | None = "constrained"
) -> Any:
    """A matplotlib ``Figure`` of ``width`` × ``height`` inches on its own Agg canvas.

    Example:
        >>> fig = new_figure(2, 1)
        >>> ax = fig.subplots()
        >>> [float(x) for x in fig.get_size_inches()]
        [2.0, 1.0]
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'metricseg[report]'") from exc
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically; return the path.

    Example:
        >>> import tempfile, pathlib
        >>> fig = new_figure(1, 1)
        >>> p = save_png(fig, pathlib.Path(tempfile.mkdtemp()) / "a.png")
        >>> p.read_bytes()[:4]
        b'\\x89PNG'
    """
    p = Path(path)
    with atomic_path(p, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return p
