"""Reading and writing label and intensity images: NIfTI, NRRD, MHA, PNG, TIFF.

One reader for every format, SimpleITK (ITK's image I/O), so that geometry
(spacing, origin, direction) is read the same way everywhere. Arrays come back
in numpy axis order: ``(z, y, x)`` for 3D, ``(y, x)`` for 2D; ``Geometry``
keeps ITK's ``(x, y, z)`` order, as written in the file.

Writing goes to a temporary file in the same folder that is then renamed, so a
crash never leaves a half-written image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ImageReadError: the file exists but is not a readable image.
    """
    sitk = _sitk()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if strip_image_suffix(p.name) is None:
        raise ImageReadError(
            f"{p}: unknown image type; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "ERROR" in line or "error" in line), "")
        raise ImageReadError(f"{p}: cannot read as an image ({detail or 'corrupt file'})") from None
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1 and p.suffix.lower() in (".png", ".tif", ".tiff"):
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
    """Write ``array`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    sitk = _sitk()
    p = Path(path)
    suffix = next((s for s in IMAGE_SUFFIXES if p.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"path must end with one of {IMAGE_SUFFIXES}, got {str(p)!r}")
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    if geometry is not None:
        img.SetSpacing(geometry.spacing)
        img.SetOrigin(geometry.origin)
        img.SetDirection(geometry.direction)
    with atomic_path(p, suffix=suffix) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
    return p
