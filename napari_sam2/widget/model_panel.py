"""Model picker: model, checkpoint file, device, engine, precision; download with progress; loading in a worker."""

from __future__ import annotations

import threading
from typing import Any, Optional

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from napari_sam2.widget.worker import ModelChoice, download_steps, load_model, qt_alive

DEFAULT_MODEL = "lite_medsam"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ENGINES = ("auto", "torch", "onnxruntime", "openvino")


def available_devices() -> list[str]:
    """"auto" then every device torch can use here."""
    import torch

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def model_names() -> list[str]:
    """Registered models, LiteMedSAM (offline) first."""
    from sam2core.store import list_registry

    names = [entry.name for entry in list_registry()]
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, names.index(n)))


def model_info_text(entry: Any) -> str:
    """Name, licence and weights source of a registry entry, for the panel."""
    if entry.is_package_asset:
        source = f"bundled with the {entry.source.split(':', 1)[-1]} package (works offline)"
    else:
        source = entry.url or "a download"
    return f"{entry.description}. Licence: {entry.licence}. Weights: {source}."


class ModelPanel(QWidget):
    """Choose and load a model. `model_loaded(model, choice)` fires in the UI thread."""

    model_loaded = Signal(object, object)
    busy_changed = Signal(bool)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.model: Any = None
        self.loaded_choice: Optional[ModelChoice] = None
        self._download_worker = None
        self._load_worker = None
        self._download_cancel = threading.Event()

        self.model_combo = QComboBox()
        self.model_combo.addItems(model_names())
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.info_label = QLabel()  # what the model is, its licence, where its weights come from
        self.info_label.setWordWrap(True)
        self.info_label.setTextInteractionFlags(self.info_label.textInteractionFlags() | Qt.TextSelectableByMouse)
        self.download_button = QPushButton("Download")
        self.download_progress = QProgressBar()
        self.download_progress.setVisible(False)
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("optional: a checkpoint file (.pt)")
        self.browse_button = QPushButton("…")
        self.browse_button.setMaximumWidth(30)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.engine_combo = QComboBox()
        self.engine_combo.addItems(ENGINES)
        self.engine_combo.setToolTip("what runs LiteMedSAM on the CPU; auto: the fastest installed engine, "
                                     "measured once per machine (torch on GPUs and for SAM 2)")
        self.load_button = QPushButton("Load model")
        self.precision_combo.setToolTip("auto: fp32 for LiteMedSAM (bf16 changes propagated masks), bf16 where "
                                        "the device computes it natively for SAM 2; bf16/fp16: faster on GPUs and CPUs with bf16 units, "
                                        "on other CPUs much slower than fp32")
        self.device_combo.setToolTip("auto: cuda, then mps, then cpu")
        self.download_button.setToolTip("fetch the checkpoint into the model cache (verified; resumable)")
        self.load_button.setToolTip("load now; Propagate also loads the model when needed (in the background)")

        download_row = QHBoxLayout()
        download_row.addWidget(self.status_label, 1)
        download_row.addWidget(self.download_button)
        checkpoint_row = QHBoxLayout()
        checkpoint_row.addWidget(self.checkpoint_edit, 1)
        checkpoint_row.addWidget(self.browse_button)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("model", self.model_combo)
        form.addRow(self.info_label)
        form.addRow(download_row)
        form.addRow(self.download_progress)
        form.addRow("checkpoint", checkpoint_row)
        form.addRow("device", self.device_combo)
        form.addRow("engine", self.engine_combo)
        form.addRow("precision", self.precision_combo)
        form.addRow(self.load_button)

        self.model_combo.currentTextChanged.connect(lambda _: self.refresh_status())
        self.checkpoint_edit.textChanged.connect(lambda _: self.refresh_status())
        self.download_button.clicked.connect(self._on_download_clicked)
        self.browse_button.clicked.connect(self._browse_checkpoint)
        self.load_button.clicked.connect(lambda: self.load())
        self.refresh_status()

    # --- choice ----------------------------------------------------------------------
    def choice(self) -> ModelChoice:
        device = self.device_combo.currentText()
        return ModelChoice(
            name=self.model_combo.currentText(),
            checkpoint=self.checkpoint_edit.text().strip() or None,
            device=None if device == "auto" else device,
            precision=self.precision_combo.currentText(),
            engine=self.engine_combo.currentText(),
        )

    def is_ready(self) -> bool:
        """A model is loaded and matches the current choice (SAM 2's precision is applied at run time)."""
        if self.model is None or self.loaded_choice is None:
            return False
        current, loaded = self.choice(), self.loaded_choice
        if current.name == "lite_medsam" and (current.engine, current.precision) != (loaded.engine, loaded.precision):
            return False  # LiteMedSAM's engine and encoder precision are chosen when loading
        return (current.name, current.checkpoint, current.device) == (loaded.name, loaded.checkpoint, loaded.device)

    def refresh_status(self) -> None:
        from sam2core.store import model_status

        name = self.model_combo.currentText()
        if self.checkpoint_edit.text().strip():
            self.status_label.setText("uses the checkpoint file below")
            self.download_button.setEnabled(False)
            return
        try:
            status = model_status(name)
        except Exception as exc:  # unknown name: show, never crash the panel
            self.status_label.setText(str(exc))
            self.info_label.setText("")
            self.download_button.setEnabled(False)
            return
        self.info_label.setText(model_info_text(status.entry))
        size_mb = status.entry.approx_size_bytes / 1e6
        self.status_label.setText(f"{status.state} ({size_mb:.0f} MB)")
        self.download_button.setEnabled(not status.available and self._download_worker is None)

    # --- download --------------------------------------------------------------------
    def _on_download_clicked(self) -> None:
        if self._download_worker is not None:
            self._download_cancel.set()
            return
        self.start_download()

    def start_download(self):
        """Fetch the chosen checkpoint in a worker; the progress bar shows bytes done."""
        from napari.qt.threading import create_worker

        name = self.model_combo.currentText()
        self._download_cancel = threading.Event()
        worker = create_worker(
            download_steps,
            name,
            self._download_cancel,
            _connect={"yielded": self._on_download_progress, "errored": self._on_download_error},
            _start_thread=False,
        )
        worker.returned.connect(lambda path: self._on_download_done(name, path))
        worker.finished.connect(self._on_download_finished)
        worker.start()
        self._download_worker = worker
        self.download_button.setText("Cancel download")
        self.download_progress.setRange(0, 0)
        self.download_progress.setVisible(True)
        return worker

    def _on_download_progress(self, update: tuple) -> None:
        done, total = update
        if total:
            self.download_progress.setRange(0, 1000)
            self.download_progress.setValue(int(1000 * done / total))
            self.download_progress.setFormat(f"{done / 1e6:.0f} / {total / 1e6:.0f} MB")

    def _on_download_done(self, name: str, path: Any) -> None:
        from napari.utils.notifications import show_info

        show_info(f"model {name} downloaded to {path}")

    def _on_download_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        show_error(f"napari-sam2: download failed: {exc}")

    def _on_download_finished(self) -> None:
        self._download_worker = None
        self.download_button.setText("Download")
        self.download_progress.setVisible(False)
        self.refresh_status()

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint file", "", "Checkpoints (*.pt *.pth *.safetensors);;All files (*)")
        if path:
            self.checkpoint_edit.setText(path)

    # --- loading ---------------------------------------------------------------------
    def load(self, then: Optional[Any] = None, failed: Optional[Any] = None):
        """Load the chosen model in a worker; `then(model)` runs in the UI thread once it is loaded.

        `failed()` runs in the UI thread when loading fails (after the error notification).
        """
        from napari.qt.threading import create_worker

        if self.is_ready():
            if then is not None:
                then(self.model)
            return None
        choice = self.choice()
        failed_once = False
        self.status_label.setText(f"loading {choice.name}…")
        self.load_button.setEnabled(False)
        self.busy_changed.emit(True)

        def on_loaded(model: Any) -> None:
            self.model, self.loaded_choice = model, choice
            if not qt_alive(self.status_label):  # the dock was closed while the model loaded
                return
            engine = ""
            if hasattr(model, "engine_precision"):
                decoder = getattr(model, "decoder_engine", model.engine)
                split = f", decoder on {decoder}" if decoder != model.engine else ""
                engine = f" ({model.engine}, {model.engine_precision}{split})"
            self.status_label.setText(f"{choice.name} loaded on {next(model.parameters()).device}{engine}")
            self.model_loaded.emit(model, choice)
            if then is not None:
                then(model)

        def on_error(exc: Exception) -> None:
            from napari.utils.notifications import show_error

            nonlocal failed_once
            failed_once = True
            show_error(f"napari-sam2: could not load model {choice.name}: {exc}")
            if qt_alive(self.status_label):
                self.refresh_status()

        def on_finished() -> None:
            if not qt_alive(self.load_button):
                return
            self.load_button.setEnabled(True)
            self.busy_changed.emit(False)
            if failed_once and failed is not None:
                failed()

        worker = create_worker(load_model, choice, _start_thread=False,
                               _connect={"returned": on_loaded, "errored": on_error, "finished": on_finished})
        self._load_worker = worker
        worker.start()
        return worker
