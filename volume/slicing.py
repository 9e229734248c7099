"""Which array axis a view slices along, and how slices, frames and prompts map onto each other.

The scan array is `(z, y, x)` (SimpleITK order). A view ("axial", "coronal", "sagittal") is
chosen by the scan's direction matrix: the array axis whose world direction is closest to
the patient's superior (axial), anterior (coronal) or left (sagittal) axis is the slicing
axis. A slice keeps the two other array axes in `(z, y, x)` order: the slice's rows are the
first remaining axis and its columns the second. That is also how 2D prompts are given:

| slicing array axis | slice rows, cols | 2D box `(r0, c0, r1, c1)` | 2D mask shape |
| --- | --- | --- | --- |
| 0 (z) | y, x | `(y0, x0, y1, x1)` | `(ny, nx)` |
| 1 (y) | z, x | `(z0, x0, z1, x1)` | `(nz, nx)` |
| 2 (x) | z, y | `(z0, y0, z1, y1)` | `(nz, ny)` |

For a usual axial CT the axial view slices array axis 0, and napari's 2D view of that
axis shows exactly these rows and columns.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from volume.errors import AxisError

VIEWS = ("axial", "coronal", "sagittal")
# LPS world axis (0 = x L/R, 1 = y A/P, 2 = z S/I) that each view's slices are stacked along.
_VIEW_WORLD_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def array_axes_by_world(direction: np.ndarray) -> tuple[int, int, int]:
    """For LPS world axes (x, y, z): the array axis (0 z, 1 y, 2 x) most aligned with each.

    `direction` is ITK's 3x3 (columns = index axes i, j, k = array axes x, y, z). The
    assignment is a permutation maximising total alignment, so oblique scans still get
    three distinct axes.
    """
    cosines = np.abs(np.asarray(direction, dtype=float).reshape(3, 3))  # [world, index i/j/k]
    best = max(itertools.permutations(range(3)),
               key=lambda perm: sum(cosines[w, perm[w]] for w in range(3)))
    # index axis i/j/k -> array axis 2/1/0
    return tuple(2 - perm_index for perm_index in best)  # type: ignore[return-value]


def slicing_axis(view: str, direction: np.ndarray) -> int:
    """Array axis (0 z, 1 y, 2 x) that `view` slices along for a scan with this direction."""
    key = str(view).strip().lower()
    if key not in _VIEW_WORLD_AXIS:
        raise AxisError(f"unknown axis {view!r}; use one of {', '.join(VIEWS)}")
    return array_axes_by_world(direction)[_VIEW_WORLD_AXIS[key]]


@dataclass(frozen=True)
class SliceGeometry:
    """Slicing of a `(z, y, x)` array along `axis`: slice index <-> array, frame pixels <-> voxels."""

    shape_zyx: tuple[int, int, int]
    axis: int

    @property
    def num_slices(self) -> int:
        return self.shape_zyx[self.axis]

    @property
    def in_plane_axes(self) -> tuple[int, int]:
        """Array axes of the slice's (rows, columns)."""
        return tuple(a for a in range(3) if a != self.axis)  # type: ignore[return-value]

    @property
    def frame_hw(self) -> tuple[int, int]:
        rows, cols = self.in_plane_axes
        return self.shape_zyx[rows], self.shape_zyx[cols]

    def index(self, slice_index: int) -> tuple:
        """Numpy index selecting slice `slice_index` of a `(z, y, x)` array."""
        idx: list = [slice(None)] * 3
        idx[self.axis] = int(slice_index)
        return tuple(idx)

    def take(self, array: np.ndarray, slice_index: int) -> np.ndarray:
        """2D slice `(rows, cols)` (a view, no copy)."""
        return array[self.index(slice_index)]

    def split_points(self, points_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(N, 3)` voxel points -> (slice index per point, `(N, 2)` frame pixels as (x=col, y=row))."""
        rows, cols = self.in_plane_axes
        pts = np.asarray(points_zyx, dtype=float).reshape(-1, 3)
        return pts[:, self.axis], np.stack([pts[:, cols], pts[:, rows]], axis=1)

    def box_to_frame(self, box_rc: tuple[float, float, float, float]) -> np.ndarray:
        """2D box `(r0, c0, r1, c1)` in slice coordinates -> frame box `(x0, y0, x1, y1)` pixels."""
        r0, c0, r1, c1 = (float(v) for v in box_rc)
        return np.array([min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1)], dtype=np.float32)
