"""read_scan on NIfTI / NRRD / MetaImage: exactly SimpleITK's array and geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import scanio


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_read_gives_simpleitk_array_and_geometry(tmp_path, oblique_scan, suffix):
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(oblique_scan.to_sitk(), str(path))
    reference = sitk.ReadImage(str(path))
    scan = scanio.read_scan(path)
    assert np.array_equal(scan.array, sitk.GetArrayFromImage(reference))
    assert scan.array.dtype == np.int16
    assert scan.spacing_mm == tuple(reversed(reference.GetSpacing()))
    assert scan.origin_mm == reference.GetOrigin()
    assert np.array_equal(scan.direction.ravel(), reference.GetDirection())
    assert scan.metadata["source"] == str(path)


def test_read_mha_takes_modality_from_header(tmp_path, oblique_scan):
    path = tmp_path / "scan.mha"
    sitk.WriteImage(oblique_scan.to_sitk(), str(path))
    text = path.read_bytes().replace(b"ElementType", b"Modality = MET_MOD_CT\nElementType", 1)
    path.write_bytes(text)
    assert scanio.read_scan(path).modality == "CT"


def test_read_nifti_without_modality_is_ot(tmp_path, oblique_scan):
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(oblique_scan.to_sitk(), str(path))
    assert scanio.read_scan(path).modality == "OT"
