"""A picture of a task: images on top, label overlays below (``metricseg data show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from metricseg.data.preprocess import evenly_spaced
from metricseg.data.task import Task
from metricseg.plotting import new_figure, save_png

__all__ = ["display_slice", "save_montage"]

#: tab20 without its greys (14, 15), which vanish on a grey image
_PALETTE_ORDER = (0, 2, 4, 6, 8, 10, 12, 16, 18, 1, 3, 5, 7, 9, 11, 13, 17, 19)


def display_slice(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2D ``(image, label)`` of a case ``(C_in, *spatial)``: the first channel; for 3D the axial
    slice with the most foreground.

    Example:
        >>> lab = np.zeros((3, 2, 2), np.int64); lab[2, 0, 0] = 1
        >>> display_slice(np.zeros((1, 3, 2, 2)), lab)[1].sum()
        np.int64(1)
    """
    if label.ndim == 2:
        return image[0], label
    z = int(np.argmax((label > 0).sum(axis=(1, 2))))
    return image[0, z], label[z]


def _class_colours(num_classes: int) -> Any:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    tab20 = colormaps["tab20"]
    palette = [tab20(i) for i in _PALETTE_ORDER]
    return ListedColormap(
        [(0, 0, 0, 0)] + [palette[i % len(palette)] for i in range(num_classes - 1)]
    )


def save_montage(task: Task, split: str, count: int, out: str | Path) -> Path:
    """Image row on top, label overlay below, ``count`` cases of ``split``; written atomically."""
    from matplotlib.patches import Rectangle

    cases = getattr(task, split)
    picks = evenly_spaced(list(range(len(cases))), count)
    if not picks:
        raise ValueError(f"task {task.name!r} has no {split} cases to show")
    cmap = _class_colours(task.num_classes)
    fig = new_figure(1.8 * len(picks), 4.2, layout=None)
    axes = fig.subplots(2, len(picks), squeeze=False)
    for col, i in enumerate(picks):
        image, label = display_slice(cases[i].image, cases[i].label)
        for row in range(2):
            ax = axes[row][col]
            ax.imshow(image, cmap="gray", interpolation="nearest")
            if row == 1:
                ax.imshow(label, cmap=cmap, vmin=0, vmax=task.num_classes - 1, alpha=0.55,
                          interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][col].set_title(cases[i].case_id.removeprefix(f"{task.name}-"), fontsize=7)
    handles = [Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(1, task.num_classes)]
    fig.legend(handles, task.class_names[1:], loc="lower center",
               ncol=min(task.num_classes - 1, 8), fontsize=7, frameon=False)  # fmt: skip
    fig.suptitle(f"{task.name} ({split}): {task.description}", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return save_png(fig, out)
