"""The dock widget: pick a scan and a model, prompt one slice, propagate in 3D, correct, undo, export.

Everything slow (model loading, download, prompt encoding, propagation) runs in napari
`thread_worker`s; the UI thread only touches layers. The labels layer is updated slice by
slice as the worker yields.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from napari_sam2.layers import SCAN_KEY, is_ct_like, labels_colormap, layer_geometry, window_limits
from napari_sam2.widget.model_panel import ModelPanel
from napari_sam2.widget.objects import ObjectList
from napari_sam2.widget.pacs import PacsControls
from napari_sam2.widget.prompts import PromptLayers
from napari_sam2.widget.propagation import (
    DIRECTIONS,
    PromptBatch,
    propagation_steps,
    scan_from_image_layer,
)

AXES = ("axial", "coronal", "sagittal")
WINDOWS = ("auto", "soft_tissue", "liver", "lung", "bone", "brain", "percentile")
EXPORT_FILTER = "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha);;DICOM SEG (*.dcm)"
MAX_UNDO = 10


class SegmentationWidget(QWidget):
    """napari-sam2 dock widget (npe2 `widgets` contribution; napari passes the viewer)."""

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: Any = None
        self._session_key: Optional[tuple] = None
        self._sent: set = set()
        self._history: list[tuple[str, np.ndarray]] = []
        self._worker: Any = None
        self._cancel = threading.Event()
        self.prompt_layers: Optional[PromptLayers] = None
        self.labels_layer: Any = None
        self._run_target: Any = None  # the labels layer the running propagation writes to
        self.last_run: dict[str, Any] = {}

        # --- scan --------------------------------------------------------------------
        self.image_combo = QComboBox()
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(AXES)
        self.window_combo = QComboBox()
        self.window_combo.addItems(WINDOWS)
        scan_box = QGroupBox("Scan")
        scan_form = QFormLayout(scan_box)
        scan_form.addRow("image", self.image_combo)
        scan_form.addRow("axis", self.axis_combo)
        scan_form.addRow("window", self.window_combo)
        self.pacs = PacsControls(self)  # "Open from PACS…" and "Send SEG to PACS" (widget/pacs.py)
        scan_form.addRow(self.pacs.open_button)

        # --- model -------------------------------------------------------------------
        self.model_panel = ModelPanel()
        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.model_panel)

        # --- objects and prompts ------------------------------------------------------
        self.objects = ObjectList()
        self.points_button = QPushButton("Click points")
        self.box_button = QPushButton("Draw box")
        self.negative_check = QCheckBox("negative points (or Shift+click)")
        objects_box = QGroupBox("Objects and prompts")
        objects_layout = QVBoxLayout(objects_box)
        objects_layout.addWidget(self.objects)
        tools = QHBoxLayout()
        tools.addWidget(self.points_button)
        tools.addWidget(self.box_button)
        objects_layout.addLayout(tools)
        objects_layout.addWidget(self.negative_check)

        # --- propagation --------------------------------------------------------------
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(DIRECTIONS)
        self.propagate_button = QPushButton("Propagate")
        self.cancel_button = QPushButton("Cancel")
        self.undo_button = QPushButton("Undo")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m slices")
        self.progress.setValue(0)
        self.status = QLabel("Add an object, then click points or draw a box on one slice.")
        self.status.setWordWrap(True)
        run_box = QGroupBox("Propagate")
        run_layout = QVBoxLayout(run_box)
        run_row = QHBoxLayout()
        run_row.addWidget(self.direction_combo)
        run_row.addWidget(self.propagate_button)
        run_layout.addLayout(run_row)
        control_row = QHBoxLayout()
        control_row.addWidget(self.cancel_button)
        control_row.addWidget(self.undo_button)
        run_layout.addLayout(control_row)
        run_layout.addWidget(self.progress)
        run_layout.addWidget(self.status)

        # --- export -------------------------------------------------------------------
        self.export_button = QPushButton("Export labels…")

        for control, tip in (
            (self.axis_combo, "slices the model walks through; also sets napari's slider to that axis"),
            (self.window_combo, "intensity window the model sees (CT presets in HU; 'auto': soft tissue "
                                "for CT, percentiles for MR); also applied to the display"),
            (self.points_button, "click on the object (positive); Shift+click or the toggle below: negative"),
            (self.box_button, "drag a rectangle around the object on one slice"),
            (self.direction_combo, "propagate from each prompted slice in both directions, or one way"),
            (self.propagate_button, "send new prompts and carry every object through the volume; "
                                    "a prompt added afterwards is a correction"),
            (self.cancel_button, "stop after the current slice; the labels so far are kept"),
            (self.undo_button, "restore the labels from before the last propagation, correction or removal"),
            (self.export_button, "write the labels with the scan's geometry: NIfTI, NRRD, MHA, or DICOM SEG "
                                 "(.dcm) when the scan came from DICOM"),
        ):
            control.setToolTip(tip)

        content = QWidget()
        layout = QVBoxLayout(content)
        for part in (scan_box, model_box, objects_box, run_box):
            layout.addWidget(part)
        layout.addLayout(self.pacs.export_row(self.export_button))
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumWidth(320)

        # --- wiring -------------------------------------------------------------------
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        self.viewer.layers.events.moved.connect(self._refresh_images)
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        self.window_combo.currentTextChanged.connect(self._on_window_changed)
        self.axis_combo.currentTextChanged.connect(self._on_axis_changed)
        self.objects.changed.connect(self._on_objects_changed)
        self.objects.current_changed.connect(lambda _: self._on_objects_changed())
        self.objects.removed.connect(self._on_object_removed)
        self.points_button.clicked.connect(self.use_points_tool)
        self.box_button.clicked.connect(self.use_box_tool)
        self.negative_check.toggled.connect(self._on_negative_toggled)
        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.cancel_button.clicked.connect(self.cancel)
        self.undo_button.clicked.connect(self.undo)
        self.export_button.clicked.connect(self._export_clicked)
        self._refresh_images()
        self._set_running(False)

    # --- scan / image layer ----------------------------------------------------------------
    def _image_layers(self) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image) and layer.ndim == 3]

    def _refresh_images(self, *_: Any) -> None:
        current = self.image_combo.currentText()
        names = [layer.name for layer in self._image_layers()]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        if self.image_combo.currentText() != current:
            self._on_image_changed(self.image_combo.currentText())

    def image_layer(self) -> Any:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def _on_image_changed(self, _: str) -> None:
        if self.is_running():
            self.cancel()  # the run finishes into its own labels layer
        self.prompt_layers = None
        self.labels_layer = None
        self._drop_session()
        self._history.clear()

    def _on_window_changed(self, name: str) -> None:
        """Show the image with the window the model will see (CT presets)."""
        from volume.windowing import CT_PRESETS

        layer = self.image_layer()
        if layer is None:
            return
        scan = layer.metadata.get(SCAN_KEY)
        key = "soft_tissue" if name == "auto" and scan is not None and is_ct_like(scan) else name
        if key in CT_PRESETS:
            layer.contrast_limits = window_limits(*CT_PRESETS[key])

    def _on_axis_changed(self, view: str) -> None:
        """Show the slices the session will use: the slicing axis becomes napari's slider."""
        from volume.slicing import slicing_axis

        layer = self.image_layer()
        if layer is None or self.viewer.dims.ndim != 3:
            return
        axis = slicing_axis(view, scan_from_image_layer(layer).direction)
        self.viewer.dims.order = (axis, *[a for a in range(3) if a != axis])

    # --- objects and prompts ------------------------------------------------------------------
    def ensure_prompt_layers(self) -> PromptLayers:
        """The prompt layers of the chosen image, created on first use; an object exists."""
        layer = self.image_layer()
        if layer is None:
            raise RuntimeError("open a scan first (File > Open, or File > Open Sample > napari-sam2)")
        if not self.objects.objects():
            self.objects.add_object()
        if self.prompt_layers is None or self.prompt_layers.image_layer is not layer:
            self.prompt_layers = PromptLayers(self.viewer, layer)
            self.viewer.layers.selection.active = layer
        self._on_objects_changed()
        return self.prompt_layers

    def use_points_tool(self) -> None:
        prompts = self._guarded(self.ensure_prompt_layers)
        if prompts is not None:
            self.viewer.layers.selection.active = prompts.points
            prompts.points.mode = "add"

    def use_box_tool(self) -> None:
        prompts = self._guarded(self.ensure_prompt_layers)
        if prompts is not None:
            self.viewer.layers.selection.active = prompts.boxes
            prompts.boxes.mode = "add_rectangle"

    def _on_negative_toggled(self, checked: bool) -> None:
        if self.prompt_layers is not None:
            self.prompt_layers.set_negative(checked)

    def _on_objects_changed(self) -> None:
        colors = self.objects.colors()
        if self.prompt_layers is not None:
            self.prompt_layers.set_current_object(self.objects.current_id(), colors)
        if self.labels_layer is not None:
            self.labels_layer.colormap = labels_colormap(colors)

    def _on_object_removed(self, obj_id: int) -> None:
        if self.prompt_layers is not None:
            self.prompt_layers.remove_object(obj_id)
        if self.labels_layer is not None:
            data = np.asarray(self.labels_layer.data)
            if (data == obj_id).any():
                self._push_history(f"remove object {obj_id}")
                data[data == obj_id] = 0
                self.labels_layer.refresh()
        if self.session is not None and not self.is_running():
            try:
                self.session.remove_object(obj_id)
            except Exception:  # an object the session never saw
                pass
            self._sent = {key for key in self._sent if key[1] != obj_id}

    # --- labels layer ----------------------------------------------------------------------
    def ensure_labels_layer(self) -> Any:
        image = self.image_layer()
        name = f"{image.name} segmentation"
        if self.labels_layer is None or self.labels_layer not in self.viewer.layers:
            if name in self.viewer.layers:
                self.labels_layer = self.viewer.layers[name]
            else:
                self.labels_layer = self.viewer.add_labels(
                    np.zeros(image.data.shape, dtype=np.uint16),
                    name=name,
                    opacity=0.6,
                    metadata=dict(image.metadata),
                    **layer_geometry(image),
                )
            self.labels_layer.colormap = labels_colormap(self.objects.colors())
        return self.labels_layer

    def _push_history(self, what: str) -> None:
        self._history.append((what, np.array(self.labels_layer.data, copy=True)))
        del self._history[:-MAX_UNDO]
        self.undo_button.setEnabled(True)

    def undo(self) -> None:
        """Restore the labels from before the last propagation, correction or removal."""
        if not self._history or self.is_running():
            return
        what, labels = self._history.pop()
        self.labels_layer.data = labels
        # The session's memory holds the undone prompts: the next run starts a new session
        # and re-sends the prompts still on the layers.
        self._drop_session()
        self.status.setText(f"undid: {what}")
        self.undo_button.setEnabled(bool(self._history))

    # --- session ------------------------------------------------------------------------
    def _drop_session(self) -> None:
        self.session = None
        self._session_key = None
        self._sent = set()

    def _session_settings(self) -> tuple:
        choice = self.model_panel.choice()
        return (id(self.image_layer()), choice.name, choice.checkpoint, choice.device,
                self.axis_combo.currentText(), self.window_combo.currentText())

    def _collect_prompts(self) -> PromptBatch:
        """Prompts to send now: new ones only, or all when the session must be rebuilt."""
        from volume.slicing import slicing_axis

        prompts = self.ensure_prompt_layers()
        scan = scan_from_image_layer(self.image_layer())
        axis = slicing_axis(self.axis_combo.currentText(), scan.direction)
        batch = PromptBatch.from_layers(prompts, self.objects.objects(), axis=axis)
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

    # --- propagation --------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._worker is not None

    def _set_running(self, running: bool) -> None:
        self.propagate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.undo_button.setEnabled(not running and bool(self._history))
        self.export_button.setEnabled(not running)
        self.pacs.send_button.setEnabled(not running and not self.pacs.is_sending())

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
        self._set_running(True)
        self.status.setText("loading the model…")
        self._cancel = threading.Event()
        self._worker = "loading"  # blocks a second click while the model loads
        self.model_panel.load(then=lambda model: self._start_or_report(model, batch), failed=self._on_finished)

    def _start_or_report(self, model: Any, batch: PromptBatch) -> None:
        if self._guarded(self._start_propagation, model, batch) is None and not hasattr(self._worker, "start"):
            self._on_finished()

    def _start_propagation(self, model: Any, batch: PromptBatch) -> None:
        from napari.qt.threading import create_worker

        if self._cancel.is_set():
            self._on_finished()
            return
        image = self.image_layer()
        self._run_target = self.ensure_labels_layer()
        self._push_history("propagation" if not self._sent else "correction")
        self.progress.setRange(0, 0)
        self.status.setText("encoding the prompted slices…")
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
            _connect={"yielded": self._on_step, "errored": self._on_error},
            _start_thread=False,
        )
        worker.returned.connect(lambda result: self._on_returned(result, batch, settings))
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

    def _on_step(self, step: Any) -> None:
        """One update from the worker, in the UI thread: a new session, or one finished slice."""
        if step.session is not None:
            if self._run_target is self.labels_layer:
                self.session = step.session
            return
        if step.total:
            self.progress.setRange(0, step.total)
            self.progress.setValue(step.done)
        if step.slice_index is not None and step.slice_labels is not None:
            index = [slice(None)] * 3
            index[step.axis] = step.slice_index
            self._run_target.data[tuple(index)] = step.slice_labels
            self._run_target.refresh()
        self.last_run["slices"] = step.done
        self.status.setText(f"propagating… {step.done} / {step.total} slices")

    def _on_returned(self, result: Any, batch: PromptBatch, settings: tuple) -> None:
        self._run_target.data = np.array(result.labels, copy=True)
        if self._run_target is not self.labels_layer:  # the image was changed meanwhile
            return
        self.session = result.session
        self._session_key = settings
        self._sent |= batch.keys()
        self.last_run["cancelled"] = result.cancelled
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
        """A failed run: notify, restore the labels from before it, keep the UI usable."""
        from napari.utils.notifications import show_error

        show_error(f"napari-sam2: propagation failed: {exc}")
        self.status.setText(f"error: {exc}")
        if self._history and self._run_target is self.labels_layer:
            _, labels = self._history.pop()
            self._run_target.data = labels
        self._drop_session()

    def _on_finished(self) -> None:
        self._worker = None
        self._set_running(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    def cancel(self) -> None:
        """Stop the running propagation after the current slice (labels so far are kept)."""
        self._cancel.set()
        worker = self._worker
        if worker is not None and worker != "loading" and hasattr(worker, "quit"):
            # the library sees the event within one slice; quit ends the generator on its next yield
            self.status.setText("cancelling…")

    # --- export ----------------------------------------------------------------------
    def _export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", "", EXPORT_FILTER)
        if path:
            self._guarded(self.export_labels, path)

    def export_labels(self, path: str) -> Path:
        """Write the labels with the scan's geometry (DICOM-SEG for `.dcm` when the scan is DICOM)."""
        import scanio
        from napari.utils.notifications import show_info

        if self.labels_layer is None:
            raise RuntimeError("nothing to export yet: propagate first")
        scan = scan_from_image_layer(self.image_layer())
        written = scanio.write_labels(path, np.asarray(self.labels_layer.data), like=scan, overwrite=True)
        show_info(f"napari-sam2: labels written to {written}")
        return Path(written)

    # --- errors ----------------------------------------------------------------------
    def _guarded(self, fn: Any, *args: Any) -> Any:
        """Run `fn`; an exception becomes a napari notification, never a crash."""
        from napari.utils.notifications import show_error

        try:
            return fn(*args)
        except Exception as exc:
            show_error(f"napari-sam2: {exc}")
            self.status.setText(f"error: {exc}")
            return None
