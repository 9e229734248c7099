"""PACS in the dock widget: "Open from PACS…" (search, pick a series, fetch) and "Send SEG to PACS".

Searching, fetching and storing run in napari workers (`scanio.dicomweb` does the DICOMweb
work); the UI thread only fills the list, moves the progress bar and adds layers. The scan
layer remembers its server (`scan.metadata["dicomweb"]`), so "Send SEG to PACS" stores the
segmentation back where the series came from. The SEG is written to the cache's
`seg-outbox/` first and stays there when the store fails.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_sam2.widget.worker import reraise_runtime_errors, stream_callbacks

MODALITIES = ("", "CT", "MR", "PT")
MAX_STUDIES = 100
SERIES_ROLE = Qt.ItemDataRole.UserRole


def search_archive(url: str, patient_id: str = "", study_date: str = "", modality: str = "",
                   description: str = "") -> list[tuple[Any, list]]:
    """`[(RemoteStudy, [RemoteSeries, ...]), ...]`: studies matching the filters and their
    series (`description` matches the study's or the series' description, any case)."""
    from scanio.dicomweb import DicomWebServer

    server = DicomWebServer(url)
    studies = server.search_studies(patient_id=patient_id or None, study_date=study_date or None,
                                    modality=modality or None, limit=MAX_STUDIES)
    found = []
    needle = description.strip().casefold()
    for study in studies:
        series = server.search_series(study_uid=study.study_uid, modality=modality or None)
        if needle and needle not in study.description.casefold():
            series = [s for s in series if needle in s.description.casefold()]
        if series:
            found.append((study, sorted(series, key=lambda s: (s.series_number or 0, s.description))))
    return found


def fetch_and_read(url: str, series_uid: str, study_uid: Optional[str], cancel: threading.Event):
    """Worker generator: yields `(done, total)` instances fetched, returns the `Scan`."""
    from scanio.dicomweb import DicomWebServer, read_fetched

    def call(callback):
        result = DicomWebServer(url).fetch_series(series_uid, study_uid, progress=callback,
                                                  cancel=cancel)
        return read_fetched(result, cancel=cancel)

    return (yield from reraise_runtime_errors(stream_callbacks(call)))


def write_and_store(labels: np.ndarray, scan: Any) -> tuple[Any, Any]:
    """Write the SEG into the outbox, then store it on the scan's server: `(path, StoreResult)`."""
    import scanio
    from scanio.dicomweb import remote_origin, seg_outbox, store_seg

    origin = remote_origin(scan)
    import uuid

    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = seg_outbox() / f"{origin.series_uid}-{stamp}-{uuid.uuid4().hex[:6]}.dcm"
    written = scanio.write_labels(path, labels, like=scan)
    return written, store_seg(written, origin)


class PacsDialog(QDialog):
    """Open from PACS…: server, filters, the matching studies and series, fetch with progress."""

    def __init__(self, viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        from scanio.dicomweb import default_server

        self.viewer = viewer
        self.setWindowTitle("Open from PACS")
        self._worker: Any = None
        self._cancel = threading.Event()
        self.opened: list = []  # layers added by this dialog

        self.server_edit = QLineEdit(_safe(default_server) or "")
        self.server_edit.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.patient_edit = QLineEdit()
        self.date_edit = QLineEdit()
        self.date_edit.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.modality_combo = QComboBox()
        self.modality_combo.setEditable(True)
        self.modality_combo.addItems(MODALITIES)
        self.description_edit = QLineEdit()
        self.search_button = QPushButton("Search")
        form = QFormLayout()
        form.addRow("server", self.server_edit)
        form.addRow("patient ID", self.patient_edit)
        form.addRow("study date", self.date_edit)
        form.addRow("modality", self.modality_combo)
        form.addRow("description", self.description_edit)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["patient / series", "date", "modality", "description", "instances"])
        self.tree.setMinimumSize(560, 220)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m instances")
        self.progress.setValue(0)
        self.status = QLabel("Log in with NAPARI_SAM2_DICOMWEB_USER/_PASSWORD or _TOKEN in the "
                             "environment, or the DICOMweb config file.")
        self.status.setWordWrap(True)
        self.open_button = QPushButton("Open series")
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        for button in (self.open_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.search_button)
        layout.addWidget(self.tree)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self.search_button.clicked.connect(self.search)
        self.open_button.clicked.connect(self.open_selected)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.tree.itemDoubleClicked.connect(lambda item, _: self.open_selected())
        self._set_busy(False)

    # --- state ------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._worker is not None

    def _set_busy(self, busy: bool) -> None:
        self.search_button.setEnabled(not busy)
        self.open_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _done(self) -> None:
        self._worker = None
        self._set_busy(False)

    def _failed(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(f"error: {exc}")
        show_error(f"napari-sam2: {exc}")

    # --- search -----------------------------------------------------------------------------
    def search(self) -> None:
        """List the studies and series matching the filters (in a worker)."""
        from napari.qt.threading import create_worker

        if self.is_busy():
            return
        url = self.server_edit.text().strip()
        if not url:
            self.status.setText("error: enter the server's DICOMweb URL, e.g. https://pacs.example.org/dicom-web")
            return
        self.status.setText(f"searching {url}…")
        self.tree.clear()
        self._set_busy(True)
        worker = create_worker(search_archive, url, self.patient_edit.text().strip(),
                               self.date_edit.text().strip(), self.modality_combo.currentText().strip(),
                               self.description_edit.text().strip(),
                               _connect={"errored": self._failed}, _start_thread=False)
        worker.returned.connect(self._show_results)
        worker.finished.connect(self._done)
        self._worker = worker
        worker.start()

    def _show_results(self, found: list) -> None:
        for study, series_list in found:
            item = QTreeWidgetItem([study.patient_id or "(no patient ID)", study.study_date,
                                    ",".join(study.modalities), study.description, ""])
            for series in series_list:
                child = QTreeWidgetItem([f"series {series.series_number or ''}".strip(),
                                         series.study_date or study.study_date, series.modality,
                                         series.description, str(series.num_instances or "?")])
                child.setData(0, SERIES_ROLE, series)
                item.addChild(child)
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
        count = sum(len(s) for _, s in found)
        self.status.setText(f"{len(found)} studies, {count} series: choose a series and Open"
                            if found else "nothing matches these filters")

    # --- fetch ------------------------------------------------------------------------------
    def selected_series(self) -> Any:
        item = self.tree.currentItem()
        return item.data(0, SERIES_ROLE) if item is not None else None

    def open_selected(self) -> None:
        """Fetch the chosen series (only instances not cached yet) and add it as a layer."""
        from napari.qt.threading import create_worker

        series = self.selected_series()
        if self.is_busy():
            return
        if series is None:
            self.status.setText("choose a series (not a study) in the list first")
            return
        url = self.server_edit.text().strip()
        self._cancel = threading.Event()
        self.progress.setRange(0, series.num_instances or 0)
        self.progress.setValue(0)
        self.status.setText(f"fetching {series.modality} '{series.description}'…")
        self._set_busy(True)
        worker = create_worker(fetch_and_read, url, series.series_uid, series.study_uid,
                               self._cancel, _connect={"errored": self._failed},
                               _start_thread=False)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda scan: self._add_scan(scan, series))
        worker.finished.connect(self._done)
        self._worker = worker
        worker.start()

    def _on_progress(self, step: Any) -> None:
        done, total = step
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _add_scan(self, scan: Any, series: Any) -> None:
        from napari_sam2.layers import scan_layer_data

        name = " ".join(p for p in (series.modality, series.description) if p) or series.series_uid
        data, kwargs, kind = scan_layer_data(scan, name=name)
        layer = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        self.opened.append(layer)
        self.status.setText(f"opened {name}: {scan.shape[0]} slices from {self.server_edit.text().strip()}")

    def cancel(self) -> None:
        """Stop fetching after the current instance (what arrived stays cached)."""
        self._cancel.set()


def _safe(fn) -> Optional[str]:
    try:
        return fn()
    except Exception:  # a broken config file must not break the widget
        return None


class PacsControls:
    """The dock widget's PACS buttons: `open_button` (scan section) and `send_button` (by Export)."""

    def __init__(self, dock: Any) -> None:
        self.dock = dock
        self.dialog: Optional[PacsDialog] = None
        self._worker: Any = None
        self.open_button = QPushButton("Open from PACS…")
        self.open_button.setToolTip("search a DICOMweb archive, fetch a series and open it")
        self.send_button = QPushButton("Send SEG to PACS")
        self.send_button.setToolTip("store the labels as a DICOM SEG on the archive the scan came "
                                    "from (a copy stays in the cache's seg-outbox)")
        self.open_button.clicked.connect(self.open_dialog)
        self.send_button.clicked.connect(lambda: self.dock._guarded(self.send_seg))

    def export_row(self, export_button: QWidget) -> QHBoxLayout:
        """Export and Send SEG side by side."""
        row = QHBoxLayout()
        row.addWidget(export_button)
        row.addWidget(self.send_button)
        return row

    def open_dialog(self) -> PacsDialog:
        if self.dialog is None:
            self.dialog = PacsDialog(self.dock.viewer, parent=self.dock)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def is_sending(self) -> bool:
        return self._worker is not None

    def send_seg(self) -> None:
        """Write the labels as a SEG and store it on the scan's server (in a worker)."""
        from napari.qt.threading import create_worker

        from napari_sam2.widget.propagation import scan_from_image_layer
        from scanio.dicomweb import remote_origin

        dock = self.dock
        if self.is_sending():
            return
        if dock.labels_layer is None or dock.image_layer() is None:
            raise RuntimeError("nothing to send yet: propagate first")
        scan = scan_from_image_layer(dock.image_layer())
        origin = remote_origin(scan)
        if origin is None:
            raise RuntimeError("this scan was not opened from a PACS (Open from PACS…); "
                               "use Export labels… to write a file")
        labels = np.array(dock.labels_layer.data, copy=True)
        dock.status.setText(f"sending the SEG to {origin.base_url}…")
        self.send_button.setEnabled(False)
        worker = create_worker(write_and_store, labels, scan,
                               _connect={"errored": self._store_failed}, _start_thread=False)
        worker.returned.connect(self._stored)
        worker.finished.connect(self._send_finished)
        self._worker = worker
        worker.start()

    def _stored(self, outcome: tuple) -> None:
        from napari.utils.notifications import show_info

        path, result = outcome
        message = f"SEG stored on the PACS (series {result.series_uid}); a copy is at {path}"
        self.dock.status.setText(message)
        show_info(f"napari-sam2: {message}")

    def _store_failed(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        self.dock.status.setText(f"error: {exc}")
        show_error(f"napari-sam2: {exc}")

    def _send_finished(self) -> None:
        self._worker = None
        self.send_button.setEnabled(not self.dock.is_running())
