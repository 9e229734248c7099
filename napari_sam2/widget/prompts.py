"""Prompt layers: a Points layer (positive / negative clicks) and a Shapes layer (rectangles = boxes,
polygons = lassos, paths = scribbles).

Both share the image layer's geometry, so their `data` is in the scan's voxel indices
`(z, y, x)`. Each point and shape carries the object it belongs to in its `features`
(`obj_id`), and points carry `positive`. Negative points: the "negative" toggle, or hold
Shift while clicking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from napari_sam2.layers import layer_geometry

POSITIVE_BORDER = (0.1, 0.9, 0.1, 1.0)
NEGATIVE_BORDER = (1.0, 0.1, 0.1, 1.0)
NEGATIVE_MODIFIER = "Shift"


@dataclass(frozen=True)
class PointPrompt:
    obj_id: int
    zyx: tuple[float, float, float]
    positive: bool


@dataclass(frozen=True)
class BoxPrompt:
    """A rectangle drawn on one slice: `axis` is the array axis it is constant along."""

    obj_id: int
    axis: int
    slice_index: int
    lower: tuple[float, float]  # the two in-plane array axes, in array order
    upper: tuple[float, float]


def box_from_rectangle(obj_id: int, vertices_zyx: np.ndarray) -> Optional[BoxPrompt]:
    """A rectangle's 4 vertices `(4, 3)` in `(z, y, x)` → a box on the slice it lies in."""
    vertices = np.asarray(vertices_zyx, dtype=float)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        return None
    extent = np.ptp(vertices, axis=0)
    axis = int(np.argmin(extent))
    if extent[axis] > 0.5:  # not drawn on one slice (oblique view)
        return None
    plane = [a for a in range(3) if a != axis]
    lower = tuple(float(v) for v in vertices[:, plane].min(axis=0))
    upper = tuple(float(v) for v in vertices[:, plane].max(axis=0))
    return BoxPrompt(obj_id, axis, int(round(float(vertices[0, axis]))), lower, upper)


class PromptLayers:
    """Finds or creates the two prompt layers for one image layer and reads prompts from them."""

    def __init__(self, viewer: Any, image_layer: Any) -> None:
        self.viewer = viewer
        self.image_layer = image_layer
        self.negative = False  # the toggle; Shift while clicking also gives a negative point
        self._current_obj_id = 0
        self._colors: dict[int, tuple] = {}
        self.points = self._find_or_add("points")
        self.boxes = self._find_or_add("shapes")

    # --- layers ------------------------------------------------------------------------
    @property
    def points_name(self) -> str:
        return f"{self.image_layer.name} prompts: points"

    @property
    def boxes_name(self) -> str:
        return f"{self.image_layer.name} prompts: boxes"

    def _find_or_add(self, kind: str) -> Any:
        name = self.points_name if kind == "points" else self.boxes_name
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
        elif kind == "points":
            layer = self.viewer.add_points(
                np.empty((0, 3)),
                name=name,
                ndim=3,
                size=6,
                border_width=0.25,
                border_width_is_relative=True,
                features={"obj_id": np.empty(0, dtype=int), "positive": np.empty(0, dtype=bool)},
                out_of_slice_display=False,
                **layer_geometry(self.image_layer),
            )
            layer.mouse_drag_callbacks.append(self._on_point_press)
            layer.events.data.connect(self._on_points_changed)
        else:
            layer = self.viewer.add_shapes(
                ndim=3,
                name=name,
                edge_width=2,
                face_color=[0, 0, 0, 0],
                features={"obj_id": np.empty(0, dtype=int), "positive": np.empty(0, dtype=bool)},
                **layer_geometry(self.image_layer),
            )
            layer.events.data.connect(self._on_boxes_changed)
        return layer

    def set_current_object(self, obj_id: int, colors: dict[int, tuple]) -> None:
        """New points and boxes belong to `obj_id`; `colors` maps object ids to RGBA."""
        self._current_obj_id = obj_id
        self._colors = dict(colors)
        self.points.feature_defaults = {"obj_id": obj_id, "positive": not self.negative}
        self.boxes.feature_defaults = {"obj_id": obj_id, "positive": not self.negative}
        self.recolor()

    def set_negative(self, negative: bool) -> None:
        self.negative = bool(negative)
        self.points.feature_defaults = {"obj_id": self._current_obj_id, "positive": not self.negative}
        self.boxes.feature_defaults = {"obj_id": self._current_obj_id, "positive": not self.negative}

    def remove_object(self, obj_id: int) -> None:
        """Delete every prompt of one object."""
        for layer in (self.points, self.boxes):
            if len(layer.data) == 0:
                continue
            keep = np.asarray(layer.features["obj_id"]) != obj_id
            if not keep.all():
                layer.selected_data = set(np.flatnonzero(~keep).tolist())
                layer.remove_selected()
        self.recolor()

    def recolor(self) -> None:
        """Colour every prompt by its object; point borders green (positive) or red (negative)."""
        gray = (0.6, 0.6, 0.6, 1.0)
        if len(self.points.data):
            ids = np.asarray(self.points.features["obj_id"], dtype=int)
            positive = np.asarray(self.points.features["positive"], dtype=bool)
            self.points.face_color = np.array([self._colors.get(int(i), gray) for i in ids])
            self.points.border_color = np.where(positive[:, None], POSITIVE_BORDER, NEGATIVE_BORDER)
        if len(self.boxes.data):
            ids = np.asarray(self.boxes.features["obj_id"], dtype=int)
            self.boxes.edge_color = np.array([self._colors.get(int(i), gray) for i in ids])

    # --- mouse -------------------------------------------------------------------------
    def _on_point_press(self, layer: Any, event: Any) -> None:
        # napari adds the point on release, so the defaults set here apply to it
        negative = self.negative or NEGATIVE_MODIFIER in event.modifiers
        layer.feature_defaults = {"obj_id": self._current_obj_id, "positive": not negative}

    def _on_points_changed(self, event: Any) -> None:
        if getattr(event, "action", None) in ("added", "changed") or str(getattr(event, "action", "")).endswith("ADDED"):
            self.recolor()

    def _on_boxes_changed(self, event: Any) -> None:
        if str(getattr(event, "action", "")).lower().endswith("added"):
            self.recolor()

    # --- reading prompts -------------------------------------------------------------------
    def point_prompts(self) -> list[PointPrompt]:
        if len(self.points.data) == 0:
            return []
        ids = np.asarray(self.points.features["obj_id"], dtype=int)
        positive = np.asarray(self.points.features["positive"], dtype=bool)
        return [
            PointPrompt(int(i), tuple(float(v) for v in zyx), bool(p))
            for i, zyx, p in zip(ids, np.asarray(self.points.data), positive)
        ]

    def box_prompts(self) -> list[BoxPrompt]:
        out = []
        if len(self.boxes.data) == 0:
            return out
        ids = np.asarray(self.boxes.features["obj_id"], dtype=int)
        for obj_id, shape_type, vertices in zip(ids, self.boxes.shape_type, self.boxes.data):
            if shape_type != "rectangle":
                continue
            box = box_from_rectangle(int(obj_id), vertices)
            if box is not None:
                out.append(box)
        return out

    def add_box(self, obj_id: int, axis: int, slice_index: int, lower: tuple, upper: tuple) -> None:
        """Draw a rectangle programmatically (scripts, tests, screenshots)."""
        plane = [a for a in range(3) if a != axis]
        corners = []
        for a, b in ((lower[0], lower[1]), (lower[0], upper[1]), (upper[0], upper[1]), (upper[0], lower[1])):
            vertex = [0.0, 0.0, 0.0]
            vertex[axis] = float(slice_index)
            vertex[plane[0]], vertex[plane[1]] = float(a), float(b)
            corners.append(vertex)
        self._add_shape(obj_id, np.array(corners), "rectangle")

    def _add_shape(self, obj_id: int, vertices: np.ndarray, shape_type: str, positive: bool = True) -> None:
        self.boxes.feature_defaults = {"obj_id": obj_id, "positive": bool(positive)}
        self.boxes.add(np.asarray(vertices, dtype=float), shape_type=shape_type)
        self.boxes.feature_defaults = {"obj_id": self._current_obj_id, "positive": not self.negative}
        self.recolor()

    @staticmethod
    def _on_slice(axis: int, slice_index: int, rows_cols: np.ndarray) -> np.ndarray:
        rows_cols = np.asarray(rows_cols, dtype=float).reshape(-1, 2)
        plane = [a for a in range(3) if a != axis]
        out = np.zeros((len(rows_cols), 3))
        out[:, axis] = slice_index
        out[:, plane[0]], out[:, plane[1]] = rows_cols[:, 0], rows_cols[:, 1]
        return out

    def add_lasso(self, obj_id: int, axis: int, slice_index: int, rows_cols: np.ndarray) -> None:
        """Draw a closed polygon (lasso: a mask prompt) programmatically; vertices `(N, 2)` on the slice."""
        self._add_shape(obj_id, self._on_slice(axis, slice_index, rows_cols), "polygon")

    def add_scribble(self, obj_id: int, axis: int, slice_index: int, rows_cols: np.ndarray,
                     positive: bool = True) -> None:
        """Draw an open path (scribble: points along it) programmatically."""
        self._add_shape(obj_id, self._on_slice(axis, slice_index, rows_cols), "path", positive)

    def add_point(self, obj_id: int, zyx: tuple, positive: bool = True) -> None:
        """Place a point programmatically (scripts, tests, screenshots)."""
        self.points.feature_defaults = {"obj_id": obj_id, "positive": bool(positive)}
        self.points.add(np.asarray(zyx, dtype=float)[None])
        self.points.feature_defaults = {"obj_id": self._current_obj_id, "positive": not self.negative}
        self.recolor()
