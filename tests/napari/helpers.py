"""Helpers for the napari plugin tests: synthetic scans on disk, a fake session, waiting for workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np


def write_synthetic_scan(path: Path, *, spacing_xyz=(0.8, 0.9, 2.5), origin_xyz=(-10.0, 20.0, 30.0),
                         direction=None, shape_zyx=(6, 12, 10)) -> Path:
    """A small 3D image written with SimpleITK (int16 'HU' values with a bright cube)."""
    import SimpleITK as sitk

    array = np.full(shape_zyx, -1000, dtype=np.int16)
    array[1:-1, 3:-3, 2:-2] = 60
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin_xyz)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, dtype=float).ravel()))
    sitk.WriteImage(image, str(path))
    return path


class FakeSession:
    """Stands in for `volume.Session` in fast widget tests: propagation paints each box on every slice."""

    slice_seconds = 0.02
    fail_with: "Exception | None" = None  # set to make propagate raise
    hold: "threading.Event | None" = None  # set to make add_box wait until the test releases it
    instances: list = []

    def __init__(self, scan, model, axis="axial", window="auto", device=None, **_):
        self.scan = scan
        self.labels = np.zeros(scan.array.shape, dtype=np.uint16)
        self.boxes: list = []
        self.points: list = []
        self.masks: list = []
        self.propagations = 0
        self.slices_done: list[int] = []
        self.directions: list[str] = []
        FakeSession.instances.append(self)

    def add_box(self, obj_id, slice_index, box):
        hold = self.hold
        if hold is not None and not hold.wait(timeout=60):
            raise TimeoutError("the test never released FakeSession.hold")
        self.boxes.append((obj_id, int(slice_index), tuple(box)))

    def add_points(self, obj_id, points_zyx, labels):
        self.points.append((obj_id, np.asarray(points_zyx), np.asarray(labels)))

    def add_mask(self, obj_id, slice_index, mask2d):
        self.masks.append((obj_id, int(slice_index), np.asarray(mask2d, dtype=bool)))
        self.labels[int(slice_index)][np.asarray(mask2d, dtype=bool)] = obj_id

    def remove_object(self, obj_id):
        self.labels[self.labels == obj_id] = 0
        self.boxes = [b for b in self.boxes if b[0] != obj_id]

    def reset(self):
        self.labels[:] = 0
        self.boxes, self.points = [], []

    def propagate(self, progress=None, cancel=None, on_slice=None, direction="both"):
        """Like `volume.Session.propagate`: `progress(done, total)`, `on_slice(index, plane)`, cancel per slice."""
        self.propagations += 1
        self.directions.append(direction)
        if self.fail_with is not None:
            raise self.fail_with
        n = self.labels.shape[0]
        start = min((b[1] for b in self.boxes), default=0)
        order = {"both": range(n), "forward": range(start, n), "backward": range(start, -1, -1)}[direction]
        if progress is not None:
            progress(0, len(order))
        for done, z in enumerate(order, start=1):
            if cancel is not None and cancel.is_set():
                break
            for obj_id, _s, (r0, c0, r1, c1) in self.boxes:
                self.labels[z, int(r0):int(r1), int(c0):int(c1)] = obj_id
            time.sleep(self.slice_seconds)
            self.slices_done.append(z)
            if on_slice is not None:
                on_slice(z, self.labels[z])
            if progress is not None:
                progress(done, len(order))
        return self.labels


class FakeModel:
    """A stand-in model object (the fake session never calls it)."""

    def parameters(self):
        import torch

        yield torch.zeros(1)


def wait_until_idle(qtbot, widget, timeout_ms: int = 60_000) -> None:
    """Wait for the widget's model loading and propagation workers to finish."""
    qtbot.waitUntil(lambda: not widget.is_running(), timeout=timeout_ms)
    qtbot.wait(20)
