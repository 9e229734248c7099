"""A propagation session: prompts on slices of a scan, carried through the volume, 3D labels out.

Coordinates: every 3D position is a voxel index `(z, y, x)` of `scan.array` (napari data
coordinates of the image layer). The session slices the volume along one array axis chosen
from the scan's direction (see `volume.slicing`); `slice_index` is an index along that axis
and 2D boxes/masks use the slice's two other array axes in `(z, y, x)` order:

| view of a usual axial scan | slicing axis | box `(r0, c0, r1, c1)` | mask2d shape |
| --- | --- | --- | --- |
| axial | 0 (z) | `(y0, x0, y1, x1)` | `(ny, nx)` |
| coronal | 1 (y) | `(z0, x0, z1, x1)` | `(nz, nx)` |
| sagittal | 2 (x) | `(z0, y0, z1, y1)` | `(nz, ny)` |

`session.slicing_axis` tells which array axis is used (it follows the scan's direction, so
an oblique or sagittally acquired scan may slice another array axis for "axial").

Typical use::

    session = Session(scan, "lite_medsam")
    session.add_box(1, slice_index=40, box=(120, 80, 210, 190))   # (y0, x0, y1, x1) on z=40
    labels = session.propagate(progress=lambda done, total: ...)
    session.add_points(1, [(52, 150, 100)], [0])                   # correction on z=52
    labels = session.propagate()                                   # re-runs from z=52 outward
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Optional, Sequence, Union

import numpy as np

from volume.assembly import clean_session_labels
from volume.errors import (
    EmptyPromptError,
    NoPromptsError,
    PromptError,
    PromptOutsideVolumeError,
    UnknownObjectError,
    VolumeError,
)
from volume.session_parts import Progress, ProgressCallback, Prompt, SliceResult, Unit, as_numpy, crop_result
from volume.session_setup import _as_scan, _resolve_model
from volume.slicing import SliceGeometry, slicing_axis
from volume.sweep import SliceCallback, sweep
from volume.tracks import Track, TrackSet, mask_box_fit
from volume.windowing import Window, WindowSpec, is_ct, resolve_window

MAX_OBJECT_ID = int(np.iinfo(np.uint16).max)
_PROBE_OBJECT = MAX_OBJECT_ID + 1  # a temporary object for trying a window (never a label value)


class Session:
    """Prompt a scan on slices, propagate through the volume, read back 3D `labels` `(z, y, x)`.

    `model`: a model name for `sam2core.load_model` ("lite_medsam", SAM 2 names) or a loaded
    model; image models (LiteMedSAM) are tracked by prompt carrying, SAM 2 models by memory.
    `axis`: "axial", "coronal" or "sagittal" (by the scan's direction). `window`: "auto", a CT
    preset ("soft_tissue", "liver", "lung", "bone", "brain"), "percentile", "LEVEL,WIDTH" or
    `(level, width)`. With "auto" on CT each object gets the window that suits its prompt
    (lung, bone or soft tissue: `object_windows`); an explicit window holds for every object.
    `absent_slices`: a propagation direction stops for an object once it has been absent on
    that many consecutive slices, except between two of its prompts and inside its extent
    (default: the carrying rule's, `CarryConfig.absent_slices`, chosen with its thresholds; 2
    for SAM 2). `cleanup`: after a full propagation,
    keep only each object's 3D component connected to its prompts and fill holes.
    `embedding_store`: None, "auto" (the user cache) or a folder: image embeddings persist on
    disk, so a later session on the same scan encodes nothing (image models).
    `engine`/`precision`: what runs LiteMedSAM when `model` is a name (`sam2core.load_model`;
    default "auto": the fastest installed CPU engine, bf16 only where native); a model object runs as loaded.
    """

    def __init__(
        self,
        scan: Any,
        model: Any = "lite_medsam",
        axis: str = "axial",
        window: WindowSpec = "auto",
        device: Any = None,
        *,
        absent_slices: Optional[int] = None,
        cleanup: bool = True,
        checkpoint: Any = None,
        predictor: Any = None,
        predictor_options: Optional[dict] = None,
        embedding_store: Any = None,
        engine: str = "auto",
        precision: str = "auto",
    ):
        self.scan = _as_scan(scan)
        array = np.asarray(self.scan.array)
        direction = np.asarray(getattr(self.scan, "direction", np.eye(3)))
        self.view = str(axis).strip().lower()
        self.slicing_axis = slicing_axis(self.view, direction)
        self.geometry = SliceGeometry(tuple(int(n) for n in array.shape), self.slicing_axis)
        modality = getattr(self.scan, "modality", "OT")
        self.window = resolve_window(window, array, modality)
        auto = window is None or (isinstance(window, str) and window.strip().lower() == "auto")
        self.window_per_object = bool(auto and is_ct(array, modality))
        if absent_slices is not None and int(absent_slices) < 1:
            raise VolumeError(f"absent_slices must be >= 1; got {absent_slices}")
        self.cleanup = bool(cleanup)
        self.model = _resolve_model(model, device, checkpoint, engine, precision)
        if predictor is None:
            from sam2core.build import make_predictor
            from volume.precompute import resolve_embedding_store

            options = dict(predictor_options or {})
            store = resolve_embedding_store(embedding_store)
            if store is not None and getattr(self.model, "is_image_model", False):
                options.setdefault("embedding_store", store)
            predictor = make_predictor(self.model, **options)
        self.predictor = predictor
        if absent_slices is None:
            absent_slices = getattr(getattr(predictor, "config", None), "absent_slices", 2)
        self.absent_slices = int(absent_slices)

        self._tracks = TrackSet(array, self.geometry, self.window, self.window_per_object, self.predictor.init_state)
        if not self.window_per_object:
            self._tracks.track(self.window)
        self._extents: dict[int, tuple[int, int]] = {}
        self._extent_given: dict[int, tuple[bool, bool]] = {}  # which ends the user set
        self.cancelled = False
        self._clear()

    # ----------------------------------------------------------------- frames
    @property
    def num_slices(self) -> int:
        return self.geometry.num_slices

    @property
    def frames_made(self) -> int:
        """Frames made for the model (a frame is made when its slice is encoded)."""
        return self._tracks.frames_made

    @property
    def slices_encoded(self) -> int:
        """Slice encodings so far: distinct slices per window, summed over windows."""
        return self._tracks.slices_encoded

    @property
    def slices_encoded_per_window(self) -> dict[str, int]:
        """Distinct slices encoded in each window in use (window name → count)."""
        return self._tracks.encoded_per_window()

    @property
    def object_windows(self) -> dict[int, Window]:
        """The window each object is segmented in (chosen at its first prompt when `window="auto"` on CT)."""
        return self._tracks.windows()

    def predictor_state(self, obj_id: int) -> Any:
        """The streaming predictor's state that tracks `obj_id` (one state per window)."""
        return self._track_of(self._check_known(obj_id)).state

    def _track_of(self, obj: int) -> Track:
        return self._tracks.of_object[obj]

    # ---------------------------------------------------------------- objects
    def _clear(self) -> None:
        shape = self.geometry.shape_zyx
        self._raw = np.zeros(shape, dtype=np.uint16)
        self._clean: Optional[np.ndarray] = None
        self._prompts: dict[int, dict[int, Prompt]] = {}
        self._pending: dict[int, dict[int, set[bool]]] = {}  # obj -> seed -> directions (reverse?) to do
        self._results: dict[int, dict[int, Optional[SliceResult]]] = {}
        self._scores: dict[int, np.ndarray] = {}

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._prompts)

    @property
    def labels(self) -> np.ndarray:
        """`(z, y, x)` uint16 labels: object ids, 0 background, no overlaps (cleaned after a full propagation)."""
        return self._clean if self._clean is not None else self._raw

    @property
    def raw_labels(self) -> np.ndarray:
        """Labels as propagated, before 3D clean-up."""
        return self._raw

    @property
    def scores(self) -> dict[int, np.ndarray]:
        """Per object, a score per slice (> 0 present, NaN where not computed)."""
        return {obj: s.copy() for obj, s in self._scores.items()}

    @property
    def prompted_slices(self) -> dict[int, list[int]]:
        return {obj: sorted(p) for obj, p in self._prompts.items()}

    def _check_object_id(self, obj_id: Any) -> int:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) \
                or not 1 <= int(obj_id) <= MAX_OBJECT_ID:
            raise PromptError(f"object ids are integers 1..{MAX_OBJECT_ID} (label values); got {obj_id!r}")
        return int(obj_id)

    def _check_known(self, obj_id: Any) -> int:
        obj = self._check_object_id(obj_id)
        if obj not in self._prompts:
            known = ", ".join(map(str, self.object_ids)) or "none yet"
            raise UnknownObjectError(f"object {obj} has no prompt in this session (objects: {known}); "
                                     "add a box, points or a mask for it first")
        return obj

    def _check_slice(self, slice_index: Any) -> int:
        n = self.num_slices
        try:
            index = int(slice_index)
        except (TypeError, ValueError):
            raise PromptError(f"slice_index must be an integer; got {slice_index!r}") from None
        if index != slice_index or not 0 <= index < n:
            raise PromptOutsideVolumeError(
                f"slice {slice_index!r} is outside the scan: the {self.view} view has slices 0..{n - 1} "
                f"along array axis {self.slicing_axis}")
        return index

    # ---------------------------------------------------------------- prompts
    def add_box(self, obj_id: int, slice_index: int, box: Sequence[float]) -> np.ndarray:
        """Box prompt `(r0, c0, r1, c1)` (inclusive voxel indices of the slice's rows and columns,
        i.e. `(y0, x0, y1, x1)` on an axial slice of array axis 0; see the module table).

        Replaces this object's earlier prompts on that slice. Returns the object's 2D mask
        on the slice. A box partly outside the slice is clipped; one wholly outside raises
        `PromptOutsideVolumeError`; one with no area raises `EmptyPromptError`.
        """
        obj = self._check_object_id(obj_id)
        s = self._check_slice(slice_index)
        values = np.asarray(box, dtype=float).reshape(-1)
        if values.size != 4 or not np.all(np.isfinite(values)):
            raise PromptError(f"a box is 4 numbers (r0, c0, r1, c1); got {box!r}")
        r0, r1 = sorted(values[[0, 2]])
        c0, c1 = sorted(values[[1, 3]])
        h, w = self.geometry.frame_hw
        if r1 < 0 or c1 < 0 or r0 > h - 1 or c0 > w - 1:
            raise PromptOutsideVolumeError(
                f"box {tuple(box)} lies outside slice {s}, whose rows are 0..{h - 1} and columns 0..{w - 1}")
        r0, r1 = np.clip([r0, r1], 0, h - 1)
        c0, c1 = np.clip([c0, c1], 0, w - 1)
        if r1 - r0 < 1 or c1 - c0 < 1:
            raise EmptyPromptError(f"box {tuple(box)} on slice {s} has no area; drag a box over the object")
        prompt = Prompt(box=self.geometry.box_to_frame((r0, c0, r1, c1)))
        return self._set_prompt(obj, s, prompt)

    def add_points(self, obj_id: int, points_zyx: Sequence[Sequence[float]],
                   labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Points `(N, 3)` in voxel `(z, y, x)`, labels 1 positive / 0 negative (default all 1).

        All points must lie on one slice of the slicing axis. They add to the object's
        prompts on that slice (box and earlier points kept). Returns the 2D mask there.
        """
        obj = self._check_object_id(obj_id)
        pts = np.asarray(points_zyx, dtype=float)
        if pts.size == 0:
            raise EmptyPromptError("no points given; pass points as [(z, y, x), ...]")
        if pts.ndim == 1 and pts.size == 3:
            pts = pts[None]
        if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
            raise PromptError(f"points must be (N, 3) voxel (z, y, x); got shape {pts.shape}")
        lab = np.ones(len(pts), dtype=int) if labels is None else np.asarray(labels, dtype=int).reshape(-1)
        if lab.shape != (len(pts),) or not np.isin(lab, (0, 1)).all():
            raise PromptError(f"labels must be one 1 (positive) or 0 (negative) per point; got {labels!r}")
        shape = np.array(self.geometry.shape_zyx)
        outside = np.any((np.round(pts) < 0) | (np.round(pts) > shape - 1), axis=1)
        if outside.any():
            raise PromptOutsideVolumeError(
                f"point(s) {pts[outside].tolist()} lie outside the scan of shape (z, y, x) {tuple(shape)}")
        slices, frame_xy = self.geometry.split_points(pts)
        slice_set = sorted(set(int(round(v)) for v in slices))
        if len(slice_set) != 1:
            raise PromptError(f"all points of one call must lie on one {self.view} slice (array axis "
                              f"{self.slicing_axis}); got slices {slice_set}")
        s = slice_set[0]
        old = self._prompts.get(obj, {}).get(s)
        prompt = Prompt() if old is None or old.mask is not None else \
            Prompt(old.box, list(old.points), list(old.labels))
        prompt.points.extend(frame_xy.tolist())
        prompt.labels.extend(lab.tolist())
        return self._set_prompt(obj, s, prompt)

    def add_mask(self, obj_id: int, slice_index: int, mask2d: np.ndarray) -> np.ndarray:
        """A 2D mask prompt on one slice (shape of the slice: rows, cols; see the module table)."""
        obj = self._check_object_id(obj_id)
        s = self._check_slice(slice_index)
        mask = np.asarray(mask2d)
        if mask.shape != self.geometry.frame_hw:
            raise PromptError(f"mask2d has shape {mask.shape}; slice {s} of the {self.view} view has shape "
                              f"{self.geometry.frame_hw}")
        mask = mask.astype(bool)
        if not mask.any():
            raise EmptyPromptError(f"mask on slice {s} is empty; to delete an object use remove_object")
        return self._set_prompt(obj, s, Prompt(mask=mask))

    def _set_prompt(self, obj: int, s: int, prompt: Prompt) -> np.ndarray:
        extent = self._extents.get(obj)
        if extent is not None and not extent[0] <= s <= extent[1]:
            raise PromptOutsideVolumeError(
                f"slice {s} is outside object {obj}'s extent {extent[0]}..{extent[1]}; widen it with set_extent")
        points = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2) if prompt.points else None
        labels = np.asarray(prompt.labels, dtype=np.int32) if prompt.points else None
        state = self._tracks.for_prompt(obj, s, prompt.box, points, labels, prompt.mask,
                                        box_fit=lambda track: self._box_fit(track, s, prompt.box)).state
        if prompt.mask is not None:
            _, obj_ids, logits = self.predictor.add_new_mask(state, s, obj, prompt.mask)
        else:
            _, obj_ids, logits = self.predictor.add_new_points_or_box(
                state, s, obj, points=points, labels=labels, box=prompt.box, clear_old_points=True)
        self._prompts.setdefault(obj, {})[s] = prompt
        self._pending.setdefault(obj, {})[s] = {False, True}
        self._results.setdefault(obj, {})
        self._scores.setdefault(obj, np.full(self.num_slices, np.nan, dtype=np.float32))
        row = as_numpy(logits[list(obj_ids).index(obj), 0])
        score = float(self._object_scores(state).get(obj, 1.0 if (row > 0).any() else -1.0))
        self._store(obj, s, row, max(score, 1e-3) if (row > 0).any() else score)
        self._compose(s)
        return self._raw[self.geometry.index(s)] == obj

    def _box_fit(self, track: Track, s: int, box: np.ndarray) -> float:
        """How well the model's mask for `box` on slice `s`, in `track`'s window, fills the box."""
        probe = _PROBE_OBJECT
        try:
            _, obj_ids, logits = self.predictor.add_new_points_or_box(track.state, s, probe, box=box)
            mask = as_numpy(logits[list(obj_ids).index(probe), 0]) > 0
        except BaseException:  # a failed or interrupted probe leaves no phantom object in the track
            with contextlib.suppress(Exception):
                self.predictor.remove_object(track.state, probe)
            raise
        self.predictor.remove_object(track.state, probe)
        return mask_box_fit(mask, box)

    # ----------------------------------------------------------- bookkeeping
    def _object_scores(self, state: Any) -> dict:
        getter = getattr(self.predictor, "last_object_scores", None)
        return dict(getter(state)) if getter is not None else {}

    def _store(self, obj: int, s: int, logits: Optional[np.ndarray], score: float) -> None:
        self._results[obj][s] = None if logits is None else crop_result(logits)
        self._scores[obj][s] = score
        self._clean = None

    def _compose(self, s: int) -> np.ndarray:
        """Rebuild slice `s` of the raw labels from every object's result: highest logit wins."""
        h, w = self.geometry.frame_hw
        plane = np.zeros((h, w), dtype=np.uint16)
        best = np.full((h, w), -np.inf, dtype=np.float32)
        for obj in sorted(self._results):
            result = self._results[obj].get(s)
            if result is None:
                continue
            rh, rw = result.logits.shape
            region = (slice(result.r0, result.r0 + rh), slice(result.c0, result.c0 + rw))
            logits = result.logits.astype(np.float32)
            wins = (logits > 0) & (logits > best[region])
            plane[region][wins] = obj
            best[region][wins] = logits[wins]
        self._raw[self.geometry.index(s)] = plane
        self._clean = None
        return plane

    def _clear_results(self, obj: int, first: int, last: int) -> None:
        lo, hi = sorted((first, last))
        for s in range(max(lo, 0), min(hi, self.num_slices - 1) + 1):
            if s in self._prompts[obj]:
                continue
            if self._results[obj].pop(s, None) is not None:
                self._compose(s)
            self._scores[obj][s] = np.nan

    def remove_object(self, obj_id: int) -> None:
        """Forget an object: its prompts, results and labels."""
        obj = self._check_known(obj_id)
        self.predictor.remove_object(self._track_of(obj).state, obj)
        self._tracks.forget(obj)
        self._extents.pop(obj, None)
        self._extent_given.pop(obj, None)
        slices = [s for s, r in self._results[obj].items() if r is not None]
        for table in (self._prompts, self._pending, self._results, self._scores):
            table.pop(obj, None)
        for s in slices:
            self._compose(s)

    def reset(self) -> None:
        """Forget every prompt and result (the scan and model stay loaded)."""
        for track in self._tracks.tracks.values():
            self.predictor.reset_state(track.state)
            track.objects.clear()
        self._tracks.of_object.clear()
        self._extents.clear()
        self._extent_given.clear()
        self._clear()

    # ------------------------------------------------- undo and background work
    def snapshot(self) -> Any:
        """A snapshot of prompts, results and tracking state for `restore` (undo; see volume.snapshot)."""
        from volume.snapshot import take_snapshot

        return take_snapshot(self)

    def restore(self, snapshot: Any) -> None:
        """Put the session back as it was at `snapshot` (labels included)."""
        from volume.snapshot import restore_snapshot

        restore_snapshot(self, snapshot)

    def precompute(self, progress: Optional[ProgressCallback] = None, cancel: Optional[threading.Event] = None,
                   order: str = "outward", center: Any = None, pause: Optional[threading.Event] = None) -> int:
        """Encode slices ahead, outward from `center` (an index or a callable); see volume.precompute."""
        from volume.precompute import precompute

        return precompute(self, progress, cancel, order, center, pause)

    # ----------------------------------------------------------------- extent
    def set_extent(self, obj_id: int, first: Optional[int], last: Optional[int]) -> None:
        """Limit `obj_id` to slices `first..last` (inclusive; None: that end of the scan).

        Propagation never writes the object outside its extent, and inside it the stop rule
        is off (the user said where the object is). Results outside are cleared; the next
        `propagate` carries the object up to the new ends.
        """
        obj = self._check_known(obj_id)
        lo = 0 if first is None else self._check_slice(first)
        hi = self.num_slices - 1 if last is None else self._check_slice(last)
        if lo > hi:
            raise PromptError(f"extent of object {obj}: first slice {lo} is after last slice {hi}")
        outside = [p for p in self._prompts[obj] if not lo <= p <= hi]
        if outside:
            raise PromptOutsideVolumeError(
                f"object {obj} has prompts on slices {outside}, outside the extent {lo}..{hi}; "
                "remove them or widen the extent")
        self._extents[obj] = (lo, hi)
        self._extent_given[obj] = (first is not None, last is not None)
        if lo > 0:
            self._clear_results(obj, 0, lo - 1)
        if hi < self.num_slices - 1:
            self._clear_results(obj, hi + 1, self.num_slices - 1)
        for seed in self._prompts[obj]:
            self._pending[obj][seed] = {False, True}

    @property
    def extents(self) -> dict[int, tuple[int, int]]:
        """User-set extents: object → (first, last) slice."""
        return dict(self._extents)

    @property
    def given_extents(self) -> dict[int, tuple[Optional[int], Optional[int]]]:
        """The ends the user gave: object → (first, last), None for an end left to the stop rule."""
        return {obj: (lo if self._extent_given.get(obj, (True, True))[0] else None,
                      hi if self._extent_given.get(obj, (True, True))[1] else None)
                for obj, (lo, hi) in self._extents.items()}

    # ------------------------------------------------------------ propagation
    def _pass_limit(self, obj: int, s: int, reverse: bool) -> tuple[int, bool]:
        """Last slice a pass from prompt slice `s` writes for `obj` — halfway to its next prompt,
        the end of its extent, or the scan's end — and whether the pass is bounded (no stop rule)."""
        prompted = sorted(self._prompts[obj])
        lo, hi = self._extents.get(obj, (0, self.num_slices - 1))
        low_given, high_given = self._extent_given.get(obj, (False, False))
        if reverse:
            before = [p for p in prompted if p < s]
            return ((before[-1] + s) // 2 + 1, True) if before else (lo, low_given)
        after = [p for p in prompted if p > s]
        return ((s + after[0]) // 2, True) if after else (hi, high_given)

    def _held_span(self, obj: int) -> tuple[int, int]:
        """Slices where `obj` is there for sure: between its outermost prompts, widened to the
        ends of its extent that the user gave."""
        prompted = self._prompts[obj]
        lo, hi = self._extents.get(obj, (0, self.num_slices - 1))
        low_given, high_given = self._extent_given.get(obj, (False, False))
        return (lo if low_given else min(prompted)), (hi if high_given else max(prompted))

    def _hold_spans(self) -> None:
        """Tell the predictor where each object is there for sure (carrying never dies there)."""
        setter = getattr(self.predictor, "set_held_range", None)
        for obj, prompted in self._prompts.items():
            if setter is not None and prompted:
                setter(self._track_of(obj).state, obj, *self._held_span(obj))

    def _gap_seeds(self) -> dict[int, dict[int, np.ndarray]]:
        """Extra seeds of the 3D clean-up: inside a held span, on each slice carried on right after an
        empty one (in its pass's direction), the object's largest 2D piece — the object, though not
        connected to the prompt (object → slice → `(rows, cols)` bool mask)."""
        from scipy import ndimage

        seeds: dict[int, dict[int, np.ndarray]] = {}
        for obj, prompted in self._prompts.items():
            if not prompted:
                continue
            lo, hi = self._held_span(obj)
            results = self._results.get(obj, {})
            for s in range(lo, hi + 1):
                if s in prompted or results.get(s) is None:
                    continue
                below = max((p for p in prompted if p < s), default=None)
                # written by the forward pass from the prompt below when within that pass's limit
                forward = below is not None and s <= self._pass_limit(obj, below, False)[0]
                behind = s - 1 if forward else s + 1
                if behind in prompted or results.get(behind) is not None:
                    continue
                pieces, count = ndimage.label(np.take(self._raw, s, axis=self.slicing_axis) == obj)
                if count:
                    sizes = np.bincount(pieces.ravel())[1:]
                    seeds.setdefault(obj, {})[s] = pieces == 1 + int(np.argmax(sizes))
        return seeds

    def propagate(self, progress: Optional[ProgressCallback] = None,
                  cancel: Optional[threading.Event] = None,
                  on_slice: Optional[SliceCallback] = None,
                  direction: str = "both") -> np.ndarray:
        """Carry every new prompt outward in both directions; returns `labels` `(z, y, x)`.

        Each direction stops for an object after `absent_slices` slices without it, or
        halfway to its next prompted slice; between two prompts and inside a given extent it
        goes on to that limit, past slices where the mask vanished. Prompts added since the
        last call (corrections) re-propagate from their slice only; other slices keep their results. All objects
        travel together in one sweep per direction, so each slice is encoded once.
        `progress(done, total)` counts slices (the total shrinks when objects stop early);
        `on_slice(slice_index, labels_2d)` is called whenever a slice's labels change;
        setting `cancel` stops after the current slice (labels stay consistent; unfinished
        prompts are propagated by the next call). `direction`: "both", "forward" (increasing
        slice index) or "backward"; the other direction stays to do for a later call.
        """
        if direction not in ("both", "forward", "backward"):
            raise VolumeError(f"direction must be 'both', 'forward' or 'backward'; got {direction!r}")
        wanted = {"both": (False, True), "forward": (False,), "backward": (True,)}[direction]
        if not self._prompts:
            raise NoPromptsError("nothing to propagate: add a box, points or a mask first")
        self.cancelled = False
        units = []  # (obj, seed slice, reverse, last slice to write)
        for obj in sorted(self._pending):
            for seed, todo in sorted(self._pending[obj].items()):
                for reverse in wanted:
                    if reverse in todo:
                        limit, inner = self._pass_limit(obj, seed, reverse)
                        units.append(Unit(obj, seed, reverse, limit, inner))
        self._hold_spans()
        counter = Progress(progress, units)
        for reverse in wanted:
            for track in list(self._tracks.tracks.values()):
                sweep(self, track, [u for u in units if u.reverse == reverse and u.obj in track.objects],
                      cancel, on_slice, counter)
                if self.cancelled:
                    break
            if self.cancelled:
                break
        for unit in units:
            if unit.finished:
                todo = self._pending[unit.obj][unit.seed]
                todo.discard(unit.reverse)
                if not todo:
                    del self._pending[unit.obj][unit.seed]
        if not self.cancelled:
            counter.finish()
            if self.cleanup:
                self._clean = clean_session_labels(self._raw, self._prompts, self.slicing_axis, self._gap_seeds())
        return self.labels


def load_session(scan: Union[str, Any], model: Any = "lite_medsam", **options: Any) -> Session:
    """`Session` on a scan path or object (convenience for scripts)."""
    return Session(scan, model, **options)
