"""Bad input: each case raises its typed ScanIOError naming the file, and writes nothing."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

import scanio


def _listing(folder):
    return sorted(p.name for p in folder.rglob("*"))


def test_every_error_is_a_scanioerror():
    for name in scanio.__all__:
        obj = getattr(scanio, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, scanio.ScanIOError) and issubclass(obj, Exception)


def test_path_not_found(tmp_path):
    with pytest.raises(scanio.ScanNotFoundError, match="nothing-here"):
        scanio.read_scan(tmp_path / "nothing-here.nii.gz")


def test_empty_folder(tmp_path):
    with pytest.raises(scanio.EmptyFolderError, match=str(tmp_path)):
        scanio.read_scan(tmp_path)


def test_folder_without_dicom_is_not_a_scan(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(scanio.NotAScanError, match=str(tmp_path)):
        scanio.read_scan(tmp_path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(scanio.UnknownFormatError, match="picture.png"):
        scanio.read_scan(path)


def test_text_file_with_scan_extension_is_not_a_scan(tmp_path):
    path = tmp_path / "fake.nii.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"this is not an image" * 40)
    with pytest.raises(scanio.NotAScanError, match="fake.nii.gz"):
        scanio.read_scan(path)


def test_file_without_extension_that_is_not_dicom(tmp_path):
    path = tmp_path / "README"
    path.write_text("plain text")
    with pytest.raises(scanio.NotAScanError, match="README"):
        scanio.read_scan(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_image_file_is_corrupt(tmp_path, oblique_scan, suffix):
    big = scanio.Scan(array=np.arange(40 * 50 * 60, dtype=np.int16).reshape(40, 50, 60),
                      spacing_mm=(1, 1, 1), origin_mm=(0, 0, 0), direction=np.eye(3))
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(big.to_sitk(), str(path), useCompression=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(scanio.CorruptFileError, match=f"scan{suffix}"):
        scanio.read_scan(path)


def test_truncated_dicom_slice_is_corrupt(tmp_path, dicom_factory):
    vol = np.arange(3 * 6 * 7, dtype=np.uint16).reshape(3, 6, 7)
    paths = dicom_factory.write_series(tmp_path, vol)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-20])
    with pytest.raises(scanio.CorruptFileError, match=paths[1].name):
        scanio.read_scan(tmp_path)


def test_dicom_header_cut_short_is_corrupt(tmp_path, dicom_factory):
    vol = np.arange(3 * 6 * 7, dtype=np.uint16).reshape(3, 6, 7)
    paths = dicom_factory.write_series(tmp_path, vol)
    paths[0].write_bytes(paths[0].read_bytes()[:300])
    with pytest.raises(scanio.CorruptFileError, match=paths[0].name):
        scanio.read_scan(tmp_path)


def test_2d_image_is_not_a_volume(tmp_path):
    path = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.Image(8, 9, sitk.sitkInt16), str(path))
    with pytest.raises(scanio.NotVolumeError, match="flat.nrrd"):
        scanio.read_scan(path)


def test_one_slice_3d_image_is_not_a_volume(tmp_path):
    path = tmp_path / "one.mha"
    sitk.WriteImage(sitk.Image(8, 9, 1, sitk.sitkInt16), str(path))
    with pytest.raises(scanio.NotVolumeError, match="one.mha"):
        scanio.read_scan(path)


def test_colour_image_is_not_a_scan(tmp_path):
    path = tmp_path / "rgb.mha"
    sitk.WriteImage(sitk.Image([4, 5, 6], sitk.sitkVectorUInt8, 3), str(path))
    with pytest.raises(scanio.NotAScanError, match="rgb.mha"):
        scanio.read_scan(path)


def test_bad_input_writes_nothing(tmp_path, dicom_factory):
    vol = np.arange(3 * 6 * 7, dtype=np.uint16).reshape(3, 6, 7)
    dicom_factory.write_series(tmp_path / "a", vol, series_uid="1.1")
    dicom_factory.write_series(tmp_path / "b", vol, series_uid="1.2")
    before = _listing(tmp_path)
    with pytest.raises(scanio.MultipleSeriesError):
        scanio.read_scan(tmp_path)
    assert _listing(tmp_path) == before
