"""The interactive loop in a real viewer with the real LiteMedSAM on the sample CT (slow on a CPU).

Instant 2D result on a box, paint correction honoured by propagation, lasso and scribble
prompts, undo/redo of labels and session together, extent markers, a second viewer reading
the embedding store (nothing encoded), a corrupt store rebuilt, and the UI event loop kept
responsive while slices are encoded in the background. Prompts go on slice 16 of 20 and
propagation runs forward, so few slices are encoded; the tests of this module share one
embedding store so most slices are encoded once.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_sam2.widget.dock import SegmentationWidget
from tests.napari.helpers import wait_until_idle

pytestmark = pytest.mark.slow

LIVER = 5
PROMPT_SLICE = 16
TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def reference_liver():
    import scanio
    from sample_data import sample_ct_path, sample_labels_path

    scan = scanio.read_scan(sample_ct_path())
    labels = scanio.resample_like(scanio.read_scan(sample_labels_path()), like=scan, is_label=True)
    return labels.array == LIVER


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-embeddings")


@pytest.fixture
def open_widget(make_napari_viewer, shared_store, monkeypatch):
    """A viewer with the sample CT and the dock widget; precompute off unless asked."""
    from sam2core.predictor.embedding_store import ROOT_ENV
    from sample_data import sample_ct_path

    monkeypatch.setenv(ROOT_ENV, str(shared_store))

    def make(precompute: bool = False) -> SegmentationWidget:
        viewer = make_napari_viewer()
        viewer.open(str(sample_ct_path()), plugin="napari-sam2")
        widget = SegmentationWidget(viewer)
        widget.precompute_check.setChecked(precompute)
        viewer.window.add_dock_widget(widget)
        return widget

    return make


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def _liver_box(widget, reference_liver, obj_id=None):
    obj = widget.objects.add_object("liver") if obj_id is None else widget.objects.get(obj_id)
    ys, xs = np.nonzero(reference_liver[PROMPT_SLICE])
    widget.ensure_prompt_layers().add_box(obj.obj_id, 0, PROMPT_SLICE, (ys.min(), xs.min()), (ys.max(), xs.max()))
    return obj


def _wait_for_slice(qtbot, widget, index=PROMPT_SLICE):
    qtbot.waitUntil(lambda: widget.labels_layer is not None and np.asarray(widget.labels_layer.data)[index].any()
                    and not widget.is_running(), timeout=TIMEOUT_MS)


def _erase_right_half(widget, obj_id, index=PROMPT_SLICE) -> np.ndarray:
    """Erase the object's right half on one slice as a paint stroke would (napari history → paint event)."""
    layer = widget.labels_layer
    plane = np.asarray(layer.data[index])
    cols = np.flatnonzero((plane == obj_id).any(axis=0))
    cut = int((cols[0] + cols[-1]) // 2)
    rr, cc = np.nonzero(plane[:, cut:] == obj_id)
    layer.data_setitem((np.full(rr.shape, index), rr, cc + cut), 0)
    return np.asarray(layer.data[index]) == obj_id


def test_box_shows_the_slice_mask_before_propagate(open_widget, qtbot, reference_liver):
    widget = open_widget()
    liver = _liver_box(widget, reference_liver)
    _wait_for_slice(qtbot, widget)
    labels = np.asarray(widget.labels_layer.data)
    assert _dice(labels[PROMPT_SLICE] == liver.obj_id, reference_liver[PROMPT_SLICE]) > 0.8, widget.status.text()
    assert np.flatnonzero(labels.any(axis=(1, 2))).tolist() == [PROMPT_SLICE]  # nothing propagated yet
    assert widget.session.prompted_slices == {liver.obj_id: [PROMPT_SLICE]}


def test_paint_correction_is_honoured_by_propagation_and_undo_redo_round_trips(open_widget, qtbot,
                                                                                reference_liver):
    widget = open_widget()
    liver = _liver_box(widget, reference_liver)
    _wait_for_slice(qtbot, widget)
    widget.propagate(direction="forward")
    wait_until_idle(qtbot, widget, TIMEOUT_MS)
    before_labels = np.array(widget.labels_layer.data, copy=True)
    before_prompts = widget.session.prompted_slices
    painted = _erase_right_half(widget, liver.obj_id)
    wait_until_idle(qtbot, widget, TIMEOUT_MS)
    widget.propagate(direction="forward")
    wait_until_idle(qtbot, widget, TIMEOUT_MS)
    after_labels = np.array(widget.labels_layer.data, copy=True)
    np.testing.assert_array_equal(after_labels[PROMPT_SLICE] == liver.obj_id, painted)
    next_slice = PROMPT_SLICE + 1
    assert (after_labels[next_slice] == liver.obj_id).sum() < 0.8 * (before_labels[next_slice] == liver.obj_id).sum()

    widget.undo()  # the propagation after the correction
    widget.undo()  # the correction itself
    np.testing.assert_array_equal(widget.labels_layer.data, before_labels)
    assert widget.session.prompted_slices == before_prompts
    np.testing.assert_array_equal(widget.session.labels == liver.obj_id, before_labels == liver.obj_id)
    widget.redo()
    widget.redo()
    np.testing.assert_array_equal(widget.labels_layer.data, after_labels)
    np.testing.assert_array_equal(widget.session.labels[PROMPT_SLICE] == liver.obj_id, painted)


def test_lasso_is_a_mask_prompt_and_scribble_gives_points(open_widget, qtbot, reference_liver):
    widget = open_widget()
    prompts = widget.ensure_prompt_layers()
    liver = widget.objects.add_object("liver")
    ys, xs = np.nonzero(reference_liver[PROMPT_SLICE])
    cy, cx = float(ys.mean()), float(xs.mean())
    square = np.array([(cy - 10, cx - 10), (cy - 10, cx + 10), (cy + 10, cx + 10), (cy + 10, cx - 10)])
    prompts.add_lasso(liver.obj_id, 0, PROMPT_SLICE, square)
    _wait_for_slice(qtbot, widget)
    mask = np.asarray(widget.labels_layer.data[PROMPT_SLICE]) == liver.obj_id
    assert 380 <= mask.sum() <= 460 and mask[int(cy), int(cx)]  # the polygon itself (21 x 21 pixels)

    other = widget.objects.add_object("liver again")
    prompts.add_scribble(other.obj_id, 0, PROMPT_SLICE - 4, np.array([(cy - 15, cx - 20), (cy + 5, cx + 15)]))
    qtbot.waitUntil(lambda: np.asarray(widget.labels_layer.data)[PROMPT_SLICE - 4].any() and not widget.is_running(),
                    timeout=TIMEOUT_MS)
    [points] = [p for (obj, s), p in _session_prompts(widget).items() if obj == other.obj_id]
    assert len(points.points) >= 5 and set(points.labels) == {1}
    found = np.asarray(widget.labels_layer.data[PROMPT_SLICE - 4]) == other.obj_id
    assert found.any()  # LiteMedSAM is weak on points alone: the mask's quality is not judged here


def _session_prompts(widget) -> dict:
    return {(obj, s): prompt for obj, per_slice in widget.session._prompts.items() for s, prompt in per_slice.items()}


def test_extent_markers_limit_propagation(open_widget, qtbot, reference_liver):
    widget = open_widget()
    liver = _liver_box(widget, reference_liver)
    _wait_for_slice(qtbot, widget)
    widget.viewer.dims.set_current_step(0, PROMPT_SLICE + 2)
    widget.set_extent_here("last")
    assert widget.session.extents == {liver.obj_id: (0, PROMPT_SLICE + 2)}
    assert "slices …–18" in widget.extent_label.text()
    widget.propagate(direction="forward")
    wait_until_idle(qtbot, widget, TIMEOUT_MS)
    present = np.flatnonzero((np.asarray(widget.labels_layer.data) == liver.obj_id).any(axis=(1, 2))).tolist()
    assert present == [PROMPT_SLICE, PROMPT_SLICE + 1, PROMPT_SLICE + 2]


def test_second_viewer_on_the_same_scan_encodes_nothing_and_a_corrupt_store_is_rebuilt(
        open_widget, qtbot, reference_liver, shared_store):
    first = open_widget()
    _liver_box(first, reference_liver)
    _wait_for_slice(qtbot, first)
    first.propagate(direction="forward")
    wait_until_idle(qtbot, first, TIMEOUT_MS)
    expected = np.array(first.labels_layer.data, copy=True)

    second = open_widget()
    _liver_box(second, reference_liver)
    _wait_for_slice(qtbot, second)
    second.propagate(direction="forward")
    wait_until_idle(qtbot, second, TIMEOUT_MS)
    states = [track.state for track in second.session._tracks.tracks.values()]
    assert sum(s["num_encoded"] for s in states) == 0 and sum(s.get("num_from_store", 0) for s in states) >= 4
    np.testing.assert_array_equal(second.labels_layer.data, expected)

    from sam2core.predictor import embedding_store

    chunks = [p for p in shared_store.rglob("*") if p.is_file() and "c" in p.relative_to(shared_store).parts]
    assert chunks
    for chunk in chunks:
        chunk.write_bytes(b"\x01broken")
    embedding_store._open_stores.clear()  # a later process opens the damaged folder
    third = open_widget()
    _liver_box(third, reference_liver)
    _wait_for_slice(qtbot, third)
    third.propagate(direction="forward")
    wait_until_idle(qtbot, third, TIMEOUT_MS)
    states = [track.state for track in third.session._tracks.tracks.values()]
    assert sum(s["num_encoded"] for s in states) >= 4  # nothing damaged was trusted
    assert third.session.predictor.embedding_store.rebuilt >= 4
    np.testing.assert_array_equal(third.labels_layer.data, expected)


def test_ui_event_loop_never_stalls_while_slices_are_encoded_ahead(open_widget, qtbot, tmp_path, monkeypatch):
    from qtpy.QtCore import QTimer

    from sam2core.predictor.embedding_store import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "fresh-store"))  # every slice must really be encoded
    widget = open_widget(precompute=True)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "fresh-store"))
    widget.model_panel.load()
    qtbot.waitUntil(lambda: widget._precompute_worker is not None, timeout=TIMEOUT_MS)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    qtbot.waitUntil(lambda: widget.precompute_bar.value() >= 4, timeout=TIMEOUT_MS)
    timer.stop()
    widget.stop_precompute()
    qtbot.waitUntil(lambda: widget._precompute_worker is None, timeout=TIMEOUT_MS)
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() < 0.150, f"longest stall {gaps.max() * 1000:.0f} ms"
