"""User datasets: Medical Segmentation Decathlon, nnU-Net raw, or ``images/`` + ``labels/`` folders.

Layouts recognised in ``path``:

* **MSD**: ``dataset.json`` with ``"training": [{"image": ..., "label": ...}]``,
  ``"labels"`` (``{"0": "background", ...}``) and ``"modality"`` (``{"0": "CT"}``);
  multi-modal images are 4D files.
* **nnU-Net raw** (v2): ``dataset.json`` with ``"channel_names"``, ``"labels"``
  (``{"background": 0, ...}``) and ``"file_ending"``; ``imagesTr/CASE_0000.nii.gz``
  (one file per channel) and ``labelsTr/CASE.nii.gz``.
* **folders**: ``images/`` (or ``imagesTr/``) and ``labels/`` (or ``labelsTr/``)
  with matching file names, in any format :mod:`metricseg.io` reads (NIfTI, NRRD,
  MHA, PNG, TIFF).

Preprocessing: optional resampling to ``target_spacing`` (mm, array axis order),
per-modality intensity normalisation (``"ct"``: clip to a window and map to
[-1, 1]; ``"zscore"``: per case over non-zero voxels, for MR; ``"auto"`` picks from
the modality), then either whole cases (3D, with ``patch_size`` for training) or
2D slices along ``axis``. Cases (subjects) are split into train / val / test by a
seeded shuffle, so no subject is in two splits.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from metricseg.data.preprocess import ct_window, evenly_spaced, resize, seeded_split, zscore
from metricseg.data.task import Case, Task

if TYPE_CHECKING:
    from metricseg.io import Geometry

__all__ = ["DatasetFiles", "LazyCases", "find_dataset_files", "load_case", "user_task"]


class LazyCases(Sequence[Case]):
    """Cases read when indexed; the ``cache_size`` most recently used stay in memory.

    >>> cases = LazyCases(["a"], [lambda: Case("a", np.zeros((1, 2, 2), np.float32), np.zeros((2, 2), np.int64))])
    >>> len(cases), cases[0].case_id, [c.case_id for c in cases]
    (1, 'a', ['a'])
    """

    def __init__(
        self, case_ids: Sequence[str], loaders: Sequence[Callable[[], Case]], cache_size: int = 4
    ) -> None:
        if len(case_ids) != len(loaders):
            raise ValueError(f"case_ids has {len(case_ids)} entries but loaders has {len(loaders)}")
        self.case_ids = list(case_ids)
        self._loaders = list(loaders)
        self._cache: OrderedDict[int, Case] = OrderedDict()
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self._loaders)

    @overload
    def __getitem__(self, index: int) -> Case: ...
    @overload
    def __getitem__(self, index: slice) -> list[Case]: ...
    def __getitem__(self, index: int | slice) -> Case | list[Case]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # IndexError past the end, negative indices allowed
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        case = self._loaders[i]()
        self._cache[i] = case
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return case


class DatasetFiles:
    """The files of a user dataset: per case, its channel images and its label."""

    def __init__(
        self,
        root: Path,
        layout: str,
        cases: list[tuple[str, list[Path], Path]],
        class_names: list[str] | None,
        modalities: list[str],
    ) -> None:
        self.root = root
        self.layout = layout
        self.cases = cases
        self.class_names = class_names
        self.modalities = modalities


def _folder(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def find_dataset_files(path: str | Path) -> DatasetFiles:
    """Recognise the layout of ``path`` and list its cases.

    Raises:
        FileNotFoundError: ``path`` or a file named in ``dataset.json`` is missing.
        ValueError: no layout recognised, or an image without a label (the message names it).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"path {str(root)!r} is not a folder")
    meta_path = root / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if (
        meta is not None
        and "training" in meta
        and meta["training"]
        and isinstance(meta["training"][0], dict)
        and "image" in meta["training"][0]
    ):
        return _msd_files(root, meta)
    return _folder_files(root, meta)


def _msd_files(root: Path, meta: dict) -> DatasetFiles:
    """The cases listed in an MSD ``dataset.json`` (``meta``)."""
    from metricseg.io import strip_image_suffix

    labels = meta.get("labels", {})
    class_names = [labels[k] for k in sorted(labels, key=int)] if labels else None
    modality = meta.get("modality", {})
    cases = []
    for entry in meta["training"]:
        image = (root / entry["image"]).resolve()
        label = (root / entry["label"]).resolve()
        for f in (image, label):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: listed in {root / 'dataset.json'} but missing")
        cases.append((strip_image_suffix(image.name) or image.name, [image], label))
    return DatasetFiles(
        root, "msd", cases, class_names, [modality[k] for k in sorted(modality, key=int)]
    )


def _folder_files(root: Path, meta: dict | None) -> DatasetFiles:
    """The cases of ``images/`` + ``labels/`` folders (or ``imagesTr/`` + ``labelsTr/``),
    nnU-Net raw when ``meta`` (its ``dataset.json``) has ``channel_names``."""
    from metricseg.io import strip_image_suffix

    images = _folder(root, "imagesTr", "images")
    labels_dir = _folder(root, "labelsTr", "labels")
    if images is None or labels_dir is None:
        raise ValueError(
            f"path {str(root)!r} has no dataset.json with a 'training' list and no images/ + labels/ "
            "(or imagesTr/ + labelsTr/) folders"
        )
    nnunet = meta is not None and "channel_names" in meta
    class_names = None
    modalities: list[str] = []
    if meta is not None and nnunet:
        labels = meta.get("labels", {})
        class_names = [n for n, _ in sorted(labels.items(), key=lambda kv: int(kv[1]))] or None
        modalities = [meta["channel_names"][k] for k in sorted(meta["channel_names"], key=int)]
    label_files = {
        strip_image_suffix(f.name): f
        for f in sorted(labels_dir.iterdir())
        if strip_image_suffix(f.name)
    }
    grouped: dict[str, list[Path]] = {}
    for f in sorted(images.iterdir()):
        stem = strip_image_suffix(f.name)
        if stem is None:
            continue
        case = (
            stem[:-5]
            if nnunet and len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit()
            else stem
        )
        grouped.setdefault(case, []).append(f)
    if not grouped:
        raise ValueError(f"{images}: no image files found")
    cases = []
    for case, files in grouped.items():
        if case not in label_files:
            raise ValueError(f"{files[0]}: no label file for case {case!r} in {labels_dir}")
        cases.append((case, files, label_files[case]))
    return DatasetFiles(root, "nnunet" if nnunet else "folders", cases, class_names, modalities)


def load_case(
    case_id: str,
    image_files: Sequence[Path],
    label_file: Path,
    *,
    normalization: str | Sequence[str] = "zscore",
    target_spacing: Sequence[float] | None = None,
    channels: Sequence[int] | None = None,
) -> Case:
    """Read one case, check that image and label agree, resample and normalise.

    Args:
        channels: indices of the channels to keep, in this order, counted over the channels
            of ``image_files`` in turn (a 4D file gives one channel per volume); None keeps
            all. Applied before normalisation and resampling, so the others cost no work.

    Raises:
        ImageReadError: a corrupt file (named).
        ValueError: image and label shapes or geometries differ (both files named).
    """
    from metricseg.io import read_image

    picks = None if channels is None else [int(i) for i in channels]
    label, label_geometry = read_image(label_file)
    spacing = tuple(reversed(label_geometry.spacing))
    volumes = [
        part for f in image_files for part in _read_channels(f, label, label_geometry, label_file)
    ]
    if picks is not None:
        volumes = _pick_channels(volumes, picks, case_id)
    label = _label_map(label, label_file)
    norms = (
        [normalization] * len(volumes) if isinstance(normalization, str) else list(normalization)
    )
    if len(norms) != len(volumes):
        raise ValueError(
            f"normalization has {len(norms)} entries for {len(volumes)} channels of case {case_id!r}"
        )
    if target_spacing is not None:
        target = tuple(float(s) for s in target_spacing)
        if len(target) != label.ndim:
            raise ValueError(f"target_spacing must have {label.ndim} entries, got {target}")
        shape = tuple(max(1, round(n * s / t)) for n, s, t in zip(label.shape, spacing, target))
        volumes = [resize(c.astype(np.float32), shape, order=1) for c in volumes]
        label = resize(label, shape, order=0)
        spacing = target
    image = np.stack([_normalise(c, how) for c, how in zip(volumes, norms)])
    return Case(case_id, image, label, tuple(float(s) for s in spacing))


def _read_channels(
    image_file: Path, label: np.ndarray, label_geometry: Geometry, label_file: Path
) -> list[np.ndarray]:
    """The channels of one image file (a 4D file gives one per volume), checked against the
    label: same shape, and same geometry (3D medical formats) or spacing (4D files)."""
    from metricseg.io import check_geometry, read_image

    array, geometry = read_image(image_file)
    if array.ndim == label.ndim + 1:  # a multi-channel (4D) file: channels first
        parts = list(array)
        geometry_spacing = tuple(reversed(geometry.spacing))[-label.ndim :]
    else:
        parts = [array]
        geometry_spacing = tuple(reversed(geometry.spacing))
    for part in parts:
        if part.shape != label.shape:
            raise ValueError(
                f"{image_file}: image shape {part.shape} differs from label {label_file}: "
                f"{label.shape}"
            )
    names = (str(image_file), str(label_file))
    if array.ndim == label.ndim:
        problem = check_geometry(geometry, label_geometry, names=names)
        if problem is not None and image_file.name.lower().endswith(
            (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
        ):
            raise ValueError(f"{image_file} and {label_file} do not overlap: {problem}")
    else:
        spacing = tuple(reversed(label_geometry.spacing))
        if not np.allclose(geometry_spacing, spacing, atol=1e-3):
            raise ValueError(
                f"{image_file}: spacing {geometry_spacing} differs from label {label_file}: "
                f"{spacing}"
            )
    return parts


def _pick_channels(volumes: list[np.ndarray], picks: list[int], case_id: str) -> list[np.ndarray]:
    bad = [i for i in picks if not 0 <= i < len(volumes)]
    if bad:
        raise ValueError(
            f"channels must be indices in [0, {len(volumes)}) for the {len(volumes)} "
            f"channels of case {case_id!r}, got {list(picks)}"
        )
    return [volumes[i] for i in picks]


def _label_map(label: np.ndarray, label_file: Path) -> np.ndarray:
    """``label`` as int64, checked to hold non-negative integers only."""
    if not np.issubdtype(label.dtype, np.integer):
        if not np.array_equal(label, np.round(label)):
            raise ValueError(
                f"{label_file}: label map has non-integer values (dtype {label.dtype})"
            )
    label = label.astype(np.int64)
    if label.min() < 0:
        raise ValueError(f"{label_file}: label map has negative value {int(label.min())}")
    return label


def _normalise(channel: np.ndarray, how: str) -> np.ndarray:
    """One channel normalised by name: ``"ct"``, ``"zscore"`` (over non-zero voxels), ``"none"``."""
    channel = channel.astype(np.float32, copy=False)  # the stack in load_case copies anyway
    if how == "ct":
        return ct_window(channel)
    if how == "zscore":
        return zscore(channel, channel != 0)
    if how == "none":
        return channel
    raise ValueError(f"normalization must be 'ct', 'zscore', 'none' or 'auto', got {how!r}")


def _check_headers(image_files: Sequence[Path], label_file: Path) -> None:
    """Read only the headers: every file is an image and its size matches the label's."""
    import SimpleITK as sitk

    from metricseg.io import ImageReadError

    def size(path: Path) -> tuple[int, ...]:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            raise ImageReadError(f"{path}: cannot read as an image (corrupt file)") from None
        return tuple(reversed(reader.GetSize()))

    label_size = size(label_file)
    for f in image_files:
        image_size = size(f)
        if image_size[-len(label_size) :] != label_size:
            raise ValueError(
                f"{f}: image shape {image_size} differs from label {label_file}: {label_size}"
            )


def _normalization(normalization: str, modalities: Sequence[str]) -> str | list[str]:
    """``normalization``, or for ``"auto"`` one per channel: ``"ct"`` for CT, else ``"zscore"``
    (also when the dataset names no modality)."""
    if normalization != "auto":
        return normalization
    return ["ct" if m.strip().upper() == "CT" else "zscore" for m in modalities] or "zscore"


def _spatial_dims(spatial_dims: int | None, data_dims: int) -> int:
    """The task's dimensions: the data's own, or 2 (slices) for 3D data."""
    dims = spatial_dims or data_dims
    if dims != data_dims and not (dims == 2 and data_dims == 3):
        raise ValueError(
            f"spatial_dims must be 2 or the data's own {data_dims}, got {spatial_dims}"
        )
    return dims


def _use_lazy(lazy: bool | None, whole: bool, dims: int, known_classes: int | None) -> bool:
    """Whether to read cases when indexed: by default for whole 3D cases of a known class count."""
    if lazy is None:
        return dims == 3 and known_classes is not None
    if lazy and (not whole or known_classes is None):
        raise ValueError(
            "lazy=True needs whole cases (spatial_dims equal to the data's) and a known class "
            "count (labels in dataset.json, or num_classes=)"
        )
    return lazy


def user_task(
    *,
    path: str | Path,
    seed: int = 0,
    spatial_dims: int | None = None,
    axis: int = 0,
    slices: str = "foreground",
    max_slices_per_case: int | None = None,
    image_size: int | None = None,
    normalization: str = "auto",
    target_spacing: Sequence[float] | None = None,
    patch_size: Sequence[int] | None = None,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    num_classes: int | None = None,
    name: str | None = None,
    lazy: bool | None = None,
) -> Task:
    """A :class:`Task` from a user dataset (see the module docstring for layouts and steps).

    Args:
        spatial_dims: 3 for whole cases, 2 for slices; default: the data's own.
        axis: slicing axis of 3D cases in array order (0 = z, axial for NIfTI).
        slices: ``"foreground"`` (slices with a labelled voxel) or ``"all"``.
        max_slices_per_case: keep this many slices per case, evenly spaced.
        image_size: resize 2D slices to this square size.
        num_train, num_val, num_test: subjects per split (default: fractions).
        lazy: read 3D cases from disk when indexed (:class:`LazyCases`) instead of all at
            once; default: lazy for 3D when the class count is known (dataset.json or
            ``num_classes``), so that large CT datasets do not have to fit in memory.
    """
    files = find_dataset_files(path)
    norm = _normalization(normalization, files.modalities)
    ids = [c[0] for c in files.cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{files.root}: case names are not unique")
    chosen = seeded_split(
        len(files.cases),
        seed,
        num_train=num_train,
        num_val=num_val,
        num_test=num_test,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        what=str(files.root),
        unit="cases",
    )
    load = functools.partial(_load_checked, files, norm, target_spacing, num_classes)
    probe = load(chosen["train"][0])
    dims = _spatial_dims(spatial_dims, probe.label.ndim)
    whole = dims == probe.label.ndim
    known_classes = num_classes or (len(files.class_names) if files.class_names else None)
    lazy = _use_lazy(lazy, whole, dims, known_classes)
    if lazy:
        splits, largest_label = _lazy_splits(files, chosen, load), 0
    else:
        slicer = functools.partial(_slices, axis, slices, max_slices_per_case, image_size)
        splits, largest_label = _eager_splits(chosen, load, _whole if whole else slicer)
    k = known_classes or largest_label + 1
    return Task(
        name=name or f"folder:{files.root}",
        spatial_dims=dims,
        num_classes=k,
        in_channels=probe.image.shape[0],
        class_names=_class_names(files.class_names, k),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        description=f"user dataset ({files.layout} layout), {len(files.cases)} cases",
        source=str(files.root),
        patch_size=_default_patch(patch_size, dims, probe),
        meta={
            "layout": files.layout,
            "normalization": norm,
            "target_spacing": target_spacing,
            "seed": seed,
            "lazy": lazy,
        },
    )


def _load_checked(
    files: DatasetFiles,
    normalization: str | Sequence[str],
    target_spacing: Sequence[float] | None,
    num_classes: int | None,
    index: int,
) -> Case:
    """Case ``index`` of ``files`` (:func:`load_case`), its labels checked against ``num_classes``."""
    case_id, images, label_file = files.cases[index]
    case = load_case(
        case_id, images, label_file, normalization=normalization, target_spacing=target_spacing
    )
    if num_classes is not None and case.label.max() >= num_classes:
        raise ValueError(
            f"{label_file}: label {int(case.label.max())} >= num_classes={num_classes}"
        )
    return case


def _lazy_splits(
    files: DatasetFiles, chosen: dict[str, list[int]], load: Callable[[int], Case]
) -> dict[str, Sequence[Case]]:
    """Splits of :class:`LazyCases`; every file's header is read now, so that a bad file fails
    here and not in the middle of training."""
    for i in sorted(i for indices in chosen.values() for i in indices):
        _check_headers(*files.cases[i][1:])
    return {
        split: LazyCases(
            [files.cases[i][0] for i in sorted(indices)],
            [functools.partial(load, i) for i in sorted(indices)],
        )
        for split, indices in chosen.items()
    }


def _eager_splits(
    chosen: dict[str, list[int]],
    load: Callable[[int], Case],
    to_cases: Callable[[Case], list[Case]],
) -> tuple[dict[str, Sequence[Case]], int]:
    """Every case read now and turned into cases by ``to_cases`` (itself, or its 2D slices);
    also the largest label seen."""
    splits: dict[str, Sequence[Case]] = {}
    largest_label = 0
    for split, indices in chosen.items():
        out: list[Case] = []
        for i in sorted(indices):
            case = load(i)
            largest_label = max(largest_label, int(case.label.max()))
            out.extend(to_cases(case))
        splits[split] = out
    return splits, largest_label


def _whole(case: Case) -> list[Case]:
    return [case]


def _class_names(names: list[str] | None, num_classes: int) -> list[str]:
    """The dataset's class names when it has one per class, else generic ones."""
    if names and len(names) == num_classes:
        return list(names)
    return ["background", *(f"class-{i}" for i in range(1, num_classes))]


def _default_patch(
    patch_size: Sequence[int] | None, dims: int, probe: Case
) -> tuple[int, ...] | None:
    """The given patch size, or 64³ when 3D cases (judged by the first) exceed 64 voxels."""
    if patch_size is not None:
        return tuple(int(p) for p in patch_size)
    return (64, 64, 64) if dims == 3 and max(probe.label.shape) > 64 else None


def _slices(
    axis: int, which: str, max_slices: int | None, image_size: int | None, case: Case
) -> list[Case]:
    """The 2D slices of ``case`` along ``axis`` (``which``: ``"foreground"`` or ``"all"``), at
    most ``max_slices`` evenly spaced, resized to ``image_size`` square when given."""
    if which not in ("foreground", "all"):
        raise ValueError(f"slices must be 'foreground' or 'all', got {which!r}")
    label = np.moveaxis(case.label, axis, 0)
    image = np.moveaxis(case.image, axis + 1, 1)
    positions = list(range(label.shape[0]))
    if which == "foreground":
        positions = [z for z in positions if label[z].any()]
    if max_slices is not None:
        positions = evenly_spaced(positions, max_slices)
    spacing = None
    if case.spacing is not None:
        spacing = tuple(s for a, s in enumerate(case.spacing) if a != axis)
        if image_size is not None:
            spacing = tuple(s * n / image_size for s, n in zip(spacing, label.shape[1:]))
    out = []
    for z in positions:
        img, lab = image[:, z], label[z]
        if image_size is not None:
            img = np.stack([resize(c, (image_size, image_size), order=1) for c in img])
            lab = resize(lab, (image_size, image_size), order=0)
        out.append(
            Case(
                f"{case.case_id}-s{z:03d}",
                np.ascontiguousarray(img),
                np.ascontiguousarray(lab),
                spacing,
                subject=case.subject_id,
            )
        )
    return out
