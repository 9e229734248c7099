"""Hostile and damaged files: contained detached data, regular files only, a size cap, headers
checked before ITK, no silent repair (issue 13). The fuzz suite (tests/fuzz) covers many more."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import SimpleITK as sitk

import scanio


def _volume() -> np.ndarray:
    return (np.arange(4 * 5 * 6) % 251).astype(np.int16).reshape(4, 5, 6)


def _write(path, array=None, **kwargs):
    image = sitk.GetImageFromArray(_volume() if array is None else array)
    image.SetSpacing((0.5, 0.7, 2.0))
    sitk.WriteImage(image, str(path), **kwargs)
    return path


def _nhdr(folder, data_file: str, extra: str = "") -> os.PathLike:
    path = folder / "scan.nhdr"
    path.write_text("NRRD0004\ntype: uchar\ndimension: 3\nsizes: 6 5 4\nencoding: raw\n"
                    f"{extra}data file: {data_file}\n")
    return path


@pytest.fixture
def sentinel(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.raw"
    path.write_bytes(b"SECRET" * 100)
    return path


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_detached_nrrd_data_outside_the_folder_is_refused(tmp_path, sentinel, how):
    folder = tmp_path / "scan"
    folder.mkdir()
    if how == "absolute":
        name = str(sentinel)
    elif how == "dotdot":
        name = "../outside/secret.raw"
    else:
        (folder / "link.raw").symlink_to(sentinel)
        name = "link.raw"
    with pytest.raises(scanio.UnsafeDataFileError, match="data file"):
        scanio.read_scan(_nhdr(folder, name))


def test_detached_data_in_a_subfolder_is_read(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v.raw").write_bytes(bytes(range(120)))
    scan = scanio.read_scan(_nhdr(tmp_path, "data/v.raw"))
    assert scan.array.ravel().tolist() == list(range(120))


def test_metaimage_data_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.raw")
    header = tmp_path / "scan.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 6 5 4\nElementType = MET_UCHAR\n"
                      "ElementDataFile = pipe.raw\n")
    with pytest.raises(scanio.UnsafeDataFileError, match="not a regular file"):
        scanio.read_scan(header)


@pytest.mark.parametrize("ndims", ["-1", "99", "1000000"])
def test_metaimage_ndims_that_crash_itk_never_reach_it(tmp_path, ndims):
    path = tmp_path / "scan.mha"
    path.write_bytes(f"ObjectType = Image\nNDims = {ndims}\nDimSize = 6 5 4\nElementType = MET_UCHAR\n"
                     "ElementDataFile = LOCAL\n".encode() + bytes(120))
    with pytest.raises(scanio.BadHeaderError, match="NDims"):
        scanio.read_scan(path)


def test_fifo_given_as_the_scan_is_refused(tmp_path):
    os.mkfifo(tmp_path / "scan.nii.gz")
    with pytest.raises(scanio.NotAScanError, match="FIFO"):
        scanio.read_scan(tmp_path / "scan.nii.gz")


def test_fifo_and_device_link_in_a_dicom_folder_are_skipped_with_a_warning(tmp_path, dicom_factory):
    volume = np.random.default_rng(0).integers(0, 1000, (3, 4, 5)).astype(np.uint16)
    dicom_factory.write_series(tmp_path, volume)
    os.mkfifo(tmp_path / "zz.dcm")
    (tmp_path / "zero.dcm").symlink_to("/dev/zero")
    scan = scanio.read_scan(tmp_path)
    assert np.array_equal(scan.array, volume.astype(np.int32) - 1024)
    assert any("ignored" in w for w in scan.metadata["warnings"])


def test_truncated_nifti_is_an_error(tmp_path):
    path = _write(tmp_path / "scan.nii")
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(scanio.CorruptFileError, match="truncated"):
        scanio.read_scan(path)


def test_truncated_nifti_gz_stream_is_an_error(tmp_path):
    path = _write(tmp_path / "scan.nii")
    packed = tmp_path / "scan.nii.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()[:-7]))
    with pytest.raises(scanio.CorruptFileError, match="truncated"):
        scanio.read_scan(packed)


def _nifti_with(tmp_path, **fields):
    import nibabel as nib

    path = _write(tmp_path / "scan.nii")
    data = bytearray(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(bytes(data[:348])), check=False)
    for key, value in fields.items():
        if isinstance(value, tuple):
            arr = header[key].copy()
            arr[value[0]] = value[1]
            header[key] = arr
        else:
            header[key] = value
    data[:348] = header.binaryblock
    path.write_bytes(bytes(data))
    return path


def test_vox_offset_beyond_the_data_is_an_error(tmp_path):
    with pytest.raises(scanio.CorruptFileError, match="truncated"):
        scanio.read_scan(_nifti_with(tmp_path, vox_offset=100_000))


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.0])
def test_non_finite_or_zero_pixdim_is_an_error(tmp_path, value):
    with pytest.raises(scanio.BadHeaderError, match="pixdim"):
        scanio.read_scan(_nifti_with(tmp_path, pixdim=(2, value)))


def test_sform_disagreeing_with_qform_is_reported(tmp_path):
    import nibabel as nib

    path = _write(tmp_path / "scan.nii")
    img = nib.load(str(path))
    affine = img.affine.copy()
    affine[:3, 3] += 30.0
    img.header.set_sform(affine, code=2)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, img.header), str(path))
    scan = scanio.read_scan(path)
    assert any("sform disagrees" in w for w in scan.metadata["warnings"])


def test_size_cap_refuses_a_small_file_claiming_a_huge_volume(tmp_path):
    path = tmp_path / "bomb.nrrd"
    path.write_bytes(b"NRRD0004\ntype: int\ndimension: 3\nsizes: 2048 2048 2048\nencoding: gzip\n"
                     b"endian: little\n\n" + gzip.compress(bytes(1 << 20)))
    with pytest.raises(scanio.ScanTooLargeError, match="NAPARI_SAM2_MAX_VOXELS"):
        scanio.read_scan(path)


def test_size_cap_follows_the_environment_variable(tmp_path, monkeypatch):
    path = _write(tmp_path / "scan.nrrd")
    monkeypatch.setenv("NAPARI_SAM2_MAX_VOXELS", "100")
    with pytest.raises(scanio.ScanTooLargeError, match="120 voxels"):
        scanio.read_scan(path)
    monkeypatch.setenv("NAPARI_SAM2_MAX_VOXELS", "120")
    assert scanio.read_scan(path).shape == (4, 5, 6)


def test_gzip_bomb_after_valid_data_is_not_decompressed_whole(tmp_path):
    from scanio.limits import bytes_available

    raw = _write(tmp_path / "scan.nii").read_bytes()
    packed = tmp_path / "scan.nii.gz"
    with gzip.GzipFile(packed, "wb", compresslevel=1) as f:
        f.write(raw)
        for _ in range(8):  # 32 MiB of zeros after the voxels
            f.write(bytes(1 << 22))
    assert bytes_available(packed, 0, len(raw), "gzip") == len(raw)  # stops once enough arrived
    assert np.array_equal(scanio.read_scan(packed).array, _volume())


def test_dicom_pixel_spacing_zero_is_an_error(tmp_path, dicom_factory):
    dicom_factory.write_series(tmp_path, np.zeros((3, 4, 5), np.uint16),
                                 pixel_spacing=[(0.0, 0.0)] * 3)
    with pytest.raises(scanio.BadHeaderError, match="PixelSpacing"):
        scanio.read_scan(tmp_path)


def test_dicom_rows_claiming_more_than_the_pixel_data_is_an_error(tmp_path, dicom_factory):
    import pydicom

    files = dicom_factory.write_series(tmp_path, np.zeros((3, 4, 5), np.uint16))
    for f in files:
        ds = pydicom.dcmread(str(f))
        ds.Rows = 400
        ds.save_as(str(f))
    with pytest.raises(scanio.CorruptFileError, match="truncated or damaged"):
        scanio.read_scan(tmp_path)


def test_truncated_last_dicom_slice_is_named(tmp_path, dicom_factory):
    files = dicom_factory.write_series(tmp_path, np.zeros((3, 4, 5), np.uint16))
    files[-1].write_bytes(files[-1].read_bytes()[:140])
    with pytest.raises(scanio.CorruptFileError, match="slice002.dcm"):
        scanio.read_scan(tmp_path)


def test_write_labels_refuses_a_nan_origin(tmp_path):
    scan = scanio.Scan(np.zeros((2, 3, 4), np.int16), (1, 1, 1), (np.nan, 0, 0), np.eye(3))
    with pytest.raises(scanio.LabelsError, match="geometry"):
        scanio.write_labels(tmp_path / "l.nii.gz", np.zeros((2, 3, 4), np.uint8), like=scan)
