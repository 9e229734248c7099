"""The interactive loop of the dock widget: undo/redo, paint corrections, label policy, extent, precompute.

A mixin of `SegmentationWidget` (dock.py), which owns the layers, the session and the
workers; this part decides what an action records for undo, how session labels are written
into the layers, and runs the low-priority precompute worker.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_sam2.widget.corrections import (labels_after, labels_before, merge_plane, paint_corrections,
                                            touched_slices)
from napari_sam2.widget.history import History, LayerContent, WidgetState
from napari_sam2.widget.worker import reraise_runtime_errors, stream_callbacks


def precompute_steps(session: Any, cancel: threading.Event, pause: threading.Event, centre: Any):
    """Worker body: `session.precompute` outward from the slice on screen, yielding `(done, total)`."""
    return (yield from reraise_runtime_errors(stream_callbacks(
        lambda report: session.precompute(progress=lambda d, t: report((int(d), int(t))), cancel=cancel,
                                          order="outward", center=centre, pause=pause))))


class InteractiveMixin:
    """Undo/redo, corrections, label policy, extent markers and background precompute (see module notes)."""

    history: History
    _restoring: bool = False

    # ------------------------------------------------------------------ state
    def _session_objects(self) -> set:
        ids = getattr(self.session, "object_ids", None)
        return set(ids) if ids is not None else {o.obj_id for o in self.objects.objects()}

    def _layer_contents(self) -> dict:
        if self.prompt_layers is None:
            return {}
        return {"points": LayerContent.of(self.prompt_layers.points),
                "boxes": LayerContent.of(self.prompt_layers.boxes)}

    def _state(self, what: str, labels: Optional[np.ndarray] = None) -> WidgetState:
        snapshot = None
        if self.session is not None and hasattr(self.session, "snapshot"):
            snapshot = self.session.snapshot()
        if labels is None and self.labels_layer is not None:
            labels = np.array(self.labels_layer.data, copy=True)
        return WidgetState(what, labels, self.session, snapshot, frozenset(self._sent), tuple(self._corrections),
                           dict(self._committed_layers))

    def _record(self, what: str, labels: Optional[np.ndarray] = None) -> None:
        """Remember the widget as it is (or with `labels`) before an action, for undo."""
        self.history.push(self._state(what, labels))
        self._update_history_buttons()

    def _commit_layers(self) -> None:
        """The prompt layers as the session now knows them (what undo goes back to)."""
        self._committed_layers = self._layer_contents()

    def _apply_state(self, state: WidgetState) -> None:
        self._restoring = True
        try:
            if state.labels is not None and self.labels_layer is not None:
                self.labels_layer.data = np.array(state.labels, copy=True)
            if self.prompt_layers is not None:
                for name, content in state.prompt_layers.items():
                    content.put(getattr(self.prompt_layers, name))
                if not state.prompt_layers:
                    LayerContent([], self.prompt_layers.boxes.features.iloc[:0], []).put(self.prompt_layers.boxes)
                    LayerContent(np.empty((0, 3)), self.prompt_layers.points.features.iloc[:0]).put(
                        self.prompt_layers.points)
                self.prompt_layers.recolor()
            self._committed_layers = dict(state.prompt_layers)
            self._corrections = list(state.corrections)
            restorable = self.session is not None and hasattr(self.session, "restore")
            if state.session is self.session and state.snapshot is not None and restorable:
                self.session.restore(state.snapshot)
                self._sent = set(state.sent)
            elif state.session is None and restorable:
                self.session.reset()
                self._sent = set()
            else:  # another session, or one without snapshots: rebuilt from the layers on the next action
                self._drop_session()
        finally:
            self._restoring = False
        self._show_extents()

    def undo(self) -> None:
        """Undo the last action: labels, prompts and the session's prompts and results together."""
        if self.is_running():
            return
        state = self.history.undo(self._state(""))
        if state is not None:
            self._apply_state(state)
            self.status.setText(f"undid: {state.what}")
        self._update_history_buttons()

    def redo(self) -> None:
        """Redo the last undone action."""
        if self.is_running():
            return
        state = self.history.redo(self._state(""))
        if state is not None:
            self._apply_state(state)
            self.status.setText(f"redid: {state.what}")
        self._update_history_buttons()

    def _update_history_buttons(self) -> None:
        running = self.is_running()
        self.undo_button.setEnabled(not running and bool(self.history.undo_stack))
        self.redo_button.setEnabled(not running and bool(self.history.redo_stack))

    # ---------------------------------------------------------- label writing
    def _write_plane(self, target: Any, axis: int, slice_index: int, plane: np.ndarray) -> None:
        """Write the session's labels of one slice into `target`, under the label policy."""
        index = [slice(None)] * 3
        index[axis] = slice_index
        index = tuple(index)
        old = np.asarray(target.data[index])
        target.data[index] = merge_plane(old, plane, self.protect_check.isChecked(), self._session_objects())
        target.refresh()

    def _write_labels(self, target: Any, labels: np.ndarray) -> None:
        merged = merge_plane(np.asarray(target.data), labels, self.protect_check.isChecked(), self._session_objects())
        target.data = np.array(merged, copy=True)

    # ------------------------------------------------------------- tools, prompts
    def use_lasso_tool(self) -> None:
        prompts = self._guarded(self.ensure_prompt_layers)
        if prompts is not None:
            self.viewer.layers.selection.active = prompts.boxes
            prompts.boxes.mode = "add_polygon_lasso"

    def use_scribble_tool(self) -> None:
        prompts = self._guarded(self.ensure_prompt_layers)
        if prompts is not None:
            self.viewer.layers.selection.active = prompts.boxes
            prompts.boxes.mode = "add_path"

    def use_paint_tool(self) -> None:
        if self._guarded(self.ensure_prompt_layers) is None:
            return
        labels = self.ensure_labels_layer()
        labels.selected_label = self.objects.current_id() or 1
        self.viewer.layers.selection.active = labels
        labels.mode = "paint"

    def _on_prompt_data(self, event: Any) -> None:
        """A prompt was added or moved: send it (its slice's mask appears) once the mouse is released."""
        action = str(getattr(event, "action", "")).lower()
        if self._restoring or not (action.endswith("added") or action.endswith("changed")):
            return
        self._prompt_timer.start()

    def _prompt_timer_fired(self) -> None:
        drawing = self.prompt_layers is not None and getattr(self.prompt_layers.boxes, "_is_creating", False)
        if QApplication.mouseButtons() or drawing:
            self._prompt_timer.start()  # still drawing (a drag, or a lasso/path not closed yet)
            return
        self.send_prompts()

    def _embedding_store(self) -> Any:
        """Where embeddings persist ("auto": the user cache; see sam2core.predictor.embedding_store)."""
        return "auto"

    def _prepare_session(self) -> None:
        """A model is ready and a scan open: make the session now and start encoding ahead."""
        if self.session is not None or self.is_running() or self.image_layer() is None \
                or not self.precompute_check.isChecked() or not self.model_panel.is_ready():
            return
        from napari_sam2.widget.propagation import make_session, scan_from_image_layer

        choice = self.model_panel.choice()
        session = self._guarded(lambda: make_session(
            scan_from_image_layer(self.image_layer()), self.model_panel.model, axis=self.axis_combo.currentText(),
            window=self._window_spec(), device=choice.device, embedding_store=self._embedding_store()))
        if session is not None:
            self.session, self._session_key, self._sent = session, self._session_settings(), set()
            self.start_precompute()

    # ------------------------------------------------------------------ paint
    def _on_paint(self, event: Any) -> None:
        """A paint or erase stroke on the labels layer: a mask correction per changed object and slice."""
        if self._restoring or self.labels_layer is None:
            return
        axis = self._slicing_axis()
        after = labels_after(np.asarray(self.labels_layer.data), event.value)  # the layer may not hold it yet
        before = labels_before(after, event.value)
        items, skipped = paint_corrections(before, after, axis, touched_slices(event.value, axis),
                                           [o.obj_id for o in self.objects.objects()])
        if skipped:
            self.status.setText("; ".join(skipped))
        if not items:
            return
        self._record("paint correction", labels=before)
        self._corrections.extend(items)
        self._recorded = True  # the run that sends the correction is part of this undo step
        self.send_prompts(then_propagate=self.at_once_check.isChecked())

    # ----------------------------------------------------------------- extent
    def set_extent_here(self, end: str) -> None:
        """"first" or "last": the current object starts or ends on the slice on screen."""
        obj = self.objects.current_id()
        if self.session is None or obj not in getattr(self.session, "object_ids", []) or self.is_running():
            self.status.setText("prompt the object first (a box, points or a lasso), then mark its extent")
            return
        here = int(self.viewer.dims.current_step[self._slicing_axis()])
        first, last = self._given_extents().get(obj, (None, None))  # an end not given stays with the stop rule
        first, last = (here, last) if end == "first" else (first, here)
        if first is not None and last is not None and first > last:
            first, last = (here, here)
        self._record(f"extent of object {obj}")
        try:
            self.session.set_extent(obj, first, last)
        except Exception:
            self.history.drop_last()
            self._update_history_buttons()
            raise
        self._write_labels(self.ensure_labels_layer(), np.asarray(self.session.labels))
        self._show_extents()

    def _given_extents(self) -> dict:
        """Object → (first, last) the user marked, None for an end left to the stop rule."""
        if self.session is None:
            return {}
        given = getattr(self.session, "given_extents", None)
        return dict(given) if given is not None else dict(getattr(self.session, "extents", {}))

    def _show_extents(self) -> None:
        def end(value: Any) -> str:
            return "…" if value is None else str(value)

        text = ", ".join(f"{getattr(self.objects.get(o), 'name', o)}: slices {end(a)}–{end(b)}"
                         for o, (a, b) in self._given_extents().items())
        self.extent_label.setText(f"extent: {text}" if text else "extent: whole scan")

    # -------------------------------------------------------------- precompute
    def start_precompute(self) -> None:
        """Encode the slices of the current session outward from the slice on screen (low priority)."""
        from napari.qt.threading import create_worker

        session = self.session
        if (session is None or not hasattr(session, "precompute") or self._precompute_worker is not None
                or not self.precompute_check.isChecked()
                or not hasattr(getattr(session, "predictor", None), "encode_frame")):
            return
        self._precompute_cancel = threading.Event()
        axis = self._slicing_axis()
        viewer = self.viewer
        worker = create_worker(precompute_steps, session, self._precompute_cancel, self._precompute_pause,
                               lambda: int(viewer.dims.current_step[axis]), _start_thread=False,
                               _connect={"yielded": self._on_precompute_step})
        worker.finished.connect(lambda: self._on_precompute_finished(worker))
        self._precompute_worker = worker
        self._precompute_session = session
        self.precompute_bar.setVisible(True)
        worker.start()

    def _on_precompute_step(self, step: tuple) -> None:
        done, total = step
        try:
            self.precompute_bar.setRange(0, max(total, 1))
            self.precompute_bar.setValue(done)
        except RuntimeError:  # the dock was closed while the worker ran (its Qt widgets are gone)
            self._precompute_cancel.set()

    def _on_precompute_finished(self, worker: Any) -> None:
        if self._precompute_worker is worker:
            self._precompute_worker = None
            try:
                if self.precompute_bar.value() >= self.precompute_bar.maximum():
                    self.precompute_bar.setFormat("slices encoded ahead: %v / %m")
            except RuntimeError:  # the dock was closed while the worker ran: nothing to show, nothing to restart
                return
            if self.session is not None and self._precompute_session is not self.session:
                QTimer.singleShot(0, self.start_precompute)  # the session changed meanwhile: encode for the new one

    def stop_precompute(self) -> None:
        self._precompute_cancel.set()

    def toggle_precompute_pause(self) -> None:
        self._user_paused = not self._user_paused
        self.pause_button.setText("Resume" if self._user_paused else "Pause")
        self._update_precompute_pause()

    def _update_precompute_pause(self) -> None:
        if self._user_paused or self.is_running():
            self._precompute_pause.set()
        else:
            self._precompute_pause.clear()
