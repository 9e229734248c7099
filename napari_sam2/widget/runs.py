"""Running the model from the dock widget: the session, prompts sent at once, propagation in a worker.

A mixin of `SegmentationWidget` (dock.py), which owns the controls and the layers; this part
collects the prompts not sent yet, decides when the session must be rebuilt, runs prompts and
propagation in a napari worker (the UI thread only writes labels), and reports the outcome.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np
from qtpy.QtCore import QTimer

from napari_sam2.layers import is_ct_like
from napari_sam2.widget.corrections import shape_prompts
from napari_sam2.widget.propagation import PromptBatch, propagation_steps, scan_from_image_layer
from napari_sam2.widget.worker import qt_alive


class RunMixin:
    """The session and the runs of `SegmentationWidget`: send prompts, propagate, cancel (see module notes)."""

    # --- session ------------------------------------------------------------------------
    def _drop_session(self) -> None:
        self.stop_precompute()
        self.session = None
        self._session_key = None
        self._sent = set()

    def _session_settings(self) -> tuple:
        choice = self.model_panel.choice()
        return (id(self.image_layer()), choice.name, choice.checkpoint, choice.device,
                self.axis_combo.currentText(), self.window_combo.currentText())

    def _collect_prompts(self) -> PromptBatch:
        """Prompts to send now: new ones only, or all when the session must be rebuilt."""
        prompts = self.ensure_prompt_layers()
        axis = self._slicing_axis() if self.session is not None and self._session_key == self._session_settings() \
            else self._axis_for_settings()
        batch = PromptBatch.from_layers(prompts, self.objects.objects(), axis=axis)
        known = {o.obj_id for o in self.objects.objects()}
        masks, groups, skipped = shape_prompts(prompts.boxes, known, axis, tuple(self.image_layer().data.shape))
        batch = PromptBatch(axis, batch.point_groups + tuple(groups), batch.boxes, batch.skipped + tuple(skipped),
                            tuple(masks)).with_masks(c for c in self._corrections if c.obj_id in known)
        if batch.skipped:
            from napari.utils.notifications import show_warning

            show_warning("napari-sam2 ignored " + "; ".join(batch.skipped))
        rebuild = (
            self.session is None
            or self._session_key != self._session_settings()
            or not self._sent.issubset(batch.keys())  # a sent prompt was deleted or moved
        )
        if rebuild:
            self._drop_session()
        return batch if rebuild else batch.without(self._sent)

    def _axis_for_settings(self) -> int:
        from volume.slicing import slicing_axis

        return slicing_axis(self.axis_combo.currentText(), scan_from_image_layer(self.image_layer()).direction)

    # --- prompts and propagation ----------------------------------------------------------
    def is_running(self) -> bool:
        return self._worker is not None

    def _set_running(self, running: bool) -> None:
        self.propagate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self._update_history_buttons()
        self.export_button.setEnabled(not running)
        self.pacs.send_button.setEnabled(not running and not self.pacs.is_sending())
        self._update_precompute_pause()

    def send_prompts(self, then_propagate: bool = False) -> None:
        """Send the prompts not sent yet; each prompted slice's mask appears at once (in a worker)."""
        if self.is_running():
            self._prompt_waiting = True
            return
        if self.image_layer() is None or self.prompt_layers is None:
            return
        batch = self._guarded(self._collect_prompts)
        if batch is None:
            return
        if batch.empty and self.session is not None:
            if then_propagate:
                self.propagate()
            return
        if batch.empty:
            return
        self._run(batch, propagate=then_propagate)

    def propagate(self, direction: Optional[str] = None):
        """Send new prompts and propagate (in workers); returns nothing, progress shows in the UI."""
        if self.is_running():
            return
        if direction is not None:
            self.direction_combo.setCurrentText(direction)
        batch = self._guarded(self._collect_prompts)
        if batch is None:
            return
        if batch.empty and self.session is None:
            from napari.utils.notifications import show_warning

            show_warning("napari-sam2: no prompt yet — click points or draw a box on one slice first")
            return
        self._run(batch, propagate=True)

    def _run(self, batch: PromptBatch, propagate: bool) -> None:
        self._set_running(True)
        self._worker = "loading"  # blocks a second click while the model loads
        self._set_running(True)
        self.status.setText("loading the model…")
        self._cancel = threading.Event()
        self.model_panel.load(then=lambda model: self._start_or_report(model, batch, propagate),
                              failed=self._on_finished)

    def _start_or_report(self, model: Any, batch: PromptBatch, propagate: bool = True) -> None:
        if self._guarded(self._start_propagation, model, batch, propagate) is None and \
                not hasattr(self._worker, "start"):
            self._on_finished()

    def _start_propagation(self, model: Any, batch: PromptBatch, propagate: bool = True) -> None:
        from napari.qt.threading import create_worker

        if self._cancel.is_set():
            self._on_finished()
            return
        image = self.image_layer()
        self._run_target = self.ensure_labels_layer()
        if getattr(self, "_recorded", False):
            self._recorded = False
        elif not batch.empty or propagate:
            what = ("propagation" if not self._sent else "correction") if propagate else "prompt"
            self._record(what)
        self.progress.setRange(0, 0)
        self.status.setText("encoding the prompted slices…" if propagate else "segmenting the prompted slice…")
        choice = self.model_panel.choice()
        settings = self._session_settings()
        scan = scan_from_image_layer(image) if self.session is None else None
        worker = create_worker(
            propagation_steps,
            session=self.session,
            scan=scan,
            model=model,
            axis=self.axis_combo.currentText(),
            window=self._window_spec(),
            device=choice.device,
            precision=choice.precision,
            prompts=batch,
            direction=self.direction_combo.currentText(),
            cancel=self._cancel,
            propagate=propagate,
            embedding_store=self._embedding_store(),
            _connect={"yielded": self._on_step, "errored": self._on_error},
            _start_thread=False,
        )
        worker.returned.connect(lambda result: self._on_returned(result, batch, settings, propagate))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.last_run = {"slices": 0, "cancelled": False}
        worker.start()

    def _window_spec(self) -> str:
        """The window the model sees; "auto" on a CT-like scan without a CT modality tag is soft tissue."""
        name = self.window_combo.currentText()
        layer = self.image_layer()
        if name == "auto" and layer is not None:
            scan = scan_from_image_layer(layer)
            if str(scan.modality).upper() != "CT" and is_ct_like(scan):
                return "soft_tissue"
        return name

    def _dock_alive(self) -> bool:
        """False once Qt has deleted the dock's widgets (the dock or the viewer was closed while a worker ran)."""
        return qt_alive(self.status)

    def _on_step(self, step: Any) -> None:
        """One update from the worker, in the UI thread: a new session, or one finished slice."""
        if not self._dock_alive():
            self._cancel.set()
            return
        if step.session is not None:
            if self._run_target is self.labels_layer:
                self.session = step.session
            return
        if step.total:
            self.progress.setRange(0, step.total)
            self.progress.setValue(step.done)
        if step.slice_index is not None and step.slice_labels is not None:
            self._write_plane(self._run_target, step.axis, step.slice_index, step.slice_labels)
        self.last_run["slices"] = step.done
        self.status.setText(f"propagating… {step.done} / {step.total} slices")

    def _on_returned(self, result: Any, batch: PromptBatch, settings: tuple, propagate: bool = True) -> None:
        if not self._dock_alive():  # the dock was closed while the run went on: nothing to show it in
            return
        target = self._run_target
        if propagate:
            self._write_labels(target, np.asarray(result.labels))
        else:
            for s in sorted(batch.slices()):
                self._write_plane(target, batch.axis, s, np.take(np.asarray(result.labels), s, axis=batch.axis))
        if target is not self.labels_layer:  # the image was changed meanwhile
            return
        self.session = result.session
        self._session_key = settings
        self._sent |= batch.keys()
        self._commit_layers()
        self.last_run["cancelled"] = result.cancelled
        if self._precompute_worker is not None and self._precompute_session is not self.session:
            self.stop_precompute()
        QTimer.singleShot(0, self.start_precompute)
        if not propagate:
            self.status.setText(f"prompt on slice(s) {', '.join(map(str, sorted(batch.slices())))} in "
                                f"{result.seconds:.2f} s; Propagate to carry it through the volume")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            return
        what = "cancelled" if result.cancelled else "done"
        voxel_ml = float(np.prod(scan_from_image_layer(self.image_layer()).spacing_mm)) / 1000.0
        windows = getattr(result.session, "object_windows", {}) if result.session is not None else {}
        volumes = ", ".join(
            f"{getattr(self.objects.get(obj), 'name', obj)}: {n * voxel_ml:.1f} ml"
            + (f" (window {windows[obj].name})" if obj in windows else "") for obj, n in result.voxels.items())
        self.status.setText(f"{what}: {result.slices_done} slices in {result.seconds:.1f} s; {volumes or 'nothing found'}")
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)

    def _on_error(self, exc: Exception) -> None:
        """A failed run: notify, put labels and session back as before it, keep the UI usable."""
        from napari.utils.notifications import show_error

        show_error(f"napari-sam2: propagation failed: {exc}")
        if not self._dock_alive():
            return
        self.status.setText(f"error: {exc}")
        if self.history and self._run_target is self.labels_layer:
            state = self.history.drop_last()
            self._apply_state(state)
            if state.session is not self.session or state.snapshot is None:
                self._drop_session()

    def _on_finished(self) -> None:
        self._worker = None
        if not self._dock_alive():
            return
        self._set_running(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if self._prompt_waiting:
            self._prompt_waiting = False
            QTimer.singleShot(0, self.send_prompts)

    def cancel(self) -> None:
        """Stop the running propagation after the current slice (labels so far are kept)."""
        self._cancel.set()
        worker = self._worker
        if worker is not None and worker != "loading" and hasattr(worker, "quit"):
            # the library sees the event within one slice; quit ends the generator on its next yield
            self.status.setText("cancelling…")
