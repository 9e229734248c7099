"""End to end with the real pieces: the sample DICOM CT through the plugin reader, LiteMedSAM,
`volume.Session`, live labels, export to DICOM-SEG and NIfTI read back with the scan's geometry.

Slow on a CPU (a few LiteMedSAM encodes): the box goes on slice 16 of 20 and propagation runs
forward only, so 4 slices are segmented.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.layers import SCAN_KEY
from napari_sam2.widget.dock import SegmentationWidget
from tests.napari.helpers import wait_until_idle

LIVER = 5
PROMPT_SLICE = 16


@pytest.fixture(scope="module")
def reference_liver():
    """Reference liver labels on the sample's grid (TotalSegmentator output)."""
    import scanio
    from sample_data import sample_ct_path, sample_labels_path

    scan = scanio.read_scan(sample_ct_path())
    labels = scanio.resample_like(scanio.read_scan(sample_labels_path()), like=scan, is_label=True)
    return labels.array == LIVER


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


@pytest.mark.slow
def test_box_on_one_slice_propagates_and_exports_with_geometry(make_napari_viewer, qtbot, tmp_path, reference_liver):
    import scanio
    from sample_data import sample_ct_path

    viewer = make_napari_viewer()
    [image] = viewer.open(str(sample_ct_path()), plugin="napari-sam2")
    scan = image.metadata[SCAN_KEY]
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.model_panel.choice().name == "lite_medsam"

    liver = widget.objects.add_object("liver")
    ys, xs = np.nonzero(reference_liver[PROMPT_SLICE])
    widget.ensure_prompt_layers().add_box(liver.obj_id, 0, PROMPT_SLICE, (ys.min(), xs.min()), (ys.max(), xs.max()))
    widget.propagate(direction="forward")
    wait_until_idle(qtbot, widget, timeout_ms=900_000)

    labels = np.asarray(widget.labels_layer.data)
    segmented = np.flatnonzero((labels == liver.obj_id).any(axis=(1, 2))).tolist()
    assert segmented == list(range(PROMPT_SLICE, 20)), widget.status.text()
    region = slice(PROMPT_SLICE, 20)
    assert _dice(labels[region] == liver.obj_id, reference_liver[region]) > 0.8
    assert widget.progress.value() == widget.progress.maximum() > 0

    seg = scanio.read_scan(widget.export_labels(str(tmp_path / "liver.dcm")))
    assert seg.modality == "SEG" and seg.same_geometry(scan, atol_mm=1e-4)
    np.testing.assert_array_equal(seg.array > 0, labels > 0)
    nifti = scanio.read_scan(widget.export_labels(str(tmp_path / "liver.nii.gz")))
    assert nifti.same_geometry(scan, atol_mm=1e-4)
    np.testing.assert_array_equal(nifti.array, labels)
