"""The npe2 reader: each format opens as a layer in physical units, bad files give a notification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_sam2._reader import get_reader
from napari_sam2.layers import SCAN_KEY
from tests.napari.helpers import write_synthetic_scan

SPACING_XYZ = (0.8, 0.9, 2.5)
ORIGIN_XYZ = (-10.0, 20.0, 30.0)


def _read_one(path: Path) -> tuple:
    reader = get_reader(str(path))
    assert reader is not None, f"reader refused {path}"
    layers = reader(str(path))
    assert len(layers) == 1
    return layers[0]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_reader_gives_image_layer_with_scale_and_translate(tmp_path, suffix):
    path = write_synthetic_scan(tmp_path / f"scan{suffix}", spacing_xyz=SPACING_XYZ, origin_xyz=ORIGIN_XYZ)
    data, kwargs, layer_type = _read_one(path)
    assert layer_type == "image"
    assert data.shape == (6, 12, 10)
    np.testing.assert_allclose(kwargs["scale"], SPACING_XYZ[::-1], rtol=1e-5)
    np.testing.assert_allclose(kwargs["translate"], ORIGIN_XYZ[::-1], atol=1e-4)
    assert "affine" not in kwargs
    assert kwargs["metadata"][SCAN_KEY].array is data


def test_reader_opens_dicom_folder_with_ct_window():
    from sample_data import sample_ct_path

    data, kwargs, layer_type = _read_one(sample_ct_path())
    assert layer_type == "image"
    assert data.shape[0] == 20
    scan = kwargs["metadata"][SCAN_KEY]
    assert scan.modality == "CT"
    np.testing.assert_allclose(kwargs["scale"], scan.spacing_mm)
    assert kwargs["contrast_limits"] == (-160.0, 240.0)  # soft tissue: level 40, width 400


def test_reader_opens_single_dicom_file(tmp_path):
    from sample_data import sample_ct_path

    one_file = sorted(p for p in sample_ct_path().iterdir() if p.is_file())[0]
    reader = get_reader(str(one_file))
    assert reader is not None


def test_reader_affine_maps_voxels_to_lps_world_when_direction_is_not_identity(tmp_path):
    flip_xy = np.diag([-1.0, -1.0, 1.0])  # RAS-like storage, as NIfTI from many tools
    path = write_synthetic_scan(tmp_path / "ras.nii.gz", spacing_xyz=SPACING_XYZ,
                                origin_xyz=ORIGIN_XYZ, direction=flip_xy)
    data, kwargs, _ = _read_one(path)
    scan = kwargs["metadata"][SCAN_KEY]
    voxel_zyx = np.array([3.0, 5.0, 7.0])
    # napari: world = affine @ (scale * data + translate)
    physical = np.asarray(kwargs["scale"]) * voxel_zyx + np.asarray(kwargs["translate"])
    world_zyx = kwargs["affine"][:3, :3] @ physical + kwargs["affine"][:3, 3]
    np.testing.assert_allclose(world_zyx[::-1], scan.voxel_to_world(voxel_zyx)[0], atol=1e-4)


def test_reader_layer_in_viewer_puts_voxel_at_its_world_position(make_napari_viewer, tmp_path):
    flip_xy = np.diag([-1.0, -1.0, 1.0])
    path = write_synthetic_scan(tmp_path / "ras.nrrd", direction=flip_xy)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-sam2")
    scan = layer.metadata[SCAN_KEY]
    voxel_zyx = np.array([2.0, 4.0, 6.0])
    np.testing.assert_allclose(np.asarray(layer.data_to_world(voxel_zyx))[::-1],
                               scan.voxel_to_world(voxel_zyx)[0], atol=1e-4)


def test_mr_like_scan_gets_percentile_contrast(tmp_path):
    import SimpleITK as sitk

    array = np.random.default_rng(0).integers(0, 800, size=(5, 16, 16)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "mr.nii.gz"))
    _, kwargs, layer_type = _read_one(tmp_path / "mr.nii.gz")
    low, high = kwargs["contrast_limits"]
    assert layer_type == "image"
    assert 0 <= low < high <= 800


def test_segmentation_file_opens_as_labels(tmp_path):
    import SimpleITK as sitk

    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    labels[1:3, 2:5, 2:5] = 5
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((1.5, 1.5, 3.0))
    sitk.WriteImage(image, str(tmp_path / "seg.nii.gz"))
    data, kwargs, layer_type = _read_one(tmp_path / "seg.nii.gz")
    assert layer_type == "labels"
    np.testing.assert_allclose(kwargs["scale"], (3.0, 1.5, 1.5))


@pytest.mark.parametrize("name", ["notes.txt", "picture.png", "table.csv"])
def test_reader_refuses_what_it_cannot_read(tmp_path, name):
    (tmp_path / name).write_bytes(b"not a scan")
    assert get_reader(str(tmp_path / name)) is None


def test_reader_refuses_folder_without_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    assert get_reader(str(tmp_path)) is None


def test_corrupt_scan_gives_notification_not_exception(tmp_path, notifications):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b this is not really gzip")
    layers = get_reader(str(path))(str(path))
    assert layers == [(None,)]
    assert any("broken.nii.gz" in message for message in notifications.errors())


def test_viewer_open_of_corrupt_file_does_not_raise(make_napari_viewer, tmp_path, notifications):
    path = tmp_path / "truncated.mha"
    path.write_text("ObjectType = Image\nNDims = 3\nDimSize = 10 10 10\nElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-sam2")
    assert len(viewer.layers) == 0
    assert any("truncated.mha" in message for message in notifications.errors())


def test_how_a_scan_was_read_is_shown_as_a_warning(tmp_path, notifications):
    import nibabel as nib

    path = write_synthetic_scan(tmp_path / "scan.nii")
    img = nib.load(str(path))
    affine = img.affine.copy()
    affine[:3, 3] += 30.0  # the sform now disagrees with the qform
    img.header.set_sform(affine, code=2)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, img.header), str(path))
    _read_one(path)
    assert any("sform disagrees" in message for message in notifications.messages())
