"""What a segmentation task is, for training and the bench: cases, splits, classes.

Every data source (synthetic presets, real offline tasks, user folders, MSD
downloads) produces a :class:`Task`; ``metricseg.train`` and
``metricseg.experiment`` consume nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Case", "Task"]


@dataclass(frozen=True)
class Case:
    """One image with its label map.

    Attributes:
        case_id: unique within its task (e.g. ``"synthetic-0007"``, ``"ch2-z041"``).
        image: float32 ``(C_in, *spatial)``, intensities already normalised.
        label: int64 ``(*spatial)`` label map with values in ``[0, num_classes)``.
        spacing: voxel size in mm in array axis order, or None when unknown.
        soft_label: optional float32 ``(num_classes, *spatial)`` probabilistic
            target (e.g. tissue probability maps); ``label`` is then its argmax.
        subject: the subject (patient, atlas, source image) the case comes from;
            None means the case is a subject of its own. Slices and tiles of one
            volume share a subject: they are not independent, and cross-validation
            and the study's statistics treat them as one unit.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, ...] | None = None
    soft_label: np.ndarray | None = None
    subject: str | None = None

    @property
    def subject_id(self) -> str:
        """The subject, or the case itself when it is its own subject."""
        return self.subject if self.subject is not None else self.case_id

    def __post_init__(self) -> None:
        if self.image.ndim != self.label.ndim + 1:
            raise ValueError(
                f"case {self.case_id!r}: image must be (C_in, *spatial) and label (*spatial), "
                f"got image {self.image.shape} and label {self.label.shape}"
            )
        if self.image.shape[1:] != self.label.shape:
            raise ValueError(
                f"case {self.case_id!r}: image spatial shape {self.image.shape[1:]} differs "
                f"from label shape {self.label.shape}"
            )


@dataclass
class Task:
    """A segmentation task with fixed train / validation / test splits.

    Attributes:
        name: registry name (``"tiny-lesions"``, ``"aal-small"``, ...).
        spatial_dims: 2 or 3.
        num_classes: number of classes, background (label 0) included.
        in_channels: image channels ``C_in``.
        class_names: one name per class, background first.
        train, val, test: the splits; no slice, tile or subject is in two of them.
        description: one line for listings and reports.
        source: where the data came from (package, file or generator and seed).
        patch_size: training patch size for 3D tasks (None: train on whole cases).
    """

    name: str
    spatial_dims: int
    num_classes: int
    in_channels: int
    class_names: list[str]
    train: Sequence[Case]
    val: Sequence[Case]
    test: Sequence[Case]
    description: str = ""
    source: str = ""
    patch_size: tuple[int, ...] | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def cases(self) -> list[Case]:
        """Every case of the task: train, then validation, then test."""
        return [*self.train, *self.val, *self.test]

    @property
    def independent(self) -> bool:
        """Whether every test case is a subject of its own (a valid unit for a statistical test).

        False for slices or tiles of shared subjects (an atlas cut into slices).
        """
        subjects = [c.subject_id for c in self.test]
        return len(set(subjects)) == len(subjects)

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(
                f"task {self.name!r}: spatial_dims must be 2 or 3, got {self.spatial_dims}"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: class_names has {len(self.class_names)} names for "
                f"num_classes={self.num_classes}"
            )
