"""3D clean-up of propagated labels: keep the component connected to the prompt, fill holes."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy import ndimage


def keep_connected(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 3D components of `mask` that touch `seeds` (both bool, same shape); all of it if none does."""
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask
    touched = np.unique(components[np.logical_and(seeds, mask)])
    touched = touched[touched != 0]
    if touched.size == 0:
        return mask
    return np.isin(components, touched)


def fill_holes_by_slice(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill holes slice by slice along `axis` (3D filling would also fill between touching organs)."""
    out = mask.copy()
    for i in range(mask.shape[axis]):
        idx: list = [slice(None)] * 3
        idx[axis] = i
        plane = mask[tuple(idx)]
        if plane.any():
            out[tuple(idx)] = ndimage.binary_fill_holes(plane)
    return out


def clean_labels(labels: np.ndarray, seeds: Mapping[int, np.ndarray], axis: int = 0,
                 keep_connected_to_prompt: bool = True, fill_holes: bool = True) -> np.ndarray:
    """Cleaned copy of a `(z, y, x)` label volume; `seeds[obj_id]` is a bool volume of its prompted voxels.

    Filled holes never take voxels from another object.
    """
    out = np.zeros_like(labels)
    for obj_id in np.unique(labels):
        if obj_id == 0:
            continue
        mask = labels == obj_id
        if keep_connected_to_prompt and obj_id in seeds:
            mask = keep_connected(mask, seeds[obj_id])
        if fill_holes:
            mask = fill_holes_by_slice(mask, axis) & ((labels == 0) | (labels == obj_id))
        out[mask] = obj_id
    return out
