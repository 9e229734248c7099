"""Prompt geometry (no viewer) and the model panel's download button (fake download, no network)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.widget.prompts import box_from_rectangle


def _rectangle(axis: int, index: float, lower, upper) -> np.ndarray:
    plane = [a for a in range(3) if a != axis]
    corners = []
    for a, b in ((lower[0], lower[1]), (lower[0], upper[1]), (upper[0], upper[1]), (upper[0], lower[1])):
        vertex = np.zeros(3)
        vertex[axis], vertex[plane[0]], vertex[plane[1]] = index, a, b
        corners.append(vertex)
    return np.array(corners)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rectangle_becomes_box_in_slice_rows_and_columns(axis):
    box = box_from_rectangle(3, _rectangle(axis, 7.0, (10.0, 20.0), (30.0, 45.0)))
    assert (box.obj_id, box.axis, box.slice_index) == (3, axis, 7)
    assert box.lower == (10.0, 20.0) and box.upper == (30.0, 45.0)


def test_rectangle_not_on_one_slice_is_refused():
    vertices = _rectangle(0, 7.0, (10.0, 20.0), (30.0, 45.0))
    vertices[2, 0] = 9.0
    assert box_from_rectangle(1, vertices) is None


def test_download_button_shows_progress_then_status(make_napari_viewer, qtbot, monkeypatch):
    import sam2core.store as store
    from napari_sam2.widget.model_panel import ModelPanel

    seen = []

    def fake_download(name, progress=None, cancel=None):
        for done in (0, 50, 100):
            progress(done, 100)
        return f"/cache/{name}.pt"

    make_napari_viewer()  # notifications and workers need napari's Qt app
    monkeypatch.setattr(store, "download_model", fake_download)
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.model_combo.setCurrentText("sam2.1_hiera_tiny")
    original = panel._on_download_progress
    panel._on_download_progress = lambda update: (seen.append(update), original(update))
    worker = panel.start_download()
    qtbot.waitUntil(lambda: panel._download_worker is None, timeout=20_000)
    assert seen == [(0, 100), (50, 100), (100, 100)]
    assert worker is not None and panel.download_button.text() == "Download"


def test_lite_medsam_is_offered_first_and_ready_offline():
    from napari_sam2.widget.model_panel import model_names
    from sam2core.store import model_status

    names = model_names()
    assert names[0] == "lite_medsam" and "medsam2" in names
    assert model_status("lite_medsam").available
