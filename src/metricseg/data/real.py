"""Real segmentation tasks that can be had offline, from installed packages.

Sources, all installed packages (nothing is downloaded at run time): Debian's
``mricron-data`` (Colin27 T1 ``ch2``, its brain ``ch2bet``, the AAL atlas, the macaque
INIA19 template with NeuroMaps), PyPI ``nilearn`` (MNI152 2009a T1 with grey/white-matter
probability maps) and PyPI ``stardist`` (a DSB2018 fluorescence image with its nuclei).

Preprocessing of the volume tasks, all documented in each task's ``meta``:

1. crop every axial slice to the bounding box of the head over the whole
   volume, padded to a square around its centre;
2. z-score the intensities over the head voxels of the whole volume (MR has no
   absolute scale; one normalisation for the volume keeps slices comparable);
3. resample each slice to ``image_size`` × ``image_size`` (linear for the image
   and soft labels, nearest neighbour for label maps);
4. split the axial slices with :func:`~metricseg.data.preprocess.gapped_slab_split`:
   slabs of ``slab`` slices interleaved between the splits with ``gap`` slices
   dropped between slabs of different splits, so that no test slice neighbours
   a training slice.

The DSB image is cut into ``tile`` × ``tile`` tiles from three horizontal bands
(train on top, then validation, then test) separated by ``gap`` pixel rows.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metricseg.data.preprocess import evenly_spaced, gapped_slab_split, resize, zscore
from metricseg.data.task import Case, Task, check_task_options

__all__ = ["REAL_TASKS", "RealTaskInfo", "SourceUnavailableError", "real_task"]


class SourceUnavailableError(RuntimeError):
    """The package that provides a real task's files is not installed; the message says how to get it."""


MRICRON_INSTALL = "sudo apt-get install mricron-data"


def mricron_dir() -> Path:
    """Folder of the mricron templates (``METRICSEG_MRICRON_DIR`` overrides the Debian path)."""
    return Path(os.environ.get("METRICSEG_MRICRON_DIR", "/usr/share/mricron/templates"))


def _package_dir(package: str) -> Path | None:
    # find_spec does not import: stardist's __init__ needs tensorflow, nilearn's is slow
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _mricron_file(name: str) -> Path:
    path = mricron_dir() / name
    if not path.is_file():
        raise SourceUnavailableError(
            f"{path} not found: this task needs the Debian package mricron-data "
            f"(install it with `{MRICRON_INSTALL}`, or set METRICSEG_MRICRON_DIR to a copy of its templates)"
        )
    return path


def _package_file(package: str, install: str, *relative: str) -> Path:
    """A data file shipped inside a Python package, or a message naming the install command."""
    root = _package_dir(package)
    if root is None:
        raise SourceUnavailableError(f"this task needs the Python package {package}: {install}")
    path = root.joinpath(*relative)
    if not path.is_file():
        raise SourceUnavailableError(
            f"{path} not found; reinstall {package}: {install} --force-reinstall"
        )
    return path


def _nilearn_file(kind: str) -> Path:
    name = f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    return _package_file("nilearn", "pip install nilearn", "datasets", "data", name)


def _stardist_file(name: str) -> Path:
    # only the data files are used, so stardist's tensorflow dependencies are not needed
    return _package_file("stardist", "pip install --no-deps stardist", "data", "images", name)


@functools.lru_cache(maxsize=8)
def _volume(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read once per process; returns (array (z, y, x), spacing in array axis order)."""
    from metricseg.io import read_image

    array, geometry = read_image(path)
    array.setflags(write=False)
    return array, tuple(reversed(geometry.spacing))


def _aal_table() -> list[tuple[int, str, int]]:
    rows = []
    for line in _mricron_file("aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append((int(parts[0]), parts[1], int(parts[2])))
    return rows


#: AAL lobe groups by the thousands digit of the AAL code (Tzourio-Mazoyer et al. 2002)
AAL_LOBES: dict[int, str] = {
    2: "frontal",
    3: "insula",
    4: "limbic",
    5: "occipital",
    6: "parietal",
    7: "deep-grey",
    8: "temporal",
    9: "cerebellum",
}

#: the small-structure subset: region-name prefixes (left and right merged)
AAL_SMALL_REGIONS: tuple[str, ...] = ("Amygdala", "Pallidum", "Hippocampus")


def _slice_task(
    name: str,
    *,
    image: np.ndarray,
    label: np.ndarray,
    spacing: tuple[float, ...],
    class_names: list[str],
    positions: np.ndarray,
    head: np.ndarray,
    image_size: int,
    counts: tuple[int, int, int],
    slab: int,
    gap: int,
    soft: np.ndarray | None = None,
    description: str,
    source: str,
) -> Task:
    """2D axial-slice task from one volume; see the module docstring for the steps."""
    # the sources are stored LPS (ITK direction diag(-1, -1, 1)); flip rows so anterior is up
    image, label, head = image[:, ::-1], label[:, ::-1], head[:, ::-1]
    if soft is not None:
        soft = soft[:, :, ::-1]
    pad, window, side = _head_square(head)
    norm, label, soft = _normalise_and_pad(image, label, head, soft, pad)
    train, val, test = gapped_slab_split(positions.tolist(), counts, slab=slab, gap=gap)
    out_spacing = tuple(float(spacing[a + 1]) * side / image_size for a in range(2))
    splits = {
        split: [
            _slice_case(
                f"{name}-z{z:03d}",
                norm[z],
                label[z],
                None if soft is None else soft[:, z],
                window,
                image_size,
                out_spacing,
                subject=source,  # every slice comes from the one volume
            )
            for z in picks
        ]
        for split, picks in (("train", train), ("val", val), ("test", test))
    }
    return Task(
        name=name,
        spatial_dims=2,
        num_classes=len(class_names),
        in_channels=1,
        class_names=class_names,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        description=description,
        source=source,
        meta={
            "preprocessing": (
                f"axial slices (anterior up) cropped to the head box ({side} voxels square), z-scored over the head, "
                f"resampled to {image_size}x{image_size}; slabs of {slab} slices, gap {gap} between splits"
            ),
            "slices": {"train": train, "val": val, "test": test},
        },
    )


def _head_square(
    head: np.ndarray,
) -> tuple[list[tuple[int, int]], tuple[slice, ...], int]:
    """The square in-plane crop around the head of every slice of ``head`` (z, y, x).

    Returns ``(pad, window, side)``: the padding of the volume that keeps the square inside
    the array (``np.pad`` widths, z first), the square's ``(y, x)`` slices in the padded
    volume, and its side in voxels. The square is centred on the head's bounding box over
    all slices and as wide as its larger side.
    """
    inplane = np.argwhere(head.any(axis=0))
    lo, hi = inplane.min(axis=0), inplane.max(axis=0) + 1
    side = int((hi - lo).max())
    centre = (lo + hi) // 2
    starts = centre - side // 2
    pad = [(0, 0)] + [
        (max(0, -int(s)), max(0, int(s) + side - n)) for s, n in zip(starts, head.shape[1:])
    ]
    offset = np.array([p[0] for p in pad[1:]])
    window = tuple(slice(int(s + o), int(s + o) + side) for s, o in zip(starts, offset))
    return pad, window, side


def _normalise_and_pad(
    image: np.ndarray,
    label: np.ndarray,
    head: np.ndarray,
    soft: np.ndarray | None,
    pad: list[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Z-score ``image`` over the head and pad every volume by ``pad``.

    The image is padded with the mean of its background (outside the head), the label with
    0, and the soft label with certain background.
    """
    norm = zscore(image.astype(np.float32), head)
    background = float(norm[~head].mean()) if (~head).any() else 0.0
    norm = np.pad(norm, pad, constant_values=background)
    label = np.pad(label, pad)
    if soft is not None:
        soft = np.pad(soft, [(0, 0), *pad])
        soft[0][np.pad(np.zeros(head.shape, bool), pad, constant_values=True)] = 1.0
    return norm, label, soft


def _slice_case(
    case_id: str,
    image: np.ndarray,
    label: np.ndarray,
    soft: np.ndarray | None,
    window: tuple[slice, ...],
    image_size: int,
    spacing: tuple[float, ...],
    *,
    subject: str,
) -> Case:
    """One slice (image and label ``(y, x)``, soft label ``(K, y, x)``) cut to ``window`` and
    resampled to ``image_size`` square; with a soft label, the label is its argmax."""
    size = (image_size, image_size)
    img = resize(image[window], size, order=1)
    lab = resize(label[window], size, order=0).astype(np.int64)
    soft_slice = None
    if soft is not None:
        soft_slice = np.stack([resize(s[window].astype(np.float32), size, order=1) for s in soft])
        soft_slice /= soft_slice.sum(axis=0, keepdims=True)
        lab = soft_slice.argmax(axis=0).astype(np.int64)
    return Case(case_id, img[None].astype(np.float32), lab, spacing, soft_slice, subject=subject)


def _slices_with(mask: np.ndarray, min_fraction: float = 0.02) -> np.ndarray:
    """Axial slices where ``mask`` covers at least ``min_fraction`` of the slice: drops the
    few stray voxels at the ends of atlas masks, which would make near-empty slices."""
    return np.flatnonzero(mask.mean(axis=(1, 2)) >= min_fraction)


def _slab_options(
    name: str,
    options: dict[str, object],
    counts: tuple[int, int, int],
    *,
    slab: int = 8,
    gap: int = 3,
    size: int = 64,
) -> dict:
    """Keyword arguments of :func:`_slice_task` from the user's options and the task's defaults."""
    value = _int_options(
        name,
        options,
        {
            "image_size": size,
            "num_train": counts[0],
            "num_val": counts[1],
            "num_test": counts[2],
            "slab": slab,
            "gap": gap,
        },
    )
    return {
        "image_size": value["image_size"],
        "counts": (value["num_train"], value["num_val"], value["num_test"]),
        "slab": value["slab"],
        "gap": value["gap"],
    }


def _int_options(name: str, options: dict[str, object], defaults: dict[str, int]) -> dict[str, int]:
    """``defaults`` overridden by ``options``, as integers; an option not in ``defaults`` is an
    error (:func:`~metricseg.data.task.check_task_options`)."""
    check_task_options(name, options, defaults)
    return {k: int(options.get(k, d)) for k, d in defaults.items()}  # type: ignore[call-overload]


def _aal(name: str, seed: int, options: dict[str, object]) -> Task:
    small = name == "aal-small"
    regions = tuple(options.pop("regions", AAL_SMALL_REGIONS) if small else ())  # type: ignore[arg-type]
    opts = _slab_options(name, options, (24, 8, 16) if small else (48, 16, 32))
    atlas, spacing = _volume(_mricron_file("aal.nii.gz"))
    t1, _ = _volume(_mricron_file("ch2.nii.gz"))
    brain, _ = _volume(_mricron_file("ch2bet.nii.gz"))
    lut = np.zeros(int(atlas.max()) + 1, dtype=np.int64)
    table = _aal_table()
    if small:
        class_names = ["background", *(r.lower() for r in regions)]
        for index, region_name, _code in table:
            for k, prefix in enumerate(regions, start=1):
                if region_name.startswith(prefix):
                    lut[index] = k
        if lut.max() < len(regions):
            found = {r for r in regions if any(n.startswith(r) for _, n, _ in table)}
            raise ValueError(
                f"regions must be AAL region-name prefixes; not found: {sorted(set(regions) - found)}"
            )
        label = lut[atlas]
        z = np.flatnonzero(label.any(axis=(1, 2)))
        # small structures span few slices; slices around them (often empty) fill the splits
        positions = np.arange(max(z.min() - 24, 0), min(z.max() + 25, atlas.shape[0]))
        description = (
            f"Colin27 axial slices, AAL small structures ({', '.join(regions)}), left+right merged"
        )
    else:
        lobes = sorted(AAL_LOBES)
        class_names = ["background", *(AAL_LOBES[g] for g in lobes)]
        for index, _region_name, code in table:
            lut[index] = lobes.index(code // 1000) + 1
        label = lut[atlas]
        positions = _slices_with(label > 0, 0.01)
        description = (
            "Colin27 axial slices, AAL atlas grouped into 8 lobes (frontal ... cerebellum)"
        )
    return _slice_task(
        name,
        image=t1,
        label=label,
        spacing=spacing,
        class_names=class_names,
        positions=positions,
        head=(brain > 0) | (label > 0),
        soft=None,
        description=description,
        source="mricron-data: ch2.nii.gz, ch2bet.nii.gz, aal.nii.gz (+ aal.nii.txt)",
        **opts,
    )


def _colin_brain(name: str, seed: int, options: dict[str, object]) -> Task:
    opts = _slab_options(name, options, (48, 16, 32))
    t1, spacing = _volume(_mricron_file("ch2.nii.gz"))
    brain, _ = _volume(_mricron_file("ch2bet.nii.gz"))
    label = (brain > 0).astype(np.int64)
    head = t1 > np.quantile(t1[t1 > 0], 0.05)
    return _slice_task(
        name,
        image=t1,
        label=label,
        spacing=spacing,
        class_names=["background", "brain"],
        positions=_slices_with(label > 0),
        head=head,
        description="Colin27 T1 axial slices (with skull), brain mask from ch2bet",
        source="mricron-data: ch2.nii.gz, ch2bet.nii.gz",
        **opts,
    )


def _mni_tissue(name: str, seed: int, options: dict[str, object]) -> Task:
    opts = _slab_options(name, options, (48, 16, 32))
    t1, spacing = _volume(_nilearn_file("t1"))
    gm = _volume(_nilearn_file("gm"))[0].astype(np.float32) / 255.0
    wm = _volume(_nilearn_file("wm"))[0].astype(np.float32) / 255.0
    total = np.maximum(gm + wm, 1.0)  # the maps may overlap slightly after interpolation
    gm, wm = gm / total, wm / total
    soft = np.stack([1.0 - gm - wm, gm, wm]).astype(np.float32)
    label = soft.argmax(axis=0).astype(np.int64)
    return _slice_task(
        name,
        image=t1,
        label=label,
        spacing=spacing,
        class_names=["background", "grey-matter", "white-matter"],
        positions=_slices_with(label > 0),
        head=t1 > 0,
        soft=soft,
        description="MNI152 2009a T1 axial slices, grey/white matter (soft labels in Case.soft_label)",
        source="nilearn: mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz",
        **opts,
    )


def _inia19(name: str, seed: int, options: dict[str, object]) -> Task:
    num_regions = int(options.pop("num_regions", 4))  # type: ignore[call-overload]
    opts = _slab_options(name, options, (32, 8, 16), gap=4)  # 0.5 mm slices: a 2 mm gap
    t1, spacing = _volume(_mricron_file("inia19-t1-brain.nii.gz"))
    maps, _ = _volume(_mricron_file("inia19-NeuroMaps.nii.gz"))
    merged = np.where(maps > 0, maps.astype(np.int64) % 1000, 0)  # NeuroMaps: right = left + 1000
    sizes = np.bincount(merged.ravel())
    sizes[0] = 0
    largest = np.argsort(sizes)[::-1][:num_regions]
    lut = np.zeros(sizes.size, dtype=np.int64)
    lut[largest] = np.arange(1, num_regions + 1)
    label = lut[merged]
    return _slice_task(
        name,
        image=t1,
        label=label,
        spacing=spacing,
        class_names=["background", *(f"neuromaps-{r}" for r in largest)],
        positions=_slices_with(maps > 0, 0.005),  # brain slices, the 4 regions or not
        head=t1 > 0,
        description=f"INIA19 macaque T1 axial slices, the {num_regions} largest NeuroMaps regions (hemispheres merged)",
        source="mricron-data: inia19-t1-brain.nii.gz, inia19-NeuroMaps.nii.gz",
        **opts,
    )


def _dsb_nuclei(name: str, seed: int, options: dict[str, object]) -> Task:
    tile = int(options.get("tile", 64))  # type: ignore[call-overload]
    defaults = {"tile": 64, "image_size": tile, "gap": 16}
    value = _int_options(name, options, {**defaults, "num_train": 48, "num_val": 8, "num_test": 16})
    image_size, gap = value["image_size"], value["gap"]
    counts = (value["num_train"], value["num_val"], value["num_test"])
    image, label = _dsb_image()
    bands = _dsb_bands(image.shape, tile, gap, counts)
    splits = {}
    for (split, band), count in zip(bands.items(), counts):
        origins = _tile_origins(split, band, image.shape[1], tile, count)
        splits[split] = _tile_cases(name, image, label, origins, tile, image_size)
    return Task(
        name=name,
        spatial_dims=2,
        num_classes=2,
        in_channels=1,
        class_names=["background", "nucleus"],
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        description=f"DSB2018 fluorescence nuclei, {tile}px tiles from bands separated by {gap}px",
        source="stardist: data/images/img2d.tif, mask2d.tif",
        meta={
            "preprocessing": f"z-scored image, {tile}px tiles resized to {image_size}px, bands split by rows"
        },
    )


def _dsb_image() -> tuple[np.ndarray, np.ndarray]:
    """The DSB2018 image z-scored, and its nuclei as a binary label map (both ``(y, x)``)."""
    import tifffile

    image_path, mask_path = _stardist_file("img2d.tif"), _stardist_file("mask2d.tif")
    image = tifffile.imread(image_path).astype(np.float32)
    instances = tifffile.imread(mask_path)
    if image.shape != instances.shape:
        raise ValueError(
            f"{mask_path}: shape {instances.shape} differs from {image_path}: {image.shape}"
        )
    return zscore(image), (instances > 0).astype(np.int64)


def _dsb_bands(
    shape: tuple[int, ...], tile: int, gap: int, counts: tuple[int, int, int]
) -> dict[str, tuple[int, int]]:
    """Rows ``(top, bottom)`` of the train, val and test bands of an image of ``shape``.

    Validation and test get just enough rows of whole tiles, training the rest (on top);
    each band is separated from the next by ``gap`` rows.
    """
    height, width = shape
    columns = width // tile
    val_rows = -(-counts[1] // columns) * tile
    test_rows = -(-counts[2] // columns) * tile
    train_rows = height - val_rows - test_rows - 2 * gap
    if train_rows < tile:
        raise ValueError(
            f"num_val={counts[1]} and num_test={counts[2]} leave {train_rows} rows for training tiles "
            f"of {tile}px in a {height}px image; ask for fewer or a smaller tile"
        )
    return {
        "train": (0, train_rows),
        "val": (train_rows + gap, train_rows + gap + val_rows),
        "test": (height - test_rows, height),
    }


def _tile_origins(
    split: str, band: tuple[int, int], width: int, tile: int, count: int
) -> list[tuple[int, int]]:
    """``count`` tile corners ``(y, x)`` spread evenly over the rows ``band`` of the image."""
    top, bottom = band
    # overlapping tiles inside a band are allowed (same split); stride halves until enough
    stride = tile
    while True:
        origins = [
            (y, x)
            for y in range(top, bottom - tile + 1, stride)
            for x in range(0, width - tile + 1, stride)
        ]
        if len(origins) >= count or stride <= 8:
            break
        stride //= 2
    if len(origins) < count:
        raise ValueError(
            f"num_{split}={count} is more than the {len(origins)} tiles of {tile}px its band "
            f"(rows {top}-{bottom}) gives; ask for fewer or a smaller tile"
        )
    return evenly_spaced(origins, count)  # type: ignore[type-var]


def _tile_cases(
    name: str,
    image: np.ndarray,
    label: np.ndarray,
    origins: list[tuple[int, int]],
    tile: int,
    image_size: int,
) -> list[Case]:
    """The tiles at ``origins``, resized to ``image_size`` square."""
    size = (image_size, image_size)
    cases = []
    for y, x in origins:
        img = resize(image[y : y + tile, x : x + tile], size, order=1)
        lab = resize(label[y : y + tile, x : x + tile], size, order=0)
        cases.append(
            Case(
                f"{name}-y{y:03d}x{x:03d}",
                img[None].astype(np.float32),
                lab.astype(np.int64),
                subject="dsb2018-img2d",  # every tile comes from the one image
            )
        )
    return cases


@dataclass(frozen=True)
class RealTaskInfo:
    """What a real task needs: the package, its install command, its shape."""

    name: str
    builder: Callable[[str, int, dict[str, object]], Task]
    package: str
    install: str
    probe: Callable[[], object]
    num_classes: int
    description: str
    size: str

    def available(self) -> bool:
        try:
            self.probe()
        except SourceUnavailableError:
            return False
        return True


REAL_TASKS: dict[str, RealTaskInfo] = {
    info.name: info
    for info in (
        RealTaskInfo(
            "aal",
            _aal,
            "mricron-data",
            MRICRON_INSTALL,
            lambda: _mricron_file("aal.nii.gz"),
            9,
            "Colin27 + AAL atlas grouped into 8 lobes (2D axial slices)",
            "96 slices 64²",
        ),
        RealTaskInfo(
            "aal-small",
            _aal,
            "mricron-data",
            MRICRON_INSTALL,
            lambda: _mricron_file("aal.nii.gz"),
            4,
            "Colin27 + AAL amygdala, pallidum, hippocampus (2D axial slices)",
            "48 slices 64²",
        ),
        RealTaskInfo(
            "colin-brain",
            _colin_brain,
            "mricron-data",
            MRICRON_INSTALL,
            lambda: _mricron_file("ch2bet.nii.gz"),
            2,
            "Colin27 T1 with skull, brain mask (2D axial slices)",
            "96 slices 64²",
        ),
        RealTaskInfo(
            "mni-tissue",
            _mni_tissue,
            "nilearn",
            "pip install nilearn",
            lambda: _nilearn_file("gm"),
            3,
            "MNI152 grey/white matter, soft labels (2D axial slices)",
            "96 slices 64²",
        ),
        RealTaskInfo(
            "dsb-nuclei",
            _dsb_nuclei,
            "stardist",
            "pip install --no-deps stardist",
            lambda: _stardist_file("img2d.tif"),
            2,
            "DSB2018 nuclei (2D tiles)",
            "72 tiles 64²",
        ),
        RealTaskInfo(
            "inia19",
            _inia19,
            "mricron-data",
            MRICRON_INSTALL,
            lambda: _mricron_file("inia19-NeuroMaps.nii.gz"),
            5,
            "INIA19 macaque, 4 largest NeuroMaps regions (2D axial slices)",
            "56 slices 64²",
        ),
    )
}


def real_task(name: str, *, seed: int = 0, **options: object) -> Task:
    """Build a real offline task (``"aal"``, ``"aal-small"``, ``"colin-brain"``,
    ``"mni-tissue"``, ``"dsb-nuclei"``, ``"inia19"``).

    The split is fixed by the data (slabs, bands), so ``seed`` does not change it.

    Raises:
        SourceUnavailableError: the source package is missing; the message gives the install command.
    """
    if name not in REAL_TASKS:
        raise ValueError(f"name must be one of {sorted(REAL_TASKS)}, got {name!r}")
    return REAL_TASKS[name].builder(name, seed, dict(options))
