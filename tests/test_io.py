"""`metricseg.io.read_image`: NaN and infinite values refused whatever the reader does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("SimpleITK")
pytest.importorskip("nibabel")

import nibabel as nib
import SimpleITK as sitk

from metricseg.cli import main
from metricseg.io import ImageReadError, read_image, write_image

LABEL = np.zeros((3, 4, 5), dtype=np.float32)
LABEL[1, 1:3, 1:4] = 1.0


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_refused_in_every_format(tmp_path: Path, suffix: str, bad: float):
    data = LABEL.copy()
    data[0, 0, :2] = bad  # two voxels
    f = tmp_path / f"label{suffix}"
    write_image(f, data)
    nan, inf = (2, 0) if np.isnan(bad) else (0, 2)
    with pytest.raises(ImageReadError, match=f"holds {nan} NaN and {inf} infinite value"):
        read_image(f)
    with pytest.raises(ImageReadError, match=str(f).replace(".", r"\.")):
        read_image(f)


def test_itk_alone_reads_nifti_nan_as_zero(tmp_path: Path):
    """Why the stored data is checked: ITK's NIfTI reader turns NaN into 0 (NRRD keeps it)."""
    data = LABEL.copy()
    data[0, 0, 0] = np.nan
    write_image(tmp_path / "a.nii.gz", data)
    write_image(tmp_path / "a.nrrd", data)
    via_itk = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nii.gz")))
    assert via_itk[0, 0, 0] == 0.0  # if ITK ever keeps NaN, the nibabel read is no longer needed
    assert np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nrrd")))[0, 0, 0])


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_evaluate_refuses_a_nan_label_file(tmp_path: Path, suffix: str, capsys):
    """Issue 11 item 10: the NaN NIfTI was scored (Dice 0.667, exit 0); now it fails its case."""
    gt = LABEL.copy()
    pred = LABEL.copy()
    pred[1, 1, 1] = np.nan  # a foreground voxel: ITK's 0 would make it a false negative
    write_image(tmp_path / f"gt{suffix}", gt)
    write_image(tmp_path / f"pred{suffix}", pred)
    rc = main(["evaluate", str(tmp_path / f"pred{suffix}"), str(tmp_path / f"gt{suffix}")])
    captured = capsys.readouterr()
    assert rc == 1
    assert f"pred{suffix}: holds 1 NaN and 0 infinite value(s)" in captured.err
    assert "Traceback" not in captured.err and "dice" not in captured.out


def _nifti_cases(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {}
    for name, shape, dtype in [
        ("2d", (5, 7), np.float32),
        ("3d", (3, 5, 7), np.float64),
        ("4d", (2, 3, 5, 7), np.float32),
    ]:
        files[name] = write_image(tmp_path / f"{name}.nii.gz", rng.random(shape).astype(dtype))
    stored = rng.random((4, 5, 6)).astype(">f4")  # big-endian, as some scanners write
    nib.save(nib.Nifti1Image(stored, np.eye(4)), tmp_path / "big_endian.nii")
    files["big_endian"] = tmp_path / "big_endian.nii"
    scaled = nib.Nifti1Image(stored.astype(np.float32), np.eye(4))
    scaled.header.set_slope_inter(2.0, 1.0)  # ITK applies the scaling: it reads the data
    nib.save(scaled, tmp_path / "scaled.nii")
    files["scaled"] = tmp_path / "scaled.nii"
    vector = nib.Nifti1Image(rng.random((4, 5, 6, 1, 3)).astype(np.float32), np.eye(4))
    vector.header.set_intent("vector")
    nib.save(vector, tmp_path / "vector.nii")
    files["vector"] = tmp_path / "vector.nii"
    files["int"] = write_image(tmp_path / "int.nii.gz", (LABEL * 3).astype(np.int16))
    return files


def test_float_nifti_reads_exactly_what_itk_reads(tmp_path: Path):
    """Float NIfTI data come from nibabel (checked there); values, shape, dtype, geometry as ITK's."""
    for name, f in _nifti_cases(tmp_path).items():
        img = sitk.ReadImage(str(f))
        expected = sitk.GetArrayFromImage(img)
        array, geometry = read_image(f)
        assert array.shape == expected.shape, name
        assert array.dtype == expected.dtype, name
        assert np.array_equal(array, expected), name
        assert array.flags.c_contiguous, name
        assert geometry.spacing == img.GetSpacing(), name
        assert geometry.origin == img.GetOrigin(), name
        assert geometry.direction == img.GetDirection(), name


def test_a_corrupt_nifti_is_named(tmp_path: Path):
    f = tmp_path / "broken.nii.gz"
    f.write_bytes(b"not a nifti file")
    with pytest.raises(ImageReadError, match=r"broken\.nii\.gz: cannot read as an image"):
        read_image(f)
