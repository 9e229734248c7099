"""write_labels: geometry kept exactly per format, atomic, never clobbers, rejects bad labels."""

from __future__ import annotations

import numpy as np
import pytest

import scanio
import scanio.write


def _labels(shape, dtype=np.uint8):
    return (np.arange(np.prod(shape)) % 4).astype(dtype).reshape(shape)


@pytest.mark.parametrize("suffix, atol_mm", [(".mha", 0.0), (".nrrd", 1e-12)])
def test_round_trip_is_exact(tmp_path, oblique_scan, suffix, atol_mm):
    """MetaImage keeps doubles bit for bit; NRRD stores spacing x direction (1e-12 mm)."""
    labels = _labels(oblique_scan.shape, np.uint16) * 300
    path = scanio.write_labels(tmp_path / f"labels{suffix}", labels, like=oblique_scan)
    back = scanio.read_scan(path)
    assert back.array.dtype == np.uint16 and np.array_equal(back.array, labels)
    np.testing.assert_allclose(back.spacing_mm, oblique_scan.spacing_mm, rtol=0, atol=atol_mm)
    np.testing.assert_allclose(back.origin_mm, oblique_scan.origin_mm, rtol=0, atol=atol_mm)
    np.testing.assert_allclose(back.direction, oblique_scan.direction, rtol=0, atol=1e-14)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_round_trip_nifti_exact_to_float32(tmp_path, oblique_scan, suffix):
    """NIfTI-1 stores geometry as float32: kept to 1e-5 mm; the array exactly."""
    labels = _labels(oblique_scan.shape)
    back = scanio.read_scan(scanio.write_labels(tmp_path / f"l{suffix}", labels, like=oblique_scan))
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, labels)
    assert back.same_geometry(oblique_scan, atol_mm=1e-5)


def test_existing_file_is_kept_without_overwrite(tmp_path, oblique_scan):
    path = tmp_path / "l.mha"
    path.write_bytes(b"precious")
    with pytest.raises(scanio.OutputExistsError, match="l.mha"):
        scanio.write_labels(path, _labels(oblique_scan.shape), like=oblique_scan)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.mha"]


def test_overwrite_replaces_file(tmp_path, oblique_scan):
    path = tmp_path / "l.mha"
    path.write_bytes(b"old")
    scanio.write_labels(path, _labels(oblique_scan.shape), like=oblique_scan, overwrite=True)
    assert np.array_equal(scanio.read_scan(path).array, _labels(oblique_scan.shape))


def test_failed_write_leaves_no_file(tmp_path, oblique_scan, monkeypatch):
    def crash(tmp, array, like):
        tmp.write_bytes(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(scanio.write, "_write_sitk", crash)
    with pytest.raises(OSError, match="disk full"):
        scanio.write_labels(tmp_path / "l.nrrd", _labels(oblique_scan.shape), like=oblique_scan)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("labels, match", [
    (np.zeros((4, 5, 7), np.uint8), "shape"),
    (np.zeros((4, 5, 6), np.float32), "integers"),
    (np.full((4, 5, 6), -1, np.int32), "0..65535"),
    (np.full((4, 5, 6), 70000, np.int64), "0..65535"),
])
def test_bad_labels_raise_and_write_nothing(tmp_path, oblique_scan, labels, match):
    with pytest.raises(scanio.LabelsError, match=match):
        scanio.write_labels(tmp_path / "l.nii.gz", labels, like=oblique_scan)
    assert list(tmp_path.iterdir()) == []


def test_wide_integer_and_bool_labels_are_converted_losslessly(tmp_path, oblique_scan):
    labels = _labels(oblique_scan.shape, np.int64)
    back = scanio.read_scan(scanio.write_labels(tmp_path / "a.mha", labels, like=oblique_scan))
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, labels)
    back = scanio.read_scan(scanio.write_labels(tmp_path / "b.mha", labels > 1, like=oblique_scan))
    assert np.array_equal(back.array, (labels > 1).astype(np.uint8))


def test_unknown_output_extension_raises_and_writes_nothing(tmp_path, oblique_scan):
    with pytest.raises(scanio.UnknownFormatError, match="l.png"):
        scanio.write_labels(tmp_path / "l.png", _labels(oblique_scan.shape), like=oblique_scan)
    assert list(tmp_path.iterdir()) == []


def test_dicom_seg_needs_a_dicom_scan(tmp_path, oblique_scan):
    with pytest.raises(scanio.UnsupportedOutputError, match="l.dcm"):
        scanio.write_labels(tmp_path / "l.dcm", _labels(oblique_scan.shape), like=oblique_scan)
    assert list(tmp_path.iterdir()) == []


def test_dicom_seg_round_trip_on_synthetic_series(tmp_path, dicom_factory):
    vol = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    iop = (0.8, 0.6, 0.0, 0.0, 0.0, -1.0)
    dicom_factory.write_series(tmp_path / "ct", vol, orientation=iop, spacing_z=-3.0,
                               names=[f"s{4 - k}.dcm" for k in range(5)])
    scan = scanio.read_scan(tmp_path / "ct")
    labels = np.zeros(scan.shape, np.uint8)
    labels[1:3, 2:5, 1:4] = 7
    labels[2, 0, 0] = 2
    path = scanio.write_labels(tmp_path / "seg.dcm", labels, like=scan,
                               segment_names={7: "tumour"})
    back = scanio.read_scan(path)
    assert np.array_equal(back.array, labels)
    assert back.same_geometry(scan, atol_mm=1e-6)
    assert back.metadata["segments"] == {2: "label 2", 7: "tumour (label 7)"}


def test_dicom_seg_of_multiframe_source_round_trips(tmp_path, dicom_factory):
    vol = np.arange(4 * 6 * 7, dtype=np.uint16).reshape(4, 6, 7)
    positions = np.array([[0.0, 0.0, z] for z in (6.0, 0.0, 4.0, 2.0)])
    src = dicom_factory.write_enhanced(tmp_path / "mf.dcm", vol, positions)
    scan = scanio.read_scan(src)
    labels = np.zeros(scan.shape, np.uint8)
    labels[0, 1, 1] = 1
    labels[3, 2:4, 2:6] = 3
    back = scanio.read_scan(scanio.write_labels(tmp_path / "seg.dcm", labels, like=scan))
    assert np.array_equal(back.array, labels)
    assert back.same_geometry(scan, atol_mm=1e-6)


def test_dicom_seg_of_empty_labels_reads_back_empty(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path / "ct", np.zeros((3, 6, 7), np.uint16))
    scan = scanio.read_scan(tmp_path / "ct")
    back = scanio.read_scan(scanio.write_labels(tmp_path / "e.dcm", np.zeros(scan.shape, np.uint8),
                                                like=scan))
    assert back.shape == scan.shape and not back.array.any()


def test_foreign_dicom_seg_lands_on_world_positions(tmp_path, dicom_factory):
    """A SEG without our stored grid (as other tools write it) still has exact world geometry."""
    import pydicom

    vol = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    dicom_factory.write_series(tmp_path / "ct", vol, orientation=(0.8, 0.6, 0.0, 0.0, 0.0, -1.0),
                               spacing_z=-3.0)
    scan = scanio.read_scan(tmp_path / "ct")
    labels = np.zeros(scan.shape, np.uint8)
    labels[1:4, 2:5, 1:4] = 4
    path = scanio.write_labels(tmp_path / "seg.dcm", labels, like=scan)
    ds = pydicom.dcmread(path)
    del ds[0x00710010]  # private creator: drops the stored grid
    del ds[0x00711001]
    ds.save_as(path)
    seg = scanio.read_scan(path)
    assert seg.shape[0] == 3  # only the frames holding labels
    assert np.array_equal(scanio.resample_like(seg, like=scan).array, labels)
