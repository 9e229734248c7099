"""Real CT (TotalSegmentator DICOM series) and its NIfTI labels: geometry through world space."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import scanio


@pytest.fixture(scope="module")
def ct(totalseg_dir):
    return scanio.read_scan(totalseg_dir / "example_ct_dicom")


@pytest.fixture(scope="module")
def labels_nifti(totalseg_dir):
    return scanio.read_scan(totalseg_dir / "example_seg_dicom.nii.gz")


@pytest.fixture(scope="module")
def labels_on_ct(ct, labels_nifti):
    return scanio.resample_like(labels_nifti, like=ct)


def test_series_reads_as_simpleitk_does(ct, totalseg_dir):
    folder = str(totalseg_dir / "example_ct_dicom")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
    image = reader.Execute()
    assert np.array_equal(ct.array, sitk.GetArrayFromImage(image))
    assert ct.spacing_mm == pytest.approx(tuple(reversed(image.GetSpacing())), abs=1e-9)
    assert ct.origin_mm == pytest.approx(image.GetOrigin(), abs=1e-9)
    assert ct.modality == "CT" and ct.shape == (20, 512, 512)
    assert ct.array.min() == -1024  # HU: rescale intercept applied


def test_labels_row_axis_runs_opposite_to_the_series(ct, labels_nifti):
    assert labels_nifti.shape == ct.shape
    assert ct.direction[1, 1] == pytest.approx(1.0)
    assert labels_nifti.direction[1, 1] == pytest.approx(-1.0)


def test_resampled_labels_sit_on_soft_tissue(ct, labels_on_ct):
    assert labels_on_ct.same_geometry(ct)
    for label in (5, 1):  # liver, spleen
        mean_hu = ct.array[labels_on_ct.array == label].mean()
        assert 40 <= mean_hu <= 150, (label, mean_hu)


def test_labels_index_for_index_miss_the_liver(ct, labels_nifti):
    """Without resampling the liver label lands largely on air/fat: the test above can fail."""
    mean_hu = ct.array[labels_nifti.array == 5].mean()
    assert not 40 <= mean_hu <= 150
    assert mean_hu < 0


def test_same_voxel_has_same_world_position(ct, labels_nifti):
    z, y, x = 7, 100, 300
    flipped = [z, ct.shape[1] - 1 - y, x]
    np.testing.assert_allclose(ct.voxel_to_world([z, y, x]),
                               labels_nifti.voxel_to_world(flipped), atol=1e-3)


def test_dicom_seg_round_trip_on_real_series(ct, labels_on_ct, tmp_path):
    organs = np.isin(labels_on_ct.array, [1, 5, 52])  # spleen, liver, aorta: keeps it fast
    labels = np.where(organs, labels_on_ct.array, 0).astype(np.uint8)
    path = scanio.write_labels(tmp_path / "labels.dcm", labels, like=ct)
    back = scanio.read_scan(path)
    assert np.array_equal(back.array, labels)
    assert back.same_geometry(ct, atol_mm=1e-6)
    assert back.modality == "SEG"


def test_list_series_of_real_folder(totalseg_dir):
    (info,) = scanio.list_series(totalseg_dir / "example_ct_dicom")
    assert info.description == "CT Body 3.0" and info.modality == "CT"
    assert info.size_xyz == (512, 512, 20) and info.num_files == 20


def test_bundled_sample_matches_shared_data(totalseg_dir):
    from sample_data import sample_ct_path, sample_labels_path

    shared = totalseg_dir / "example_ct_dicom"
    assert sorted(p.name for p in sample_ct_path().iterdir()) == sorted(p.name for p in shared.iterdir())
    assert sample_labels_path().read_bytes() == (totalseg_dir / "example_seg_dicom.nii.gz").read_bytes()
    assert (sample_ct_path().parent / "README.md").read_text().count("Apache-2.0") >= 1
