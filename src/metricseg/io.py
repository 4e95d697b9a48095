"""Reading and writing label and intensity images: NIfTI, NRRD, MHA, PNG, TIFF.

One reader for every format, SimpleITK (ITK's image I/O), so that geometry
(spacing, origin, direction) is read the same way everywhere. Arrays come back
in numpy axis order: ``(z, y, x)`` for 3D, ``(y, x)`` for 2D; ``Geometry``
keeps ITK's ``(x, y, z)`` order, as written in the file.

Values are checked on the data as stored, not as a reader presents it: ITK's
NIfTI reader turns NaN into 0 (the same values in NRRD come back as NaN), so a
NIfTI file stored as floating point is read with nibabel, and any NaN or
infinite value, in any format, is refused with the file named.

Writing goes to a temporary file in the same folder that is then renamed, so a
crash never leaves a half-written image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metricseg.atomic import atomic_path

__all__ = [
    "IMAGE_SUFFIXES",
    "Geometry",
    "ImageReadError",
    "check_geometry",
    "read_image",
    "strip_image_suffix",
    "write_image",
]

#: File name endings read as images, longest first so ``.nii.gz`` wins over ``.gz``.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".png",
    ".tif",
    ".tiff",
)

#: Formats that carry physical geometry worth checking.
GEOMETRY_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file."""


@dataclass(frozen=True)
class Geometry:
    """Physical placement of an image, in ITK's (x, y, z) axis order."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]


def _sitk():
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading images needs SimpleITK: pip install 'metricseg[io]'") from exc
    return sitk


def strip_image_suffix(name: str) -> str | None:
    """The case name of an image file (``"case_001.nii.gz"`` → ``"case_001"``), or None."""
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, Geometry]:
    """Read an image file and return ``(array, geometry)``.

    The array is in numpy axis order (``(z, y, x)`` for 3D), of the pixel type
    stored in the file. Floating-point data must be finite: NaN and infinite
    values are refused, checked on the stored data (a NIfTI file stored as
    floating point is read with nibabel, because ITK reads its NaN as 0).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ImageReadError: the file exists but is not a readable image, or holds
            NaN or infinite values.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.nii.gz"
        >>> _ = write_image(f, np.array([[0.0, np.nan]], dtype=np.float32))
        >>> read_image(f)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        metricseg.io.ImageReadError: ...x.nii.gz: holds 1 NaN and 0 infinite value(s)...
    """
    sitk = _sitk()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if strip_image_suffix(p.name) is None:
        raise ImageReadError(
            f"{p}: unknown image type; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    stored = _nifti_float_data(p) if p.name.lower().endswith((".nii", ".nii.gz")) else None
    if stored is not None:
        _check_finite(stored.data, p)
    arr: np.ndarray | None = None
    try:
        if stored is not None and stored.unscaled:
            # ITK would return the stored values: read only its header (geometry)
            img = sitk.ImageFileReader()
            img.SetFileName(str(p))
            img.ReadImageInformation()
            arr = _as_itk_array(stored.data, img)
        if arr is None:
            img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "ERROR" in line or "error" in line), "")
        raise ImageReadError(f"{p}: cannot read as an image ({detail or 'corrupt file'})") from None
    if arr is None:
        arr = sitk.GetArrayFromImage(img)
        if arr.dtype.kind in "fc":
            _check_finite(arr, p)
    if arr.ndim > img.GetDimension() and p.suffix.lower() in (".png", ".tif", ".tiff"):
        # RGB(A) label PNGs: all channels must agree for a label image
        if not (arr == arr[..., :1]).all():
            raise ImageReadError(f"{p}: colour image with differing channels, not a label map")
        arr = arr[..., 0]
    geom = Geometry(
        spacing=tuple(float(s) for s in img.GetSpacing()),
        origin=tuple(float(o) for o in img.GetOrigin()),
        direction=tuple(float(d) for d in img.GetDirection()),
    )
    return arr, geom


@dataclass(frozen=True)
class _StoredFloats:
    data: np.ndarray  # as stored, nibabel's axis order (x, y, z, ...)
    unscaled: bool  # no scl_slope / scl_inter: ITK returns exactly these values


def _nifti_float_data(p: Path) -> _StoredFloats | None:
    """The stored voxels of a NIfTI file whose data type is floating point.

    None for any other NIfTI file (integers cannot hold NaN), and for a file
    nibabel cannot parse: SimpleITK then reads it, or names it as unreadable.
    """
    try:
        import nibabel as nib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading NIfTI files needs nibabel: pip install 'metricseg[io]'") from exc
    try:
        img = nib.load(str(p))
        if img.get_data_dtype().kind not in "fc":
            return None
        proxy = img.dataobj
        data = np.asarray(proxy.get_unscaled())
    except Exception:  # nibabel refuses it: left to SimpleITK, which names the file
        return None
    return _StoredFloats(data, bool(proxy.slope == 1 and proxy.inter == 0))


def _as_itk_array(data: np.ndarray, info: Any) -> np.ndarray | None:
    """nibabel's ``(x, y, z, …)`` voxels as ITK's array ``(…, z, y, x)``, or None if not exact.

    Exact for a scalar image (one component per voxel) of the size ITK reads from
    the header: the same voxels with the axes reversed, in native byte order.
    """
    arr = data.T
    if info.GetNumberOfComponents() != 1 or arr.shape != tuple(reversed(info.GetSize())):
        return None
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=False))


def _check_finite(arr: np.ndarray, p: Path) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        nan = int(np.isnan(arr).sum())
        raise ImageReadError(
            f"{p}: holds {nan} NaN and {int((~finite).sum()) - nan} infinite value(s); "
            "an image must hold finite numbers (a label image: integers)"
        )


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.round(values, 6))


def check_geometry(
    a: Geometry, b: Geometry, *, atol: float = 1e-3, names: tuple[str, str] = ("a", "b")
) -> str | None:
    """Return a sentence describing how two geometries differ, or None if they agree."""
    for field in ("spacing", "origin", "direction"):
        va = np.asarray(getattr(a, field))
        vb = np.asarray(getattr(b, field))
        if va.shape != vb.shape or not np.allclose(va, vb, atol=atol, rtol=0):
            return (
                f"{field} differs: {names[0]} has {_rounded(va)}, "
                f"{names[1]} has {_rounded(vb)} (tolerance {atol})"
            )
    return None


def write_image(
    path: str | os.PathLike[str], array: np.ndarray, geometry: Geometry | None = None
) -> Path:
    """Write ``array`` to ``path`` atomically (temporary file in the same folder, then rename).

    A 4D array ``(C, z, y, x)`` is written as a 4D image (channels on the fourth file axis,
    as the Medical Segmentation Decathlon stores multi-modal volumes), so that
    :func:`read_image` gives it back channels first; ``geometry`` then has 4 entries per axis.
    """
    sitk = _sitk()
    p = Path(path)
    suffix = next((s for s in IMAGE_SUFFIXES if p.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"path must end with one of {IMAGE_SUFFIXES}, got {str(p)!r}")
    # SimpleITK would otherwise take the last axis of a 4D array as vector components
    vector = False if array.ndim == 4 else None
    img = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=vector)
    if geometry is not None:
        img.SetSpacing(geometry.spacing)
        img.SetOrigin(geometry.origin)
        img.SetDirection(geometry.direction)
    with atomic_path(p, suffix=suffix) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
    return p
