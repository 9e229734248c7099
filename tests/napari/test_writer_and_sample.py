"""The npe2 writer keeps the scan's geometry (DICOM-SEG for DICOM scans); the sample opens in mm."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2._reader import get_reader
from napari_sam2._writer import write_labels
from napari_sam2.layers import SCAN_KEY, geometry_kwargs
from tests.napari.helpers import write_synthetic_scan


def _labels_for(shape):
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:4, 2:6, 3:7] = 1
    labels[2, 7:9, 1:3] = 2
    return labels


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_writer_round_trip_keeps_array_and_geometry(tmp_path, suffix):
    import scanio

    source = write_synthetic_scan(tmp_path / "scan.nii.gz", direction=np.diag([-1.0, -1.0, 1.0]))
    _, kwargs, _ = get_reader(str(source))(str(source))[0]
    scan = kwargs["metadata"][SCAN_KEY]
    labels = _labels_for(scan.shape)
    [written] = write_labels(str(tmp_path / f"labels{suffix}"), labels, {"metadata": kwargs["metadata"]})
    back = scanio.read_scan(written)
    np.testing.assert_array_equal(back.array, labels)
    assert back.same_geometry(scan)


def test_writer_rebuilds_geometry_from_layer_transform_without_scan(tmp_path):
    import scanio

    source = write_synthetic_scan(tmp_path / "scan.mha", direction=np.diag([-1.0, 1.0, -1.0]))
    scan = scanio.read_scan(source)
    labels = _labels_for(scan.shape)
    meta = {"metadata": {}, **geometry_kwargs(scan)}
    [written] = write_labels(str(tmp_path / "labels.nrrd"), labels, meta)
    assert scanio.read_scan(written).same_geometry(scan)


def test_writer_exports_dicom_seg_for_dicom_scan(tmp_path):
    import pydicom
    import scanio
    from sample_data import sample_ct_path

    scan = scanio.read_scan(sample_ct_path())
    labels = np.zeros(scan.shape, dtype=np.uint8)
    labels[5:9, 200:260, 200:280] = 1
    [written] = write_labels(str(tmp_path / "labels.dcm"), labels, {"metadata": {SCAN_KEY: scan}})
    dataset = pydicom.dcmread(written)
    assert dataset.Modality == "SEG"


def test_sample_data_is_ct_in_physical_units(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "sample_ct")
    [layer] = viewer.layers
    scan = layer.metadata[SCAN_KEY]
    assert scan.modality == "CT"
    np.testing.assert_allclose(layer.scale, scan.spacing_mm)
    assert tuple(layer.contrast_limits) == (-160.0, 240.0)


def test_npe2_manifest_is_valid_and_lists_contributions():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-sam2")
    manifest.validate_imports()
    contributions = manifest.contributions
    assert contributions.readers and contributions.writers
    assert contributions.sample_data and contributions.widgets
