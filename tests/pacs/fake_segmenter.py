"""A fast stand-in for `volume.Session` in the PACS tests: the round trip is under test, not the model.

Each box becomes the soft tissue (HU > 40) inside it on slices `z-4 .. z+4`; deterministic,
milliseconds on the 512 x 512 sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLICES_EACH_SIDE = 4


def paint_boxes(array_zyx: np.ndarray, boxes: dict[int, tuple]) -> np.ndarray:
    """Labels `(z, y, x)` uint8: object `k` = HU > 40 inside box `(z, y0, x0, y1, x1)` near slice z."""
    labels = np.zeros(array_zyx.shape, dtype=np.uint8)
    for obj_id, (z, y0, x0, y1, x1) in sorted(boxes.items()):
        lo, hi = max(0, z - SLICES_EACH_SIDE), min(array_zyx.shape[0], z + SLICES_EACH_SIDE + 1)
        region = array_zyx[lo:hi, y0:y1 + 1, x0:x1 + 1] > 40
        labels[lo:hi, y0:y1 + 1, x0:x1 + 1][region] = obj_id
    return labels


@dataclass(frozen=True)
class _Window:
    name: str


class BoxPainterSession:
    """What `napari-sam2 segment` uses of `volume.Session`, painting boxes (see module doc)."""

    def __init__(self, scan, model=None, axis="axial", **_):
        self.scan = scan
        self.slicing_axis = 0
        self.boxes: dict[int, tuple] = {}
        self.slices_encoded = 0

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.boxes)

    @property
    def object_windows(self) -> dict:
        return {obj_id: _Window("HU>40") for obj_id in self.boxes}

    @property
    def slices_encoded_per_window(self) -> dict[str, int]:
        return {"HU>40": self.slices_encoded}

    def add_box(self, obj_id, slice_index, box):
        self.boxes[int(obj_id)] = (int(slice_index), *(int(v) for v in box))

    def add_points(self, obj_id, points_zyx, labels):
        raise NotImplementedError("the PACS tests prompt with boxes")

    def propagate(self, progress=None, cancel=None, on_slice=None, direction="both"):
        labels = paint_boxes(np.asarray(self.scan.array), self.boxes)
        self.slices_encoded = len(self.boxes)
        if progress is not None:
            progress(labels.shape[0], labels.shape[0])
        return labels
