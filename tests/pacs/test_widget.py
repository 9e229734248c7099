"""The dock widget's PACS controls in a real viewer (xvfb) against a real Orthanc."""

from __future__ import annotations

import numpy as np
import pytest

from tests.pacs.conftest import SAMPLE_PATIENT

pytest.importorskip("dicomweb_client", reason="needs dicomweb-client: pip install -e '.[pacs]'")

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture
def dock(make_napari_viewer, archive, credentials):
    from napari_sam2.widget.dock import SegmentationWidget

    viewer = make_napari_viewer()
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def _search(qtbot, dialog, url, patient=SAMPLE_PATIENT):
    dialog.server_edit.setText(url)
    dialog.patient_edit.setText(patient)
    dialog.modality_combo.setCurrentText("CT")
    dialog.search()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=30_000)


def test_open_from_pacs_lists_fetches_with_progress_and_sends_the_seg_back(dock, qtbot, archive,
                                                                         credentials):
    import scanio
    from scanio import dicomweb

    dialog = dock.pacs.open_dialog()
    _search(qtbot, dialog, archive.url)
    assert dialog.tree.topLevelItemCount() == 1
    study = dialog.tree.topLevelItem(0)
    assert study.text(0) == SAMPLE_PATIENT and study.childCount() == 1
    assert study.child(0).text(4) == "20"

    dialog.tree.setCurrentItem(study.child(0))
    dialog.open_selected()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=60_000)
    assert dialog.progress.value() == dialog.progress.maximum() == 20
    (layer,) = dialog.opened
    assert dock.image_layer() is layer
    local = scanio.read_scan(archive.sample_folder)
    assert np.array_equal(np.asarray(layer.data), local.array)

    labels = dock.ensure_labels_layer()
    labels.data[6:9, 200:260, 210:280] = 1
    dock.pacs.send_seg()
    qtbot.waitUntil(lambda: not dock.pacs.is_sending(), timeout=60_000)
    assert "SEG stored on the PACS" in dock.status.text(), dock.status.text()
    series_uid = dock.status.text().split("(series ")[1].split(")")[0]
    server = dicomweb.DicomWebServer(archive.url)
    (seg,) = [s for s in server.search_series(study_uid=archive.study_uid, modality="SEG")
              if s.series_uid == series_uid]
    assert seg.num_instances == 1
    outbox = credentials / "seg-outbox"
    assert [p.name.startswith(archive.series_uid) for p in outbox.iterdir()] == [True]


def test_wrong_password_shows_the_reason_in_the_dialog(dock, qtbot, archive, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_DICOMWEB_PASSWORD", "wrong")
    dialog = dock.pacs.open_dialog()
    _search(qtbot, dialog, archive.url)
    assert dialog.tree.topLevelItemCount() == 0
    assert "HTTP 401" in dialog.status.text() and archive.url in dialog.status.text()
    assert dialog.search_button.isEnabled()


def test_send_seg_of_a_local_scan_says_to_export_instead(dock, qtbot, tmp_path):
    from tests.napari.helpers import write_synthetic_scan

    dock.viewer.open(str(write_synthetic_scan(tmp_path / "scan.nii.gz")), plugin="napari-sam2")
    dock.ensure_labels_layer()
    dock.pacs.send_button.click()
    assert "not opened from a PACS" in dock.status.text()
