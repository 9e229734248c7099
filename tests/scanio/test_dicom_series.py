"""DICOM series reading: sorting, rescale, multi-frame, irregular geometry, several series."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk

import scanio
import scanio.dicom


def _volume(n=5, rows=6, cols=7):
    """Stored values with a distinct value per slice (slice k's pixels start at 1000 + 100 k)."""
    base = np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols)
    return np.stack([base + 1000 + 100 * k for k in range(n)])


def test_slices_sorted_by_position_not_file_name_or_instance_number(tmp_path, dicom_factory):
    vol = _volume()
    n = len(vol)
    dicom_factory.write_series(tmp_path, vol, names=[f"z{n - k}.dcm" for k in range(n)],
                               instance_numbers=[3, 1, 5, 2, 4])
    scan = scanio.read_scan(tmp_path)
    assert np.array_equal(scan.array, vol.astype(np.int32) - 1024)
    assert scan.array.dtype == np.int16
    assert scan.origin_mm == (-10.0, 20.0, 30.0)
    assert scan.spacing_mm == pytest.approx((2.0, 0.8, 0.6))


def test_series_matches_simpleitk_series_reader(tmp_path, dicom_factory):
    iop = (0.8, 0.6, 0.0, 0.0, 0.0, -1.0)  # oblique rows, columns running feet-ward
    dicom_factory.write_series(tmp_path, _volume(), orientation=iop, spacing_z=-3.0)
    scan = scanio.read_scan(tmp_path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    assert np.array_equal(scan.array, sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(scan.spacing_mm, tuple(reversed(image.GetSpacing())), atol=1e-6)
    np.testing.assert_allclose(scan.origin_mm, image.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(scan.direction.ravel(), image.GetDirection(), atol=1e-6)


def test_per_slice_rescale_is_applied_to_each_slice(tmp_path, dicom_factory):
    vol = _volume(n=3)
    dicom_factory.write_series(tmp_path, vol, slope=[1.0, 2.0, 0.5],
                               intercept=[-1024.0, -2048.0, -10.25])
    scan = scanio.read_scan(tmp_path)
    expected = vol.astype(np.float64) * np.array([1.0, 2.0, 0.5])[:, None, None] \
        + np.array([-1024.0, -2048.0, -10.25])[:, None, None]
    assert scan.array.dtype == np.float32
    np.testing.assert_array_equal(scan.array, expected.astype(np.float32))


def test_multiframe_enhanced_ct_is_sorted_and_rescaled_per_frame(tmp_path, dicom_factory):
    vol = _volume(n=4)
    z = np.array([6.0, 0.0, 4.0, 2.0])  # stored out of order
    positions = np.stack([np.full(4, -5.0), np.full(4, 7.0), z], axis=1)
    slopes, intercepts = [1, 1, 2, 1], [-1024, -1000, -1024, -1024]
    path = dicom_factory.write_enhanced(tmp_path / "enhanced.dcm", vol, positions,
                                        slopes=slopes, intercepts=intercepts)
    scan = scanio.read_scan(path)
    order = np.argsort(z)
    hu = vol.astype(np.int32) * np.array(slopes)[:, None, None] + np.array(intercepts)[:, None, None]
    assert np.array_equal(scan.array, hu[order])
    assert scan.origin_mm == (-5.0, 7.0, 0.0)
    assert scan.spacing_mm == pytest.approx((2.0, 0.8, 0.6))


def test_missing_slice_is_reported_and_resampled_onto_regular_grid(tmp_path, dicom_factory):
    vol = _volume(n=5)
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.0, 8.0, 10.0)])  # 6.0 missing
    dicom_factory.write_series(tmp_path, vol, positions=positions)
    with pytest.warns(UserWarning, match="missing slice"):
        scan = scanio.read_scan(tmp_path)
    assert any("1 missing slice" in w for w in scan.metadata["warnings"])
    assert scan.shape == (6, 6, 7) and scan.spacing_mm[0] == pytest.approx(2.0)
    # the slice at z = 8 mm keeps its own values
    assert np.array_equal(scan.array[4], vol[3].astype(np.int16) - 1024)


def test_irregular_error_mode_raises_typed_error(tmp_path, dicom_factory):
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.0, 8.0, 10.0)])
    dicom_factory.write_series(tmp_path, _volume(n=5), positions=positions)
    with pytest.raises(scanio.IrregularGeometryError, match=str(tmp_path)):
        scanio.read_scan(tmp_path, irregular="error")


def test_non_uniform_spacing_is_reported(tmp_path, dicom_factory):
    positions = np.array([[0, 0, z] for z in (0.0, 1.0, 2.0, 3.5, 5.0)])
    dicom_factory.write_series(tmp_path, _volume(n=5), positions=positions)
    with pytest.warns(UserWarning, match="non-uniform slice spacing"):
        scan = scanio.read_scan(tmp_path)
    assert scan.spacing_mm[0] == pytest.approx(1.0) and scan.shape[0] == 6


def test_gantry_tilt_is_reported_and_resampled_to_world_positions(tmp_path, dicom_factory):
    # each slice is shifted by one column (0.6 mm) along x: a sheared stack
    n, rows, cols = 4, 6, 9
    vol = np.full((n, rows, cols), 24, dtype=np.uint16)
    world_x = 2.4  # a bright line at a fixed world x
    positions = np.array([[-0.6 * k, 0.0, 2.0 * k] for k in range(n)])
    for k in range(n):
        vol[k, :, int(round((world_x - positions[k, 0]) / 0.6))] = 1224
    dicom_factory.write_series(tmp_path, vol, positions=positions)
    with pytest.warns(UserWarning, match="gantry tilt"):
        scan = scanio.read_scan(tmp_path)
    assert scan.metadata["gantry_tilt_deg"] == pytest.approx(np.degrees(np.arctan2(1.8, 6.0)), abs=0.01)
    # after resampling, the line is found at the same world x on every slice
    column = int(round(scan.world_to_voxel([[world_x, 0, 0]])[0, 2]))
    assert np.all(scan.array[:, :, column] == 200)
    assert scan.dicom_source.regularized


def test_several_series_raise_listing_them_and_series_uid_chooses(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path / "a", _volume(n=3), series_uid="1.2.3.1", description="first")
    dicom_factory.write_series(tmp_path / "b", _volume(n=4, rows=5), series_uid="1.2.3.2")
    with pytest.raises(scanio.MultipleSeriesError) as info:
        scanio.read_scan(tmp_path)
    assert "1.2.3.1" in str(info.value) and "1.2.3.2" in str(info.value)
    assert {s.series_uid for s in info.value.series} == {"1.2.3.1", "1.2.3.2"}
    assert isinstance(info.value, scanio.MixedSeriesError)
    assert scanio.read_scan(tmp_path, series_uid="1.2.3.2").shape == (4, 5, 7)
    with pytest.raises(scanio.SeriesNotFoundError):
        scanio.read_scan(tmp_path, series_uid="9.9")


def test_list_series_reports_uid_description_modality_size(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path / "a", _volume(n=3), series_uid="1.2.3.1", description="first")
    dicom_factory.write_series(tmp_path / "b", _volume(n=4, rows=5), series_uid="1.2.3.2")
    infos = {s.series_uid: s for s in scanio.list_series(tmp_path)}
    assert infos["1.2.3.1"].description == "first"
    assert infos["1.2.3.1"].modality == "CT"
    assert infos["1.2.3.1"].num_slices == 3 and infos["1.2.3.1"].size_xyz == (7, 6, 3)
    assert infos["1.2.3.2"].size_xyz == (7, 5, 4)


def test_slices_of_different_sizes_in_one_series_raise(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path, _volume(n=3))
    dicom_factory.write_slice(tmp_path / "odd.dcm", _volume(n=1, rows=4)[0], (-10, 20, 40))
    with pytest.raises(scanio.MixedSeriesError, match="different sizes"):
        scanio.read_scan(tmp_path)


def test_duplicate_slice_positions_raise(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path, _volume(n=3))
    dicom_factory.write_slice(tmp_path / "again.dcm", _volume(n=1)[0], (-10, 20, 32))
    with pytest.raises(scanio.MixedSeriesError, match="same position"):
        scanio.read_scan(tmp_path)


def test_single_slice_file_reads_its_series(tmp_path, dicom_factory):
    paths = dicom_factory.write_series(tmp_path, _volume(n=4))
    scan = scanio.read_scan(paths[2])
    assert scan.shape == (4, 6, 7)


def test_lone_slice_is_not_a_volume(tmp_path, dicom_factory):
    path = dicom_factory.write_slice(tmp_path / "one.dcm", _volume(n=1)[0], (0, 0, 0))
    with pytest.raises(scanio.NotVolumeError, match="one.dcm"):
        scanio.read_scan(path)


def test_metadata_holds_no_patient_identifiers(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path, _volume(n=3))
    scan = scanio.read_scan(tmp_path)
    text = repr(scan.metadata)
    assert "Secret" not in text and "SECRET-ID" not in text and "19700101" not in text
    assert scan.metadata["series_uid"] == "1.2.3.4"
    assert scan.metadata["series_description"] == "synthetic CT"


def test_regular_series_records_no_warnings(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path, _volume(n=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = scanio.read_scan(tmp_path)
    assert scan.metadata["warnings"] == []


def test_progress_is_reported_and_cancel_stops_reading(tmp_path, dicom_factory):
    import threading

    dicom_factory.write_series(tmp_path, _volume(n=4))
    calls = []
    scanio.read_scan(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(scanio.ReadCancelledError, match=str(tmp_path)):
        scanio.read_scan(tmp_path, cancel=cancel)


def test_gdcm_fallback_when_pydicom_cannot_decode(tmp_path, dicom_factory, monkeypatch):
    import pydicom

    vol = _volume(n=3)
    dicom_factory.write_series(tmp_path, vol, slope=[1.0, 2.0, 1.0], intercept=[-1024.0, -7.0, 0.0])
    expected = scanio.read_scan(tmp_path).array

    def no_codec(self):
        raise NotImplementedError("no pixel data handler")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_codec))
    monkeypatch.setattr("scanio.dicom._pydicom_lacks_codec", lambda path: True)
    assert np.array_equal(scanio.read_scan(tmp_path).array, expected)


def test_no_fallback_when_pydicom_rejects_uncompressed_pixels(tmp_path, dicom_factory, monkeypatch):
    """A damaged uncompressed slice is an error naming the file, never GDCM's unwritten buffer."""
    import pydicom

    dicom_factory.write_series(tmp_path, _volume(n=3))

    def damaged(self):
        raise ValueError("The number of bytes of pixel data is less than expected")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(damaged))
    with pytest.raises(scanio.CorruptFileError, match=r"slice000\.dcm.*cannot be decoded"):
        scanio.read_scan(tmp_path)


def test_gap_too_wide_to_interpolate_raises(tmp_path, dicom_factory):
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.0, 60.0, 62.0)])
    dicom_factory.write_series(tmp_path, _volume(n=5), positions=positions)
    with pytest.raises(scanio.IrregularGeometryError, match="too wide"):
        scanio.read_scan(tmp_path)


def test_orientation_rounded_in_header_gives_orthonormal_direction(tmp_path, dicom_factory):
    c, s = np.cos(0.3), np.sin(0.3)
    iop = (round(c, 3), round(s, 3), 0.0, 0.0, 0.0, -1.0)
    dicom_factory.write_series(tmp_path, _volume(n=3), orientation=iop)
    d = scanio.read_scan(tmp_path).direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-12)


def test_dcm_files_without_preamble_are_read(tmp_path, dicom_factory):
    vol = _volume(n=3)
    paths = dicom_factory.write_series(tmp_path, vol)
    for path in paths:
        path.write_bytes(path.read_bytes()[132:])  # drop preamble and "DICM"; meta group stays
        assert not scanio.dicom.is_dicom_file(path)
    assert np.array_equal(scanio.read_scan(tmp_path).array, vol.astype(np.int16) - 1024)
