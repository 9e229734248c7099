"""From napari prompt layers to a `volume.Session` run in a worker, yielding one step per slice.

`PromptBatch` is plain data collected in the UI thread; `propagation_steps` is the generator
the worker runs: it builds the session if needed, sends the prompts (encoding the prompted
slices), then propagates, yielding a `Step` for every finished slice with that slice's labels.
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Iterable, Optional

import numpy as np

from napari_sam2.layers import SCAN_KEY
from napari_sam2.widget.worker import precision_context, reraise_runtime_errors, stream_callbacks

DIRECTIONS = ("both directions", "forward", "backward")


def scan_from_image_layer(layer: Any):
    """The layer's source `Scan`, or one built from its data and scale/translate/affine."""
    scan = layer.metadata.get(SCAN_KEY)
    if scan is not None:
        return scan
    from napari_sam2._writer import scan_from_layer_meta

    meta = {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "affine": np.asarray(layer.affine.affine_matrix),
    }
    scan = scan_from_layer_meta(np.asarray(layer.data), meta)
    scan.array = np.asarray(layer.data)
    return scan


def _round(values: Iterable[float], ndigits: int = 2) -> tuple:
    return tuple(round(float(v), ndigits) for v in values)


def _point_key(obj_id: int, zyx: Iterable[float], label: int) -> tuple:
    return ("p", obj_id, _round(zyx), int(label))


@dataclass(frozen=True)
class PointGroup:
    """All points of one object on one slice (sent together: SAM prompts are per slice)."""

    obj_id: int
    slice_index: int
    points_zyx: tuple  # ((z, y, x), ...)
    labels: tuple  # 1 positive, 0 negative

    def keys(self) -> set:
        return {_point_key(self.obj_id, p, lab) for p, lab in zip(self.points_zyx, self.labels)}

    def only_new(self, sent: set) -> "PointGroup":
        """The points not sent yet (the session adds points to those already on the slice)."""
        new = [(p, lab) for p, lab in zip(self.points_zyx, self.labels)
               if _point_key(self.obj_id, p, lab) not in sent]
        return PointGroup(self.obj_id, self.slice_index, tuple(p for p, _ in new), tuple(lab for _, lab in new))


@dataclass(frozen=True)
class BoxItem:
    obj_id: int
    axis: int
    slice_index: int
    box_rc: tuple  # (r0, c0, r1, c1): rows/cols = the two other array axes in (z, y, x) order

    def keys(self) -> set:
        return {("b", self.obj_id, self.axis, self.slice_index, _round(self.box_rc))}


@dataclass(frozen=True)
class MaskItem:
    """A mask prompt on one slice: a lasso (closed polygon) or a paint/erase correction.

    `mask` is the slice's `(rows, cols)` bool mask; `key` names it (kind, object, slice, content).
    """

    obj_id: int
    axis: int
    slice_index: int
    mask: np.ndarray
    key: tuple

    def keys(self) -> set:
        return {self.key}


@dataclass(frozen=True)
class PromptBatch:
    """Prompts to hand to the session, grouped as it takes them (boxes, then points, then masks)."""

    axis: int
    point_groups: tuple = ()
    boxes: tuple = ()
    skipped: tuple = ()  # human-readable reasons for prompts that cannot be used
    masks: tuple = ()  # MaskItem: lassos and paint corrections, in the order they were made

    @property
    def empty(self) -> bool:
        return not self.point_groups and not self.boxes and not self.masks

    def keys(self) -> set:
        out: set = set()
        for item in (*self.point_groups, *self.boxes, *self.masks):
            out |= item.keys()
        return out

    def slices(self) -> set:
        """The slices these prompts are on."""
        return {item.slice_index for item in (*self.point_groups, *self.boxes, *self.masks)}

    def with_masks(self, masks: Iterable[MaskItem]) -> "PromptBatch":
        return PromptBatch(self.axis, self.point_groups, self.boxes, self.skipped, (*self.masks, *masks))

    def without(self, sent: set) -> "PromptBatch":
        """Only what is new: boxes not sent yet, and point groups with at least one new point."""
        groups = tuple(g.only_new(sent) for g in self.point_groups if not g.keys() <= sent)
        boxes = tuple(b for b in self.boxes if not b.keys() <= sent)
        masks = tuple(m for m in self.masks if not m.keys() <= sent)
        return PromptBatch(self.axis, groups, boxes, self.skipped, masks)

    @classmethod
    def from_layers(cls, prompts: Any, objects: Iterable[Any], axis: Optional[int] = None) -> "PromptBatch":
        """Read the prompt layers; `axis` is the array axis the session slices along."""
        known = {o.obj_id for o in objects}
        if axis is None:
            axis = 0
        grouped: dict[tuple[int, int], list] = {}
        skipped = []
        for point in prompts.point_prompts():
            if point.obj_id not in known:
                continue
            key = (point.obj_id, int(round(point.zyx[axis])))
            grouped.setdefault(key, []).append(point)
        groups = tuple(
            PointGroup(obj_id, slice_index, tuple(tuple(p.zyx) for p in pts), tuple(int(p.positive) for p in pts))
            for (obj_id, slice_index), pts in sorted(grouped.items())
        )
        boxes = []
        for box in prompts.box_prompts():
            if box.obj_id not in known:
                continue
            if box.axis != axis:
                skipped.append(f"a box drawn across array axis {box.axis} (the session slices axis {axis})")
                continue
            boxes.append(BoxItem(box.obj_id, box.axis, box.slice_index, (*box.lower, *box.upper)))
        return cls(axis, groups, tuple(boxes), tuple(skipped))


@dataclass
class Step:
    """One update from the worker: the session it built, the slice count, or one finished slice."""

    session: Any = None
    done: int = 0
    total: int = 0
    axis: int = 0
    slice_index: Optional[int] = None
    slice_labels: Optional[np.ndarray] = None


@dataclass
class Result:
    session: Any
    labels: np.ndarray
    cancelled: bool
    slices_done: int
    seconds: float
    voxels: dict = field(default_factory=dict)


def session_class() -> Any:
    """`volume.Session` (looked up at call time so tests can substitute it)."""
    import volume

    cls = getattr(volume, "Session", None)
    if cls is None:
        from volume.session import Session as cls
    return cls


def make_session(scan: Any, model: Any, embedding_store: Any = None, **options: Any) -> Any:
    """A session on `scan`; the embedding store is passed to sessions that take it."""
    cls = session_class()
    if embedding_store is not None and "embedding_store" in inspect.signature(cls).parameters:
        options["embedding_store"] = embedding_store
    return cls(scan, model, **options)


def propagation_steps(**options: Any) -> Generator[Step, None, Result]:
    """Worker body (see `_propagation_steps`); a `RuntimeError` (torch) reaches napari as `WorkerError`."""
    return (yield from reraise_runtime_errors(_propagation_steps(**options)))


def _propagation_steps(
    *,
    session: Any,
    scan: Any,
    model: Any,
    axis: str,
    window: str,
    device: Optional[str],
    precision: str,
    prompts: PromptBatch,
    direction: str,
    cancel: threading.Event,
    propagate: bool = True,
    embedding_store: Any = None,
) -> Generator[Step, None, Result]:
    """Worker body: (build the session,) send prompts, propagate; yield a `Step` per finished slice.

    `propagate=False`: send the prompts only (each prompted slice's 2D result, at once).
    """
    start = time.perf_counter()
    if session is None:
        session = make_session(scan, model, axis=axis, window=window, device=device, embedding_store=embedding_store)
        yield Step(session=session)
    slice_axis = prompts.axis
    accepts_direction = "direction" in inspect.signature(session.propagate).parameters

    def run(report: Any) -> Any:
        with precision_context(precision, device):
            # a box replaces the object's prompts on its slice, points add to them: boxes first
            for box in prompts.boxes:
                session.add_box(box.obj_id, box.slice_index, box.box_rc)
            for group in prompts.point_groups:
                if group.points_zyx:
                    session.add_points(group.obj_id, np.asarray(group.points_zyx, dtype=float),
                                       np.asarray(group.labels))
            for item in prompts.masks:
                session.add_mask(item.obj_id, item.slice_index, item.mask)
            if cancel.is_set() or not propagate:
                return None
            options: dict[str, Any] = {
                "progress": lambda done, total: report(("progress", int(done), int(total))),
                "cancel": cancel,
                "on_slice": lambda index, plane: report(("slice", int(index), np.array(plane, copy=True))),
            }
            wanted = direction if direction in ("forward", "backward") else "both"
            if accepts_direction:
                return session.propagate(direction=wanted, **options)
            if wanted != "both":
                raise NotImplementedError("this volume.Session propagates in both directions only")
            return session.propagate(**options)

    done, total = 0, 0
    for kind, *values in stream_callbacks(run):
        if kind == "progress":
            done, total = values
            yield Step(done=done, total=total, axis=slice_axis)
        else:
            slice_index, plane = values
            yield Step(done=done, total=total, axis=slice_axis, slice_index=slice_index, slice_labels=plane)
    labels = np.asarray(session.labels)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return Result(
        session=session,
        labels=labels,
        cancelled=cancel.is_set(),
        slices_done=done,
        seconds=time.perf_counter() - start,
        voxels=dict(zip(ids.tolist(), counts.tolist())),
    )
