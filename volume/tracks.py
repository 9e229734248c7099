"""Windows per object: each distinct window is a track (frames, predictor state, encoded slices).

A CT scan opened with `window="auto"` gives each object the window that suits what its prompt
holds (`choose_object_window`: lung for air-filled objects, bone, soft tissue), snapped to
the presets so that objects with the same window share one track and every slice is encoded
once per window. An explicit window (or MR) gives every object the one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from volume.slicing import SliceGeometry
from volume.windowing import AMBIGUOUS_AIR_SHARE, Window, air_share, choose_object_window, preset_window


@dataclass
class Track:
    """The frames of one window and the predictor state tracking the objects that use it."""

    window: Window
    state: Any
    encoded: set = field(default_factory=set)  # slices whose frame was made for the model
    objects: set = field(default_factory=set)

    @property
    def key(self) -> tuple[float, float]:
        return window_key(self.window)


def window_key(window: Window) -> tuple[float, float]:
    return (round(float(window.low), 6), round(float(window.high), 6))


def prompt_centre_values(plane: np.ndarray, box_frame: Optional[np.ndarray], points_xy: Optional[np.ndarray],
                         labels: Optional[np.ndarray], mask: Optional[np.ndarray]) -> np.ndarray:
    """Raw voxel values at the centre of a prompt on one slice `(rows, cols)`.

    Box: its central half; positive points: a 5-pixel neighbourhood of each; mask: its pixels.
    """
    h, w = plane.shape
    if mask is not None:
        return plane[np.asarray(mask, dtype=bool)]
    if box_frame is not None:
        x0, y0, x1, y1 = (float(v) for v in box_frame)
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 4, 0.5), max((y1 - y0) / 4, 0.5)
        r0, r1 = int(np.clip(np.floor(cy - hy), 0, h - 1)), int(np.clip(np.ceil(cy + hy), 0, h - 1))
        c0, c1 = int(np.clip(np.floor(cx - hx), 0, w - 1)), int(np.clip(np.ceil(cx + hx), 0, w - 1))
        return plane[r0:r1 + 1, c0:c1 + 1].reshape(-1)
    values = []
    for (x, y), label in zip(np.asarray(points_xy).reshape(-1, 2), np.asarray(labels).reshape(-1)):
        if label != 1:
            continue
        r, c = int(np.clip(round(y), 0, h - 1)), int(np.clip(round(x), 0, w - 1))
        values.append(plane[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3].reshape(-1))
    return np.concatenate(values) if values else plane.reshape(-1)[:0]


BOX_FIT_MARGIN = 0.05  # lung must fit the box this much better than soft tissue to be chosen


def box_values(plane: np.ndarray, box_frame: np.ndarray) -> np.ndarray:
    """Raw values of a slice `(rows, cols)` inside a frame box `(x0, y0, x1, y1)`."""
    h, w = plane.shape
    x0, y0, x1, y1 = (int(round(float(v))) for v in box_frame)
    return plane[max(y0, 0):min(y1, h - 1) + 1, max(x0, 0):min(x1, w - 1) + 1].reshape(-1)


def mask_box_fit(mask: np.ndarray, box_frame: np.ndarray) -> float:
    """IoU of a mask's bounding box with the drawn box `(x0, y0, x1, y1)` (a tight box is drawn around the object)."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    if rows.size == 0:
        return 0.0
    x0, y0, x1, y1 = (float(v) for v in box_frame)
    a = (cols[0], rows[0], cols[-1], rows[-1])
    iw = min(a[2], x1) - max(a[0], x0) + 1
    ih = min(a[3], y1) - max(a[1], y0) + 1
    inter = max(iw, 0) * max(ih, 0)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (x1 - x0 + 1) * (y1 - y0 + 1)
    return float(inter / (area_a + area_b - inter))


class TrackSet:
    """The session's tracks: one per window in use, created on demand."""

    def __init__(self, array: np.ndarray, geometry: SliceGeometry, default_window: Window, per_object: bool,
                 init_state: Callable[[Any], Any]):
        from sam2core.frames import LazyFrames

        self._array = array
        self._geometry = geometry
        self.default_window = default_window
        self.per_object = per_object
        self._init_state = init_state
        self._lazy_frames = LazyFrames
        self.tracks: dict[tuple[float, float], Track] = {}
        self.of_object: dict[int, Track] = {}
        self.frames_made = 0

    def _make_frame(self, track: Track, slice_index: int) -> np.ndarray:
        """RGB frame `(3, H, W)` float32 in [0, 1] of one slice in the track's window (made on demand)."""
        track.encoded.add(int(slice_index))
        self.frames_made += 1
        plane = track.window.apply(self._geometry.take(self._array, slice_index))
        return np.repeat(plane[None], 3, axis=0)

    def track(self, window: Window) -> Track:
        key = window_key(window)
        if key not in self.tracks:
            track = Track(window, None)
            frames = self._lazy_frames(self._geometry.num_slices, lambda i, t=track: self._make_frame(t, i))
            track.state = self._init_state(frames)
            self.tracks[key] = track
        return self.tracks[key]

    def for_prompt(self, obj: int, slice_index: int, box_frame=None, points_xy=None, labels=None,
                   mask=None, box_fit: Optional[Callable[[Track], float]] = None) -> Track:
        """The object's track; on its first prompt, the window is chosen from what the prompt holds.

        A box with some air whose centre is soft tissue is ambiguous (the lung around an organ,
        or the organ?): `box_fit(track)` — how well the model's mask in that track's window
        fills the drawn box — decides between soft tissue and lung, soft tissue unless lung
        fits clearly better.
        """
        if obj in self.of_object:
            return self.of_object[obj]
        window = self.default_window
        if self.per_object:
            plane = self._geometry.take(self._array, slice_index)
            window = choose_object_window(prompt_centre_values(plane, box_frame, points_xy, labels, mask))
            if window.name == "soft_tissue" and box_frame is not None and box_fit is not None \
                    and air_share(box_values(plane, box_frame)) >= AMBIGUOUS_AIR_SHARE:
                soft, lung = self.track(window), self.track(preset_window("lung"))
                if box_fit(lung) >= box_fit(soft) + BOX_FIT_MARGIN:
                    window = lung.window
        track = self.track(window)
        track.objects.add(obj)
        self.of_object[obj] = track
        return track

    def forget(self, obj: int) -> None:
        track = self.of_object.pop(obj, None)
        if track is not None:
            track.objects.discard(obj)

    def windows(self) -> dict[int, Window]:
        return {obj: track.window for obj, track in sorted(self.of_object.items())}

    def encoded_per_window(self) -> dict[str, int]:
        return {t.window.name if t.window.name != "custom" else f"{t.window.low:g}..{t.window.high:g}": len(t.encoded)
                for t in self.tracks.values() if t.encoded}

    @property
    def slices_encoded(self) -> int:
        return sum(len(t.encoded) for t in self.tracks.values())
