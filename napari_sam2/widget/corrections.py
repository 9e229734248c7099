"""Corrections of every kind, as session prompts: paint/erase strokes, lassos and scribbles; the label policy.

- A paint or erase stroke on the labels layer touches slices; on each touched slice along the
  session's slicing axis, every object whose pixels changed gets its new 2D mask as an
  `add_mask` prompt (`paint_corrections`).
- A lasso (a closed polygon drawn in the prompt Shapes layer) is a mask prompt on its slice;
  a scribble (an open path) becomes positive points (negative with the toggle or for a path
  drawn while "negative" is on) spaced along it (`shape_prompts`).
- `merge_plane`: how the session's labels are written into the layer when "don't overwrite
  other objects" is on (a voxel another object already holds keeps it).
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np

from napari_sam2.widget.propagation import MaskItem, PointGroup

SCRIBBLE_STEP_PX = 6.0  # spacing of the points put along a scribble
MAX_SCRIBBLE_POINTS = 24


def _digest(mask: np.ndarray) -> str:
    return hashlib.blake2b(np.packbits(mask).tobytes() + repr(mask.shape).encode(), digest_size=8).hexdigest()


def mask_item(kind: str, obj_id: int, axis: int, slice_index: int, mask: np.ndarray) -> MaskItem:
    mask = np.asarray(mask, dtype=bool)
    return MaskItem(obj_id, axis, int(slice_index), mask, (kind, obj_id, axis, int(slice_index), _digest(mask)))


# ---------------------------------------------------------------------- paint
def _atoms(item: Any) -> list:
    return list(item) if isinstance(item, (list, tuple)) and item and not hasattr(item, "slice_key") else [item]


def _replay(data: np.ndarray, item: Any, undoing: bool) -> np.ndarray:
    """A copy of `data` with napari's paint history `item` (a list of atoms) undone or redone."""
    out = np.array(data, copy=True)
    atoms = _atoms(item)
    for atom in (reversed(atoms) if undoing else atoms):
        if hasattr(atom, "slice_key"):  # napari's masked atom: bounding box, mask, old values, new label
            values = atom.old_values if undoing else atom.new_value
            if atom.mask is None:
                out[atom.slice_key] = values
            else:
                region = out[atom.slice_key]
                region[atom.mask] = values
        else:  # (indices, old values, new values)
            out[atom[0]] = atom[1] if undoing else atom[2]
    return out


def labels_before(data: np.ndarray, item: Any) -> np.ndarray:
    """The labels as they were before napari's paint history `item` (a list of atoms) was applied."""
    return _replay(data, item, undoing=True)


def labels_after(data: np.ndarray, item: Any) -> np.ndarray:
    """The labels once `item` is applied, whether or not the layer holds it yet.

    napari emits `paint` from its history before writing the data when the edit is not part of
    a mouse stroke (`data_setitem`, `paint`, `fill` called from code), and after it for a stroke;
    replaying the item makes both cases the same.
    """
    return _replay(data, item, undoing=False)


def touched_slices(item: Any, axis: int) -> list[int]:
    """Indices along `axis` that a paint history item changed."""
    found: set = set()
    for atom in _atoms(item):
        if hasattr(atom, "slice_key"):
            key = atom.slice_key[axis]
            found.update(range(key.start or 0, key.stop))
        else:
            found.update(int(v) for v in np.unique(np.asarray(atom[0][axis])))
    return sorted(found)


def paint_corrections(before: np.ndarray, after: np.ndarray, axis: int, slices: Iterable[int],
                      objects: Iterable[int]) -> tuple[list[MaskItem], list[str]]:
    """Mask prompts for every object of `objects` whose pixels changed on `slices`; and what was skipped."""
    known = set(int(o) for o in objects)
    items, skipped = [], []
    for s in slices:
        old, new = np.take(before, s, axis=axis), np.take(after, s, axis=axis)
        changed = old != new
        if not changed.any():
            continue
        for obj in sorted(set(np.unique(old[changed]).tolist()) | set(np.unique(new[changed]).tolist())):
            if obj == 0 or obj not in known:
                continue
            mask = new == obj
            if mask.any():
                items.append(mask_item("paint", obj, axis, s, mask))
            else:
                skipped.append(f"object {obj} erased from slice {s} (erase it on the slices around too, "
                               "or set its extent)")
    return items, skipped


# --------------------------------------------------------------- lasso, scribble
def _plane_of(vertices: np.ndarray) -> tuple[int, int] | None:
    extent = np.ptp(vertices, axis=0)
    axis = int(np.argmin(extent))
    if extent[axis] > 0.5:
        return None
    return axis, int(round(float(vertices[0, axis])))


def lasso_mask(vertices_zyx: np.ndarray, shape_zyx: tuple, axis: int) -> tuple[int, np.ndarray] | None:
    """A closed polygon drawn on one slice of `axis` → (slice index, bool mask of the slice)."""
    from skimage.draw import polygon

    vertices = np.asarray(vertices_zyx, dtype=float)
    plane = _plane_of(vertices)
    if plane is None or plane[0] != axis:
        return None
    rows_cols = [a for a in range(3) if a != axis]
    hw = tuple(int(shape_zyx[a]) for a in rows_cols)
    rr, cc = polygon(vertices[:, rows_cols[0]], vertices[:, rows_cols[1]], shape=hw)
    mask = np.zeros(hw, dtype=bool)
    mask[rr, cc] = True
    return (plane[1], mask) if mask.any() else None


def scribble_points(vertices_zyx: np.ndarray, axis: int) -> tuple[int, np.ndarray] | None:
    """An open path on one slice of `axis` → (slice index, `(N, 3)` points spaced along it)."""
    vertices = np.asarray(vertices_zyx, dtype=float)
    plane = _plane_of(vertices)
    if plane is None or plane[0] != axis or len(vertices) < 1:
        return None
    seg = np.linalg.norm(np.diff(vertices, axis=0), axis=1)
    length = float(seg.sum())
    count = int(min(max(round(length / SCRIBBLE_STEP_PX) + 1, 1), MAX_SCRIBBLE_POINTS))
    if count == 1 or length == 0:
        return plane[1], vertices[:1]
    where = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.linspace(0.0, length, count)
    points = np.stack([np.interp(at, where, vertices[:, a]) for a in range(3)], axis=1)
    points[:, axis] = plane[1]
    return plane[1], points


def shape_prompts(shapes_layer: Any, known: set, axis: int, shape_zyx: tuple) -> tuple[list, list, list]:
    """Lassos (polygons) → mask items; scribbles (paths) → point groups; and what was skipped."""
    masks, groups, skipped = [], [], []
    if len(shapes_layer.data) == 0:
        return masks, groups, skipped
    ids = np.asarray(shapes_layer.features["obj_id"], dtype=int)
    positive = (np.asarray(shapes_layer.features["positive"], dtype=bool)
                if "positive" in shapes_layer.features else np.ones(len(ids), dtype=bool))
    for obj_id, is_positive, kind, vertices in zip(ids, positive, shapes_layer.shape_type, shapes_layer.data):
        obj_id = int(obj_id)
        if obj_id not in known or kind not in ("polygon", "path", "lasso"):
            continue
        if kind == "path":
            found = scribble_points(vertices, axis)
            if found is None:
                skipped.append("a scribble not drawn on one slice of the session's axis")
                continue
            s, points = found
            label = int(bool(is_positive))
            groups.append(PointGroup(obj_id, s, tuple(tuple(round(float(v), 2) for v in p) for p in points),
                                     tuple(label for _ in points)))
        else:
            found = lasso_mask(vertices, shape_zyx, axis)
            if found is None:
                skipped.append("a lasso not drawn on one slice of the session's axis (or with no area)")
                continue
            masks.append(mask_item("lasso", obj_id, axis, found[0], found[1]))
    return masks, groups, skipped


# ----------------------------------------------------------------- label policy
def merge_plane(old: np.ndarray, new: np.ndarray, protect: bool, session_objects: Iterable[int]) -> np.ndarray:
    """What to write into the layer where the session says `new` and the layer holds `old`.

    With `protect` ("don't overwrite other objects"), a voxel the layer gives to an object
    keeps it when the session gives it to another object, and voxels of objects the session
    does not know (painted or loaded labels) are never cleared.
    """
    new = np.asarray(new)
    if not protect:
        return new
    old = np.asarray(old)
    foreign = ~np.isin(old, np.asarray(list(session_objects), dtype=old.dtype)) & (old != 0)
    keep = (old != 0) & (old != new) & ((new != 0) | foreign)
    return np.where(keep, old, new).astype(new.dtype, copy=False)
