"""Fast stand-in segmenters for the Dask machinery tests (importable on workers as tests.batch.segmenters)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from volume.batch import Segmentation


@dataclass
class BoxSegmenter:
    """Fills each object's box on its slice and `half_depth` slices either side; points give 3x3x3 cubes.

    `delay_s` makes it slow; with `marker_dir` it first writes `<stem>.<pid>.started` there
    (so a test knows which worker process is busy with which scan)."""

    half_depth: int = 2
    delay_s: float = 0.0
    marker_dir: Optional[str] = None

    def __call__(self, scan, job) -> Segmentation:
        if self.marker_dir:
            Path(self.marker_dir, f"{job.stem}.{os.getpid()}.started").touch()
        time.sleep(self.delay_s)
        shape = scan.array.shape
        labels = np.zeros(shape, dtype=np.uint8)
        touched: set[int] = set()
        for obj in job.objects:
            if obj.box_zyx is not None:
                z, y0, x0, y1, x1 = (int(v) for v in obj.box_zyx)
                z0, z1 = max(0, z - self.half_depth), min(shape[0], z + self.half_depth + 1)
                labels[z0:z1, y0:y1 + 1, x0:x1 + 1] = obj.obj_id
                touched.update(range(z0, z1))
            for point, positive in zip(obj.points_zyx, obj.point_labels):
                z, y, x = (int(round(v)) for v in point)
                if positive:
                    labels[max(0, z - 1):z + 2, max(0, y - 1):y + 2, max(0, x - 1):x + 2] = obj.obj_id
                    touched.update(range(max(0, z - 1), min(shape[0], z + 2)))
        return Segmentation(labels, len(touched))


@dataclass
class FailingSegmenter:
    """Raises for scans whose stem is in `fail_stems`, otherwise behaves like `BoxSegmenter`."""

    fail_stems: tuple[str, ...] = ()

    def __call__(self, scan, job) -> Segmentation:
        if job.stem in self.fail_stems:
            raise RuntimeError(f"synthetic failure on {job.stem}")
        return BoxSegmenter()(scan, job)
