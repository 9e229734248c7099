"""The dock widget: pick a scan and a model, prompt one slice, propagate in 3D, correct, undo, export.

Everything slow (model loading, download, prompt encoding, propagation, precompute) runs in
napari `thread_worker`s; the UI thread only touches layers. A prompt (box, points, lasso,
scribble, paint stroke) shows the object's mask on its slice at once; Propagate carries every
object through the volume, updating the labels layer slice by slice as the worker yields.
Undo/redo, corrections, extent and precompute: `widget.interactive`; the session, sending prompts
and running propagation: `widget.runs`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np
from qtpy.QtCore import QTimer
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
from napari_sam2.widget.history import History
from napari_sam2.widget.interactive import InteractiveMixin
from napari_sam2.widget.model_panel import ModelPanel
from napari_sam2.widget.objects import ObjectList
from napari_sam2.widget.pacs import PacsControls
from napari_sam2.widget.prompts import PromptLayers
from napari_sam2.widget.runs import RunMixin
from napari_sam2.widget.shortcuts import SHORTCUTS, bind_shortcuts, control_name, radiological_orientation
from napari_sam2.widget.propagation import DIRECTIONS, scan_from_image_layer

AXES = ("axial", "coronal", "sagittal")
WINDOWS = ("auto", "soft_tissue", "liver", "lung", "bone", "brain", "percentile")
EXPORT_FILTER = "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha);;DICOM SEG (*.dcm)"
PROMPT_DELAY_MS = 150  # a prompt is sent once the mouse is released and nothing changed for this long


class SegmentationWidget(InteractiveMixin, RunMixin, QWidget):
    """napari-sam2 dock widget (npe2 `widgets` contribution; napari passes the viewer)."""

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: Any = None
        self._session_key: Optional[tuple] = None
        self._sent: set = set()
        self.history = History()
        self._corrections: list = []  # mask prompts from paint strokes, in order
        self._committed_layers: dict = {}
        self._prompt_waiting = False
        self._prompt_timer = QTimer(self)
        self._prompt_timer.setSingleShot(True)
        self._prompt_timer.setInterval(PROMPT_DELAY_MS)
        self._prompt_timer.timeout.connect(self._prompt_timer_fired)
        self._precompute_worker: Any = None
        self._precompute_session: Any = None
        self._precompute_cancel = threading.Event()
        self._precompute_pause = threading.Event()
        self._user_paused = False
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
        self.points_button = QPushButton("Points")
        self.box_button = QPushButton("Box")
        self.lasso_button = QPushButton("Lasso")
        self.scribble_button = QPushButton("Scribble")
        self.paint_button = QPushButton("Paint")
        self.negative_check = QCheckBox("negative points (or Shift+click)")
        self.first_button = QPushButton("First slice here")
        self.last_button = QPushButton("Last slice here")
        self.extent_label = QLabel("extent: whole scan")
        self.protect_check = QCheckBox("don't overwrite other objects")
        self.protect_check.setChecked(True)
        objects_box = QGroupBox("Objects and prompts")
        objects_layout = QVBoxLayout(objects_box)
        objects_layout.addWidget(self.objects)
        tools = QHBoxLayout()
        for button in (self.points_button, self.box_button, self.lasso_button, self.scribble_button,
                       self.paint_button):
            tools.addWidget(button)
        objects_layout.addLayout(tools)
        objects_layout.addWidget(self.negative_check)
        extent_row = QHBoxLayout()
        extent_row.addWidget(self.first_button)
        extent_row.addWidget(self.last_button)
        objects_layout.addLayout(extent_row)
        objects_layout.addWidget(self.extent_label)
        objects_layout.addWidget(self.protect_check)

        # --- propagation --------------------------------------------------------------
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(DIRECTIONS)
        self.propagate_button = QPushButton("Propagate")
        self.cancel_button = QPushButton("Cancel")
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.at_once_check = QCheckBox("propagate corrections at once")
        self.precompute_check = QCheckBox("encode slices ahead (background)")
        self.precompute_check.setChecked(True)
        self.pause_button = QPushButton("Pause")
        self.precompute_bar = QProgressBar()
        self.precompute_bar.setFormat("encoding ahead: %v / %m slices")
        self.precompute_bar.setVisible(False)
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
        control_row.addWidget(self.redo_button)
        run_layout.addLayout(control_row)
        run_layout.addWidget(self.at_once_check)
        run_layout.addWidget(self.progress)
        run_layout.addWidget(self.status)
        ahead_row = QHBoxLayout()
        ahead_row.addWidget(self.precompute_check)
        ahead_row.addWidget(self.pause_button)
        run_layout.addLayout(ahead_row)
        run_layout.addWidget(self.precompute_bar)

        # --- export -------------------------------------------------------------------
        self.export_button = QPushButton("Export labels…")

        for control, tip in (
            (self.axis_combo, "slices the model walks through; also sets napari's slider to that axis"),
            (self.window_combo, "intensity window the model sees (CT presets in HU; 'auto': soft tissue "
                                "for CT, percentiles for MR); also applied to the display"),
            (self.points_button, "click on the object (positive); Shift+click or the toggle below: negative; "
                                 "the mask on the slice appears at once"),
            (self.box_button, "drag a rectangle around the object on one slice; its mask appears at once"),
            (self.lasso_button, "draw a closed outline of the object on one slice: taken as its mask there"),
            (self.scribble_button, "draw a line over the object (or, with 'negative', over what is not it): "
                                   "points along it"),
            (self.paint_button, "paint or erase on the labels layer: each stroke is a correction of that "
                                "slice, carried by the next Propagate"),
            (self.first_button, "the current object starts on the slice on screen (propagation stops there)"),
            (self.last_button, "the current object ends on the slice on screen"),
            (self.protect_check, "where objects touch, a voxel already given to one object is never taken "
                                 "by another (nor are labels painted by hand for other objects cleared)"),
            (self.direction_combo, "propagate from each prompted slice in both directions, or one way"),
            (self.propagate_button, "carry every object through the volume from its prompted slices; "
                                    "a prompt added afterwards is a correction"),
            (self.cancel_button, "stop after the current slice; the labels so far are kept"),
            (self.undo_button, "undo the last prompt, propagation, correction, extent or removal "
                               "(labels and the session's prompts together)"),
            (self.redo_button, "redo what was undone"),
            (self.at_once_check, "re-propagate as soon as a correction is made (else on Propagate)"),
            (self.precompute_check, "encode every slice in the background, outward from the slice on screen, "
                                    "and keep the encodings on disk: later prompts and Propagate are fast"),
            (self.pause_button, "pause or resume the background encoding"),
            (self.export_button, "write the labels with the scan's geometry: NIfTI, NRRD, MHA, or DICOM SEG "
                                 "(.dcm) when the scan came from DICOM"),
        ):
            key = SHORTCUTS.get(control_name(self, control))
            control.setToolTip(f"{tip} [{key.replace('-', '+')}]" if key else tip)

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
        self.lasso_button.clicked.connect(self.use_lasso_tool)
        self.scribble_button.clicked.connect(self.use_scribble_tool)
        self.paint_button.clicked.connect(self.use_paint_tool)
        self.first_button.clicked.connect(lambda: self._guarded(self.set_extent_here, "first"))
        self.last_button.clicked.connect(lambda: self._guarded(self.set_extent_here, "last"))
        self.negative_check.toggled.connect(self._on_negative_toggled)
        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.cancel_button.clicked.connect(self.cancel)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.pause_button.clicked.connect(self.toggle_precompute_pause)
        self.precompute_check.toggled.connect(lambda on: self.start_precompute() if on else self.stop_precompute())
        self.model_panel.model_loaded.connect(lambda *_: QTimer.singleShot(0, self._prepare_session))
        self.export_button.clicked.connect(self._export_clicked)
        bind_shortcuts(self.viewer, self)
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
        self.history.clear()
        self._corrections = []
        self._committed_layers = {}
        self._update_history_buttons()

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
        self.viewer.camera.orientation2d = radiological_orientation(self.viewer.dims.order[-2:])

    def _slicing_axis(self) -> int:
        """The array axis the session slices along (napari's slider)."""
        from volume.slicing import slicing_axis

        axis = getattr(self.session, "slicing_axis", None)
        if axis is not None:
            return int(axis)
        return slicing_axis(self.axis_combo.currentText(), scan_from_image_layer(self.image_layer()).direction)

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
            for prompt_layer in (self.prompt_layers.points, self.prompt_layers.boxes):
                prompt_layer.events.data.connect(self._on_prompt_data)
                bind_shortcuts(prompt_layer, self)
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
        if self.is_running():
            self.cancel()
        if self.labels_layer is not None or self.session is not None:
            self._record(f"remove object {obj_id}")
        if self.prompt_layers is not None:
            self._restoring = True
            try:
                self.prompt_layers.remove_object(obj_id)
            finally:
                self._restoring = False
        if self.labels_layer is not None:
            data = np.asarray(self.labels_layer.data)
            if (data == obj_id).any():
                data[data == obj_id] = 0
                self.labels_layer.refresh()
        self._corrections = [c for c in self._corrections if c.obj_id != obj_id]
        if self.session is not None and not self.is_running():
            try:
                self.session.remove_object(obj_id)
            except Exception:  # an object the session never saw
                pass
            self._sent = {key for key in self._sent if key[1] != obj_id}
        self._commit_layers()
        self._show_extents()

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
            self.labels_layer.events.paint.connect(self._on_paint)
            bind_shortcuts(self.labels_layer, self)
        return self.labels_layer

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

