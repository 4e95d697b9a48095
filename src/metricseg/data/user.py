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
from typing import overload

import numpy as np

from metricseg.data.preprocess import ct_window, evenly_spaced, resize, zscore
from metricseg.data.task import Case, Task

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
    from metricseg.io import strip_image_suffix

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
        labels = meta.get("labels", {})
        class_names = [labels[k] for k in sorted(labels, key=int)] if labels else None
        modality = meta.get("modality", {})
        cases = []
        for entry in meta["training"]:
            image = (root / entry["image"]).resolve()
            label = (root / entry["label"]).resolve()
            for f in (image, label):
                if not f.is_file():
                    raise FileNotFoundError(f"{f}: listed in {meta_path} but missing")
            cases.append((strip_image_suffix(image.name) or image.name, [image], label))
        return DatasetFiles(
            root, "msd", cases, class_names, [modality[k] for k in sorted(modality, key=int)]
        )

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
    if nnunet:
        assert meta is not None
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
    from metricseg.io import check_geometry, read_image

    picks = None if channels is None else [int(i) for i in channels]
    label, label_geometry = read_image(label_file)
    volumes = []
    spacing = tuple(reversed(label_geometry.spacing))
    for f in image_files:
        array, geometry = read_image(f)
        if array.ndim == label.ndim + 1:  # a multi-channel (4D) file: channels first
            parts = list(array)
            geometry_spacing = tuple(reversed(geometry.spacing))[-label.ndim :]
        else:
            parts = [array]
            geometry_spacing = tuple(reversed(geometry.spacing))
        for part in parts:
            if part.shape != label.shape:
                raise ValueError(
                    f"{f}: image shape {part.shape} differs from label {label_file}: {label.shape}"
                )
        if array.ndim == label.ndim:
            problem = check_geometry(geometry, label_geometry, names=(str(f), str(label_file)))
            if problem is not None and f.name.lower().endswith(
                (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
            ):
                raise ValueError(f"{f} and {label_file} do not overlap: {problem}")
        elif not np.allclose(geometry_spacing, spacing, atol=1e-3):
            raise ValueError(
                f"{f}: spacing {geometry_spacing} differs from label {label_file}: {spacing}"
            )
        volumes.extend(parts)
    if picks is not None:
        bad = [i for i in picks if not 0 <= i < len(volumes)]
        if bad:
            raise ValueError(
                f"channels must be indices in [0, {len(volumes)}) for the {len(volumes)} "
                f"channels of case {case_id!r}, got {list(picks)}"
            )
        volumes = [volumes[i] for i in picks]
    if not np.issubdtype(label.dtype, np.integer):
        if not np.array_equal(label, np.round(label)):
            raise ValueError(
                f"{label_file}: label map has non-integer values (dtype {label.dtype})"
            )
    label = label.astype(np.int64)
    if label.min() < 0:
        raise ValueError(f"{label_file}: label map has negative value {int(label.min())}")
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
    normalised = []
    for c, how in zip(volumes, norms):
        c = c.astype(np.float32, copy=False)  # the stack below copies anyway
        if how == "ct":
            normalised.append(ct_window(c))
        elif how == "zscore":
            normalised.append(zscore(c, c != 0))
        elif how == "none":
            normalised.append(c)
        else:
            raise ValueError(f"normalization must be 'ct', 'zscore', 'none' or 'auto', got {how!r}")
    return Case(case_id, np.stack(normalised), label, tuple(float(s) for s in spacing))


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


def _modality_normalization(modality: str) -> str:
    return "ct" if modality.strip().upper() == "CT" else "zscore"


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
    if normalization == "auto":
        norm: str | list[str] = [_modality_normalization(m) for m in files.modalities] or "zscore"
    else:
        norm = normalization
    ids = [c[0] for c in files.cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{files.root}: case names are not unique")
    order = np.random.default_rng(seed).permutation(len(files.cases))
    n = len(order)
    n_test = num_test if num_test is not None else round(n * test_fraction)
    n_val = num_val if num_val is not None else round(n * val_fraction)
    n_train = num_train if num_train is not None else n - n_val - n_test
    if min(n_train, n_val, n_test) < 0 or n_train + n_val + n_test > n or n_train < 1:
        raise ValueError(
            f"{files.root} has {n} cases; cannot split into num_train={n_train}, num_val={n_val}, "
            f"num_test={n_test}"
        )
    chosen = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val : n_test + n_val + n_train],
    }

    def load(i: int) -> Case:
        case_id, images, label_file = files.cases[i]
        case = load_case(
            case_id, images, label_file, normalization=norm, target_spacing=target_spacing
        )
        if num_classes is not None and case.label.max() >= num_classes:
            raise ValueError(
                f"{label_file}: label {int(case.label.max())} >= num_classes={num_classes}"
            )
        return case

    probe = load(int(chosen["train"][0]))
    data_dims = probe.label.ndim
    dims = spatial_dims or data_dims
    if dims != data_dims and not (dims == 2 and data_dims == 3):
        raise ValueError(
            f"spatial_dims must be 2 or the data's own {data_dims}, got {spatial_dims}"
        )
    known_classes = num_classes or (len(files.class_names) if files.class_names else None)
    if lazy is None:
        lazy = dims == 3 and known_classes is not None
    splits: dict[str, Sequence[Case]] = {}
    largest_label = 0
    if lazy:
        if dims != data_dims or known_classes is None:
            raise ValueError(
                "lazy=True needs whole cases (spatial_dims equal to the data's) and a known class "
                "count (labels in dataset.json, or num_classes=)"
            )
        for i in sorted(int(i) for indices in chosen.values() for i in indices):
            _check_headers(*files.cases[i][1:])  # fail now, not in the middle of training
        for split, indices in chosen.items():
            splits[split] = LazyCases(
                [files.cases[i][0] for i in sorted(indices)],
                [functools.partial(load, int(i)) for i in sorted(indices)],
            )
    else:
        for split, indices in chosen.items():
            out: list[Case] = []
            for i in sorted(indices):
                case = load(int(i))
                largest_label = max(largest_label, int(case.label.max()))
                if dims == data_dims:
                    out.append(case)
                else:
                    out.extend(_slices(case, axis, slices, max_slices_per_case, image_size))
            splits[split] = out
    k = known_classes or largest_label + 1
    names = (
        files.class_names
        if files.class_names and len(files.class_names) == k
        else (["background", *(f"class-{i}" for i in range(1, k))])
    )
    first = probe
    return Task(
        name=name or f"folder:{files.root}",
        spatial_dims=dims,
        num_classes=k,
        in_channels=first.image.shape[0],
        class_names=list(names),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        description=f"user dataset ({files.layout} layout), {n} cases",
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


def _default_patch(
    patch_size: Sequence[int] | None, dims: int, probe: Case
) -> tuple[int, ...] | None:
    """The given patch size, or 64³ when 3D cases (judged by the first) exceed 64 voxels."""
    if patch_size is not None:
        return tuple(int(p) for p in patch_size)
    return (64, 64, 64) if dims == 3 and max(probe.label.shape) > 64 else None


def _slices(
    case: Case, axis: int, which: str, max_slices: int | None, image_size: int | None
) -> list[Case]:
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
