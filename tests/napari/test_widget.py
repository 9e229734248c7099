"""The dock widget with a fake session (fast): live per-slice updates, progress, cancel, errors, undo, objects."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.layers import SCAN_KEY
from napari_sam2.widget.dock import SegmentationWidget
from tests.napari.helpers import wait_until_idle, write_synthetic_scan

SHAPE_ZYX = (6, 12, 10)


@pytest.fixture
def widget(make_napari_viewer, tmp_path, fake_session):
    viewer = make_napari_viewer()
    path = write_synthetic_scan(tmp_path / "scan.nii.gz", shape_zyx=SHAPE_ZYX)
    viewer.open(str(path), plugin="napari-sam2")
    dock = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(dock)
    return dock


def _box(widget, obj_id=1, z=2, lower=(3, 2), upper=(8, 7)):
    prompts = widget.ensure_prompt_layers()
    while len(widget.objects.objects()) < obj_id:
        widget.objects.add_object()
    prompts.add_box(obj_id, 0, z, lower, upper)
    return prompts


def test_propagation_updates_labels_slice_by_slice_with_progress(widget, qtbot, fake_session):
    _box(widget)
    slice_updates = []
    original = widget._on_step
    widget._on_step = lambda step: (slice_updates.append(step.slice_index), original(step))
    widget.propagate()
    wait_until_idle(qtbot, widget)
    labels = widget.labels_layer.data
    assert labels.shape == SHAPE_ZYX
    assert all((labels[z] == 1).sum() == 25 for z in range(SHAPE_ZYX[0]))
    assert [s for s in slice_updates if s is not None] == list(range(SHAPE_ZYX[0]))
    assert widget.progress.value() == widget.progress.maximum() == SHAPE_ZYX[0]
    assert fake_session.instances[0].boxes == [(1, 2, (3.0, 2.0, 8.0, 7.0))]


def test_labels_layer_shares_the_scan_geometry(widget, qtbot):
    _box(widget)
    widget.propagate()
    wait_until_idle(qtbot, widget)
    image = widget.image_layer()
    np.testing.assert_allclose(widget.labels_layer.scale, image.scale)
    np.testing.assert_allclose(widget.labels_layer.translate, image.translate)
    assert widget.labels_layer.metadata[SCAN_KEY] is image.metadata[SCAN_KEY]


def test_cancel_stops_within_one_slice(widget, qtbot, fake_session):
    fake_session.slice_seconds = 0.3
    _box(widget)
    widget.propagate()
    qtbot.waitUntil(lambda: widget.progress.value() >= 1, timeout=30_000)
    done_at_cancel = len(fake_session.instances[0].slices_done)
    widget.cancel()
    wait_until_idle(qtbot, widget)
    session = fake_session.instances[0]
    assert len(session.slices_done) <= done_at_cancel + 1 < SHAPE_ZYX[0]
    assert widget.last_run["cancelled"]
    assert widget.propagate_button.isEnabled()


def test_error_during_propagation_is_a_notification_and_ui_stays_usable(widget, qtbot, fake_session, notifications):
    fake_session.fail_with = RuntimeError("model exploded on slice 3")
    _box(widget)
    widget.propagate()
    wait_until_idle(qtbot, widget)
    assert any("model exploded" in m for m in notifications.messages())
    assert widget.propagate_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert not widget.labels_layer.data.any()


def test_propagate_without_prompt_warns(widget, notifications):
    widget.objects.add_object()
    widget.propagate()
    assert not widget.is_running()
    assert any("no prompt" in m for m in notifications.messages())


def test_correction_sends_only_new_prompts_to_the_same_session(widget, qtbot, fake_session):
    prompts = _box(widget)
    prompts.add_point(1, (2, 5, 5), positive=True)
    widget.propagate()
    wait_until_idle(qtbot, widget)
    prompts.add_point(1, (2, 6, 6), positive=False)
    widget.propagate()
    wait_until_idle(qtbot, widget)
    assert len(fake_session.instances) == 1
    session = fake_session.instances[0]
    assert [labels.tolist() for _, _, labels in session.points] == [[1], [0]]
    assert len(session.boxes) == 1 and session.propagations == 2


def test_undo_restores_labels_before_the_last_correction(widget, qtbot):
    _box(widget, obj_id=1, z=2, lower=(1, 1), upper=(4, 4))
    widget.propagate()
    wait_until_idle(qtbot, widget)
    _box(widget, obj_id=2, z=3, lower=(6, 5), upper=(10, 9))
    widget.propagate()
    wait_until_idle(qtbot, widget)
    assert set(np.unique(widget.labels_layer.data)) == {0, 1, 2}
    widget.undo()
    assert set(np.unique(widget.labels_layer.data)) == {0, 1}
    widget.undo()
    assert not widget.labels_layer.data.any()


def test_forward_direction_reaches_the_session(widget, qtbot, fake_session):
    _box(widget, z=3)
    widget.propagate(direction="forward")
    wait_until_idle(qtbot, widget)
    assert fake_session.instances[0].directions == ["forward"]
    labels = widget.labels_layer.data
    assert labels[3:].any(axis=(1, 2)).all() and not labels[:3].any()


def test_objects_rename_recolour_and_remove(widget, qtbot):
    _box(widget, obj_id=1)
    _box(widget, obj_id=2, z=4, lower=(6, 5), upper=(10, 9))
    widget.propagate()
    wait_until_idle(qtbot, widget)
    widget.objects.rename(2, "spleen")
    assert widget.objects.get(2).name == "spleen"
    widget.objects.set_color(2, (1.0, 0.0, 0.0, 1.0))
    np.testing.assert_allclose(widget.labels_layer.colormap.map(np.array([2]))[0], (1.0, 0.0, 0.0, 1.0))
    widget.objects.remove(2)
    assert 2 not in np.unique(widget.labels_layer.data)
    assert set(widget.prompt_layers.boxes.features["obj_id"]) == {1}


def test_negative_points_from_toggle_and_shift_click(widget):
    prompts = widget.ensure_prompt_layers()
    widget.negative_check.setChecked(True)
    prompts.points.add(np.array([[2.0, 5.0, 5.0]]))
    widget.negative_check.setChecked(False)

    class ShiftPress:
        modifiers = ("Shift",)

    prompts._on_point_press(prompts.points, ShiftPress())
    prompts.points.add(np.array([[2.0, 6.0, 6.0]]))

    class PlainPress:
        modifiers = ()

    prompts._on_point_press(prompts.points, PlainPress())
    prompts.points.add(np.array([[2.0, 7.0, 7.0]]))
    assert [p.positive for p in prompts.point_prompts()] == [False, False, True]
    np.testing.assert_allclose(prompts.points.border_color[:, 0], [1.0, 1.0, 0.1])  # red, red, green
    np.testing.assert_allclose(prompts.points.face_color[0], widget.objects.get(1).color)


def test_export_writes_labels_with_scan_geometry(widget, qtbot, tmp_path):
    import scanio

    _box(widget)
    widget.propagate()
    wait_until_idle(qtbot, widget)
    written = widget.export_labels(str(tmp_path / "out.nrrd"))
    back = scanio.read_scan(written)
    np.testing.assert_array_equal(back.array, widget.labels_layer.data)
    assert back.same_geometry(widget.image_layer().metadata[SCAN_KEY])


def test_model_that_fails_to_load_is_a_notification_and_ui_stays_usable(widget, qtbot, monkeypatch, notifications):
    from sam2core.errors import ModelNotAvailableError

    def missing(choice):
        raise ModelNotAvailableError(f"checkpoint for {choice.name} is not in the cache; place it in /somewhere")

    monkeypatch.setattr("napari_sam2.widget.model_panel.load_model", missing)
    _box(widget)
    widget.propagate()
    wait_until_idle(qtbot, widget)
    assert any("not in the cache" in m for m in notifications.errors())
    assert widget.propagate_button.isEnabled()
    assert widget.model_panel.load_button.isEnabled()


def test_axis_preset_moves_napari_slider_to_the_slicing_axis(widget):
    widget.axis_combo.setCurrentText("coronal")
    assert tuple(widget.viewer.dims.order) == (1, 0, 2)
    widget.axis_combo.setCurrentText("axial")
    assert tuple(widget.viewer.dims.order) == (0, 1, 2)


def test_moving_one_extent_marker_leaves_the_other_end_to_the_stop_rule(widget):
    from tests.volume.fake_models import FakeScan, ThresholdImageModel
    from volume.session import Session

    obj = widget.objects.add_object()
    session = Session(FakeScan(np.asarray(widget.image_layer().data)), ThresholdImageModel(), window="-200,200")
    session.add_box(obj.obj_id, 3, (2, 3, 7, 8))
    widget.session = session
    for here in (1, 2):  # the user marks the first slice, then moves the mark
        widget.viewer.dims.set_current_step(0, here)
        widget.set_extent_here("first")
    assert session.given_extents == {obj.obj_id: (2, None)}
    assert "slices 2–…" in widget.extent_label.text()
