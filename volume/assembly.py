"""3D clean-up of propagated labels: keep the component connected to the prompt, fill holes."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

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


def nonzero_box(labels: np.ndarray) -> Optional[tuple[slice, ...]]:
    """The smallest box (a slice per axis) holding every non-zero voxel; None when there is none."""
    box = []
    for axis in range(labels.ndim):
        others = tuple(a for a in range(labels.ndim) if a != axis)
        present = np.flatnonzero(labels.any(axis=others))
        if present.size == 0:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def clean_labels(labels: np.ndarray, seeds: Mapping[int, np.ndarray], axis: int = 0,
                 keep_connected_to_prompt: bool = True, fill_holes: bool = True) -> np.ndarray:
    """Cleaned copy of a `(z, y, x)` label volume; `seeds[obj_id]` is a bool volume of its prompted voxels.

    Filled holes never take voxels from another object. The work is done inside the box of the
    labelled voxels (outside it everything is background, so the result is the same), so its
    temporaries grow with the objects, not with the scan.
    """
    out = np.zeros_like(labels)
    box = nonzero_box(labels)
    if box is None:
        return out
    if any(b.stop - b.start < n for b, n in zip(box, labels.shape)):
        wrong = {obj: seed.shape for obj, seed in seeds.items() if seed.shape != labels.shape}
        if wrong:
            raise ValueError(f"seed volumes must have the labels' shape {labels.shape}; got {wrong}")
        cropped = {obj: seed[box] for obj, seed in seeds.items()}
        out[box] = clean_labels(labels[box], cropped, axis, keep_connected_to_prompt, fill_holes)
        return out
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


def clean_session_labels(raw: np.ndarray, prompts_by_obj: Mapping[int, Iterable[int]], axis: int,
                         extra_seeds: Optional[Mapping[int, Mapping[int, np.ndarray]]] = None) -> np.ndarray:
    """`raw` labels cleaned in 3D, seeded by each object's mask on its prompted slices (along `axis`)
    and by `extra_seeds` (object → slice → 2D bool mask on that slice, e.g. where carrying went on
    past an empty slice inside a user's extent).

    Works inside the box of the labelled voxels, so memory grows with the objects, not with the scan.
    """
    cleaned = np.zeros_like(raw)
    box = nonzero_box(raw)
    if box is None:
        return cleaned
    inside = raw[box]
    start, stop = box[axis].start, box[axis].stop
    seeds = {}
    for obj, slices in prompts_by_obj.items():
        seed = np.zeros(inside.shape, dtype=bool)
        for s in slices:
            if start <= s < stop:
                index: list = [slice(None)] * 3
                index[axis] = s - start
                seed[tuple(index)] = inside[tuple(index)] == obj
        for s, plane in (extra_seeds or {}).get(obj, {}).items():
            if start <= s < stop:
                index = [slice(None)] * 3
                index[axis] = s - start
                within = tuple(b for a, b in enumerate(box) if a != axis)  # the box on the slice's two axes
                seed[tuple(index)] |= np.asarray(plane, dtype=bool)[within] & (inside[tuple(index)] == obj)
        seeds[obj] = seed
    cleaned[box] = clean_labels(inside, seeds, axis=axis)
    return cleaned
