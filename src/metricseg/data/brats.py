r"""BraTS whole tumour: one 3D case per subject, preprocessed as the paper's authors did.

The task ``"brats"`` reads three layouts of the BraTS training data from one folder:

* **nnU-Net raw** (v2), e.g. ``../shared/data/brats2018``: ``dataset.json`` with
  ``"channel_names"`` (``{"0": "FLAIR", "1": "T1"}``), ``imagesTr/<subject>_0000.nii.gz`` (one
  file per channel) and ``labelsTr/<subject>.nii.gz``;
* **Medical Segmentation Decathlon** ``Task01_BrainTumour``: ``dataset.json`` with
  ``"modality"`` (``{"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}``) and a ``"training"``
  list; every image is one 4D NIfTI holding the four modalities; labels 0–3;
* **official BraTS 2018–2021 training layout**: one folder per subject (directly in the
  folder, or one level down as in BraTS 2018's ``HGG/`` and ``LGG/``) holding
  ``<subject>_flair.nii.gz``, ``_t1``, ``_t1ce``, ``_t2`` and ``_seg`` (labels 0, 1, 2, 4).

Channels are picked by name, whatever the layout calls them (``T1w`` and ``T1`` are both T1;
``t1gd``, ``T1ce`` and ``T1c`` are the contrast-enhanced T1). The label is the **whole tumour**:
every label above 0.

Preprocessing (the paper's: 2 mm isotropic, cropped to the head, z-scored over the head):

1. the head is where any chosen channel is non-zero (BraTS images are skull-stripped, the
   background is exactly 0); its bounding box, widened by ``margin`` mm on every side and kept
   inside the volume, is the crop box;
2. the box is resampled to ``spacing`` mm on a grid centred on the box, using the spacing of the
   file: ``n = ceil(box extent in mm / spacing)`` voxels per axis, trilinear for the images,
   nearest neighbour for the label and the head mask (:func:`resample_box`);
3. each channel is z-scored over the resampled head, :math:`(x - \mu_{head}) / \sigma_{head}`,
   and set to 0 outside it (0 is then also the value of padding).

Arrays stay in the file's axis order (``z, y, x`` for NIfTI, as :mod:`metricseg.io` reads them).

Cache: the preprocessed arrays are kept in memory for the rest of the process, and with
``cache_dir`` also on disk as ``<cache_dir>/brats-<key>/<subject>.npz``, where ``key`` hashes the
source files' identity (resolved path, size, modification time) and every preprocessing
parameter, so a changed file or parameter gives a new folder. Files are written atomically
(:mod:`metricseg.atomic`), read with ``np.load(allow_pickle=False)``, checked (keys, dtypes,
shapes, values) and rebuilt when they fail the check.

>>> import numpy as np
>>> image = np.zeros((1, 10, 10, 10), np.float32); image[0, 2:8, 3:7, 4:6] = 1.0
>>> head_box(image, (1.0, 1.0, 1.0), margin=0.0)
((2, 8), (3, 7), (4, 6))
>>> resample_box(image[0], (1.0, 1.0, 1.0), ((2, 8), (3, 7), (4, 6)), (2.0, 2.0, 2.0), order=1).shape
(3, 2, 1)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from metricseg.data.preprocess import seeded_split, zscore
from metricseg.data.real import SourceUnavailableError
from metricseg.data.task import Case, Task, check_task_options

if TYPE_CHECKING:
    from metricseg.data.user import DatasetFiles

__all__ = [
    "BRATS_ENV",
    "BRATS_HOW_TO_GET",
    "BratsOptions",
    "BratsSource",
    "BratsSubject",
    "PreprocessedSubject",
    "brats_root",
    "brats_task",
    "canonical_channel",
    "check_subject_name",
    "clear_memory_cache",
    "find_brats_subjects",
    "head_box",
    "preprocess_subject",
    "resample_box",
]

#: environment variable naming the BraTS folder when the task option ``path`` is not given
BRATS_ENV = "METRICSEG_BRATS"

MSD_BRATS = "Task01_BrainTumour"

BRATS_HOW_TO_GET = (
    f"give the folder as the task option path=FOLDER (`-o path=FOLDER` on the command line) or "
    f"in ${BRATS_ENV}: the Medical Segmentation Decathlon {MSD_BRATS} "
    f"(`metricseg data download msd:{MSD_BRATS}`, about 7 GB; once downloaded it is found "
    "without a path), the BraTS 2018-2021 training data from the BraTS challenge "
    "(https://www.synapse.org/brats, after registration), or an nnU-Net raw dataset of them"
)

_SHORT_HOW_TO = f"`metricseg data download msd:{MSD_BRATS}`, or the BraTS challenge's data"

#: bump when the preprocessing changes, so that old cache folders are not read
CACHE_VERSION = 1

#: channel names as the layouts spell them (upper case, letters and digits only) → one name
_CHANNEL_ALIASES: dict[str, str] = {
    "FLAIR": "FLAIR",
    "T2FLAIR": "FLAIR",
    "T2F": "FLAIR",
    "T1": "T1",
    "T1W": "T1",
    "T1N": "T1",
    "T1CE": "T1CE",
    "T1GD": "T1CE",
    "T1C": "T1CE",
    "T1WCE": "T1CE",
    "T2": "T2",
    "T2W": "T2",
}

#: file name endings of the official layout (before .nii / .nii.gz), per channel
_OFFICIAL_SUFFIXES: dict[str, str] = {"FLAIR": "flair", "T1": "t1", "T1CE": "t1ce", "T2": "t2"}

_SUBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def canonical_channel(name: str) -> str:
    """One name per MR sequence, whatever the layout calls it.

    >>> [canonical_channel(n) for n in ("FLAIR", "T1w", "t1gd", "T2w", "T1ce", "flair")]
    ['FLAIR', 'T1', 'T1CE', 'T2', 'T1CE', 'FLAIR']
    """
    key = re.sub(r"[^A-Z0-9]", "", str(name).upper())
    return _CHANNEL_ALIASES.get(key, key)


def check_subject_name(name: object, where: str) -> str:
    """``name`` if it can be a file name of its own, else ``ValueError`` naming ``where``.

    Subject names become cache file names: letters, digits, ``.``, ``_`` and ``-`` only, not
    starting with ``.`` or ``-``, no ``..``, at most 128 characters.

    >>> check_subject_name("Brats18_CBICA_AAB_1", "x")
    'Brats18_CBICA_AAB_1'
    >>> check_subject_name("../etc", "dataset.json")
    Traceback (most recent call last):
    ...
    ValueError: dataset.json: subject name '../etc' cannot be a file name; use letters, digits, '.', '_' and '-' only (no path separator, no '..', not starting with '.' or '-')
    """
    if not isinstance(name, str) or not _SUBJECT_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{where}: subject name {name!r} cannot be a file name; use letters, digits, '.', "
            "'_' and '-' only (no path separator, no '..', not starting with '.' or '-')"
        )
    return name


# ---------------------------------------------------------------------------------------------
# finding the subjects


@dataclass(frozen=True)
class BratsSubject:
    """The files of one subject.

    Attributes:
        subject: the subject id (checked by :func:`check_subject_name`).
        images: the image files to read, in channel order (one 4D file for MSD).
        label: the label file.
        channels: for a 4D file, the indices of the chosen channels in it; None otherwise.
    """

    subject: str
    images: tuple[Path, ...]
    label: Path
    channels: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BratsSource:
    """A BraTS folder: its layout, the channels it has, and its subjects (sorted by id)."""

    root: Path
    layout: str
    available_channels: tuple[str, ...]
    channels: tuple[str, ...]
    subjects: tuple[BratsSubject, ...]


def _pick(available: Sequence[str], wanted: Sequence[str], where: str) -> list[int]:
    names = [canonical_channel(a) for a in available]
    picks = []
    for w in wanted:
        hits = [i for i, n in enumerate(names) if n == w]
        if len(hits) != 1:
            problem = "is not among" if not hits else "matches more than one of"
            raise ValueError(
                f"channels: {w!r} {problem} the channels of {where}: {list(available)} "
                f"(read as {names}); choose from those"
            )
        picks.append(hits[0])
    return picks


def _nnunet_subjects(files: DatasetFiles, wanted: Sequence[str]) -> list[BratsSubject]:
    from metricseg.io import strip_image_suffix

    picks = _pick(files.modalities, wanted, f"{files.root / 'dataset.json'} (channel_names)")
    subjects = []
    for case, images, label in files.cases:
        # nnU-Net names channel k <case>_000k; a missing file must not shift the channels
        suffixes = [(strip_image_suffix(f.name) or "")[-4:] for f in images]
        expected = [f"{k:04d}" for k in range(len(files.modalities))]
        if suffixes != expected:
            raise ValueError(
                f"{files.root}: case {case!r} has channel files {[f.name for f in images]}; "
                f"expected one per channel of dataset.json, ending in {expected}"
            )
        name = check_subject_name(case, str(images[0]))
        subjects.append(BratsSubject(name, tuple(images[i] for i in picks), label))
    return subjects


def _msd_subjects(files: DatasetFiles, wanted: Sequence[str]) -> list[BratsSubject]:
    picks = _pick(files.modalities, wanted, f"{files.root / 'dataset.json'} (modality)")
    return [
        BratsSubject(check_subject_name(case, str(images[0])), tuple(images), label, tuple(picks))
        for case, images, label in files.cases
    ]


def _official_file(folder: Path, suffix: str) -> Path | None:
    hits = [
        f
        for f in folder.iterdir()
        if f.is_file()
        and not f.name.startswith(".")  # macOS "._" copies next to the real files
        and f.name.lower().endswith((f"_{suffix}.nii.gz", f"_{suffix}.nii"))
    ]
    if len(hits) > 1:
        raise ValueError(f"{folder}: more than one *_{suffix} file: {sorted(f.name for f in hits)}")
    return hits[0] if hits else None


def _is_official_subject(folder: Path) -> bool:
    return any(
        f.name.lower().endswith(("_flair.nii.gz", "_flair.nii", "_seg.nii.gz", "_seg.nii"))
        for f in folder.iterdir()
    )


def _official_subjects(root: Path, wanted: Sequence[str]) -> list[BratsSubject]:
    _pick(list(_OFFICIAL_SUFFIXES), wanted, f"the official BraTS layout of {root}")
    folders: list[Path] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if _is_official_subject(entry):
            folders.append(entry)
        else:  # BraTS 2018/2019 group subjects in HGG/ and LGG/
            folders.extend(
                sub
                for sub in sorted(entry.iterdir())
                if sub.is_dir() and not sub.name.startswith(".") and _is_official_subject(sub)
            )
    subjects = []
    for folder in folders:
        name = check_subject_name(folder.name, str(folder))
        images = []
        for w in wanted:
            f = _official_file(folder, _OFFICIAL_SUFFIXES[w])
            if f is None:
                raise ValueError(
                    f"{folder}: no *_{_OFFICIAL_SUFFIXES[w]}.nii.gz file for channel {w!r}"
                )
            images.append(f)
        label = _official_file(folder, "seg")
        if label is None:
            raise ValueError(
                f"{folder}: no *_seg.nii.gz label file (BraTS validation and test data have no "
                "labels; use the training data)"
            )
        subjects.append(BratsSubject(name, tuple(images), label))
    return subjects


def find_brats_subjects(
    root: str | os.PathLike[str], channels: Sequence[str] = ("FLAIR", "T1")
) -> BratsSource:
    """Recognise the layout of ``root`` and list its subjects with the files of ``channels``.

    Raises:
        FileNotFoundError: ``root`` or a file listed in ``dataset.json`` is missing.
        ValueError: no BraTS layout, a channel the data does not have, a missing file, or a
            subject name that cannot be a file name; the message names the file or folder.
    """
    from metricseg.data.user import find_dataset_files

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"path {str(root)!r} is not a folder")
    wanted = tuple(canonical_channel(c) for c in channels)
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"channels must name each channel once, got {list(channels)}")
    if (root / "dataset.json").is_file():
        files = find_dataset_files(root)
        if files.layout == "nnunet":
            subjects = _nnunet_subjects(files, wanted)
        elif files.layout == "msd":
            subjects = _msd_subjects(files, wanted)
        else:
            raise ValueError(
                f"{root / 'dataset.json'} names no channels ('channel_names' of nnU-Net or "
                "'modality' of the MSD); cannot pick the BraTS channels"
            )
        layout, available = files.layout, tuple(files.modalities)
    else:
        subjects = _official_subjects(root, wanted)
        layout, available = "official", tuple(_OFFICIAL_SUFFIXES)
    if not subjects:
        raise ValueError(
            f"{root}: no BraTS subjects found (expected an nnU-Net raw or MSD dataset.json, or "
            "one folder per subject with *_flair, *_t1, *_t1ce, *_t2 and *_seg .nii.gz files)"
        )
    ids = [s.subject for s in subjects]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{root}: subject ids {twice} occur more than once")
    return BratsSource(
        root, layout, available, wanted, tuple(sorted(subjects, key=lambda s: s.subject))
    )


def brats_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The BraTS folder: ``path``, else ``$METRICSEG_BRATS``, else a downloaded MSD Task01.

    Raises:
        SourceUnavailableError: none of them is a folder; the message says how to get the data.
    """
    given = path if path is not None else (os.environ.get(BRATS_ENV) or None)
    if given is None:
        from metricseg.data.download import msd_folder

        downloaded = msd_folder(MSD_BRATS)
        if downloaded is not None:
            return downloaded
        raise SourceUnavailableError(f"the brats task needs the BraTS data: {BRATS_HOW_TO_GET}")
    root = Path(given).expanduser()
    if not root.is_dir():
        origin = "path=" if path is not None else f"${BRATS_ENV}"
        raise SourceUnavailableError(
            f"BraTS folder {str(root)!r} (from {origin}) is not a folder; {BRATS_HOW_TO_GET}"
        )
    return root


# ---------------------------------------------------------------------------------------------
# preprocessing


def head_box(
    image: np.ndarray, spacing: Sequence[float], margin: float
) -> tuple[tuple[int, int], ...]:
    """Bounding box ``((lo, hi), ...)`` (``hi`` exclusive) of the voxels where any channel is
    non-zero, widened by ``margin`` mm (rounded up to whole voxels) and kept inside the volume.

    Args:
        image: ``(C, *spatial)``.
        spacing: voxel size in mm per spatial axis, array order.

    Raises:
        ValueError: every voxel is 0 (no head).
    """
    head = (image != 0).any(axis=0)
    if not head.any():
        raise ValueError("image is 0 everywhere: there is no head to crop to")
    box = []
    for axis in range(head.ndim):
        others = tuple(a for a in range(head.ndim) if a != axis)
        present = np.flatnonzero(head.any(axis=others))
        widen = math.ceil(margin / spacing[axis] - 1e-9)
        box.append(
            (max(0, int(present[0]) - widen), min(head.shape[axis], int(present[-1]) + 1 + widen))
        )
    return tuple(box)


def box_shape(
    box: Sequence[Sequence[int]], spacing: Sequence[float], target: Sequence[float]
) -> tuple[int, ...]:
    """Voxels per axis of ``box`` at ``target`` mm: ``ceil((hi - lo) * spacing / target)``.

    >>> box_shape(((0, 155), (10, 200), (0, 99)), (1.0, 1.0, 1.5), (2.0, 2.0, 2.0))
    (78, 95, 75)
    """
    return tuple(
        max(1, math.ceil((hi - lo) * s / t - 1e-6)) for (lo, hi), s, t in zip(box, spacing, target)
    )


def resample_box(
    array: np.ndarray,
    spacing: Sequence[float],
    box: Sequence[Sequence[int]],
    target: Sequence[float],
    *,
    order: int,
) -> np.ndarray:
    r"""Sample ``array`` on a grid of ``target`` mm spacing that covers ``box``, centred on it.

    The grid has :func:`box_shape` voxels per axis; output voxel :math:`o` lies at the input
    coordinate :math:`p = c + (o - (n - 1)/2)\, t / s` (voxel units), where
    :math:`c = (lo + hi - 1)/2` is the box centre, :math:`t` the target and :math:`s` the input
    spacing. This is resampling the whole volume to ``target`` mm and cropping it to the box,
    without computing the voxels that would be cropped away. Outside the volume the input
    counts as 0.

    The grid is axis-aligned, so both interpolations are separable and run one axis at a time
    (the same numbers as :func:`scipy.ndimage.affine_transform` with ``mode="grid-constant"``,
    several times faster):

    * ``order=1``: trilinear, :math:`(1 - w)\, x_{\lfloor p \rfloor} + w\, x_{\lfloor p \rfloor + 1}`,
      :math:`w = p - \lfloor p \rfloor`, per axis;
    * ``order=0``: nearest neighbour, :math:`x_{\lfloor p + 1/2 \rfloor}` (ties go up); never
      creates a value that is not in ``array``.

    Args:
        array: ``(*spatial)``.
        order: 1 (linear, for intensities) or 0 (nearest, for label maps and masks).

    Returns:
        ``(*box_shape)``, float32 for ``order=1`` of a float32 input, else ``array``'s dtype.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), got {order}")
    if array.ndim != len(box) or len(spacing) != len(box) or len(target) != len(box):
        raise ValueError(
            f"array {array.shape}, spacing {tuple(spacing)}, box {tuple(box)} and target "
            f"{tuple(target)} must have one entry per axis"
        )
    shape = box_shape(box, spacing, target)
    positions = [
        (lo + hi - 1) / 2 + (np.arange(n, dtype=np.float64) - (n - 1) / 2) * (t / s)
        for (lo, hi), n, s, t in zip(box, shape, spacing, target)
    ]
    out = array
    if order == 0:
        for axis, p in enumerate(positions):
            index = np.floor(p + 0.5).astype(np.int64)
            inside = (index >= 0) & (index < array.shape[axis])
            out = np.take(out, np.clip(index, 0, array.shape[axis] - 1), axis=axis)
            if not inside.all():
                view = [None] * array.ndim
                view[axis] = slice(None)
                out = np.where(inside[tuple(view)], out, np.zeros((), dtype=out.dtype))
        return np.ascontiguousarray(out)
    dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float64
    out = array.astype(dtype, copy=False)
    # the axis that shrinks most goes first, so later passes work on less data
    for axis in sorted(range(array.ndim), key=lambda a: len(positions[a]) / array.shape[a]):
        p, size = positions[axis], array.shape[axis]
        below = np.floor(p).astype(np.int64)
        weight = p - below
        above = below + 1
        w_below = np.where((below >= 0) & (below < size), 1.0 - weight, 0.0).astype(dtype)
        w_above = np.where((above >= 0) & (above < size), weight, 0.0).astype(dtype)
        view = [1] * array.ndim
        view[axis] = len(p)
        out = np.take(out, np.clip(below, 0, size - 1), axis=axis) * w_below.reshape(
            view
        ) + np.take(out, np.clip(above, 0, size - 1), axis=axis) * w_above.reshape(view)
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class PreprocessedSubject:
    """One subject after :func:`preprocess_subject`.

    Attributes:
        image: float32 ``(C, *shape)``, z-scored over the head, 0 outside it.
        label: uint8 ``(*shape)``, whole tumour (1) or not (0).
        box: int64 ``(3, 2)``: the crop box ``[lo, hi)`` in voxels of the source file.
        source_shape: int64 ``(3,)``: the source volume's shape.
        source_spacing: float64 ``(3,)``: the source file's spacing (mm, array order).
    """

    image: np.ndarray
    label: np.ndarray
    box: np.ndarray
    source_shape: np.ndarray
    source_spacing: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, f).nbytes for f in _FIELDS))


_FIELDS = ("image", "label", "box", "source_shape", "source_spacing")


def preprocess_subject(
    image: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float],
    *,
    target: Sequence[float] = (2.0, 2.0, 2.0),
    margin: float = 4.0,
) -> PreprocessedSubject:
    """Crop to the head, resample to ``target`` mm, z-score each channel over the head.

    Args:
        image: ``(C, *spatial)`` raw intensities, 0 outside the head (skull-stripped).
        label: ``(*spatial)`` integer label map; whole tumour is ``label > 0``.
        spacing: voxel size of the source in mm, array order.
        target: output voxel size in mm.
        margin: mm added around the head's bounding box.

    >>> img = np.zeros((1, 8, 8, 8), np.float32); img[0, 2:6, 2:6, 2:6] = np.arange(64).reshape(4, 4, 4)
    >>> lab = np.zeros((8, 8, 8), np.int64); lab[3:5, 3:5, 3:5] = 4
    >>> out = preprocess_subject(img, lab, (1.0, 1.0, 1.0), target=(2.0, 2.0, 2.0), margin=0.0)
    >>> out.image.shape, out.box.tolist(), sorted(np.unique(out.label).tolist())
    ((1, 2, 2, 2), [[2, 6], [2, 6], [2, 6]], [0, 1])
    """
    spacing = tuple(float(s) for s in spacing)
    target = tuple(float(t) for t in target)
    box = head_box(image, spacing, margin)
    head = (image != 0).any(axis=0).astype(np.uint8)
    mask = resample_box(head, spacing, box, target, order=0).astype(bool)
    tumour = resample_box((label > 0).astype(np.uint8), spacing, box, target, order=0)
    channels = []
    for c in image:
        resampled = resample_box(c.astype(np.float32, copy=False), spacing, box, target, order=1)
        normalised = zscore(resampled, mask)
        normalised[~mask] = 0.0
        channels.append(normalised)
    return PreprocessedSubject(
        image=np.stack(channels).astype(np.float32, copy=False),
        label=tumour.astype(np.uint8, copy=False),
        box=np.array(box, dtype=np.int64),
        source_shape=np.array(label.shape, dtype=np.int64),
        source_spacing=np.array(spacing, dtype=np.float64),
    )


# ---------------------------------------------------------------------------------------------
# cache


def _check_arrays(
    arrays: Mapping[str, np.ndarray], channels: int, target: Sequence[float]
) -> str | None:
    """What is wrong with cached arrays, or None when they are what the preprocessing gives."""
    if set(arrays) != set(_FIELDS):
        return f"holds {sorted(arrays)}, expected {sorted(_FIELDS)}"
    image, label, box = arrays["image"], arrays["label"], arrays["box"]
    shape, spacing = arrays["source_shape"], arrays["source_spacing"]
    dtypes = {
        "image": np.float32,
        "label": np.uint8,
        "box": np.int64,
        "source_shape": np.int64,
        "source_spacing": np.float64,
    }
    for name, dtype in dtypes.items():
        if arrays[name].dtype != dtype:
            return f"{name} has dtype {arrays[name].dtype}, expected {np.dtype(dtype)}"
    if box.shape != (3, 2) or shape.shape != (3,) or spacing.shape != (3,):
        return f"box {box.shape}, source_shape {shape.shape}, source_spacing {spacing.shape}"
    if not (
        np.all(box[:, 0] >= 0) and np.all(box[:, 1] > box[:, 0]) and np.all(box[:, 1] <= shape)
    ):
        return f"box {box.tolist()} is not inside the source shape {shape.tolist()}"
    if not np.all(spacing > 0):
        return f"source_spacing {spacing.tolist()} is not positive"
    expected = (channels, *box_shape(box.tolist(), spacing.tolist(), target))
    if image.shape != expected or label.shape != expected[1:]:
        return f"image {image.shape} and label {label.shape}, expected {expected}"
    if label.size and int(label.max()) > 1:
        return f"label holds {int(label.max())}, expected 0 or 1"
    if not np.isfinite(image).all():
        return "image holds NaN or infinity"
    return None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write_npz(path: Path, subject: PreprocessedSubject) -> None:
    from metricseg.atomic import atomic_write

    atomic_write(path, lambda f: np.savez(f, **{k: getattr(subject, k) for k in _FIELDS}))


#: preprocessed subjects of this process: (cache key, subject) → arrays, least recently used first
_MEMORY: OrderedDict[tuple[str, str], PreprocessedSubject] = OrderedDict()
_MEMORY_LOCK = threading.Lock()
#: the in-process cache holds at most this many bytes (the full MSD Task01 at 2 mm fits)
MEMORY_CACHE_BYTES = 4 << 30


def clear_memory_cache() -> None:
    """Forget the subjects preprocessed in this process (the disk cache stays)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _remember(key: tuple[str, str], subject: PreprocessedSubject) -> None:
    for name in _FIELDS:  # shared by every task of the process: cases get copies
        getattr(subject, name).setflags(write=False)
    with _MEMORY_LOCK:
        _MEMORY[key] = subject
        _MEMORY.move_to_end(key)
        total = sum(s.nbytes for s in _MEMORY.values())
        while total > MEMORY_CACHE_BYTES and len(_MEMORY) > 1:
            _, dropped = _MEMORY.popitem(last=False)
            total -= dropped.nbytes


def _recall(key: tuple[str, str]) -> PreprocessedSubject | None:
    with _MEMORY_LOCK:
        found = _MEMORY.get(key)
        if found is not None:
            _MEMORY.move_to_end(key)
        return found


def _file_identity(path: Path) -> list[object]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


# ---------------------------------------------------------------------------------------------
# the task


@dataclass(frozen=True)
class BratsOptions:
    """The options of ``get_task("brats", ...)``, checked at construction.

    Attributes:
        path: the BraTS folder (default: ``$METRICSEG_BRATS``, then a downloaded MSD Task01).
        channels: MR sequences, by name (``"FLAIR,T1"`` or a sequence), in this order.
        spacing: output voxel size in mm, one number (isotropic) or three (array order).
        margin: mm kept around the head's bounding box.
        num_train, num_val, num_test: subjects per split; default: ``num_test`` and
            ``num_val`` from the fractions, training gets the rest.
        val_fraction, test_fraction: used when ``num_val`` / ``num_test`` are not given.
        patch_size: 3D training patch (voxels at ``spacing``), or None for whole volumes.
        cache_dir: folder of the disk cache; None: no disk cache.
        max_subjects: use the first N subjects (sorted by id), e.g. for a quick run on the MSD.
    """

    path: str | None = None
    channels: tuple[str, ...] = ("FLAIR", "T1")
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0)
    margin: float = 4.0
    num_train: int | None = None
    num_val: int | None = None
    num_test: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    patch_size: tuple[int, int, int] | None = (48, 48, 48)
    cache_dir: str | None = None
    max_subjects: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> BratsOptions:
        """Check and convert task options (as ``get_task`` or ``-o KEY=VALUE`` give them)."""
        check_task_options("brats", options, cls.__dataclass_fields__)
        o = dict(options)
        values: dict[str, object] = {}
        if o.get("path") is not None:
            if not isinstance(o["path"], (str, os.PathLike)):
                raise TypeError(f"path must be a folder path, got {type(o['path']).__name__}")
            values["path"] = os.fspath(o["path"])
            if not values["path"]:
                raise ValueError("path must name the BraTS folder, got an empty string")
        if "channels" in o:
            values["channels"] = _names(o["channels"])
        if "spacing" in o:
            values["spacing"] = _spacing(o["spacing"])
        if "margin" in o:
            values["margin"] = _number(o["margin"], "margin", minimum=0.0)
        for name, least in (("num_train", 1), ("num_val", 0), ("num_test", 0), ("max_subjects", 1)):
            if o.get(name) is not None:
                values[name] = _count(o[name], name, minimum=least)
        for name in ("val_fraction", "test_fraction"):
            if name in o:
                value = _number(o[name], name, minimum=0.0)
                if value >= 1.0:
                    raise ValueError(f"{name} must be in [0, 1), got {value}")
                values[name] = value
        if "patch_size" in o:
            values["patch_size"] = _patch(o["patch_size"])
        if o.get("cache_dir") is not None:
            if not isinstance(o["cache_dir"], (str, os.PathLike)):
                raise TypeError(
                    f"cache_dir must be a folder path or None, got {type(o['cache_dir']).__name__}"
                )
            values["cache_dir"] = os.fspath(o["cache_dir"])
            if not values["cache_dir"]:
                raise ValueError("cache_dir must name a folder (or be None), got an empty string")
        return cls(**values)  # type: ignore[arg-type]


def _names(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise TypeError(f"channels must be names like 'FLAIR,T1' or ('FLAIR', 'T1'), got {value!r}")
    names = tuple(i.strip() for i in items if i.strip())
    if not names:
        raise ValueError(f"channels must name at least one channel, got {value!r}")
    return names


def _number(value: object, name: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}")
    return float(value)


def _count(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _spacing(value: object) -> tuple[float, float, float]:
    items = value if isinstance(value, (list, tuple)) else (value,) * 3
    if len(items) != 3:
        raise ValueError(f"spacing must be one number or three (mm), got {value!r}")
    spacing = tuple(_number(v, "spacing", minimum=0.0) for v in items)
    if min(spacing) <= 0:
        raise ValueError(f"spacing must be positive (mm), got {value!r}")
    return spacing  # type: ignore[return-value]


def _patch(value: object) -> tuple[int, int, int] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else (value,) * 3
    if len(items) != 3:
        raise ValueError(f"patch_size must be one size or three (voxels), or None; got {value!r}")
    return tuple(_count(v, "patch_size", minimum=1) for v in items)  # type: ignore[return-value]


def _split(subjects: Sequence[str], options: BratsOptions, seed: int) -> dict[str, list[str]]:
    """Subject ids per split (each sorted), shuffled by ``seed``."""
    indices = seeded_split(
        len(subjects),
        seed,
        num_train=options.num_train,
        num_val=options.num_val,
        num_test=options.num_test,
        val_fraction=options.val_fraction,
        test_fraction=options.test_fraction,
        what="the BraTS folder",
        unit="subjects",
    )
    return {split: sorted(subjects[i] for i in picks) for split, picks in indices.items()}


@dataclass
class _CacheReport:
    memory: int = 0
    disk: int = 0
    built: int = 0
    rebuilt: list[str] = field(default_factory=list)


def _load_subject(
    subject: BratsSubject,
    options: BratsOptions,
    key: str,
    folder: Path | None,
    report: _CacheReport,
) -> PreprocessedSubject:
    """Memory, then disk, then the source files (writing the disk cache)."""
    found = _recall((key, subject.subject))
    if found is not None:
        report.memory += 1
        return found
    path = None
    if folder is not None:
        path = folder / f"{subject.subject}.npz"
        if path.resolve().parent != folder.resolve():  # the name was checked; belt and braces
            raise ValueError(f"cache file {path} would lie outside {folder}")
        cached = _read_cached(path, options, report)
        if cached is not None:
            report.disk += 1
            _remember((key, subject.subject), cached)
            return cached
    result = _preprocess_files(subject, options)
    report.built += 1
    if path is not None:
        _write_npz(path, result)
    _remember((key, subject.subject), result)
    return result


def _read_cached(
    path: Path, options: BratsOptions, report: _CacheReport
) -> PreprocessedSubject | None:
    """The subject cached in ``path``; None when it is missing, or unreadable or wrong (noted
    in ``report.rebuilt``)."""
    if not path.is_file():
        return None
    try:
        arrays = _read_npz(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        problem: str | None = f"unreadable ({type(exc).__name__}: {exc})"
    else:
        problem = _check_arrays(arrays, len(options.channels), options.spacing)
    if problem is None:
        return PreprocessedSubject(**arrays)
    report.rebuilt.append(f"{path.name}: {problem}")
    return None


def _preprocess_files(subject: BratsSubject, options: BratsOptions) -> PreprocessedSubject:
    """Read the subject's files and preprocess them (:func:`preprocess_subject`)."""
    from metricseg.data.user import load_case

    case = load_case(
        subject.subject,
        subject.images,
        subject.label,
        normalization="none",
        channels=subject.channels,
    )
    if not np.isfinite(case.image).all():
        raise ValueError(
            f"{[str(f) for f in subject.images]}: subject {subject.subject!r} has NaN or "
            "infinite intensities"
        )
    if case.spacing is None or len(case.spacing) != 3:
        raise ValueError(f"{subject.label}: expected a 3D volume, got spacing {case.spacing}")
    try:
        return preprocess_subject(
            case.image, case.label, case.spacing, target=options.spacing, margin=options.margin
        )
    except ValueError as exc:
        raise ValueError(f"{subject.images[0]}: subject {subject.subject!r}: {exc}") from None


def brats_task(*, seed: int = 0, **options: object) -> Task:
    """The BraTS whole-tumour task: one 3D :class:`Case` per subject (see the module docstring).

    Options (:class:`BratsOptions`): ``path``, ``channels`` (``("FLAIR", "T1")``), ``spacing``
    (2.0 mm), ``margin`` (4.0 mm), ``num_train`` / ``num_val`` / ``num_test`` (default: 20 %
    validation, 20 % test, the rest training), ``val_fraction``, ``test_fraction``,
    ``patch_size`` (``(48, 48, 48)``), ``cache_dir`` (None), ``max_subjects`` (None). ``seed``
    shuffles the subjects into the splits.

    Every case: ``case_id`` and ``subject`` are the subject id, ``image`` float32
    ``(len(channels), z, y, x)``, ``label`` int64 ``(z, y, x)`` in {0, 1}, ``spacing`` the
    output spacing. ``task.meta`` records the layout, the preprocessing, the crop box of every
    subject and what the cache did (``cache``: subjects from memory, from disk, built, rebuilt).

    Raises:
        SourceUnavailableError: no BraTS folder (the message says how to get one).
        ValueError: bad options, or data that is not BraTS as expected (the message names the file).
    """
    opts = BratsOptions.from_options(options)
    source = find_brats_subjects(brats_root(opts.path), opts.channels)
    subjects = list(source.subjects[: opts.max_subjects] if opts.max_subjects else source.subjects)
    splits = _split([s.subject for s in subjects], opts, seed)
    identity = _cache_identity(source, subjects, opts)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    folder = _cache_folder(opts.cache_dir, key, source.root, identity)
    report = _CacheReport()
    by_subject = {s.subject: s for s in subjects}
    arrays = {
        name: _load_subject(by_subject[name], opts, key, folder, report)
        for split in ("train", "val", "test")
        for name in splits[split]
    }
    cases = {
        split: [_case(name, arrays[name], opts.spacing) for name in names]
        for split, names in splits.items()
    }
    return Task(
        name="brats",
        spatial_dims=3,
        num_classes=2,
        in_channels=len(opts.channels),
        class_names=["background", "whole-tumour"],
        train=cases["train"],
        val=cases["val"],
        test=cases["test"],
        description=(
            f"BraTS whole tumour, {len(subjects)} subjects ({source.layout} layout), "
            f"{'+'.join(source.channels)} at {_spacing_text(opts.spacing)} mm"
        ),
        source=str(source.root),
        patch_size=opts.patch_size,
        meta={
            **_preprocessing_meta(source, opts),
            "seed": seed,
            "subjects": splits,
            "boxes": {n: a.box.tolist() for n, a in arrays.items()},
            "source_shapes": {n: a.source_shape.tolist() for n, a in arrays.items()},
            "cache_key": key,
            "cache_folder": None if folder is None else str(folder),
            "cache": {
                "memory": report.memory,
                "disk": report.disk,
                "built": report.built,
                "rebuilt": report.rebuilt,
            },
        },
    )


def _cache_identity(
    source: BratsSource, subjects: Sequence[BratsSubject], options: BratsOptions
) -> dict[str, object]:
    """What the preprocessed arrays depend on: every parameter and each source file's identity."""
    params = {
        "version": CACHE_VERSION,
        "layout": source.layout,
        "channels": list(source.channels),
        "spacing": list(options.spacing),
        "margin_mm": options.margin,
        "label": "whole tumour: label > 0",
        "head": "voxels where a chosen channel is non-zero",
    }
    files = [
        [
            s.subject,
            [_file_identity(f) for f in (*s.images, s.label)],
            None if s.channels is None else list(s.channels),
        ]
        for s in subjects
    ]
    return {"params": params, "files": files}


def _cache_folder(
    cache_dir: str | None, key: str, root: Path, identity: Mapping[str, object]
) -> Path | None:
    """``<cache_dir>/brats-<key>``, created with a ``key.json`` saying what it holds; None
    without a disk cache."""
    if cache_dir is None:
        return None
    folder = Path(cache_dir).expanduser() / f"brats-{key}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"cache_dir {cache_dir!r}: cannot create {folder} ({exc}); give a "
            "writable folder, or cache_dir=None for no disk cache"
        ) from None
    if not (folder / "key.json").is_file():
        from metricseg.atomic import atomic_write_json

        atomic_write_json(folder / "key.json", {"source": str(root), **identity})
    return folder


def _case(name: str, arrays: PreprocessedSubject, spacing: Sequence[float]) -> Case:
    # copies: the cached arrays are shared by every task built in this process
    return Case(
        name, arrays.image.copy(), arrays.label.astype(np.int64), tuple(spacing), subject=name
    )


def _spacing_text(spacing: Sequence[float]) -> str:
    return "x".join(f"{s:g}" for s in spacing)


def _preprocessing_meta(source: BratsSource, options: BratsOptions) -> dict[str, object]:
    """The entries of ``task.meta`` that say what the data is and how it was preprocessed."""
    return {
        "layout": source.layout,
        "channels": list(source.channels),
        "available_channels": list(source.available_channels),
        "spacing": list(options.spacing),
        "margin_mm": options.margin,
        "preprocessing": (
            f"crop to the head (non-zero voxels of {'+'.join(source.channels)}) + "
            f"{options.margin:g} mm, resample to {_spacing_text(options.spacing)} mm (linear "
            "image, nearest label), z-score each channel over the head, 0 outside; label > 0 = "
            "whole tumour"
        ),
    }


def brats_info() -> tuple[bool, str, str]:
    """``(available, how_to_get, size)`` for ``metricseg data list``; never raises for bad data."""
    try:
        root = brats_root()
        source = find_brats_subjects(root)
    except SourceUnavailableError:
        return False, f"set ${BRATS_ENV} or -o path=FOLDER ({_SHORT_HOW_TO})", "-"
    except (OSError, ValueError) as exc:
        return False, f"{exc}", "-"
    return True, "", f"{len(source.subjects)} subjects ({source.layout}), 2 mm 3D"
